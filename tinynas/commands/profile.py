"""`tinynas profile MODEL.tflite --board ID`: will it fit, and how fast will it run?"""

from __future__ import annotations

import argparse
import json
from ..boards import add_board_argument, load_board
from ..errors import UserError
from ..latency import load_lut, lut_for_board
from ..paths import check_input_file, check_output_file
from ..deploy.footprint import predict_if_calibrated
from ..profile import format_report, plot_memory, profile_model


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("model", help="an int8 (or float/uint8/int16) .tflite file")
    add_board_argument(p)
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
    check_input_file(args.model, "model")
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise UserError(f"--plot {args.plot}: the plot is a PNG; give a file name ending in .png")
        check_output_file(args.plot, "--plot")
    if args.lut:
        check_input_file(args.lut, "--lut")
    board = load_board(args.board)
    prof = profile_model(args.model, board, lut=_load_lut(args.lut, board), latency_ms=args.latency_ms,
                         measure=not args.no_measure, timeout_s=args.timeout, image_for=predict_if_calibrated)
    note = prof.get("measurement_note")
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
    return load_lut(path, board) if path else lut_for_board(board)
