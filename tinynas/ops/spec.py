"""What tinynas knows about one TFLM operator, in one record.

Before this package, an op's arena bytes lived in the planner, its MACs in
op_costs, its latency kind in the signature module and its resolver name in
cgen, so adding an op meant editing them all in step. An OpSpec holds all of it
(TinyEngine's design: each operator knows its own memory, cost and code), and
those modules ask `tinynas.ops.op_spec(op.type)`.

Sizes are TFLM's, read off the kernels' Init/Prepare (tflite-micro
90b983c2, the tree in ../shared/tflm) and checked against the
RecordingMicroAllocator of the x86-64 Python runtime in the tests:

* `options_bytes`: the builtin option struct the flatbuffer parser allocates
  in the tail (ints only, so the same on 32 and 64 bits);
* `opdata_bytes`: what the kernel's Init allocates (x86-64), of which
  `opdata_pointers` are pointer-sized fields that halve on 32-bit boards;
* `persistent`: further tail allocations that depend on the tensors
  (per-channel multipliers and shifts, SVDF/LSTM gate parameters);
* `scratch`: the buffers Prepare requests in the head, per kernel library
  (reference, CMSIS-NN, ESP-NN), one entry per RequestScratchBufferInArena;
* `macs`, `sig_kind`, `cost_kind`: what latency needs (see tinynas.latency);
* `subgraphs`: option fields naming subgraphs the op runs (CALL_ONCE, IF,
  WHILE), which TFLM plans inside the op's lifetime scope;
* `prepare_temp`, `prepare_retained`: temp memory of a Prepare so large that
  the moment it runs, not the committed plan, sets the arena (the LSTM's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..graph import Graph, Op, Tensor


@dataclass(frozen=True)
class Target:
    """The kernel build an arena is planned for: library, core and its SIMD flag."""

    kernels: str = "reference"   # "reference" | "cmsis-nn" | "esp-nn"
    core: str = "cortex-m4"
    dsp: bool = True
    pointer_bytes: int = 8

    @property
    def mve(self) -> bool:
        """Helium cores take CMSIS-NN's MVE paths, whose buffers differ from the DSP ones."""
        return self.core in ("cortex-m55", "cortex-m85")


PersistentFn = Callable[[Graph, Op, Target], list[int]]
ScratchFn = Callable[[Graph, Op, Target], list[int]]
MacsFn = Callable[[Graph, Op], int]


@dataclass(frozen=True)
class OpSpec:
    """One op's memory, cost and registration rules (see the module doc)."""

    name: str
    options_bytes: int = 16
    opdata_bytes: int = 32
    opdata_pointers: int = 0
    persistent: PersistentFn | None = None
    scratch: ScratchFn | None = None
    macs: MacsFn | None = None
    sig_kind: str = ""
    cost_kind: str = "other"
    subgraphs: tuple[str, ...] = ()
    converter_version: int = 1
    prepare_temp: int = 0      # temp bytes above the tail while Prepare runs, when it sets the peak
    prepare_retained: int = 0  # temp bytes Prepare leaves behind for the next ops' Prepare

    def opdata(self, pointer_bytes: int) -> int:
        """Init's op data on a pointer width (0 when the kernel keeps none)."""
        if not self.opdata_bytes:
            return 0
        return self.opdata_bytes - (8 - pointer_bytes) * self.opdata_pointers


# ------------------------------------------------------------------ tensor helpers


def tensor_in(g: Graph, op: Op, k: int) -> Tensor | None:
    """The op's k-th input, None when absent or omitted (-1)."""
    if k >= len(op.inputs) or op.inputs[k] < 0:
        return None
    return g.tensors[op.inputs[k]]


def tensor_out(g: Graph, op: Op, k: int = 0) -> Tensor | None:
    if k >= len(op.outputs) or op.outputs[k] < 0:
        return None
    return g.tensors[op.outputs[k]]


def elems(shape: tuple[int, ...]) -> int:
    """Element count with dynamic (-1) dims counted as 1, as the planner sizes them."""
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n
