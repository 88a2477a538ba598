"""`tinynas export --target qemu --tflm-dir TREE`: build the project and run it on QEMU.

Users see the model run on the board's Cortex-M core (emulated) before they own the
board: the output bytes of three fixed inputs and the Invoke() time as the emulator
counts it. With -icount shift=0, QEMU advances its clock one nanosecond per guest
instruction, so the SysTick figure is an instruction count (times 40 at 25 MHz), not
cycles: QEMU models no pipeline, caches or wait states.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..boards import Board
from ..errors import UserError
from .cores import qemu_machine
from .firmware_settings import QEMU_TARGET
from .selftest import KINDS, parse_selftest
from .tflm_build import build_project, cortex_m_tree, image_size, run_qemu

TOOLS = {"cmake": "cmake", "make": "make", "arm-none-eabi-gcc": "gcc-arm-none-eabi",
         "qemu-system-arm": "qemu-system-arm"}


def missing_tools() -> list[str]:
    """Programs the QEMU build and run need that are not on PATH."""
    return [t for t in TOOLS if shutil.which(t) is None]


def check_run_request(target: str, board: Board, tflm_dir: str | None) -> Path | None:
    """The Cortex-M tree to build against, or None when nothing is to be run; fails fast."""
    if target != QEMU_TARGET:
        return None
    qemu_machine(board)  # a core QEMU cannot emulate fails before any work
    if tflm_dir is None:
        return None
    tree = cortex_m_tree(tflm_dir, "--tflm-dir")
    missing = missing_tools()
    if missing:
        pkgs = " ".join(TOOLS[t] for t in missing)
        raise UserError(f"{', '.join(missing)} not found; install them (Debian: apt-get install {pkgs})")
    return tree


def run_on_qemu(project: Path, tree: Path, board: Board, op_counts: bool = False) -> str:
    """Build `project` (TFLM from the cache), run it, and describe what the emulator printed.

    `op_counts` builds with TFLM's per-operator profiler hook (-DTINYNAS_OP_PROFILE)
    and adds each operator's instruction count to the description.
    """
    machine = qemu_machine(board)
    try:
        built = build_project(project, tree, project / "build", selftest=True,
                              extra=["-DTINYNAS_OP_PROFILE=ON"] if op_counts else ())
        size = image_size(built.executable)
        text = run_qemu(built.executable, machine.name)
    except (RuntimeError, OSError) as e:
        first = next((ln for ln in str(e).splitlines() if "error" in ln.lower()), str(e).splitlines()[0])
        raise UserError(f"QEMU build or run failed: {first.strip()}") from None
    run = parse_selftest(text)
    if not run.done:
        raise UserError(f"the firmware did not finish its self-test under {machine.name}: {text.strip()[-200:]!r}")
    lines = [f"  image  {built.executable.relative_to(project)}: text {size.text:,} B, data {size.data:,} B, "
             f"bss {size.bss:,} B (flash {size.flash:,} of {board.flash_bytes:,} B, "
             f"SRAM {size.sram:,} of {board.sram_bytes:,} B, stack and heap included)",
             f"  qemu   {machine.name} ({board.core}), -icount shift=0: Invoke() time in "
             f"{run.ticks_per_second / 1e6:g} MHz SysTick ticks (1 tick = "
             f"{1e9 / run.ticks_per_second:g} guest instructions)"]
    for kind in KINDS:
        outs = " | ".join(o.hex() if len(o) <= 32 else o[:32].hex() + f"... ({len(o)} B)"
                          for o in run.outputs.get(kind, []))
        lines.append(f"    {kind:<8} Invoke() {run.ticks[kind]:,} ticks ({run.invoke_ms(kind):.2f} ms)  "
                     f"output {outs}")
    if run.op_ticks.get("random"):
        per_tick = run.instructions_per_tick
        lines.append(f"  ops    instructions per operator (random input; {per_tick} per tick, repeatable):")
        lines += [f"    {i:>3} {op:<24} {t * per_tick:>13,}" for i, (op, t) in enumerate(run.op_ticks["random"])]
    return "\n".join(lines)
