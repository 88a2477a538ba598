"""`tinynas baseline NAME`: train a hand-designed model for a time budget, export and profile it like a run.

The comparison a user has to make before trusting a search: the same data
split (run.val_fraction, run.holdout_fraction, seed), the same standalone
recipe (train.batch_size, train.lr, train.weight_decay, warm-up, Nesterov, augmentation, label
smoothing, keep-best on the holdout) and the same time budget as
`tinynas run --time T`, then the same export and profile stages, writing the
same DIR/{finetune,export,profile}/, summary.json and report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..atomic import write_text
from ..baselines import NAMES, baseline_arch
from ..boards import add_board_argument, load_board
from ..errors import UserError
from ..paths import check_output_dir
from ..pipeline.config import build_config, read_toml, standalone_recipe, to_toml
from ..pipeline.data import load_run_data
from ..pipeline.main import StartGuard, check_data_arg, lock_out_dir, refuse_foreign
from ..pipeline.records import StageRecord
from ..pipeline.report import write_report
from ..pipeline.stages import Context, stage_export, stage_profile
from ..timebudget import parse_duration
from ..train.finetune import train_arch


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("model", choices=NAMES, help="the hand-designed model to train")
    p.add_argument("--data", help="digits (default), a .npz, an ImageFolder directory or .zip")
    add_board_argument(p, from_config=True)
    p.add_argument("--time", help="training time budget, e.g. 90s, 10m, 1h (export and profile are extra)")
    p.add_argument("--epochs", type=int, help="train for this many epochs instead of a time budget")
    p.add_argument("--out", help="output directory (default: runs/baseline-MODEL)")
    p.add_argument("--config", help="a run.toml: its [run], [train] and [export] options apply")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-count", type=int, help="hold out exactly this many images (e.g. 5000 for CIFAR-10)")
    p.add_argument("--target", choices=["cmake", "arduino", "zephyr", "esp-idf", "none"],
                   help="firmware project skeleton (default: cmake)")
    p.add_argument("--force", action="store_true", help="discard an earlier result in --out")
    p.set_defaults(func=run)


def _budget(args: argparse.Namespace) -> tuple[float | None, int | None]:
    if args.time is not None and args.epochs is not None:
        raise UserError("give --time or --epochs, not both")
    if args.epochs is not None:
        if args.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {args.epochs}")
        return None, args.epochs
    return parse_duration(args.time if args.time is not None else "2m"), None


def _cli_args(args: argparse.Namespace, out: Path) -> list[str]:
    """The options this invocation used, for the report's "Reproduce" line."""
    import shlex

    pairs = [("--data", args.data), ("--board", args.board), ("--time", args.time), ("--epochs", args.epochs),
             ("--seed", args.seed), ("--val-count", args.val_count), ("--config", args.config),
             ("--out", str(out))]
    return [f"{k} {shlex.quote(str(v))}" for k, v in pairs if v is not None]


def run(args: argparse.Namespace) -> int:
    budget_s, epochs = _budget(args)
    out = Path(args.out or f"runs/baseline-{args.model}")
    cli = {"run": {"board": args.board, "data": args.data, "out": str(out), "seed": args.seed,
                   "val_count": args.val_count}, "export": {"target": args.target}}
    cfg = build_config(read_toml(args.config) if args.config else None, cli, args.config or "--config")
    cfg["run"]["time"] = args.time or ("" if epochs else "2m")  # this command's budget, not the run preset's
    board = load_board(cfg["run"]["board"])

    def log(msg: str) -> None:
        print(f"[tinynas baseline] {msg}", file=sys.stderr, flush=True)

    check_data_arg(cfg["run"]["data"])
    check_output_dir(out)
    guard = StartGuard(out)
    refuse_foreign(out, args.force)
    lock = lock_out_dir(out)
    trained = False
    try:
        write_text(out / "run.toml", to_toml(cfg))
        bundle, meta = load_run_data(cfg, log)
        arch = baseline_arch(args.model, bundle.input_shape, bundle.num_classes, board)
        log(f"{args.model} (width {arch['width_mult']:g}) on {board.id}, "
            + (f"{budget_s:.0f} s of training" if budget_s else f"{epochs} epochs"))
        ctx = Context(cfg=cfg, out=out, board=board, bundle=bundle, meta=meta, log=log)
        t0 = time.time()
        res = train_arch(arch, bundle, out / "finetune", epochs, data_meta=meta, seed=cfg["run"]["seed"],
                         keep_best=True, time_budget_s=budget_s, force=True, info={"baseline": args.model},
                         **standalone_recipe(cfg["train"]))
        trained = True
        results = {"train": StageRecord(stage="train", wall_s=round(time.time() - t0, 1),
                                        planned_s=res.get("planned_s"), spent_s=res.get("spent_s"),
                                        result={"accuracy_float": res["accuracy_float"], "steps": res.get("steps"),
                                                "planned_steps": res.get("planned_steps")})}
        for name, fn in (("export", stage_export), ("profile", stage_profile)):
            t0 = time.time()
            (out / name).mkdir(parents=True, exist_ok=True)
            result = fn(ctx, out / name)
            results[name] = StageRecord(stage=name, wall_s=round(time.time() - t0, 1), result=result)
        s = write_report(out, board, cfg, results, title=f"tinynas baseline {args.model}",
                         command=" ".join(["tinynas", "baseline", args.model, *_cli_args(args, out)]))
    except BaseException:
        if not trained:  # failed before anything was trained: leave --out as it was
            lock.close()
            guard.undo()
        raise
    finally:
        lock.close()
    log(f"int8 top-1 {s['accuracy_int8']:.4f}, SRAM {s['sram_bytes']:,} B, flash {s['flash_bytes']:,} B, "
        f"{s['latency_ms']:.2f} ms, fits={s['fits']}; summary {out / 'summary.json'}")
    if not s["fits"]:
        raise UserError(f"{args.model} does not fit {board.id}; see {out / 'report.md'}")
    return 0
