"""Issue 6's must-show on CIFAR-10 for stm32f746g-disco: supernet, search, fine-tune, export, baseline.

Stages (each timed), on ../shared/data/cifar10-jpeg/train.zip with the fixed
45,000 / 5,000 split (load_dataset(..., val_count=5000); the decode is cached):

1. `train_supernet` (SPOS) over the default space at --width, 32x32;
   images/s and wall time.
2. `run_search` evolution and random at the same --budget for each --seeds
   (proxy subset of --proxy val images, the --top-k finalists re-ranked on all
   5,000); best validation accuracy, wall time, candidates evaluated.
3. `finetune` of the evolution winner (first seed), distilled from the largest path.
4. `export_subnet` to int8 TFLite; int8 top-1 in TFLM on the validation split.
5. Baseline: MobileNetV2's pattern (kernel 3, expand 6 everywhere, MBv2's
   depths 2-3-4-3-3 and, the space's minimum, 2 for the last stage) at the
   largest width multiplier of the space's grid whose SRAM and flash fit the
   board by the cost model; trained from scratch with the same recipe for the
   same number of epochs as the winner saw (supernet + fine-tune), then
   exported the same way.

Run it under torchrun to use both cores (every stage is data- or
candidate-parallel; rank 0 exports and writes). One thread per process: on a
machine shared with other work, a multi-threaded process can slow down
several-fold (OpenMP threads spin at barriers while their cores run something
else). --batch is the global batch.

    OMP_NUM_THREADS=1 .venv/bin/python -m torch.distributed.run --standalone --nproc_per_node=2 \
        bench/bench_cifar_supernet.py [--width 0.35] [--supernet-epochs 12] [--budget 60] [--seeds 0 1]
        [--finetune-epochs 3] [--workdir runs/bench_cifar_supernet] [--quick]

Prints one JSON object (also WORKDIR/bench.json). The defaults aim at about an
hour on 2 CPU cores (measured per-core rates: supernet ~450 images/s, ~5 s per
candidate with 2,000 calibration + 1,000 proxy images); --quick caps every
stage to check the script end to end (its accuracies mean nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinynas.paths import shared_dir  # noqa: E402

BOARD = "stm32f746g-disco"
VAL_COUNT = 5000
MBV2_DEPTHS = (2, 3, 4, 3, 3, 1)  # MobileNetV2's blocks per stage after the first block


def _world() -> int:
    from tinynas.distributed import rank_and_world

    return rank_and_world()[1]


def _main_rank() -> bool:
    from tinynas.distributed import rank_and_world

    return rank_and_world()[0] == 0


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 1)


def train_stage(args, spec, bundle, meta, batch: int, out: Path) -> dict:
    from tinynas.train import train_supernet

    s, wall = _timed(lambda: train_supernet(spec, bundle, meta, out, args.supernet_epochs, batch_size=batch,
                                            lr=args.lr, seed=0, steps_per_epoch=args.steps_per_epoch,
                                            force=True, progress=not args.no_progress))
    return {"epochs": len(s["history"]), "images_per_s": s.get("images_per_s"), "train_wall_s": s.get("wall_s"),
            "wall_s": wall, "processes": _world(), "final_eval": s.get("final_eval"),
            "last_epoch": {k: s["history"][-1][k] for k in ("loss", "acc")}}


def search_stage(args, sn_dir: Path, bundle, work: Path) -> dict:
    from tinynas.search import run_search
    from tinynas.supernet import load_supernet

    sn, spec, _ = load_supernet(sn_dir)
    runs = {}
    for strategy in ("evolution", "random"):
        for seed in args.seeds:
            r, wall = _timed(lambda: run_search((sn, spec, bundle), BOARD, work / f"search_{strategy}_{seed}",
                                                strategy=strategy, budget=args.budget, seed=seed,
                                                calib_images=args.calib, proxy_images=args.proxy, force=True,
                                                top_k=args.top_k,
                                                progress=not args.no_progress and _main_rank()))
            b = r["best"]
            runs[f"{strategy}_{seed}"] = {
                "best_accuracy": round(b["accuracy"], 4), "wall_s": wall,
                "candidates_evaluated": len(r["history"]), "sram_bytes": b["sram_bytes"],
                "flash_bytes": b["flash_bytes"], "latency_ms": round(b["latency_ms"], 2), "macs": b["macs"],
                "arch": b["arch"]}
    summary = {}
    for strategy in ("evolution", "random"):
        accs = [runs[f"{strategy}_{s}"]["best_accuracy"] for s in args.seeds]
        summary[strategy] = {"mean_best_accuracy": round(sum(accs) / len(accs), 4), "per_seed": accs}
    return {"budget": args.budget, "proxy_images": args.proxy, "calib_images": args.calib,
            "runs": {k: {kk: vv for kk, vv in v.items() if kk != "arch"} for k, v in runs.items()},
            "summary": summary, "winner_arch": runs[f"evolution_{args.seeds[0]}"]["arch"]}


def export_stage(args, arch, model_dir: Path, bundle, meta, out: Path) -> dict:
    import torch

    from tinynas.deploy.pipeline import export_subnet

    sd = torch.load(model_dir / "model.pt", weights_only=True)
    r = export_subnet(arch, sd, bundle, out, io="int8", target="cmake", force=True, progress=False,
                      verify_limit=args.verify_limit, data_record=meta)
    keys = ("accuracy_float", "accuracy_int8", "accuracy_drop_pts", "verify_samples", "arena_bytes_measured",
            "model_bytes", "params", "macs", "wall_s")
    return {k: r.get(k) for k in keys}


def baseline_arch(width_grid, base_spec):
    """MobileNetV2's pattern at the widest width of the grid that fits the board (cost model)."""
    from tinynas.boards import load_board
    from tinynas.costmodel import CostModel
    from tinynas.space import arch_from_choices

    board = load_board(BOARD)
    depths = [max(min(d, max(base_spec.depths)), min(base_spec.depths)) for d in MBV2_DEPTHS]
    for w in sorted(width_grid, reverse=True):
        spec = base_spec.with_config(width_mult=w)
        n = len(spec.stages)
        arch = arch_from_choices(spec, depths, [[3] * spec.max_depth] * n,
                                 [[max(spec.expand_ratios)] * spec.max_depth] * n)
        c = CostModel(spec, board).evaluate_arch(arch)
        if c["sram_bytes"] <= board.sram_bytes and c["flash_bytes"] <= board.flash_bytes:
            return arch, {"width_mult": w, "depths": depths, "kernel": 3, "expand": max(spec.expand_ratios),
                          **{k: c[k] for k in ("sram_bytes", "flash_bytes", "latency_ms", "macs", "params")}}
    raise SystemExit("no width of the grid fits the board for the baseline")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=0.35, help="width multiplier of the searched space")
    ap.add_argument("--supernet-epochs", type=int, default=12)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128, help="global batch (split over the processes)")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--budget", type=int, default=60, help="candidates per search run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--proxy", type=int, default=1000, help="validation images scored during search")
    ap.add_argument("--calib", type=int, default=2000, help="BN recalibration images per candidate")
    ap.add_argument("--top-k", type=int, default=5, help="finalists re-ranked on the full validation split")
    ap.add_argument("--verify-limit", type=int, default=None, help="images verified in TFLM (default: all)")
    ap.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny caps on every stage: a smoke test, not a figure")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench_cifar_supernet"))
    args = ap.parse_args()
    if args.quick:
        args.supernet_epochs, args.finetune_epochs, args.steps_per_epoch = 1, 1, 20
        args.budget, args.seeds, args.proxy, args.calib, args.verify_limit = 12, [0], 300, 300, 300
        args.top_k = 2
    return args


def _export_on_main(args, arch, model_dir: Path, bundle, meta, out: Path) -> dict | None:
    """Export runs on rank 0 only (TFLite conversion is single-process); the others wait."""
    from tinynas.distributed import barrier

    r = export_stage(args, arch, model_dir, bundle, meta, out) if _main_rank() else None
    barrier()
    return r


def run_all(args, zip_path: Path) -> dict:
    from tinynas.data import load_dataset
    from tinynas.data.meta import data_meta
    from tinynas.space import default_space
    from tinynas.train import finetune, train_arch

    work, world = Path(args.workdir), _world()
    batch = max(1, args.batch // world)
    bundle, load_s = _timed(lambda: load_dataset(zip_path, val_count=VAL_COUNT))
    meta = data_meta(zip_path, bundle, val_count=VAL_COUNT)
    spec = default_space(width_mult=args.width, resolution=[32, 32], input_channels=3, num_classes=10)
    res = {"board": BOARD, "processes": world,
           "data": {"train": len(bundle.train), "val": len(bundle.val), "load_s": load_s},
           "space": {"width_mult": spec.width_mult, "resolution": list(spec.resolution)},
           "settings": {k: v for k, v in vars(args).items() if k != "workdir"}}
    res["supernet"] = train_stage(args, spec, bundle, meta, batch, work / "supernet")
    res["search"] = search_stage(args, work / "supernet", bundle, work)
    winner = res["search"].pop("winner_arch")
    ft, ft_wall = _timed(lambda: finetune(winner, work / "supernet", bundle, work / "finetune",
                                          args.finetune_epochs, distill=True, batch_size=batch,
                                          steps_per_epoch=args.steps_per_epoch, force=True,
                                          progress=not args.no_progress, calib_images=args.calib))
    res["finetune"] = {"accuracy_inherited": ft["accuracy_inherited"], "accuracy_float": ft["accuracy_float"],
                       "epochs": args.finetune_epochs, "wall_s": ft_wall}
    if not args.skip_export:
        res["export"] = _export_on_main(args, winner, work / "finetune", bundle, meta, work / "export")
    if not args.skip_baseline:
        arch, info = baseline_arch(spec.widths, spec)
        epochs = args.supernet_epochs + args.finetune_epochs
        b, b_wall = _timed(lambda: train_arch(arch, bundle, work / "baseline", epochs, data_meta=meta,
                                              batch_size=batch, lr=args.lr, force=True,
                                              steps_per_epoch=args.steps_per_epoch,
                                              progress=not args.no_progress))
        res["baseline"] = {"name": "MobileNetV2-pattern", **info, "epochs": epochs,
                           "accuracy_float": b["accuracy_float"], "wall_s": b_wall}
        if not args.skip_export:
            res["baseline"]["export"] = _export_on_main(args, arch, work / "baseline", bundle, meta,
                                                        work / "baseline_export")
    return res


def main() -> int:
    args = parse_args()
    zip_path = shared_dir() / "data" / "cifar10-jpeg" / "train.zip"
    if not zip_path.is_file():
        print(json.dumps({"skipped": f"CIFAR-10 is absent ({zip_path})"}))
        return 0
    from tinynas.atomic import write_json
    from tinynas.distributed import setup, teardown

    ctx = setup("cpu")
    try:
        t0 = time.perf_counter()
        res = run_all(args, zip_path)
        res["total_wall_s"] = round(time.perf_counter() - t0, 1)
        if ctx.is_main:
            write_json(Path(args.workdir) / "bench.json", res)
            print(json.dumps(res, indent=2))
    finally:
        teardown(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
