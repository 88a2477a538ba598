"""`tinynas search --supernet DIR --board ID --out DIR`: constrained search over a trained supernet.

Strategies share the supernet, the exact BN recalibration, the cost model, the
candidate count (`--candidates` = candidates truly evaluated, as `search.candidates`
in `tinynas run`; `--budget N` is its deprecated old name) and the outputs (search.json,
best_arch.json, pareto.png; controller.png and rl_state.pt for rl). Under
`torchrun --nproc_per_node=N -m tinynas.cli search ...` every rank runs the
same seeded search, candidate evaluation is sharded across ranks, and rank 0
writes.
"""

from __future__ import annotations

import argparse
import sys
from ..boards import add_board_argument
from ..distributed import setup, teardown
from ..errors import UserError
from ..search import STRATEGIES, run_search

DEFAULT_CANDIDATES = 300


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--supernet", required=True, help="the --out directory of `tinynas train-supernet`")
    add_board_argument(p)
    p.add_argument("--out", required=True, help="output directory (search.json, best_arch.json, pareto.png)")
    p.add_argument("--latency-ms", type=float, default=None, help="latency limit in ms (cost model)")
    p.add_argument("--strategy", default="evolution", choices=list(STRATEGIES),
                   help="search strategy (default: %(default)s)")
    p.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, metavar="N",
                   help="candidates truly evaluated (default: %(default)s)")
    # `--budget` is a time preset in `tinynas run`; here it was the candidate count. Kept, with a warning.
    p.add_argument("--budget", type=int, dest="budget_deprecated", metavar="N", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help="search seed (default: %(default)s)")
    p.add_argument("--predictor", choices=["mlp"], default=None,
                   help="screen children with an MLP accuracy predictor (evolution, aging)")
    p.add_argument("--latency-weight", type=float, default=0.0,
                   help="MnasNet soft latency reward ACC*(LAT/T)^w with T = --latency-ms, w <= 0, e.g. -0.07")
    p.add_argument("--calib-images", type=int, default=500,
                   help="training images for exact BN recalibration per candidate; with the whole holdout, 500 "
                        "rank CIFAR-10 candidates like 2,000 do (Kendall tau 0.90, bench/bench_eval_cost.py) "
                        "(default: %(default)s)")
    p.add_argument("--proxy-images", type=int, default=None,
                   help="score candidates on a class-balanced subset of this many validation images; "
                        "the finalists are re-ranked on the full split")
    p.add_argument("--prefer", choices=["efficient", "accuracy"], default="efficient",
                   help="efficient: the cheapest finalist (latency, SRAM, flash) within --tie-z standard errors "
                        "of the best accuracy; accuracy: the most accurate, whatever it costs (default: %(default)s)")
    p.add_argument("--tie-z", type=float, default=1.0,
                   help="standard errors of the best accuracy within which finalists tie (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=10, help="finalists kept in search.json (default: %(default)s)")
    p.add_argument("--data", default=None, help="the supernet's data, if it moved since training")
    p.add_argument("--device", default="auto", help="auto (default: GPU if present), cpu, cuda ...")
    p.add_argument("--resume", action="store_true", help="continue an rl search from DIR/rl_state.pt")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if args.budget_deprecated is not None:
        if args.candidates != DEFAULT_CANDIDATES:
            raise UserError("give --candidates N only (--budget N is its deprecated old name)")
        sys.stderr.write("tinynas: warning: `search --budget N` is deprecated; use --candidates N "
                         "(in `tinynas run`, --budget names a time preset)\n")
        args.candidates = args.budget_deprecated
    if args.candidates < 1:
        raise UserError(f"--candidates {args.candidates}: must be >= 1")
    if args.calib_images < 2:
        raise UserError(f"--calib-images {args.calib_images}: must be >= 2 (BN statistics need two images)")
    if args.proxy_images is not None and args.proxy_images < 1:
        raise UserError(f"--proxy-images {args.proxy_images}: must be >= 1")
    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: must be >= 1")


def run(args: argparse.Namespace) -> int:
    _check(args)
    ctx = setup(args.device)
    try:
        res = run_search(args.supernet, args.board, args.out, strategy=args.strategy, budget=args.candidates,
                         seed=args.seed, latency_ms=args.latency_ms, latency_weight=args.latency_weight,
                         predictor=args.predictor, calib_images=args.calib_images,
                         proxy_images=args.proxy_images, top_k=args.top_k, data=args.data,
                         device=str(ctx.device), resume=args.resume, force=args.force,
                         progress=not args.no_progress, prefer=args.prefer, tie_z=args.tie_z)
    finally:
        teardown(ctx)
    if ctx.is_main:
        b = res["best"]
        print(f"best {b['arch_hash']}: accuracy {b['accuracy']:.4f}, {b['macs']:,} MACs, SRAM {b['sram_bytes']:,} B, "
              f"flash {b['flash_bytes']:,} B, {b['latency_ms']:.2f} ms ({res['budget_used']} of {res['budget']} "
              f"candidates evaluated, {res['constraint_hit_fraction']:.0%} of proposals over a limit)")
        print(f"wrote {args.out}/search.json, best_arch.json, pareto.png")
    return 0
