"""A board's latency table from the emulator: per-op instruction counts of the real kernels.

`tinynas lut measure` needs the board on a desk; this needs none. The space's
covering subnets (kit.covering_archs: kernels x expands at full depth, which
hold every op signature its subnets can contain) are built in Keras with seeded
random weights, converted to int8, compiled with TFLM + CMSIS-NN for the board's
core and run under QEMU with TFLM's profiler hook (tinynas.deploy.emulate). Each
op's instruction count, times the core's cycles per instruction
(tinynas.latency.emulated, fitted on published whole-model measurements), is the
entry, stored with source "emulated"; an op seen several times keeps its smallest
count (the first Invoke warms nothing under QEMU, so repeats agree anyway).

Each covering subnet's counts are kept in the work folder under a key of its
architecture, core and TFLM tree, so an interrupted fill resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..atomic import write_json
from ..boards import Board
from ..deploy.cores import QEMU_MACHINES
from ..deploy.emulate import build_profiled, count
from ..deploy.tflm_build import tree_digest
from ..errors import UserError, import_tensorflow
from ..flash import tflite_bytes_estimate
from ..latency.cycle_model import invoke_overhead_cycles
from ..latency.emulated import cpi_for_core
from ..latency.lut import Lut
from ..latency.signature import op_signature
from ..space.graph_builder import build_graph
from ..space.keras_model import build_keras, convert_int8
from ..tflite_reader import parse_tflite
from .kit import covering_archs, space_signatures
from .kit_models import randomize_weights

QEMU_MEMORY = 4 * 1024 * 1024  # the MPS2 machines' code and data memory: room for any covering subnet
REP_SAMPLES = 8
COVER_DEPTH = 2  # blocks per stage in a covering subnet: a first and a repeated one hold every shape
RUNTIME_BYTES = 512 * 1024  # TFLM, CMSIS-NN and the start-up code beside the model in QEMU's memory


@dataclass
class EmulatedFill:
    """What a fill produced: the table and how it got there."""

    lut: Lut
    instructions: dict[str, int]     # signature -> instructions per Invoke of that op
    missing: list[str]               # space signatures no covering subnet produced
    failed: dict[int, str]           # covering subnet index -> why it was not counted
    subnets: int
    counted: int                     # subnets built and run now (the rest came from the work folder)
    seconds: float
    cpi: float
    counted_on: str


def count_board(board: Board) -> Board:
    """`board` with memory enough for any covering subnet: QEMU's machine, not the board, bounds it."""
    if board.core not in QEMU_MACHINES:
        raise UserError(f"board {board.id} has core {board.core}; the emulator counts "
                        f"{', '.join(sorted(QEMU_MACHINES))} (pick a board with one of those cores)")
    return replace(board, sram_bytes=QEMU_MEMORY, flash_bytes=QEMU_MEMORY)


def subnet_tflite(arch: dict, rng: np.random.Generator) -> bytes:
    """Int8 TFLite bytes of `arch` with seeded random weights (what the kernels run, not what they compute)."""
    tf = import_tensorflow()  # heavy: only when a table is really filled

    tf.keras.backend.clear_session(free_memory=False)
    model = build_keras(arch)
    randomize_weights(model, rng)
    c, h, w = arch["input"]
    return convert_int8(model, rng.standard_normal((REP_SAMPLES, h, w, c)).astype(np.float32))


def _key(arch: dict, core: str, tree_hash: str) -> str:
    text = json.dumps({"arch": arch, "core": core, "tree": tree_hash}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _too_big(arch: dict) -> str | None:
    """Why `arch` cannot run in QEMU's memory, or None."""
    weights = tflite_bytes_estimate(build_graph(arch))
    if weights + RUNTIME_BYTES > QEMU_MEMORY:
        return f"its model takes {weights:,} B; QEMU's machine has {QEMU_MEMORY:,} B for code and data"
    return None


def count_subnet(arch: dict, board: Board, tree: Path, work: Path, rng: np.random.Generator) -> list[list]:
    """[(signature, instructions)] for each op of `arch`'s Invoke, in execution order."""
    tfl = subnet_tflite(arch, rng)
    graph = parse_tflite(tfl, source="covering subnet")
    run = count(build_profiled(tfl, board, tree, work, name="cover", arena_bytes=None), board)
    ops = run.ops[sorted(run.ops)[0]]
    if len(ops) != len(graph.ops):
        raise UserError(f"the profiler reported {len(ops)} ops for a model of {len(graph.ops)}")
    return [[op_signature(graph, op), c.instructions] for op, c in zip(graph.ops, ops)]


def fill(board: Board, spec: Any, tree: Path, work: Path, seed: int = 0,
         progress: Callable[[int, int, str], None] | None = None) -> EmulatedFill:
    """Count every covering subnet of `spec` (or reuse its counts from `work`) and build the table."""
    t0 = time.time()
    counter = count_board(board)
    cpi = cpi_for_core(board.core)
    archs = covering_archs(spec, depth=COVER_DEPTH)
    tree_hash = tree_digest(tree)
    work.mkdir(parents=True, exist_ok=True)
    best: dict[str, int] = {}
    failed: dict[int, str] = {}
    counted = 0
    for i, arch in enumerate(archs):
        key = _key(arch, counter.core, tree_hash)
        done = work / f"{key}.json"
        if progress:
            progress(i, len(archs), "cached" if done.is_file() else "counting")
        if done.is_file():
            pairs = json.loads(done.read_text())["ops"]
        elif (why := _too_big(arch)) is not None:
            failed[i] = why
            continue
        else:
            try:
                pairs = count_subnet(arch, counter, tree, work / key, np.random.default_rng([seed, i]))
            except RuntimeError as e:  # a build or emulator failure: the rest can still be counted
                failed[i] = str(e).strip().splitlines()[-1][:300]
                continue
            write_json(done, {"core": counter.core, "ops": pairs})
            counted += 1
        for sig, n in pairs:
            best[sig] = min(best.get(sig, n), int(n))
    if progress:
        progress(len(archs), len(archs), "done")
    lut = Lut(board=board.id, clock_hz=float(board.clock_hz),
              invoke_overhead_cycles=float(invoke_overhead_cycles(board)), target=board)
    for sig, n in best.items():
        lut.set(sig, cpi * n, "emulated")
    wanted = space_signatures(spec)
    lut.meta = {"emulated": {"cpi": cpi, "counted_on": counter.core, "subnets": len(archs),
                             "tflm_tree": tree_hash}}
    return EmulatedFill(lut, best, [s for s in wanted if s not in best], failed, len(archs), counted,
                        time.time() - t0, cpi, counter.core)
