"""Predict a linked firmware image's flash and SRAM from the model, before anything is built.

`tinynas profile` adds a board's flat reserve to the model (flash) and to the arena
(SRAM). A linked TFLM image is more specific than that: the runtime's code depends on
which kernels the op resolver registers (the linker drops the rest), the resolver's
static size on how many, and the SRAM holds the arena the firmware really compiles
(measured + CMSIS-NN scratch + margin), the runtime's static data, the stack and the
heap. This module predicts exactly what arm-none-eabi-size reports for the image the
qemu target links:

  flash = text + data = base code + sum of each registered op's kernel code + model + data
  SRAM  = data + bss  = data + base bss + resolver slots + arena + stack + heap

The per-core constants come from `calibrate`, which links the qemu project once with no
op registered and once per op (against the cached TFLM library) and records, from the
linker map, which input sections (functions, constant tables) each op adds to the base.
A model's kernel code is the union of its ops' sections, so helpers that several ops
share (CMSIS-NN's matrix kernels, requantization) are counted once.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..boards import Board, load_board
from ..cgen import DEFAULT_MARGIN, MIN_MARGIN_BYTES, TFLM_OP_ADDERS, arena_for_firmware, pascal_case
from ..graph import Graph
from ..planner import board_scratch_bytes, plan_arena
from ..profile import profile_model
from ..tflite_reader import read_tflite
from .firmware_settings import HEAP_BYTES, STACK_BYTES
from .tflm_build import ALL_OPS, build_project, image_size, project_ops

TABLE = Path(__file__).with_name("code_sizes.json")

# Ops calibrated by default: those of our search spaces and of the ../shared models.
CALIBRATION_OPS = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
    "FULLY_CONNECTED", "HARD_SWISH", "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL", "PAD", "QUANTIZE",
    "RELU", "RELU6", "RESHAPE", "SOFTMAX",
)


@dataclass(frozen=True)
class Footprint:
    """Predicted image size, and its parts."""

    flash: int
    sram: int
    parts: dict[str, int]


def _table() -> dict[str, Any]:
    return json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.is_file() else {}


def has_table(core: str) -> bool:
    return core in _table()


def firmware_arena(graph: Graph, board: Board) -> int:
    """The arena `tinynas export --board` compiles for a model the planner models (cgen.firmware_arena_base)."""
    bare = plan_arena(graph, pointer_bytes=board.pointer_bytes, kernels="reference").arena_bytes
    return arena_for_firmware(bare, int(board_scratch_bytes(graph, board)), DEFAULT_MARGIN, MIN_MARGIN_BYTES)


def op_code_bytes(core: str, op_types: list[str]) -> int:
    """Code the kernels of `op_types` add to the base image, shared functions counted once."""
    t = _table()[core]
    sizes, op_sections = t["section_bytes"], t["op_sections"]
    alone = sorted(sum(sizes[i] for i in secs) for secs in op_sections.values())
    default = alone[len(alone) // 2]  # an op not calibrated: the median op's own code
    used: set[int] = set()
    extra = 0
    for op in dict.fromkeys(op_types):
        if op in op_sections:
            used.update(op_sections[op])
        else:
            extra += default
    return sum(sizes[i] for i in used) + extra


def predict(graph: Graph, board: Board, arena_bytes: int | None = None, ops: list[str] | None = None,
            stack_bytes: int = STACK_BYTES, heap_bytes: int = HEAP_BYTES) -> Footprint:
    """Flash and SRAM of the qemu image of `graph` on `board`; KeyError if the core is uncalibrated."""
    t = _table()[board.core]
    op_types = list(dict.fromkeys(ops if ops is not None else graph.op_types))
    code = t["base_text"] + op_code_bytes(board.core, op_types)
    model = graph.model_bytes
    arena = arena_bytes if arena_bytes is not None else firmware_arena(graph, board)
    static = t["base_bss"] + t["bss_per_op"] * len(op_types)
    parts = {"code": code, "model": model, "data": t["base_data"], "static_bss": static,
             "arena": arena, "stack": stack_bytes, "heap": heap_bytes}
    return Footprint(flash=code + model + t["base_data"],
                     sram=t["base_data"] + static + arena + stack_bytes + heap_bytes, parts=parts)


def predict_if_calibrated(graph: Graph, board: Board, arena_bytes: int | None = None) -> Footprint | None:
    """`predict` for a board whose core has a code-size table (Cortex-M4, M7 today), else None."""
    return predict(graph, board, arena_bytes) if has_table(board.core) else None


@dataclass(frozen=True)
class ProfilePrediction:
    flash: int
    sram: int


def profile_prediction(model: Path, board: Board) -> ProfilePrediction:
    """What `tinynas profile` predicts today (model + reserve, device arena + reserve)."""

    p = profile_model(model, board, measure=False)
    return ProfilePrediction(int(p["flash_bytes"]), int(p["sram_bytes"]))


# ----------------------------------------------------------------------------- calibration
#
# One compile, many links: the project's op resolver header is replaced by one whose
# register function is an external symbol; calib_ops.cc defines one function per op, each
# registering that op alone, and every link points the symbol at one of them with
# --defsym. --gc-sections then keeps exactly that op's kernels.

_CALIB_RESOLVER = """// calibration stand-in for the generated resolver (tinynas.deploy.footprint)
#pragma once
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
using {alias} = tflite::MicroMutableOpResolver<{n}>;
extern "C" TfLiteStatus tinynas_calib_register({alias}& r);
inline TfLiteStatus {name}_register_ops({alias}& r) {{ return tinynas_calib_register(r); }}
"""

_CALIB_CMAKE = """
target_sources({name}_app PRIVATE calib_ops.cc)
set(CALIB_SYMBOL calib_none CACHE STRING "")
target_link_options({name}_app PRIVATE -Wl,--defsym=tinynas_calib_register=${{CALIB_SYMBOL}})
"""


def _calib_sources(name: str, n: int, ops: tuple[str, ...]) -> tuple[str, str]:

    alias = f"{pascal_case(name)}OpResolver"
    funcs = [f'extern "C" TfLiteStatus calib_none({alias}& r) {{ (void)r; return kTfLiteOk; }}']
    funcs += [f'extern "C" TfLiteStatus calib_{op.lower()}({alias}& r) {{ return r.{TFLM_OP_ADDERS[op]}(); }}'
              for op in ops]
    header = _CALIB_RESOLVER.format(alias=alias, n=n, name=name)
    return header, f'#include "{name}_op_resolver.h"\n' + "\n".join(funcs) + "\n"


def map_sections(map_file: Path, below: int) -> dict[str, int]:
    """Input sections the linker kept below address `below` (code memory): 'member(section)' -> bytes."""
    kept: dict[str, int] = {}
    lines = map_file.read_text(encoding="utf-8", errors="replace").splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Linker script and memory map")), len(lines))
    pending = ""
    for ln in lines[start:]:
        parts = ln.split()
        if ln.startswith(" .") and len(parts) == 1:  # a long section name: figures on the next line
            pending = parts[0]
            continue
        if ln.startswith(" .") and len(parts) >= 4:
            name, fields = parts[0], parts[1:]
        elif pending and ln.startswith("  ") and len(parts) >= 3 and parts[0].startswith("0x"):
            name, fields = pending, parts
        else:
            pending = ""
            continue
        pending = ""
        try:
            addr, size = int(fields[0], 16), int(fields[1], 16)
        except ValueError:
            continue
        if size and addr < below and name.startswith(_IMAGE_SECTIONS):  # not .debug_*, .comment
            member = fields[2].rsplit("/", 1)[-1]
            kept[f"{member}{name}"] = kept.get(f"{member}{name}", 0) + size
    return kept


def _linked(work: Path, tree: Path, symbol: str, ops: Sequence[str]) -> tuple[tuple[int, int, int], dict[str, int]]:
    """(text, data, bss) and kept sections of `work` linked against a library holding `ops`."""
    built = build_project(work, tree, work / "build", extra=[f"-DCALIB_SYMBOL={symbol}"], ops=ops)
    s = image_size(built.executable)
    return (s.text, s.data, s.bss), map_sections(built.executable.with_suffix(".map"), RAM_ORIGIN)


RAM_ORIGIN = 0x2000_0000  # the MPS2 machines' data memory; code lies below it
_IMAGE_SECTIONS = (".text", ".rodata", ".ARM.ex", ".init_array", ".fini_array", ".vectors")


def calibrate(project: Path, tree: Path, board: Board, model_bytes: int, arena_bytes: int,
              ops: tuple[str, ...] = CALIBRATION_OPS) -> dict[str, Any]:
    """Link `project` (a qemu project of a model of `model_bytes`) per op; the core's table entry."""
    name = next(project.glob("model/*_op_resolver.h")).name.removesuffix("_op_resolver.h")
    sizes: dict[str, tuple[int, int, int]] = {}
    kept: dict[str, dict[str, int]] = {}
    model_ops = project_ops(project)  # the library must hold the model's and every calibrated op
    lib_ops = [ALL_OPS] if model_ops is None else sorted(model_ops | set(ops))
    for n in (1, 2):  # the resolver's static size grows with its slot count
        work = project.parent / f"{project.name}.calibrate{n}"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(project, work, ignore=shutil.ignore_patterns("build"))
        header, source = _calib_sources(name, n, ops)
        (work / "model" / f"{name}_op_resolver.h").write_text(header, encoding="utf-8")
        (work / "calib_ops.cc").write_text(source, encoding="utf-8")
        with (work / "CMakeLists.txt").open("a", encoding="utf-8") as f:
            f.write(_CALIB_CMAKE.format(name=name))
        if n == 2:
            sizes["two_slots"], _ = _linked(work, tree, "calib_none", lib_ops)
            break
        sizes["none"], kept["none"] = _linked(work, tree, "calib_none", lib_ops)
        for op in ops:
            sizes[op], kept[op] = _linked(work, tree, f"calib_{op.lower()}", lib_ops)
    text0, data0, bss0 = sizes["none"]
    index: dict[str, int] = {}
    op_sections = {}
    for op in ops:
        extra = sorted(k for k in kept[op] if k not in kept["none"])
        op_sections[op] = [index.setdefault(k, len(index)) for k in extra]
    section_bytes = [0] * len(index)
    for op in ops:
        for k, i in index.items():
            if k in kept[op]:
                section_bytes[i] = kept[op][k]
    return {
        "board": board.id,
        "base_text": text0 - model_bytes,
        "base_data": data0,
        "base_bss": bss0 - arena_bytes - STACK_BYTES - HEAP_BYTES,
        "bss_per_op": sizes["two_slots"][2] - bss0,
        "op_text": {op: sizes[op][0] - text0 for op in ops},
        "section_bytes": section_bytes,
        "op_sections": op_sections,
    }


def main(argv: list[str] | None = None) -> int:
    """python -m tinynas.deploy.footprint PROJECT TREE: calibrate PROJECT's core into code_sizes.json."""

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("project", type=Path, help="a qemu project made by tinynas export --target qemu")
    ap.add_argument("tree", type=Path, help="the TFLM Cortex-M tree")
    ap.add_argument("--board", required=True)
    ap.add_argument("--model", type=Path, required=True, help="the .tflite the project embeds")
    ap.add_argument("--arena-bytes", type=int, required=True, help="the project's kArenaBytes")
    a = ap.parse_args(argv)
    board = load_board(a.board)
    entry = calibrate(a.project, a.tree, board, read_tflite(a.model).model_bytes, a.arena_bytes)
    table = _table()
    table[board.core] = entry
    write_json(TABLE, table)
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
