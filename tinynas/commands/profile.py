"""`tinynas profile MODEL.tflite --board ID`: will it fit, and how fast will it run?"""

from __future__ import annotations

import argparse
import json


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("model", help="an int8 (or float/uint8/int16) .tflite file")
    p.add_argument("--board", default="stm32f746g-disco",
                   help="board id, alias, or path to a board .toml (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--check", action="store_true", help="exit 1 when the model does not fit")
    p.add_argument("--plot", metavar="FILE.png", help="draw live activation memory per op vs the SRAM line")
    p.add_argument("--no-measure", action="store_true",
                   help="skip the TFLM runtime measurement (estimates only)")
    p.add_argument("--latency-ms", type=float, help="also check a latency limit")
    p.add_argument("--lut", help="latency lookup table JSON (default: the board's measured LUT if any)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for the TFLM measurement")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..boards import load_board
    from ..errors import UserError
    from ..profile import format_report, plot_memory, profile_graph
    from ..tflite_reader import read_tflite

    board = load_board(args.board)
    graph = read_tflite(args.model)
    if args.plot and not args.plot.lower().endswith(".png"):
        raise UserError(f"--plot {args.plot}: the plot is a PNG; give a file name ending in .png")
    lut = _load_lut(args.lut, board)
    measured = None
    note = None
    if not args.no_measure:
        from ..tflm_measure import measure_arena

        with open(args.model, "rb") as f:
            m = measure_arena(f.read(), timeout_s=args.timeout)
        measured, note = m.arena_bytes, m.error
    prof = profile_graph(graph, board, measured_arena=measured, lut=lut,
                         latency_limit_ms=args.latency_ms)
    if note:
        prof["measurement_note"] = note
    if args.plot:
        plot_memory(prof, args.plot)
    if args.json:
        print(json.dumps(prof, indent=2))
    else:
        print(format_report(prof))
        if note:
            print(f"note        {note}")
        if args.plot:
            print(f"plot        {args.plot}")
    return 1 if (args.check and not prof["fits"]) else 0


def _load_lut(path: str | None, board):
    from ..latency import load_lut, lut_for_board

    return load_lut(path, board) if path else lut_for_board(board)
