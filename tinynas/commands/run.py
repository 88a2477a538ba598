"""`tinynas run --board ID`: data to firmware in one command (first version).

This version does what the pipeline has today, stage by stage, each into
DIR/<stage>/: pick the subnet with the most MACs that fits the board (sampled
from the default MBConv space, scored by the shared planner), train it
briefly, convert it to int8 through the Keras mirror, check int8 accuracy in
TFLM, export C + a firmware skeleton, and profile the result. The supernet and
the evolutionary search replace the "pick" and "train" stages as they land.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--board", default="stm32f746g-disco", help="board id, alias or .toml (default: %(default)s)")
    p.add_argument("--data", default="digits", help="digits (default), a .npz, an ImageFolder dir or .zip")
    p.add_argument("--out", default="runs/latest", help="output directory (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=4, help="training epochs (default: %(default)s)")
    p.add_argument("--samples", type=int, default=300, help="subnets sampled when picking one (default: %(default)s)")
    p.add_argument("--width", type=float, default=0.5, help="width multiplier of the space (default: %(default)s)")
    p.add_argument("--target", default="cmake", choices=["cmake", "arduino", "zephyr", "esp-idf", "none"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(f"[tinynas run] {msg}", flush=True)


def run(args: argparse.Namespace) -> int:
    from ..atomic import write_json, write_text
    from ..boards import load_board
    from ..data import load_dataset
    from ..errors import UserError

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UserError(f"output directory {out} is not empty; pass --force to replace it or choose another --out")
    if args.epochs < 0 or args.samples < 1 or args.width <= 0:
        raise UserError("--epochs must be >= 0, --samples >= 1 and --width > 0")
    t0 = time.time()
    board = load_board(args.board)
    out.mkdir(parents=True, exist_ok=True)
    _say(f"board {board.id}: SRAM {board.sram_bytes:,} B, flash {board.flash_bytes:,} B")
    data = load_dataset(args.data, seed=args.seed)
    _say(f"data {args.data}: {len(data.train.y)} train / {len(data.val.y)} val, input {data.input_shape}, "
         f"{data.num_classes} classes")
    arch, pick = pick_subnet(board, data, args.width, args.samples, np.random.default_rng(args.seed))
    write_json(out / "space" / "pick.json", pick)
    write_json(out / "space" / "arch.json", arch)
    _say(f"picked subnet {pick['hash']}: {pick['macs']:,} MACs, est. SRAM {pick['sram_bytes']:,} B "
         f"({pick['fitting']}/{pick['sampled']} sampled subnets fit)")
    model, acc_float = train(arch, data, args.epochs, args.seed)
    _say(f"float top-1 on val: {acc_float:.4f}")
    from ..deploy.tflite_export import convert_subnet
    from ..deploy.verify import tflm_top1

    tfl = convert_subnet(arch, model, data)
    tfl_path = out / "export" / "model.tflite"
    from ..atomic import write_bytes

    write_bytes(tfl_path, tfl)
    acc_int8 = tflm_top1(tfl, arch, data, limit=1000)
    _say(f"int8 top-1 on val (TFLM): {acc_int8:.4f}")
    prof = profile(tfl_path, board, out / "profile")
    _say(f"profile: arena {prof['arena_bytes_device']:,} B (device), flash {prof['flash_bytes']:,} B, "
         f"{prof['latency_ms']:.1f} ms, fits={prof['fits']}")
    firmware = export_c(tfl_path, out / "firmware", args.target, data.class_names)
    summary = {
        "board": board.id, "accuracy_float": round(acc_float, 4), "accuracy_int8": round(acc_int8, 4),
        "arena_bytes": prof["arena_bytes_device"], "sram_bytes": prof["sram_bytes"],
        "flash_bytes": prof["flash_bytes"], "latency_ms": prof["latency_ms"], "macs": prof["macs"],
        "fits": prof["fits"], "arch": arch,
        "files": {"tflite": str(tfl_path), "firmware": str(firmware),
                  "profile": str(out / "profile" / "profile.json"),
                  "memory_plot": str(out / "profile" / "memory.png")},
        "wall_s": round(time.time() - t0, 1),
    }
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", _report(summary, prof, pick, args))
    _say(f"done in {summary['wall_s']} s: {out / 'summary.json'}, {out / 'report.md'}")
    return 0


def pick_subnet(board, data, width: float, samples: int, rng: np.random.Generator):
    """The sampled subnet with the most MACs whose planned arena and flash fit the board."""
    from ..errors import UserError
    from ..flash import tflite_bytes_estimate
    from ..planner import plan_arena
    from ..space.arch import arch_hash, sample_arch
    from ..space.graph_builder import build_graph
    from ..space.spec import load_space

    c, h, w = data.input_shape
    spec = load_space(None, input_channels=c, resolution=[h, w], num_classes=data.num_classes,
                      width_mult=width)
    best, best_row, fitting, min_sram = None, None, 0, None
    for _ in range(samples):
        arch = sample_arch(spec, rng)
        g = build_graph(arch)
        sram = plan_arena(g, board.pointer_bytes, board.kernels, board.core, board.dsp).arena_bytes \
            + board.sram_reserved_bytes
        flash = tflite_bytes_estimate(g) + board.flash_reserved_bytes
        min_sram = sram if min_sram is None else min(min_sram, sram)
        if sram > board.sram_bytes or flash > board.flash_bytes:
            continue
        fitting += 1
        if best is None or g.total_macs > best_row["macs"]:
            best = arch
            best_row = {"hash": arch_hash(arch), "macs": g.total_macs, "sram_bytes": sram, "flash_bytes": flash}
    if best is None:
        raise UserError(f"none of {samples} sampled subnets fits {board.id}: the smallest needs "
                        f"{min_sram:,} B SRAM of {board.sram_bytes:,}; try a smaller --width")
    return best, {**best_row, "sampled": samples, "fitting": fitting, "width_mult": width,
                  "space": spec.to_dict()}


def train(arch, data, epochs: int, seed: int):
    """Plain SGD + cosine training of one subnet; returns (model, val top-1)."""
    import torch

    from ..space.torch_model import build_model

    torch.manual_seed(seed)
    model = build_model(arch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=4e-5)
    steps = max(1, epochs * ((len(data.train.y) + 63) // 64))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    for ep in range(epochs):
        model.train()
        for x, y in data.iter_batches("train", 64, shuffle=True, generator=gen, augment=True):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
        _say(f"epoch {ep + 1}/{epochs}: loss {loss.item():.3f}")
    return model, evaluate(model, data)


def evaluate(model, data) -> float:
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in data.iter_batches("val", 256, shuffle=False):
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / max(total, 1)


def profile(tfl_path: Path, board, out_dir: Path) -> dict:
    from ..atomic import write_json
    from ..latency import lut_for_board
    from ..profile import plot_memory, profile_graph
    from ..tflite_reader import read_tflite
    from ..tflm_measure import measure_arena

    g = read_tflite(tfl_path)
    m = measure_arena(tfl_path.read_bytes())
    prof = profile_graph(g, board, measured_arena=m.arena_bytes, lut=lut_for_board(board))
    write_json(out_dir / "profile.json", prof)
    plot_memory(prof, str(out_dir / "memory.png"))
    return prof


def export_c(tfl_path: Path, out_dir: Path, target: str, labels: list[str]) -> Path:
    from ..cli import main as cli_main
    from ..errors import UserError

    argv = ["export", str(tfl_path), "--target", target, "--out", str(out_dir), "--force",
            "--name", "tinynas_model"]
    if labels:
        argv += ["--labels", ",".join(str(x) for x in labels)]
    if cli_main(argv) != 0:
        raise UserError(f"export to {out_dir} failed (see the message above)")
    return out_dir


def _report(s: dict, prof: dict, pick: dict, args: argparse.Namespace) -> str:
    cmd = (f"tinynas run --board {args.board} --data {args.data} --out {args.out} --epochs {args.epochs} "
           f"--samples {args.samples} --width {args.width} --target {args.target} --seed {args.seed}")
    return "\n".join([
        f"# tinynas run: {s['board']}", "",
        f"- float top-1 {s['accuracy_float']:.4f}, int8 top-1 (TFLM) {s['accuracy_int8']:.4f}",
        f"- arena {s['arena_bytes']:,} B (board figure), SRAM {s['sram_bytes']:,} B of {prof['board_sram_bytes']:,} B",
        f"- flash {s['flash_bytes']:,} B of {prof['board_flash_bytes']:,} B",
        f"- latency {s['latency_ms']:.2f} ms (estimated), {s['macs']:,} MACs, fits: {s['fits']}",
        f"- picked {pick['hash']} from {pick['sampled']} sampled subnets ({pick['fitting']} fit)", "",
        "![per-op memory](profile/memory.png)", "",
        f"Firmware: `{s['files']['firmware']}` (see its README to build).", "",
        "Reproduce:", "", f"    {cmd}", "",
    ])
