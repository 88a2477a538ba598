"""The op graph: one model of a network that `profile` and the search share.

A Graph is what TFLM would execute: tensors with shapes, dtypes and quantization,
and operators in execution order. It can be read from a .tflite
(`tinynas.tflite_reader`) or built from an architecture description
(`tinynas.space.graph_builder`), and the memory planner, the flash model and the
latency model only ever see this structure, never where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UserError

DTYPE_BYTES: dict[str, int] = {
    "float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "string": 1,
    "bool": 1, "int16": 2, "complex64": 8, "int8": 1, "float64": 8, "complex128": 16,
    "uint64": 8, "resource": 4, "variant": 1, "uint32": 4, "uint16": 2, "int4": 1,
    "bfloat16": 2,
}


@dataclass
class Tensor:
    """One tensor of the graph; constant tensors carry their buffer."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    is_const: bool = False
    is_variable: bool = False
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0
    data: np.ndarray | None = None
    buffer_bytes: int = 0  # bytes of the constant buffer as stored in the file

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(int(d), 1)
        return n

    @property
    def nbytes(self) -> int:
        """Bytes this tensor needs in memory (int4 packs two per byte)."""
        if self.dtype == "int4":
            return (self.num_elements + 1) // 2
        return self.num_elements * DTYPE_BYTES.get(self.dtype, 1)

    @property
    def is_quantized(self) -> bool:
        return len(self.scale) > 0


@dataclass
class Op:
    """One operator, in execution order. `inputs` uses -1 for an omitted optional input."""

    index: int
    type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    intermediates: tuple[int, ...] = ()
    version: int = 1
    macs: int = 0
    weight_bytes: int = 0


@dataclass
class Graph:
    """A model as TFLM plans and runs it: the entry subgraph, with the others in `subgraphs`."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    model_bytes: int = 0
    source: str = ""
    offline_plan: tuple[int, ...] | None = None  # per-tensor offsets from OfflineMemoryAllocation
    num_subgraphs: int = 1
    description: str = ""
    subgraphs: list["Graph"] = field(default_factory=list)  # subgraphs 1.. (CALL_ONCE, IF, WHILE bodies)

    @property
    def all_subgraphs(self) -> list["Graph"]:
        """This (entry) subgraph followed by the others, indexed as the file numbers them."""
        return [self, *self.subgraphs]

    def tensor(self, i: int) -> Tensor:
        return self.tensors[i]

    def op_inputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.inputs if i >= 0]

    def op_outputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs if i >= 0]

    @property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def op_types(self) -> list[str]:
        """Distinct operator types in first-use order (what an op resolver must register)."""
        seen: dict[str, None] = {}
        for op in self.ops:
            seen.setdefault(op.type, None)
        return list(seen)


def check_runnable(g: Graph, source: str = "") -> None:
    """Refuse graphs TFLM cannot execute, before anything plans or profiles them.

    Two defects would otherwise slip through to a FITS verdict: an op that reads an
    activation a later op produces (a cycle: TFLM runs ops in file order, so the
    tensor holds garbage when it is read, and the planner's lifetime runs backwards),
    and an activation with a zero dimension (TFLM cannot allocate or invoke it).
    Constants and variables are exempt: an empty constant (a RESHAPE's shape for a
    scalar) is legal, and a variable is state, written after it is read by design.
    Op intermediates are exempt too: TFLM requires them to be empty.
    """
    where = source or g.source or "the model"
    produced: dict[int, int] = {}
    for op in g.ops:
        for t in op.outputs:
            if t >= 0:
                produced.setdefault(t, op.index)
    inputs = set(g.inputs)
    for op in g.ops:
        for t in op.inputs:
            if t < 0 or t in inputs:
                continue
            ten = g.tensors[t]
            if ten.is_const or ten.is_variable:
                continue
            j = produced.get(t)
            if j is not None and j >= op.index:
                raise UserError(
                    f"{where} has a cycle: op {op.index} ({op.type}) reads tensor {t} "
                    f"({ten.name!r}), which op {j} ({g.ops[j].type}) produces later; "
                    "TFLM runs ops in file order, so re-export the model")
    used = inputs | set(g.outputs) | set(produced)
    used |= {t for op in g.ops for t in op.inputs if t >= 0}
    for ten in (g.tensors[t] for t in sorted(used)):
        if ten.is_const or 0 not in ten.shape:
            continue
        raise UserError(
            f"{where}: tensor {ten.index} ({ten.name!r}) has shape {list(ten.shape)} with a "
            "zero dimension; TFLM cannot allocate or run it, so re-export the model with a "
            "non-empty shape")
