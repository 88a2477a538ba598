"""`tinynas train-supernet --data D --out DIR`: SPOS weight-sharing supernet training.

The same command scales out unchanged: `torchrun --nproc_per_node=N -m
tinynas.cli train-supernet ...` (or `torchrun --nproc_per_node=N
.venv/bin/tinynas train-supernet ...`) trains data-parallel with gloo on CPU or
nccl on GPU; rank 0 writes the outputs.
"""

from __future__ import annotations

import argparse
from ..data import load_dataset
from ..data.meta import data_meta
from ..distributed import barrier, setup, teardown
from ..space.spec import load_space
from ..train.optim import WEIGHT_DECAY
from ..train.spos import train_supernet


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--space", default=None,
                   help="space .json/.toml (e.g. from `tinynas space`), or 'default': the built-in space at the "
                        "data's input size and class count (default)")
    p.add_argument("--data", default="digits", help="digits (default), a .npz, an ImageFolder dir or .zip")
    p.add_argument("--out", required=True, help="output directory (supernet.pt, checkpoint.pt, train.json, ...)")
    add_recipe_args(p, epochs=10, lr=0.1)
    p.add_argument("--paths-per-step", type=int, default=1,
                   help="paths per step, gradients averaged (default: %(default)s)")
    p.add_argument("--sampling", choices=["uniform", "sandwich"], default="uniform",
                   help="sandwich: largest path on the labels, smallest (+ random) paths distilled from it; "
                        "uniform: SPOS's random paths (default: %(default)s)")
    p.add_argument("--holdout-fraction", type=float, default=0.1,
                   help="share of the training split held out for search and checkpoint choice "
                        "(default: %(default)s)")
    p.add_argument("--width-mult", type=float, default=None, help="override the space's width multiplier")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out share (default: %(default)s)")
    p.add_argument("--val-count", type=int, default=None, help="held-out images, instead of --val-fraction")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/val split (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue from DIR/checkpoint.pt (a missing or empty DIR starts afresh)")
    p.set_defaults(func=run)


def _weight_decay(value: str) -> float:
    """The range `tinynas run` accepts for train.weight_decay, so both ways refuse the same values."""
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number (e.g. 1e-3)") from None
    if not 0.0 <= f < 0.1:
        raise argparse.ArgumentTypeError(f"{value} must be in [0, 0.1) (e.g. 1e-3)")
    return f


def add_recipe_args(p, epochs: int, lr: float) -> None:
    """Options that supernet training and fine-tuning share (same loop, same recipe)."""
    p.add_argument("--epochs", type=int, default=epochs, help="training epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, help="images per step per process (default: %(default)s)")
    p.add_argument("--lr", type=float, default=lr, help="peak SGD learning rate, cosine-decayed (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed: init, paths, order (default: %(default)s)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (quick runs)")
    p.add_argument("--warmup-epochs", type=float, default=1.0,
                   help="linear learning-rate warm-up before the cosine decay (default: %(default)s)")
    p.add_argument("--weight-decay", type=_weight_decay, default=WEIGHT_DECAY, metavar="WD",
                   help="SGD weight decay on conv and linear weights, as `tinynas run`'s train.weight_decay "
                        "(default: %(default)s; before 2026-12-02 these commands used 5e-5)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    p.add_argument("--no-augment", action="store_true", help="switch off crop/flip augmentation")
    p.add_argument("--device", default="auto", help="auto (default: GPU if present), cpu, cuda, cuda:1 ...")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_space(space: str | None, bundle, width_mult: float | None = None):
    """--space as given, or the default space adapted to the data's channels, size and classes."""
    c, h, w = bundle.input_shape
    over = {} if width_mult is None else {"width_mult": width_mult}
    if space in (None, "default"):
        return load_space(None, resolution=[h, w], input_channels=c, num_classes=bundle.num_classes, **over)
    return load_space(space, **over)


def load_data(args: argparse.Namespace, rank: int):
    """Load --data with the split options, rank 0 first (it may write the decode cache)."""
    opts = {"val_fraction": args.val_fraction, "seed": args.split_seed,
            "holdout_fraction": args.holdout_fraction}
    if args.val_count is not None:
        opts["val_count"] = args.val_count
    if rank != 0:
        barrier()
    bundle = load_dataset(args.data, **opts)
    if rank == 0:
        barrier()
    return bundle, data_meta(args.data, bundle, **opts)


def run(args: argparse.Namespace) -> int:
    ctx = setup(args.device)
    try:
        bundle, meta = load_data(args, ctx.rank)
        spec = resolve_space(args.space, bundle, args.width_mult)
        s = train_supernet(spec, bundle, meta, args.out, args.epochs, batch_size=args.batch_size, lr=args.lr,
                           seed=args.seed, resume=args.resume, progress=not args.no_progress,
                           paths_per_step=args.paths_per_step, steps_per_epoch=args.steps_per_epoch,
                           augment=not args.no_augment, force=args.force, device=ctx.device,
                           sampling=args.sampling, warmup_epochs=args.warmup_epochs, nesterov=args.nesterov,
                           weight_decay=args.weight_decay)
        if ctx.is_main:
            last = s["history"][-1] if s["history"] else {}
            fe = s.get("final_eval") or {}
            print(f"[train-supernet] {s['epochs']} epochs, {s['wall_s']:.1f} s, {s['images_per_s']:.0f} images/s "
                  f"x{s['world_size']} proc; last loss {last.get('loss', float('nan')):.3f}, "
                  f"train acc {last.get('acc', float('nan')):.3f}; val top-1 largest "
                  f"{fe.get('largest_acc', float('nan')):.3f} smallest {fe.get('smallest_acc', float('nan')):.3f}"
                  f" -> {args.out}", flush=True)
    finally:
        teardown(ctx)
    return 0
