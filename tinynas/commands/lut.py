"""`tinynas lut measure|import|emulate`: measure a board's latency lookup table.

    tinynas lut measure --board ID --out DIR [--space space.json] [--limit N]
    tinynas lut import --board ID LOG [LOG ...] [--kit DIR] [--out PATH] [--merge | --force]
    tinynas lut emulate --board ID [--space space.json] [--tflm-dir TREE] [--out PATH] [--merge | --force]

`measure` writes a profiling kit (tinynas/lutkit/kit.py); the user flashes
it and captures its serial log; `import` turns the log into a measured LUT.
`emulate` needs no board: it counts the real kernels' instructions under QEMU
(tinynas/lutkit/emulated_lut.py) and writes "emulated" entries.
Where the LUT goes: by default profiles/<board-id>.lut.json, the file
`lut_for_board` reads, so profile, space and search use it with no flag.
An existing table there is never replaced silently: --merge adds the new
measurements to it, --force replaces it. --out writes anywhere else (use it
with `tinynas profile --lut PATH`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..atomic import check_staged_target
from ..boards import add_board_argument, load_board
from ..errors import UserError, quiet_native_logs
from ..latency import load_lut, lut_path, save_lut
from ..latency.lut_import import build_measured_lut
from ..deploy import tflm_build
from ..deploy.qemu_run import missing_tools
from ..latency.serial_log import read_log
from ..lutkit.emulated_lut import count_board, fill
from ..lutkit.kit import load_kit, write_kit
from ..paths import check_input_file, check_output_file, shared_dir
from ..space import load_space
from ..space.spec import replace_spec


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    lut_sub = p.add_subparsers(dest="lut_command", metavar="{measure,import,emulate}")
    lut_sub.required = True
    m = lut_sub.add_parser("measure", help="write a profiling kit for a board",
                           description="Write a profiling kit: one int8 model per LUT entry the "
                                       "space needs, C arrays, a MicroProfiler firmware and a README.",
                           epilog="example:\n  tinynas lut measure --board nucleo-f446re --out kit_f446",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_board_argument(m, required=True)
    m.add_argument("--out", required=True, help="kit folder to write (must be empty unless --force)")
    m.add_argument("--space", help="space spec (.json/.toml, e.g. what `tinynas space` chose for the "
                                   "board); default: the built-in default space")
    m.add_argument("--width", type=float, help="override the space's width multiplier")
    m.add_argument("--resolution", type=int, help="override the space's (square) resolution")
    m.add_argument("--limit", type=int, help="only the first N entries (quick trials and tests)")
    m.add_argument("--runs", type=int, default=10, help="timed invokes per model (default: %(default)s)")
    m.add_argument("--warmup", type=int, default=2, help="untimed invokes first (default: %(default)s)")
    m.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)")
    m.add_argument("--force", action="store_true", help="replace a non-empty --out")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(func=run_measure)
    i = lut_sub.add_parser("import", help="turn a kit's serial log into a measured LUT",
                           description="Parse kit serial logs and write the board's measured LUT.",
                           epilog="example:\n  tinynas lut import --board nucleo-f446re --kit kit_f446 serial.log",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("logs", nargs="+", metavar="LOG", help="captured serial log(s), one per part")
    add_board_argument(i, required=True)
    i.add_argument("--kit", help="the kit folder (checks each entry against its manifest)")
    i.add_argument("--out", help="LUT file to write (default: profiles/<board-id>.lut.json)")
    mode = i.add_mutually_exclusive_group()
    mode.add_argument("--merge", action="store_true", help="add to an existing LUT at the output path")
    mode.add_argument("--force", action="store_true", help="replace an existing LUT at the output path")
    i.add_argument("--json", action="store_true", help="print the import summary as JSON")
    i.set_defaults(func=run_import)
    e = lut_sub.add_parser("emulate", help="fill a board's LUT from QEMU instruction counts (no board needed)",
                           description="Count the real TFLM + CMSIS-NN kernels' instructions per op under "
                                       "QEMU for every op signature the space needs, and write them, times "
                                       "the core's cycles per instruction, as \"emulated\" LUT entries.",
                           epilog="example:\n  tinynas lut emulate --board nucleo-l4r5zi --width 0.5 "
                                  "--resolution 32 --out l4r5.lut.json",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_board_argument(e, required=True)
    e.add_argument("--space", help="space spec (.json/.toml); default: the built-in default space")
    e.add_argument("--width", type=float, help="override the space's width multiplier")
    e.add_argument("--resolution", type=int, help="override the space's (square) resolution")
    e.add_argument("--tflm-dir", help="Cortex-M TFLM tree, or its .tar.xz (default: $TFLM_DIR, "
                                      "else ../shared/tflm/tflm-cortex-m.tar.xz)")
    e.add_argument("--work", help="folder for per-subnet counts, reused on a re-run "
                                  "(default: the tinynas cache)")
    e.add_argument("--out", help="LUT file to write (default: profiles/<board-id>.lut.json)")
    emode = e.add_mutually_exclusive_group()
    emode.add_argument("--merge", action="store_true", help="add to an existing LUT at the output path")
    emode.add_argument("--force", action="store_true", help="replace an existing LUT at the output path")
    e.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)")
    e.add_argument("--json", action="store_true", help="print the summary as JSON")
    e.add_argument("--no-progress", action="store_true", help="no progress lines")
    e.set_defaults(func=run_emulate)


# ----------------------------------------------------------------------------- measure

def _nested_spec(path: Path):
    """A spec stored under "space" (or "chosen": {"space": ...}) in a JSON result file."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    for key in ("space", "chosen"):
        v = d.get(key) if isinstance(d, dict) else None
        if isinstance(v, dict) and isinstance(v.get("space"), dict):
            v = v["space"]
        if isinstance(v, dict) and "stages" in v:
            return v
    return None


def load_space_arg(path: str | None, width: float | None, resolution: int | None):
    """The space to measure: a file (or the default space), with optional overrides.

    --resolution measures at that one resolution, not the spec's grid.
    """
    src = None
    if path is not None:
        p = Path(path)
        src = (_nested_spec(p) if p.suffix.lower() == ".json" and p.is_file() else None) or p
    spec = load_space(src)
    changes: dict = {}
    if width is not None:
        changes["width_mult"] = width
    if resolution is not None:
        changes.update(resolution=resolution, resolutions=[])
    return replace_spec(spec, **changes) if changes else spec


def run_measure(args: argparse.Namespace) -> int:
    check_staged_target(args.out, args.force)  # before converting every model, not after
    if args.space:
        check_input_file(args.space, "--space")
    board = load_board(args.board)
    spec = load_space_arg(args.space, args.width, args.resolution)
    with quiet_native_logs():  # one converter run per kit model, each printing `fully_quantize: 0, ...`
        m = write_kit(board, spec, args.out, limit=args.limit, runs=args.runs, warmup=args.warmup,
                      seed=args.seed, force=args.force, progress=not args.no_progress)
    n, parts = len(m["entries"]), len(m["parts"])
    print(f"kit {m['kit']} for {board.id}: {n} models of {m['space_signatures']} space entries "
          f"in {parts} part(s), arena {m['arena_bytes']:,} B -> {args.out}")
    for s in m["skipped"]:
        print(f"  skipped {s['signature']}: {s['reason']}")
    print(f"next: build and flash {args.out}/firmware (see {args.out}/README.md), capture the log, "
          f"then `tinynas lut import --board {board.id} --kit {args.out} LOG`")
    return 0


# ----------------------------------------------------------------------------- import

def _output(args: argparse.Namespace, board):
    """(path, base LUT or None) after checking what is already there."""
    out = Path(args.out) if args.out else lut_path(board.id)
    if out.exists() and not (args.merge or args.force):
        raise UserError(f"{out} exists; pass --merge to add these measurements to it, "
                        "--force to replace it, or --out another path")
    base = load_lut(out, board) if (args.merge and out.exists()) else None
    return out, base


def run_import(args: argparse.Namespace) -> int:
    for log in args.logs:
        check_input_file(log, "log")
    if args.out:
        check_output_file(args.out, "--out")
    board = load_board(args.board)
    kit = load_kit(args.kit) if args.kit else None
    out, base = _output(args, board)
    logs = [read_log(p) for p in args.logs]
    rep = build_measured_lut(logs, board, kit, base)
    for source, issues in rep.issues.items():
        for it in issues:
            sys.stderr.write(f"tinynas: warning: {source}: {it}\n")
    save_lut(out, rep.lut)
    summary = _summary(rep, logs, out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_format_summary(summary))
    return 0


def _summary(rep, logs, out: Path) -> dict:
    return {
        "lut": str(out), "board": rep.lut.board,
        "measured": len(rep.measured), "rejected_lines": sum(len(v) for v in rep.issues.values()),
        "noise_lines": sum(log.noise_lines for log in logs),
        "failed": rep.failed, "not_measured": rep.not_measured,
        "invoke_overhead_cycles": rep.lut.invoke_overhead_cycles,
        "measured_over_model": {k: {"median": round(r, 3), "n": n}
                                for k, (r, n) in rep.ratios_by_kind().items()},
        "notes": rep.notes,
    }


def _format_summary(s: dict) -> str:
    lines = [f"measured    {s['measured']} entries ({s['rejected_lines']} line(s) rejected, see "
             f"warnings; {s['noise_lines']} other line(s) ignored)"]
    if s["not_measured"]:
        lines.append(f"unmeasured  {len(s['not_measured'])} kit entries: latency falls back to the "
                     "model, flagged interpolated/model")
    for sig, stage in s["failed"].items():
        lines.append(f"failed      {sig} at {stage}")
    lines.append(f"overhead    {s['invoke_overhead_cycles']:,.0f} cycles per invoke")
    for kind, r in s["measured_over_model"].items():
        lines.append(f"vs model    {kind:<8} measured/model median {r['median']:.2f} (n={r['n']})")
    lines += [f"note        {n}" for n in s["notes"]]
    lines.append(f"wrote       {s['lut']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- emulate

def _cortex_m_tree(arg: str | None) -> Path:
    """--tflm-dir, else $TFLM_DIR, else ../shared's Cortex-M tree archive."""
    if arg:
        return tflm_build.cortex_m_tree(arg, "--tflm-dir")
    if os.environ.get("TFLM_DIR"):
        return tflm_build.cortex_m_tree(os.environ["TFLM_DIR"], "$TFLM_DIR")
    return tflm_build.cortex_m_tree(str(shared_dir() / "tflm" / "tflm-cortex-m.tar.xz"),
                                    "no --tflm-dir given, and the default")


def run_emulate(args: argparse.Namespace) -> int:
    if args.out:
        check_output_file(args.out, "--out")
    if args.space:
        check_input_file(args.space, "--space")
    board = load_board(args.board)
    count_board(board)  # a core the emulator cannot count fails before any work
    out, base = _output(args, board)
    if missing := missing_tools():
        raise UserError(f"{', '.join(missing)} not found; `tinynas lut emulate` builds and runs firmware "
                        "(Debian: apt-get install cmake make gcc-arm-none-eabi qemu-system-arm)")
    if (problem := tflm_build.cross_cxx_problem()) is not None:
        raise UserError(problem)
    tree = _cortex_m_tree(args.tflm_dir)
    spec = load_space_arg(args.space, args.width, args.resolution)
    work = Path(args.work) if args.work else tflm_build.cache_root() / "emulated" / board.id

    def progress(i: int, n: int, what: str) -> None:
        if not args.no_progress:
            sys.stderr.write(f"[lut emulate] subnet {min(i + 1, n)}/{n}: {what}\n")

    with quiet_native_logs():  # one converter run per covering subnet
        result = fill(board, spec, tree, work, seed=args.seed, progress=progress)
    lut = result.lut
    if base is not None:
        for sig, e in lut.entries.items():
            base.set(sig, e.cycles, e.source)
        base.meta = {**base.meta, **lut.meta}
        lut = base
    save_lut(out, lut)
    summary = {"lut": str(out), "board": board.id, "entries": len(result.instructions),
               "missing": result.missing, "failed": {str(i + 1): w for i, w in result.failed.items()},
               "subnets": result.subnets, "counted_now": result.counted,
               "seconds": round(result.seconds, 1), "cpi": result.cpi, "counted_on": result.counted_on}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"emulated    {summary['entries']} entries from {result.subnets} covering subnets "
              f"({result.counted} counted now, on {result.counted_on}) in {summary['seconds']} s")
        print(f"cycles      instructions x {result.cpi:.3f} cycles per instruction")
        for i, why in result.failed.items():
            print(f"failed      covering subnet {i + 1}: {why}")
        for sig in result.missing:
            print(f"missing     {sig}: no covering subnet produced it; it falls back to the model")
        print(f"wrote       {out}")
    return 0
