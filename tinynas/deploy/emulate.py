"""Per-operator instruction counts of the real TFLM + CMSIS-NN kernels, on an emulated Cortex-M.

The qemu target built with -DTINYNAS_OP_PROFILE installs a TFLM profiler
(MicroProfilerInterface) that reads the SysTick counter around every kernel's
Invoke. QEMU's -icount shift=0 advances virtual time one nanosecond per guest
instruction, so a tick of the 25 MHz SysTick is 40 instructions and the
counts repeat exactly from run to run: the same model gives the same numbers
(tests/test_firmware_tflm.py). They are instruction counts, not cycles: QEMU
models no pipeline, caches or flash wait states; turning them into cycles is a
per-core calibration against boards (see the latency model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..boards import Board
from ..errors import UserError
from ..tflite_reader import parse_tflite
from .cores import qemu_machine
from .firmware_settings import QEMU_TARGET
from .project import ModelInput, model_op_types, plan_arena, write_project
from .selftest import parse_selftest
from .tflm_build import build_project, run_qemu

PROFILE_FLAG = "-DTINYNAS_OP_PROFILE=ON"


@dataclass(frozen=True)
class OpCount:
    """One operator's share of one Invoke()."""

    index: int
    op: str               # TFLM's name for the kernel (e.g. CONV_2D)
    instructions: int     # ticks x instructions per tick (40 at 25 MHz under -icount shift=0)


@dataclass(frozen=True)
class EmulatedInvoke:
    """Instruction counts of one model's Invoke() on one core, per input kind of the self-test."""

    core: str
    machine: str
    invoke_instructions: dict[str, int]
    ops: dict[str, list[OpCount]]

    def total_ops(self, kind: str) -> int:
        return sum(o.instructions for o in self.ops[kind])


def build_profiled(tflite: bytes, board: Board, tree: Path, work: Path, name: str = "emulated",
                   arena_bytes: int | None = None) -> Path:
    """The qemu image of `tflite` for `board`'s core, with the per-op profiler; its ELF path.

    `tree` is a Cortex-M TFLM tree (the TFLM library is built once and cached);
    `arena_bytes` skips the TFLM arena measurement when the caller knows it.
    """
    qemu_machine(board)  # a core QEMU cannot emulate fails before any work
    model = ModelInput(tflite_bytes=tflite, graph=parse_tflite(tflite, source=f"{name}.tflite"),
                       source=f"{name}.tflite", default_name=name)
    arena = plan_arena(model, arena_override=arena_bytes) if arena_bytes else plan_arena(model, board=board)
    project = Path(work) / "project"
    write_project(model, QEMU_TARGET, project, name, None, arena, model_op_types(model), board)
    return build_project(project, tree, Path(work) / "build", selftest=True, extra=[PROFILE_FLAG]).executable


def count(elf: Path, board: Board) -> EmulatedInvoke:
    """Run a profiled image under QEMU (-icount shift=0) and read its instruction counts."""
    machine = qemu_machine(board)
    run = parse_selftest(run_qemu(elf, machine.name))
    if not run.done or not run.op_ticks:
        raise UserError(f"the profiled firmware did not finish under {machine.name}; nothing was counted")
    per_tick = run.instructions_per_tick
    ops = {kind: [OpCount(i, op, t * per_tick) for i, (op, t) in enumerate(pairs)]
           for kind, pairs in run.op_ticks.items()}
    return EmulatedInvoke(core=board.core, machine=machine.name,
                          invoke_instructions={k: t * per_tick for k, t in run.ticks.items()}, ops=ops)
