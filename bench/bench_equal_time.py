"""Head to head at equal CPU time: `tinynas run --time T` against hand-designed baselines.

In one invocation, one after another (by default never side by side: they
would share the cores and each would get an unknown part of T), as a user
would type them:

    tinynas run --data D --board B --time T --out OUT/run
    tinynas baseline resnet8 --data D --board B --time T --out OUT/resnet8   (and dscnn, mobilenetv2)

and, with `--run-blocks fused,mb ...`, one more `tinynas run --block fused,mb` each, so spaces
of other block types meet the same baselines in the same invocation; with `--run-configs
A.toml ...`, one more `tinynas run --config A.toml` each (in place of --config), so a change of
recipe is judged against the default run and the baselines in one invocation.

`--side-by-side 2` runs the contestants two at a time (each at OMP_NUM_THREADS,
1 by default, so each has a core): for A/B of recipes on a machine whose speed
drifts by the hour. One after another, a 20 min CIFAR-10 run's fine-tune read
770 images/s and the next contestant's 1,005 (2026-12-02): that drift, not the
recipe, can decide a comparison. Side by side both contestants see the same
hour; each runs slower than alone (they share memory bandwidth), so absolute
figures from such an invocation are not comparable with one-after-another ones.

Every command trains on the same split (same seed, val fraction or
--val-count, holdout) and is scored by the same export stage: int8 top-1 in
TFLM on the validation split, which nothing chose on. T covers all training
and searching; export and profile are extra for every contestant and their
seconds are reported apart.

Prints one JSON object (also OUT/equal_time.json) and draws OUT/equal_time.png:
int8 accuracy against predicted latency, one point per model, hollow when it
does not fit, with a panel of SRAM and flash against the board's limits.

    .venv/bin/python bench/bench_equal_time.py --data digits --time 2m --out runs/eq_digits
    .venv/bin/python bench/bench_equal_time.py --data ../shared/data/cifar10-jpeg/train.zip \\
        --val-count 5000 --time 20m --out runs/eq_cifar
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinynas.atomic import write_json
from tinynas.baselines import NAMES
from tinynas.boards import load_board
from tinynas.errors import UserError
from tinynas.space.spec import parse_blocks
from tinynas.timebudget import parse_duration

BIN = Path(sys.executable).with_name("tinynas")


def is_run(name: str) -> bool:
    """"run", "run:BLOCK" (`--run-blocks`) or "run@CONFIG" (`--run-configs`): a search, not a baseline."""
    return name == "run" or name.startswith(("run:", "run@"))


def command(name: str, args: argparse.Namespace, out: Path) -> list[str]:
    """The command line a user would type for one contestant."""
    cmd = [str(BIN), "run"] if is_run(name) else [str(BIN), "baseline", name]
    if name.startswith("run:"):
        cmd += ["--block", name[4:]]
    config = args.run_configs.get(name, args.config)
    cmd += ["--data", args.data, "--board", args.board, "--time", args.time, "--out", str(out), "--force"]
    if args.val_count:
        cmd += ["--val-count", str(args.val_count)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if config:
        cmd += ["--config", config]
    return cmd


def contest_order(runs: list[str], baselines: list[str], side_by_side: int) -> list[str]:
    """Searches first, then baselines; side by side, alternated (run, baseline, run, ...) so that
    each search shares its hour with a baseline rather than with another search."""
    if side_by_side == 1:
        return [*runs, *baselines]
    order = [n for pair in zip(runs, baselines) for n in pair]
    k = min(len(runs), len(baselines))
    return [*order, *runs[k:], *baselines[k:]]


def stage_seconds(summary: dict) -> dict[str, float]:
    """Seconds per stage, as summary.json records them (run and baseline alike)."""
    return {k: v for k, v in (summary.get("stage_wall_s") or {}).items() if v is not None}


def contest(name: str, args: argparse.Namespace, root: Path) -> dict:
    out = root / name.replace(":", "_").replace(",", "-").replace("@", "_")
    cmd = command(name, args, out)
    print(f"[bench] {' '.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    wall = time.time() - t0
    row = {"model": name, "command": " ".join(cmd), "rc": proc.returncode, "wall_s": round(wall, 1)}
    summary = out / "summary.json"
    if not summary.is_file():
        return {**row, "error": f"no summary.json (exit {proc.returncode})"}
    s = json.loads(summary.read_text())
    stages = stage_seconds(s)
    extra = sum(stages.get(k, 0.0) for k in ("export", "profile"))
    return {**row, "accuracy_int8": s["accuracy_int8"], "accuracy_float": s["accuracy_float"],
            "sram_bytes": s["sram_bytes"], "flash_bytes": s["flash_bytes"], "arena_bytes": s["arena_bytes"],
            "latency_ms": s["latency_ms"], "macs": s["macs"], "fits": s["fits"],
            "width_mult": (s.get("arch") or {}).get("width_mult"),
            "budgeted_wall_s": round(wall - extra, 1), "export_profile_s": round(extra, 1), "stages_s": stages}


def plot(rows: list[dict], board, path: Path, title: str) -> None:
    import matplotlib  # heavy: only for the figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "accuracy_int8" in r]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, r in enumerate(ok):
        face = "C0" if is_run(r["model"]) else "C1"
        ax.scatter(r["latency_ms"], 100 * r["accuracy_int8"], s=70, edgecolors=face,
                   facecolors=face if r["fits"] else "none", zorder=3)
        ax.annotate(r["model"], (r["latency_ms"], 100 * r["accuracy_int8"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=10)
        bx.scatter(100 * r["sram_bytes"] / board.sram_bytes, 100 * r["flash_bytes"] / board.flash_bytes,
                   s=70, color=face, zorder=3)
        bx.annotate(r["model"], (100 * r["sram_bytes"] / board.sram_bytes,
                                 100 * r["flash_bytes"] / board.flash_bytes),
                    textcoords="offset points", xytext=(6, 4 + 12 * (i % 4)), fontsize=10,
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6})  # staggered: points cluster here
    ax.set_xlabel("predicted latency on the board (ms)", fontsize=11)
    ax.set_ylabel("int8 top-1 in TFLM, validation (%)", fontsize=11)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    bx.axvline(100, color="#E45756", ls="--", label="board limit")
    bx.axhline(100, color="#E45756", ls="--")
    bx.set_xlabel(f"SRAM used (% of {board.sram_bytes // 1024} KiB)", fontsize=11)
    bx.set_ylabel(f"flash used (% of {board.flash_bytes // 1024} KiB)", fontsize=11)
    bx.set_xlim(0, 130)
    bx.set_ylim(0, 130)
    bx.legend(fontsize=9, loc="lower right")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--board", default="stm32f746g-disco")
    p.add_argument("--time", default="2m", help="the budget every contestant gets, e.g. 2m, 20m")
    p.add_argument("--baselines", default=",".join(NAMES), help=f"comma-separated, from {','.join(NAMES)}")
    p.add_argument("--run-blocks", nargs="*", default=[], metavar="BLOCK",
                   help="after the default run, one more `tinynas run --block BLOCK` each (e.g. fused,mb)")
    p.add_argument("--run-configs", nargs="*", default=[], metavar="TOML",
                   help="after the default run, one more `tinynas run --config TOML` each (instead of --config)")
    p.add_argument("--val-count", type=int, default=0)
    p.add_argument("--seed", type=int)
    p.add_argument("--config", help="a run.toml for every contestant (same split and recipe)")
    p.add_argument("--out", default="runs/equal_time")
    p.add_argument("--side-by-side", type=int, default=1, metavar="N",
                   help="contestants at a time (default 1; 2 for A/B of recipes on a drifting machine, see above)")
    args = p.parse_args(argv)
    if not 1 <= args.side_by_side <= (os.cpu_count() or 1):
        raise UserError(f"--side-by-side must be between 1 and the {os.cpu_count()} cores here, got {args.side_by_side}")
    args.budget_s = parse_duration(args.time)
    args.names = [n for n in args.baselines.split(",") if n]
    bad = [n for n in args.names if n not in NAMES]
    if bad:
        raise UserError(f"--baselines: {bad[0]!r} is not one of {','.join(NAMES)}")
    args.run_blocks = [",".join(parse_blocks(b, "--run-blocks")) for b in args.run_blocks]
    missing = [c for c in args.run_configs if not Path(c).is_file()]
    if missing:
        raise UserError(f"--run-configs: {missing[0]} is not a file; give a run.toml")
    stems = [Path(c).stem for c in args.run_configs]
    if len(set(stems)) != len(stems):
        raise UserError("--run-configs: two files share a name; give each a distinct file name")
    args.run_configs = {f"run@{s}": c for s, c in zip(stems, args.run_configs)}
    return args


def main(argv: list[str]) -> int:
    try:
        args = parse(argv)
        board = load_board(args.board)
    except UserError as e:
        print(f"bench_equal_time: error: {e}", file=sys.stderr)
        return 2
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    names = contest_order(["run", *(f"run:{b}" for b in args.run_blocks), *args.run_configs], args.names,
                          args.side_by_side)
    with ThreadPoolExecutor(args.side_by_side) as pool:  # threads only wait on the contestants' processes
        rows = list(pool.map(lambda name: contest(name, args, root), names))
    fitting = [r for r in rows if not is_run(r["model"]) and r.get("fits") and "accuracy_int8" in r]
    # With no fitting baseline scored there is nothing to beat: null, not a vacuous true.
    beats = {r["model"]: all(r["accuracy_int8"] >= b["accuracy_int8"] for b in fitting) if fitting else None
             for r in rows if is_run(r["model"]) and "accuracy_int8" in r}
    result = {"data": args.data, "board": board.id, "time": args.time, "budget_s": args.budget_s,
              "val_count": args.val_count or None, "side_by_side": args.side_by_side, "rows": rows,
              "run_beats_every_fitting_baseline": beats.get("run"),
              "beats_every_fitting_baseline": beats,
              "budget_overshoot": {r["model"]: round(r["budgeted_wall_s"] / args.budget_s - 1, 3)
                                   for r in rows if "budgeted_wall_s" in r}}
    write_json(root / "equal_time.json", result)
    data = "/".join(Path(args.data).parts[-2:])  # cifar10-jpeg/train.zip, not train.zip
    plot(rows, board, root / "equal_time.png", f"{data} on {board.id}, {args.time} each")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
