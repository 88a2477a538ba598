"""`tinynas space --board ID --input 32x32x3 --classes 10`: search-space optimization.

Scores every (width multiplier, resolution) of a grid on the board with the
vectorized cost model, prints the table, and writes DIR/space.json (the chosen
space, loadable by load_space, plus the whole table) and DIR/flops_cdf.png.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

from .. import rundir as rd
from ..atomic import write_json
from ..boards import add_board_argument, load_board
from ..errors import UserError
from ..paths import check_output_dir
from ..space.spec import block_arg, load_space, space_for_block
from ..spaceopt import format_table, optimize_space, plot_flops_cdf, scaled_hw

_SHAPE_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*$")
# grey, RGB, RGBA: any other last dimension is far more often a CxHxW shape typed by habit
USUAL_CHANNELS = (1, 3, 4)
_RES_RE = re.compile(r"^\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*$")


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    add_board_argument(p)
    p.add_argument("--input", required=True, metavar="HxWxC",
                   help="input shape, height x width x channels (channels last), e.g. 32x32x3 or 49x10x1; "
                        "HxW with --channels")
    p.add_argument("--channels", type=int, metavar="C",
                   help=f"channel count, when it is not one of {', '.join(map(str, USUAL_CHANNELS))} "
                        "(then --input may also be HxW)")
    p.add_argument("--classes", type=int, required=True, help="number of classes")
    p.add_argument("--widths", metavar="W", nargs="+",
                   help="width multipliers (default 0.2 to 1.0 by 0.1); commas also work")
    p.add_argument("--resolutions", metavar="R", nargs="+",
                   help="resolutions: a side (H; W keeps the input's aspect ratio) or HxW "
                        "(default: half to twice the input in steps of 16, or 8 below 64 px)")
    p.add_argument("--samples", type=int, default=1000, help="subnets sampled per space (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.add_argument("--space", metavar="FILE", help="base space .json/.toml (default: the built-in MBConv space)")
    p.add_argument("--block", metavar="TYPE[,TYPE...]", type=block_arg,
                   help="start from the built-in space of this block type instead (not with --space): mb, "
                        "fused or res, or one per stage from the first, the last repeating (fused,mb)")
    p.add_argument("--out", default="space", metavar="DIR", help="output folder (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print space.json instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_input(text: str, channels: int | None = None) -> tuple[int, int, int]:
    """'32x32x3' -> (H, W, C); channels last, as everywhere in tinynas.

    PyTorch users type 3x32x32 by habit, which would silently become 32
    channels of 3x32 pixels; so a last dimension other than 1, 3 or 4 needs
    --channels to confirm it.
    """
    m = _SHAPE_RE.match(text or "")
    dims = [int(g) for g in m.groups() if g is not None] if m else []
    if not dims or min(dims) < 1:
        raise UserError(f"--input {text!r}: expected HxWxC with positive integers, e.g. 32x32x3 "
                        "(images) or 49x10x1 (MFCC)")
    if channels is not None and channels < 1:
        raise UserError(f"--channels {channels}: need at least 1 channel")
    if len(dims) == 2:
        if channels is None:
            raise UserError(f"--input {text!r}: expected HxWxC; it has no channel count (e.g. {text}x3), "
                            "or add --channels C")
        return dims[0], dims[1], channels
    h, w, c = dims
    if channels is not None and channels != c:
        raise UserError(f"--input {text!r} has {c} channels but --channels says {channels}; "
                        "the last dimension is the channel count (HxWxC)")
    if channels is None and c not in USUAL_CHANNELS:
        hint = f" (did you mean {w}x{c}x{h}?)" if h in USUAL_CHANNELS else ""
        raise UserError(f"--input {text!r}: the last dimension is the channel count (HxWxC) and {c} channels "
                        f"is unusual{hint}; pass --channels {c} if the input really has {c} channels")
    return h, w, c


def _items(values: list[str] | None) -> list[str]:
    return [t for v in values or [] for t in v.replace(",", " ").split()]


def parse_widths(values: list[str] | None) -> list[float] | None:
    if values is None:
        return None
    out = []
    for t in _items(values):
        try:
            out.append(float(t))
        except ValueError:
            raise UserError(f"--widths: {t!r} is not a number; give multipliers such as 0.3 0.5 1.0") from None
    if not out:
        raise UserError("--widths: the width grid is empty; give at least one multiplier")
    return out


def parse_resolutions(values: list[str] | None, hw: tuple[int, int]) -> list[tuple[int, int]] | None:
    if values is None:
        return None
    out = []
    for t in _items(values):
        m = _RES_RE.match(t)
        if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
            raise UserError(f"--resolutions: {t!r} is not a positive side or HxW, e.g. 48 or 64x16")
        out.append((int(m.group(1)), int(m.group(2))) if m.group(2) else scaled_hw(hw, int(m.group(1))))
    if not out:
        raise UserError("--resolutions: the resolution grid is empty; give at least one resolution")
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    h, w, c = parse_input(args.input, args.channels)
    out = check_output_dir(args.out)
    if args.classes < 1:
        raise UserError(f"--classes {args.classes}: need at least 1 class")
    if args.samples < 1:
        raise UserError(f"--samples {args.samples}: need at least 1 sample per space")
    board = load_board(args.board)
    if args.block and args.space:
        raise UserError("give --space FILE or --block TYPE, not both")
    dims = {"input_channels": c, "resolution": [h, w], "num_classes": args.classes}
    spec = space_for_block(args.block, **dims) if args.block else load_space(args.space, **dims)
    widths = parse_widths(args.widths)
    resolutions = parse_resolutions(args.resolutions, (h, w))
    t0 = time.perf_counter()
    result = optimize_space(spec, board, widths, resolutions, args.samples,
                            np.random.default_rng(args.seed), progress=not args.quiet)
    result.seed = args.seed
    wall = time.perf_counter() - t0
    doc = result.to_json()
    doc["wall_s"] = round(wall, 3)
    write_json(out / rd.SPACE_JSON, doc)
    plot_flops_cdf(result, str(out / "flops_cdf.png"))
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    row = result.chosen_row
    n_spaces = len(result.table)
    print(format_table(result))
    print(f"\nchosen      width {row['width_mult']:g}, resolution {row['resolution'][0]}x{row['resolution'][1]}"
          f": {100 * row['fit_fraction']:.1f}% of {args.samples} samples fit {board.id}, "
          f"mean {row['macs_mean'] / 1e6:.2f}M MACs")
    print(f"scored      {n_spaces} spaces x {args.samples} subnets in {wall:.2f} s")
    print(f"wrote       {out / 'space.json'}, {out / 'flops_cdf.png'}")
    return 0
