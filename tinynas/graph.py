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

DTYPE_BYTES: dict[str, int] = {
    "float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "string": 1,
    "bool": 1, "int16": 2, "complex64": 8, "int8": 1, "float64": 8, "complex128": 16,
    "uint64": 8, "resource": 1, "variant": 1, "uint32": 4, "uint16": 2, "int4": 1,
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
    """A single-subgraph model as TFLM plans and runs it."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    model_bytes: int = 0
    source: str = ""
    offline_plan: tuple[int, ...] | None = None  # per-tensor offsets from OfflineMemoryAllocation
    num_subgraphs: int = 1
    description: str = ""

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
