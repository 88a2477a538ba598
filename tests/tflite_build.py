"""Write small .tflite flatbuffers from a plain description, without TensorFlow.

Why: the converter cannot make every graph the op registry must handle (TF 2.21
turns Keras LSTMs into WHILE loops, has no SVDF layer and no TFLM signal ops) nor
the broken graphs the reader must refuse (cycles, zero dimensions). Building the
flatbuffer through LiteRT's schema object API takes milliseconds, so tests make
their models at test time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb


@dataclass
class T:
    """One tensor: shape, dtype name (graph.DTYPE_BYTES keys), optional constant data."""

    shape: tuple[int, ...]
    dtype: str = "int8"
    data: np.ndarray | None = None
    scale: tuple[float, ...] = (0.05,)
    zero_point: tuple[int, ...] = (0,)
    variable: bool = False
    qdim: int = 0
    name: str = ""


@dataclass
class O:
    """One operator: builtin name or 'CUSTOM:Name', tensor indices and options."""

    type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: tuple[str, dict[str, Any]] | None = None  # ("Conv2DOptions", {"strideW": 1, ...})
    custom_options: bytes = b""
    intermediates: tuple[int, ...] = ()


@dataclass
class Sub:
    tensors: list[T]
    ops: list[O]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    name: str = ""


@dataclass
class _Codes:
    keys: list[str] = field(default_factory=list)

    def index(self, name: str) -> int:
        if name not in self.keys:
            self.keys.append(name)
        return self.keys.index(name)


def _tensor(t: T, i: int, buffers: list) -> Any:
    x = fb.TensorT()
    x.shape = list(t.shape)
    x.type = getattr(fb.TensorType, t.dtype.upper())
    x.name = t.name or f"t{i}"
    x.isVariable = t.variable
    x.buffer = 0
    if t.data is not None:
        b = fb.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(t.data).tobytes(), dtype=np.uint8)
        buffers.append(b)
        x.buffer = len(buffers) - 1
    if t.scale:
        q = fb.QuantizationParametersT()
        q.scale = list(t.scale)
        q.zeroPoint = list(t.zero_point)
        q.quantizedDimension = t.qdim
        x.quantization = q
    return x


def _op(o: O, codes: _Codes) -> Any:
    x = fb.OperatorT()
    x.opcodeIndex = codes.index(o.type)
    x.inputs, x.outputs = list(o.inputs), list(o.outputs)
    if o.intermediates:
        x.intermediates = list(o.intermediates)
    if o.options is not None:
        kind, fields = o.options
        opts = getattr(fb, kind + "T")()
        for k, v in fields.items():
            if not hasattr(opts, k):
                raise AttributeError(f"{kind} has no field {k}")
            setattr(opts, k, v)
        x.builtinOptionsType = getattr(fb.BuiltinOptions, kind)
        x.builtinOptions = opts
    if o.custom_options:
        x.customOptions = list(o.custom_options)
    return x


def build(subgraphs: list[Sub] | Sub) -> bytes:
    """The flatbuffer of a model with these subgraphs (the first is the entry)."""
    subs = [subgraphs] if isinstance(subgraphs, Sub) else subgraphs
    codes, buffers = _Codes(), [fb.BufferT()]
    m = fb.ModelT()
    m.version = 3
    m.subgraphs = []
    for s in subs:
        g = fb.SubGraphT()
        g.tensors = [_tensor(t, i, buffers) for i, t in enumerate(s.tensors)]
        g.operators = [_op(o, codes) for o in s.ops]
        g.inputs, g.outputs = list(s.inputs), list(s.outputs)
        g.name = s.name
        m.subgraphs.append(g)
    m.operatorCodes = []
    for key in codes.keys:
        c = fb.OperatorCodeT()
        if key.startswith("CUSTOM:"):
            c.builtinCode, c.customCode = fb.BuiltinOperator.CUSTOM, key[7:]
        else:
            c.builtinCode = getattr(fb.BuiltinOperator, key)
        c.deprecatedBuiltinCode = min(c.builtinCode, 127)
        c.version = 1
        m.operatorCodes.append(c)
    m.buffers = buffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def const(shape: tuple[int, ...], dtype: str = "int8", seed: int = 0, scale: tuple[float, ...] = (0.02,),
          qdim: int = 0) -> T:
    """A constant of small random values (int8/int16/int32) with its quantization."""
    rng = np.random.default_rng(seed)
    lim = {"int8": 100, "int16": 2000, "int32": 1000}.get(dtype, 1)
    data = rng.integers(-lim, lim, size=shape).astype(dtype) if dtype.startswith("int") else \
        rng.standard_normal(shape).astype(dtype)
    return T(shape, dtype, data=data, scale=scale, zero_point=(0,) * len(scale), qdim=qdim)
