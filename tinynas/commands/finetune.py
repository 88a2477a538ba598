"""`tinynas finetune --arch ARCH.json --supernet DIR --out DIR`: train a found subnet further.

The subnet starts from its supernet weights (BN recalibrated), optionally
distilled from the supernet's largest path. DIR/model.pt is the plain
state_dict of build_model(arch) that `tinynas export` consumes.
"""

from __future__ import annotations

import argparse

from ..data.meta import load_from_meta
from ..distributed import setup, teardown
from ..space.arch import load_arch
from ..supernet.io import load_supernet
from ..train.finetune import check_out_dir, finetune
from .train_supernet import add_recipe_args


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--arch", required=True, help="arch .json (e.g. DIR/best_arch.json from `tinynas search`)")
    p.add_argument("--supernet", required=True, help="the --out directory of `tinynas train-supernet`")
    p.add_argument("--data", default=None,
                   help="the data (default: the supernet's, from its data.json); same split options are used")
    p.add_argument("--out", required=True, help="output directory (arch.json, model.pt, data.json, finetune.json)")
    add_recipe_args(p, epochs=5, lr=0.05)
    p.add_argument("--distill", action="store_true", help="distill from the supernet's largest path")
    p.add_argument("--kd-ratio", type=float, default=1.0, help="weight of the distillation loss (default: %(default)s)")
    p.add_argument("--last", action="store_true",
                   help="keep the last epoch's weights instead of the best by holdout accuracy")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_dir(args.out, args.force)
    arch = load_arch(args.arch)
    ctx = setup(args.device)
    try:
        _, _, meta = load_supernet(args.supernet)
        bundle = load_from_meta(meta, data=args.data)
        r = finetune(arch, args.supernet, bundle, args.out, args.epochs, distill=args.distill,
                     kd_ratio=args.kd_ratio, device=ctx.device, batch_size=args.batch_size, lr=args.lr,
                     seed=args.seed, steps_per_epoch=args.steps_per_epoch, augment=not args.no_augment,
                     progress=not args.no_progress, force=args.force, warmup_epochs=args.warmup_epochs,
                     nesterov=args.nesterov, keep_best=not args.last, weight_decay=args.weight_decay)
        if ctx.is_main:
            print(f"[finetune] {r['arch_hash']}: val top-1 {r['accuracy_inherited']:.4f} inherited -> "
                  f"{r['accuracy_float']:.4f} after {args.epochs} epochs, kept epoch "
                  f"{r['selection']['best_epoch']} ({r['wall_s']:.1f} s) -> {args.out}", flush=True)
    finally:
        teardown(ctx)
    return 0
