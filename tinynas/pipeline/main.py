"""`tinynas run`: data and a board in, a verified model, firmware and a report out.

Stages: space -> supernet -> search -> finetune -> export -> profile, each in
DIR/<stage>/. Re-running skips finished stages and resumes an interrupted
supernet training; see `stages`.

`--time 10m` is how much compute the run may spend up to the fine-tuned model
(export and profile come after it, outside the budget); the presets are time
budgets too. See tinynas.timebudget for how stages plan against the clock and
tinynas.pipeline.config for when epochs and candidates rule instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_bytes, write_text
from ..boards import Board, add_board_argument, load_board
from ..data.sources import resolve_spec
from ..distributed import DistContext, rank_and_world, teardown
from ..errors import UserError
from ..paths import check_input_file, check_output_dir
from ..search import STRATEGIES
from ..space.spec import block_arg
from ..timebudget import format_duration
from .config import PRESETS, build_config, read_toml, time_budget_s, to_toml
from .data import load_run_data
from .records import Records, result_value
from .report import write_report
from .stages import Context, RunClock, run_stages


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    add_board_argument(p, from_config=True)
    p.add_argument("--data", help="digits (default), a .npz, an ImageFolder directory or .zip")
    p.add_argument("--out", help="output directory (default: runs/latest)")
    p.add_argument("--config", help="a run.toml with any option; the command line overrides it")
    p.add_argument("--budget", choices=list(PRESETS),
                   help="preset: small (3m), medium (30m) or large (2h) of compute, plus sample counts (default: small)")
    p.add_argument("--time", help="compute to spend up to the fine-tuned model, e.g. 90s, 10m, 1h, 2h30m "
                                  "(overrides the preset's; export and profile come on top)")
    p.add_argument("--latency-ms", type=float, help="latency limit on the board, ms (default: none)")
    p.add_argument("--seed", type=int, help="seed of the split, sampling and training (default: 0)")
    p.add_argument("--epochs", type=int, help="supernet training epochs: runs on counts, not a clock")
    p.add_argument("--candidates", type=int, help="candidates evaluated by the search: runs on counts, not a clock")
    p.add_argument("--strategy", choices=list(STRATEGIES), help="search strategy")
    p.add_argument("--block", metavar="TYPE[,TYPE...]", type=block_arg,
                   help="block type of the search space: res (default; dense 3x3 convs, fastest to train on a "
                        "CPU), fused (fused-MBConv) or mb (MBConv, fewest MACs per parameter); or one per "
                        "stage from the first, the last repeating, e.g. fused,mb")
    p.add_argument("--target", choices=["cmake", "arduino", "zephyr", "esp-idf", "none"],
                   help="firmware project skeleton (default: cmake)")
    p.add_argument("--val-count", type=int, help="hold out exactly this many images (e.g. 5000 for CIFAR-10)")
    p.add_argument("--force", action="store_true", help="discard an earlier run in --out and start over")
    p.set_defaults(func=run)


def cli_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"run": {"board": args.board, "data": args.data, "out": args.out, "seed": args.seed,
                    "budget": args.budget, "latency_ms": args.latency_ms, "val_count": args.val_count,
                    "time": args.time},
            "space": {"block": args.block},
            "train": {"epochs": args.epochs}, "search": {"candidates": args.candidates, "strategy": args.strategy},
            "export": {"target": args.target}}


def refuse_foreign(out: Path, force: bool) -> None:
    """Resume our own earlier run in --out, but never write into someone else's folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory; choose another --out")
    if force or not out.is_dir() or (out / "run.toml").is_file():
        return
    if any(p.name != ".lock" for p in out.iterdir()):
        raise UserError(f"--out {out} is not empty and holds no earlier tinynas run (no run.toml); "
                        "choose another --out, or pass --force to replace it")


def _clear(out: Path) -> None:
    """--force: drop an earlier run, but keep the lock file we hold."""
    import shutil

    for p in out.iterdir():
        if p.name != ".lock":
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def lock_out_dir(out: Path):
    """An exclusive lock on DIR, so two runs never interleave their checkpoints and stages."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise UserError(f"another tinynas run is using {out}; wait for it to finish or choose another --out") from None
    return f


def _sizing_line(cfg: dict[str, dict[str, Any]]) -> str:
    """Say up front whether the clock or the counts size this run, so nobody waits on the wrong one."""
    total = time_budget_s(cfg)
    if total is None:
        return (f"sized by counts (no time budget): {cfg['train']['epochs']} supernet epochs, "
                f"{cfg['search']['candidates']} candidates, {cfg['finetune']['epochs']} fine-tune epochs")
    shares = ", ".join(f"{k} {v:g}" for k, v in cfg["time"].items())
    return (f"time budget {format_duration(total)} up to the fine-tuned model (shares: {shares}); "
            "epochs and candidates are planned from measured throughput")


def check_data_arg(spec: str) -> None:
    """Refuse missing, unreadable or special-file data before --out is touched (a FIFO would hang the load)."""
    kind, path = resolve_spec(spec)
    if path is not None and kind != "folder":
        check_input_file(path, "data")


class StartGuard:
    """What --out held before this run, so a run that fails before any stage finished leaves it as it was.

    A bad --data or a board the data cannot fit is found only after the lock
    and run.toml are written; leaving them would make the next attempt think
    an earlier run lives there.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.top = out.absolute()
        while not self.top.parent.exists() and self.top.parent != self.top:
            self.top = self.top.parent  # the outermost folder this run will create
        self.existed = set(p.name for p in out.iterdir()) if out.is_dir() else None
        toml = out / "run.toml"
        self.old_toml = toml.read_bytes() if toml.is_file() else None

    def undo(self) -> None:
        """Remove what this run created and put back the run.toml it replaced."""
        import shutil

        if self.existed is None:
            shutil.rmtree(self.top, ignore_errors=True)
            return
        for p in self.out.iterdir():
            if p.name not in self.existed:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        if self.old_toml is not None:
            write_bytes(self.out / "run.toml", self.old_toml)


def _start(out: Path, cfg: dict[str, dict[str, Any]], force: bool):
    """Refuse a foreign --out, lock it, clear it for --force and record the effective config."""
    check_output_dir(out)
    refuse_foreign(out, force)
    lock = lock_out_dir(out)
    if force:
        _clear(out)
    write_text(out / "run.toml", to_toml(cfg))
    return lock


def run(args: argparse.Namespace) -> int:
    cfg = build_config(read_toml(args.config) if args.config else None, cli_overrides(args),
                       args.config or "--config")
    rank, world = rank_and_world(join=True)
    clock = RunClock.start(time_budget_s(cfg), cfg["time"])  # the budget counts from here: data loading too
    out = Path(cfg["run"]["out"])
    board = load_board(cfg["run"]["board"])
    check_data_arg(cfg["run"]["data"])

    def log(msg: str) -> None:
        if rank == 0:
            print(f"[tinynas run] {msg}", file=sys.stderr, flush=True)

    guard = StartGuard(out) if rank == 0 else None
    lock = _start(out, cfg, args.force) if rank == 0 else None
    results: Records = {}
    try:
        _run_locked(cfg, out, board, rank, world, log, clock, results)
    except BaseException:
        if guard is not None and not results:  # failed before any stage finished: leave nothing
            lock.close()
            guard.undo()
        raise
    finally:
        if lock is not None:
            lock.close()
        if world > 1:
            teardown(DistContext(rank, world, owns_group=True))
    if rank == 0 and not result_value(results, "profile", "fits", True):
        raise UserError(f"the exported model does not fit {board.id}; see {out / 'report.md'}")
    return 0


def _run_locked(cfg: dict[str, dict[str, Any]], out: Path, board: Board, rank: int, world: int,
                log: Callable[[str], None], clock: Any, results: Records) -> None:
    """Load the data, run the stages into `results` (filled as each finishes) and write the report."""
    t0 = time.time()
    log(f"board {board.id}: SRAM {board.sram_bytes:,} B, flash {board.flash_bytes:,} B; "
        f"budget {cfg['run']['budget']}; config {out / 'run.toml'}")
    log(_sizing_line(cfg))
    bundle, meta = load_run_data(cfg, log)
    ctx = Context(cfg=cfg, out=out, board=board, bundle=bundle, meta=meta, rank=rank, world=world, log=log,
                  clock=clock, results=results)
    run_stages(ctx)
    if rank != 0:
        return
    s = write_report(out, board, cfg, results, clock=ctx.clock)
    if s.get("time", {}).get("budget_s"):
        tm = s["time"]
        log(f"time: {tm['spent_s']:.0f} s spent of a {tm['budget_s']:.0f} s budget; export and profile "
            f"{tm['outside_budget_s']:.0f} s on top")
    log(f"done in {time.time() - t0:.0f} s: int8 top-1 {s['accuracy_int8']:.4f}, SRAM {s['sram_bytes']:,} B, "
        f"flash {s['flash_bytes']:,} B, {s['latency_ms']:.2f} ms, fits={s['fits']}")
    log(f"report: {out / 'report.html'} and {out / 'report.md'}; summary: {out / 'summary.json'}")
