"""`tinynas boards`: list the built-in board profiles, or show one in full.

Stdlib only and no ML imports, so that checking a board name is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from ..boards import Board, list_boards, load_board


def add_parser(sub: Any, name: str, help_text: str) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description="List the built-in boards (sizes, core, kernels and the SRAM/flash "
        "reserved for runtime, stack and application), or show one board in full.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    show = actions.add_parser(
        "show",
        help="show one board: sizes, reserve and its reasoning, notes, sources",
        description="Show one board in full. ID_OR_PATH is a built-in id, an alias "
        "(case-insensitive) or a path to a board .toml.",
    )
    show.add_argument("board", metavar="ID_OR_PATH", help="built-in id, alias, or path to a .toml")
    # SUPPRESS keeps `tinynas boards --json show X` working: the subparser must not
    # overwrite the parent's --json with its own default.
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(func=run, action=None)


def run(args: argparse.Namespace) -> int:
    as_json = bool(getattr(args, "json", False))
    if args.action == "show":
        board = load_board(args.board)
        out = json.dumps(board.to_dict(), indent=2) if as_json else format_board(board)
    else:
        boards = list_boards()
        out = json.dumps([b.to_dict() for b in boards], indent=2) if as_json else format_table(boards)
    sys.stdout.write(out + "\n")
    return 0


def kib(n: int) -> str:
    """Bytes as KiB, without a decimal point when it divides evenly."""
    return str(n // 1024) if n % 1024 == 0 else f"{n / 1024:.1f}"


def mhz(hz: int) -> str:
    return f"{hz / 1e6:g}"


def format_table(boards: list[Board]) -> str:
    header = ("id", "name", "core", "MHz", "SRAM KiB", "flash KiB", "kernels", "reserve KiB (SRAM/flash)")
    rows = [
        (
            b.id,
            b.name,
            b.core,
            mhz(b.clock_hz),
            kib(b.sram_bytes),
            kib(b.flash_bytes),
            b.kernels,
            f"{kib(b.sram_reserved_bytes)} / {kib(b.flash_reserved_bytes)}",
        )
        for b in boards
    ]
    right = {3, 4, 5}
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    lines = [line(header), line(tuple("-" * w for w in widths))]
    lines += [line(r) for r in rows]
    lines.append("")
    lines.append(
        "A model must fit in SRAM minus reserve (arena) and flash minus reserve (weights). "
        "`tinynas boards show ID` explains a board's reserve; --board also takes a path to your own .toml."
    )
    return "\n".join(lines)


def _wrap(label: str, text: str, width: int = 88) -> list[str]:
    indent = " " * 15
    return textwrap.wrap(
        " ".join(text.split()), width=width, initial_indent=f"  {label:<13}", subsequent_indent=indent
    ) or [f"  {label}"]


def format_board(b: Board) -> str:
    features = ", ".join(
        x for x in ("dsp" if b.dsp else "", "simd" if b.simd else "", f"fpu {b.fpu}") if x
    )
    lines = [f"{b.id}: {b.name}"]
    if b.aliases:
        lines += _wrap("aliases:", ", ".join(b.aliases))
    lines += [
        f"  {'core:':<13}{b.core} @ {mhz(b.clock_hz)} MHz ({features}), {b.pointer_bytes}-byte pointers",
        f"  {'kernels:':<13}{b.kernels}",
        f"  {'SRAM:':<13}{kib(b.sram_bytes)} KiB ({b.sram_bytes} B) - reserve "
        f"{kib(b.sram_reserved_bytes)} KiB = {kib(b.sram_available)} KiB ({b.sram_available} B) for the arena",
        f"  {'flash:':<13}{kib(b.flash_bytes)} KiB ({b.flash_bytes} B) - reserve "
        f"{kib(b.flash_reserved_bytes)} KiB = {kib(b.flash_available)} KiB ({b.flash_available} B) for the model",
    ]
    lines += _wrap("reserve:", b.reserve_reasoning)
    if b.notes:
        lines += _wrap("notes:", b.notes)
    if b.sources:
        lines.append("  sources:")
        for s in b.sources:
            lines += textwrap.wrap(s, width=88, initial_indent="    - ", subsequent_indent="      ")
    lines.append(f"  {'file:':<13}{b.path}")
    return "\n".join(lines)
