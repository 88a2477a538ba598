"""Wall time of `tinynas export ARCH.json` end to end, verification included, for a ~60k-param subnet.

Trains a subnet of about 60,000 parameters briefly on the embedded digits data
(not timed), saves it as a finetune folder (arch.json, model.pt, data.json),
then times the CLI as a user runs it: a fresh process that loads the data,
converts, exports ONNX, measures the arena, verifies on the held-out split and
writes C + a CMake project. Prints one JSON object with the wall-time
breakdown. Target (issue 4): at most 60 s on this machine.

    .venv/bin/python bench/bench_export.py [--data digits] [--epochs 4] [--params 60000]

The helpers here (`pick_arch`, `train_subnet`, `save_finetune_dir`,
`run_export`) are shared with bench_export_cifar.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 60.0
WIDTH = 0.3
STAGES = 5  # the default space's first five stages: at width 0.3 its subnets start near 56k params


def pick_arch(channels: int, resolution: int, num_classes: int, params: int, seed: int = 0) -> dict:
    """The subnet with a parameter count closest to `params` among 300 seeded samples (and the smallest)."""
    from tinynas.space import default_space, sample_arch, smallest_arch
    from tinynas.space.spec import DEFAULT_SPACE_PATH
    from tinynas.space.torch_model import build_model

    stages = json.loads(DEFAULT_SPACE_PATH.read_text())["stages"][:STAGES]
    spec = default_space(input_channels=channels, resolution=[resolution, resolution], width_mult=WIDTH,
                         num_classes=num_classes, stages=stages)
    rng = np.random.default_rng(seed)
    cands = [smallest_arch(spec)] + [sample_arch(spec, rng) for _ in range(300)]
    counts = [sum(p.numel() for p in build_model(a).parameters()) for a in cands]
    return cands[int(np.argmin([abs(c - params) for c in counts]))]


def train_subnet(arch: dict, bundle, epochs: int, seed: int = 0, batch: int = 128, lr: float = 0.1):
    """SGD + nesterov + cosine with the source's default augmentation; returns the model."""
    import torch
    from tqdm import tqdm

    from tinynas.space.torch_model import build_model

    torch.manual_seed(seed)
    model = build_model(arch)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-5)
    steps = max(1, epochs * -(-len(bundle.train.y) // batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(total=steps, desc="train", unit="step", file=sys.stderr)
    for _ in range(epochs):
        model.train()
        for x, y in bundle.iter_batches("train", batch, shuffle=True, generator=gen, augment=True):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def save_finetune_dir(d: Path, arch: dict, model, data_spec: str, bundle, **load) -> Path:
    """arch.json + model.pt + data.json, as `tinynas finetune` writes them."""
    import torch

    from tinynas.data.meta import data_meta
    from tinynas.space.arch import save_arch

    d.mkdir(parents=True, exist_ok=True)
    save_arch(d / "arch.json", arch)
    torch.save(model.state_dict(), d / "model.pt")
    (d / "data.json").write_text(json.dumps(data_meta(data_spec, bundle, **load)))
    return d / "arch.json"


def run_export(arch_json: Path, out: Path, *extra: str) -> tuple[dict, float]:
    """`tinynas export ARCH.json` in a fresh process; (export.json, process wall seconds)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "export", str(arch_json), "--out", str(out),
                        "--force", *extra], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"export failed:\n{r.stderr[-3000:]}")
    sys.stderr.write(r.stdout)
    return json.loads((out / "export.json").read_text()), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--params", type=int, default=60_000)
    ap.add_argument("--target", default="cmake")
    args = ap.parse_args()

    import torch

    from tinynas.data import load_dataset

    torch.set_num_threads(2)
    bundle = load_dataset(args.data)
    c, h, _ = bundle.input_shape
    arch = pick_arch(c, h, bundle.num_classes, args.params)
    model = train_subnet(arch, bundle, args.epochs, batch=64)
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        arch_json = save_finetune_dir(Path(tmp) / "finetune", arch, model, args.data, bundle)
        rep, wall = run_export(arch_json, Path(tmp) / "out", "--target", args.target)
    print(json.dumps({
        "data": args.data, "params": rep["params"], "macs": rep["macs"], "model_bytes": rep["model_bytes"],
        "export_wall_s": round(wall, 2), "target_s": TARGET_S, "within_target": wall <= TARGET_S,
        "in_process_s": rep["wall_s"],
        "startup_and_data_s": round(wall - rep["wall_s"], 2),  # interpreter, imports, weights, data load
        "breakdown_s": rep["timings_s"],
        "verify_samples": rep["verify_samples"],
        "accuracy_float": rep["accuracy_float"], "accuracy_int8": rep["accuracy_int8"],
        "tflm_litert_identical_fraction": rep["tflm_litert_identical_fraction"],
        "max_lsb_diff": rep["max_lsb_diff"],
        "arena_bytes_measured": rep["arena_bytes_measured"], "arena_bytes_estimated": rep["arena_bytes_estimated"],
        "arena_estimate_error_pct": rep["arena_estimate_error_pct"], "ops": rep["ops"],
    }, indent=2))


if __name__ == "__main__":
    main()
