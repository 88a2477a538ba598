"""A firmware project for any int8 .tflite: load it, size the arena, write C and the target.

The library half of `tinynas export` (the command parses flags and calls
these; `tinynas.deploy.pipeline` joins stages 2 and 3 with the TFLite it
converted). Three stages with a seam between each, so new input forms and
new arena sources slot in without touching the rest:

1. load: `load_model_input` dispatches on the input's suffix to a loader that
   returns a ModelInput (TFLite bytes + Graph); today `from_tflite`.
2. arena: `plan_arena` asks `tinynas.tflm_measure.measure_arena` (unless the
   caller measured already) and `tinynas.planner.cmsis_scratch_bytes`, then adds
   the margin.
3. write: `write_project` has cgen make the C/C++ files and
   firmware.render_target lay out the target project.
"""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..boards import DEFAULT_BOARD, Board, load_board
from ..cgen import (DEFAULT_MARGIN, MIN_MARGIN_BYTES, TFLM_BUILTIN_ADDERS, InputStage, arena_for_firmware,
                    firmware_arena_base, generated_files, opcode_table_ops, round_up)
from ..errors import UserError, option
from ..firmware import render_target
from ..graph import Graph
from ..planner import board_scratch_bytes, plan_arena as planner_arena
from ..tflite_reader import parse_tflite, read_tflite
from ..tflm_measure import measure_arena
from .firmware_settings import board_settings

MEASURE_TIMEOUT_S = 120.0


# ----------------------------------------------------------------------------- stage 1: load

@dataclass
class ModelInput:
    """What every input form must produce: the .tflite to embed and its graph."""

    tflite_bytes: bytes
    graph: Graph
    source: str         # file the model came from, for comments and messages
    default_name: str   # used when --name is not given


def from_tflite(path: Path, args: argparse.Namespace | None = None) -> ModelInput:
    """A .tflite flatbuffer, embedded byte for byte."""
    graph = read_tflite(path)  # validates existence, size and format with UserErrors
    data = path.read_bytes()
    if len(data) != graph.model_bytes:  # file changed between the two reads
        graph = parse_tflite(data, source=str(path))
    return ModelInput(tflite_bytes=data, graph=graph, source=path.name, default_name=default_name(path.stem))


def default_name(stem: str) -> str:
    """A C name stem for a model file: cgen adds `_model`, so kws_ref_model.tflite is
    kws_ref (kws_ref_model_data.cc), not kws_ref_model_model_data.cc; model.tflite is tinynas."""
    base = stem[:-len("_model")] if stem.endswith("_model") else stem
    return "tinynas" if base in ("", "model") else base


# Input suffix -> loader of a ready TFLite model. ARCH_SUFFIX inputs go to run_arch instead.
INPUT_FORMS: dict[str, Callable[[Path, argparse.Namespace | None], ModelInput]] = {
    ".tflite": from_tflite,
}
ARCH_SUFFIX = ".json"


def load_model_input(path: str | os.PathLike, args: argparse.Namespace | None = None) -> ModelInput:
    """Pick the loader by suffix; an unknown suffix that holds a TFLite flatbuffer still works."""
    p = Path(path)
    loader = INPUT_FORMS.get(p.suffix.lower())
    if loader is None:
        if p.is_file() and _has_tflite_magic(p):
            loader = from_tflite
        elif not p.exists():
            raise UserError(f"model file {p} does not exist; check the path")
        else:
            raise UserError(
                f"cannot export {p}: expected a .tflite file "
                f"(supported inputs: {', '.join(sorted(INPUT_FORMS))})"
            )
    return loader(p, args)


def _has_tflite_magic(p: Path) -> bool:
    with p.open("rb") as f:
        return f.read(8)[4:8] == b"TFL3"


# ----------------------------------------------------------------------------- stage 2: arena

@dataclass
class FirmwareArena:
    """The firmware arena and how it was obtained, for the summary and the header comment."""

    firmware_bytes: int          # kArenaBytes on the board (32-bit): the SRAM figure
    measured_bytes: int | None   # the arena part of it (the board's plan, or TFLM's host measurement)
    scratch_bytes: int
    margin_fraction: float
    measured_how: str
    scratch_how: str
    host_bytes: int | None = None  # kArenaBytes of a 64-bit host build, when it differs

    def note(self) -> str:
        """Multi-line explanation for the settings header."""
        if self.measured_bytes is None:
            return (f"{self.firmware_bytes:,} B given with --arena-bytes at export (not measured), "
                    "rounded up to a multiple of 16.")
        margin = self.firmware_bytes - self.measured_bytes - self.scratch_bytes
        pct = f"{self.margin_fraction:.0%}" + (f", at least {MIN_MARGIN_BYTES} B" if self.margin_fraction > 0 else "")
        rows = [
            ("arena", self.measured_bytes, self.measured_how),
            ("scratch", self.scratch_bytes, self.scratch_how),
            ("margin", margin, f"{pct}, plus rounding to 16 B: covers TFLM version drift and "
                               "target differences the host measurement cannot see"),
            ("total", self.firmware_bytes, "compiled into the firmware for the board"),
        ]
        if self.host_bytes is not None and self.host_bytes != self.firmware_bytes:
            rows.append(("host", self.host_bytes, "a 64-bit host build instead: TFLM's x86-64 measurement + margin "
                                                  "(8-byte pointers in TFLM's bookkeeping)"))
        lines = ["How the arena was obtained (tinynas export):"]
        for label, value, how in rows:
            head = f"  {label:<9}{value:>9,} B  "
            wrapped = textwrap.wrap(how, width=88 - len(head)) or [""]
            lines.append(head + wrapped[0])
            lines += [" " * len(head) + more for more in wrapped[1:]]
        return "\n".join(lines)

    def one_line(self) -> str:
        if self.measured_bytes is None:
            return f"{self.firmware_bytes:,} B (from --arena-bytes)"
        return (f"{self.firmware_bytes:,} B = {self.measured_bytes:,} arena + "
                f"{self.scratch_bytes:,} kernel scratch + {self.margin_fraction:.0%} margin, to 16 B")


MEASURED_HOW = ("smallest arena with which the TFLM Python runtime (reference kernels, x86-64) "
                "allocates and invokes the model (tinynas.tflm_measure)")


def measure_arena_bytes(model_bytes: bytes, graph: Graph, timeout_s: float = MEASURE_TIMEOUT_S) -> tuple[int, str]:
    """Smallest arena TFLM runs the model in, and a phrase saying how it was found."""
    measured = measure_arena(model_bytes, timeout_s=timeout_s)
    if measured.arena_bytes is None:
        raise UserError(f"the TFLM runtime could not measure the arena ({measured.error or 'no reason given'}); "
                        f"pass {option('arena_bytes')} N to skip the measurement")
    return int(measured.arena_bytes), MEASURED_HOW


def plan_arena(model: ModelInput, margin_fraction: float = DEFAULT_MARGIN,
               arena_override: int | None = None,
               measurement: tuple[int, str] | None = None, board: str | Board | None = None) -> FirmwareArena:
    """The firmware arena; `measurement` = (bytes, how) skips a measurement the caller already made.

    kArenaBytes = arena + the board's kernel scratch + margin, where the arena is
    the board's own plan wherever the planner is shown right for this model
    (cgen.firmware_arena_base) and TFLM's host measurement elsewhere. `tinynas
    profile`, the search and the run's summary use the same rule, so the SRAM a
    user budgets with is the SRAM the firmware allocates.
    """
    if arena_override is not None:
        return FirmwareArena(round_up(arena_override), None, 0, 0.0, "--arena-bytes", "")
    b = load_board(board if board is not None else DEFAULT_BOARD) if not isinstance(board, Board) else board
    measured, _ = measurement or measure_arena_bytes(model.tflite_bytes, model.graph)
    g = model.graph
    x86 = planner_arena(g, pointer_bytes=8, kernels="reference").arena_bytes
    bare = planner_arena(g, pointer_bytes=b.pointer_bytes, kernels="reference").arena_bytes
    base, how = firmware_arena_base(measured, x86, bare)
    scratch = board_scratch_bytes(g, b)
    total = arena_for_firmware(base, scratch, margin_fraction, MIN_MARGIN_BYTES)
    host = arena_for_firmware(measured, 0, margin_fraction, MIN_MARGIN_BYTES)  # host builds: reference kernels
    return FirmwareArena(total, base, scratch, margin_fraction, how,
                         f"{b.kernels} kernel scratch on {b.core} (tinynas.planner)", host_bytes=host)


def model_op_types(model: ModelInput) -> list[str]:
    """Op types TFLM must resolve: subgraph 0 in execution order, then any other subgraph's."""
    ops = list(model.graph.op_types)
    if model.graph.num_subgraphs > 1:
        ops += [o for o in opcode_table_ops(model.tflite_bytes) if o not in ops]
    return ops


def tflm_ops_setting(ops: Sequence[str]) -> str:
    """TFLM_OPS for the generated CMake project: the builtin ops, or ALL with a custom op.

    A builtin's kernel registers as Register_<BUILTIN>, which tflm.cmake matches; a custom
    op's registration is named otherwise (and signal ops live outside kernels/), so a model
    with one compiles every kernel rather than guess.
    """
    if not ops or any(o.startswith("CUSTOM") or o not in TFLM_BUILTIN_ADDERS for o in ops):
        return "ALL"
    return ";".join(sorted(set(ops)))


def write_project(model: ModelInput, target: str, out_dir: Path, name: str,
                  labels: list[str] | None, arena: FirmwareArena, ops: list[str],
                  board: str | Board = DEFAULT_BOARD, input_stage: InputStage | None = None) -> list[Path]:
    """Generate the C/C++ files and lay out the target in out_dir; paths relative to it.

    `board` gives the core flags (cmake/core.cmake) and, for the qemu target, the
    memory the linker script may use. `input_stage` (deploy.input_stage) is the
    training preprocessing the firmware applies to raw pixels; None for a bare .tflite.
    """
    files = generated_files(name, model.tflite_bytes, model.graph, arena.firmware_bytes,
                            labels=labels, arena_note=arena.note(), op_types=ops, source=model.source,
                            input_stage=input_stage, host_arena_bytes=arena.host_bytes)
    settings: dict[str, object] = {
        "arena_bytes": arena.firmware_bytes,
        "model_file": model.source,
        "model_bytes": len(model.tflite_bytes),
        "op_count": len(ops),
        "ops": ", ".join(ops),
        "tflm_ops": tflm_ops_setting(ops),
    }
    settings.update(board_settings(board if isinstance(board, Board) else load_board(board), target))
    return render_target(target, out_dir, name, files, settings)
