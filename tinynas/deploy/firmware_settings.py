"""Template placeholders that come from the board: core flags and the QEMU memory map.

The qemu target's linker script gives the image no more flash and SRAM than the
board has (nor more than the emulated machine has), so an image that links is one
whose code, model, arena, static data, stack and heap fit the board.
"""

from __future__ import annotations

from ..boards import Board
from .cores import core_flags, qemu_machine

QEMU_TARGET = "qemu"
STACK_BYTES = 8 * 1024   # the boards' reserves assume an 8 KiB main stack
HEAP_BYTES = 4 * 1024    # newlib-nano's stdio buffer and reentrancy structs


def board_settings(board: Board, target: str) -> dict[str, object]:
    """Placeholder values for `board`; the qemu target also gets its machine's memory map."""
    if board.core.startswith("cortex-m"):
        values: dict[str, object] = dict(core_flags(board).template_values(board))
    else:  # no Arm core: the CMake project builds for the host only
        values = {"board_name": board.name, "board_id": board.id, "core": board.core, "fpu": board.fpu,
                  "cpu_flags": "", "device": "", "core_defines": ""}
    if target == QEMU_TARGET:
        m = qemu_machine(board)
        values.update({
            "qemu_machine": m.name,
            "code_origin": f"0x{m.code_origin:08X}",
            "code_bytes": min(m.code_bytes, board.flash_bytes),
            "ram_origin": f"0x{m.ram_origin:08X}",
            "ram_bytes": min(m.ram_bytes, board.sram_bytes),
            "stack_bytes": STACK_BYTES,
            "heap_bytes": HEAP_BYTES,
            "tick_hz": m.tick_hz,
        })
    return values
