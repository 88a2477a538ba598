"""Supernet training recipe ablation: which changes make the supernet learn, measured side by side.

Prints one JSON object (and writes --out/recipe.json + recipe.png when --out is given).

Every variant trains a supernet over the same space (default: the default space
at --width, at the data's own resolution) on the same data, split and epochs,
in this one process, one after another; then the largest and the smallest
path are scored on the validation split after exact BN recalibration. The
reference row `standalone` trains the largest arch alone, from random init
with the same recipe as the `+zero-init +warm-up` row, for the same epochs:
the ceiling a supernet's largest path can hope to reach.

Variants (cumulative unless named otherwise):
  base          uniform SPOS, PyTorch's default init, no warm-up (the recipe before issue 12)
  zero          + last BN of every residual block zero-initialised
  zero_warm     + linear warm-up over the first --warmup epochs
  zero_warm_nes + Nesterov momentum
  sandwich      zero_warm + sandwich rule (largest, smallest + 2 random) with in-place distillation
  sandwich2     zero_warm + sandwich rule with 2 paths (largest, smallest)
  standalone    the largest arch alone (zero_warm recipe)

    .venv/bin/python bench/bench_recipe.py --data digits --epochs 8 [--variants base,zero,...]
    .venv/bin/python bench/bench_recipe.py --data ../shared/data/cifar10-jpeg/train.zip --val-count 5000 \\
        --epochs 2 --batch 128 --lr 0.1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from tinynas.data import load_dataset
from tinynas.data.meta import data_meta
from tinynas.space.arch import largest_arch
from tinynas.space.spec import load_space
from tinynas.train import train_supernet
from tinynas.train.finetune import train_arch

VARIANTS = {
    "base": {"zero_init": False},
    "zero": {},
    "zero_warm": {"warmup": True},
    "zero_warm_nes": {"warmup": True, "nesterov": True},
    "sandwich": {"warmup": True, "sampling": "sandwich", "paths_per_step": 4},
    "sandwich2": {"warmup": True, "sampling": "sandwich", "paths_per_step": 2},
    "standalone": {"warmup": True},
}


def run_variant(name: str, spec, bundle, meta, args, tmp: Path) -> dict:
    v = VARIANTS[name]
    common = dict(epochs=args.epochs, batch_size=args.batch, lr=args.lr, seed=args.seed, progress=False,
                  steps_per_epoch=args.steps, warmup_epochs=args.warmup if v.get("warmup") else 0.0,
                  nesterov=v.get("nesterov", False))
    t0 = time.perf_counter()
    if name == "standalone":
        r = train_arch(largest_arch(spec), bundle, tmp / name, data_meta=meta, keep_best=False, **common)
        return {"variant": name, "largest_acc": r["accuracy_float"], "smallest_acc": None,
                "loss": [h["loss"] for h in r["history"]], "wall_s": round(time.perf_counter() - t0, 1),
                "images_per_s": round(sum(h["images_per_s"] for h in r["history"]) / len(r["history"]), 1)}
    s = train_supernet(spec, bundle, meta, tmp / name, paths_per_step=v.get("paths_per_step", 1),
                       sampling=v.get("sampling", "uniform"), zero_init=v.get("zero_init", True),
                       calib_images=args.calib, **common)
    f = s["final_eval"]
    return {"variant": name, "largest_acc": f["largest_acc"], "smallest_acc": f["smallest_acc"],
            "loss": [h["loss"] for h in s["history"]], "first_epoch_curve": [c[1] for c in s["history"][0]["curve"]],
            "wall_s": round(time.perf_counter() - t0, 1), "images_per_s": s["images_per_s"]}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for r in rows:
        ax.plot(range(1, len(r["loss"]) + 1), r["loss"], marker="o", label=f"{r['variant']} "
                f"(largest {r['largest_acc']:.3f})")
    ax.axhline(2.302, color="grey", ls=":", label="chance (10 classes)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--val-count", type=int, default=0)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None, help="cap on steps per epoch")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs for the *_warm variants")
    ap.add_argument("--calib", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_kw = {"holdout_fraction": 0.1, **({"val_count": args.val_count} if args.val_count else {})}
    bundle = load_dataset(args.data, **load_kw)
    meta = data_meta(args.data, bundle, **load_kw)
    c, h, w = bundle.input_shape
    spec = load_space(None, input_channels=c, resolution=[h, w],
                      num_classes=bundle.num_classes).with_config(width_mult=args.width)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            rows.append(run_variant(name, spec, bundle, meta, args, Path(tmp)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    out = {"data": args.data, "n_train": len(bundle.train), "n_val": len(bundle.val), "width": args.width,
           "resolution": [h, w], "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
           "warmup_epochs": args.warmup, "rows": rows}
    print(json.dumps(out, indent=1))
    if args.out:
        d = Path(args.out)
        d.mkdir(parents=True, exist_ok=True)
        (d / "recipe.json").write_text(json.dumps(out, indent=1))
        plot(rows, d / "recipe.png", f"supernet recipe ablation: {Path(args.data).name}, {args.epochs} epochs")


if __name__ == "__main__":
    main()
