"""Ops without weights: arithmetic, activations, shape ops, quantization.

(options struct bytes, Init/Prepare op data bytes on x86-64) per op, read off
RecordingMicroAllocator on the x86-64 Python runtime; an op not listed here
gets OpSpec's defaults (16 and 32), the median of the ops we measured. MEAN and
SUM accumulate every input element, which is the work latency charges them
for; the rest are costed per element or per byte (tinynas.latency).
"""

from __future__ import annotations

from .spec import OpSpec

# name: (options_bytes, opdata_bytes, signature kind, cycle-model kind)
_TABLE: dict[str, tuple[int, int, str, str]] = {
    "ADD": (8, 60, "add", "add"),
    "SUB": (8, 60, "sub", "add"),
    "MUL": (8, 40, "mul", "add"),
    "SOFTMAX": (4, 80, "softmax", "softmax"),
    "RESHAPE": (36, 0, "reshape", "reshape"),
    "SQUEEZE": (36, 0, "squeeze", "reshape"),
    "EXPAND_DIMS": (16, 32, "expanddims", "reshape"),
    "MEAN": (4, 44, "mean", "pool"),
    "SUM": (4, 44, "sum", "pool"),
    "REDUCE_MAX": (4, 32, "", "other"),
    "CONCATENATION": (8, 80, "", "other"),
    "PACK": (8, 32, "", "other"),
    "UNPACK": (8, 32, "", "other"),
    "STRIDED_SLICE": (24, 76, "", "other"),  # StridedSliceParams
    "SHAPE": (4, 32, "", "other"),
    "SPLIT": (4, 0, "", "other"),
    "GATHER": (8, 4, "", "other"),
    "RESIZE_NEAREST_NEIGHBOR": (4, 32, "", "other"),
    "RESIZE_BILINEAR": (4, 32, "", "other"),
    "LEAKY_RELU": (4, 16, "", "other"),
    "PAD": (0, 24, "", "other"),
    "QUANTIZE": (0, 40, "", "other"),
    "DEQUANTIZE": (0, 40, "", "other"),
    "LOGISTIC": (0, 8, "", "other"),
    "TANH": (0, 8, "", "other"),
    "HARD_SWISH": (0, 32, "", "other"),
    "RELU": (0, 16, "", "other"),
    "RELU6": (0, 16, "", "other"),
    "LOGICAL_AND": (16, 0, "", "other"),
    "LOGICAL_OR": (16, 0, "", "other"),
    "MINIMUM": (16, 0, "", "other"),
    "MAXIMUM": (16, 0, "", "other"),
    "CAST": (16, 0, "", "other"),
    "LESS": (16, 32, "", "other"),
    "GATHER_ND": (16, 0, "", "other"),
}

_POINTERS = {"SOFTMAX": 2}
_VERSIONS = {"ADD": 2, "MEAN": 2}

SPECS = tuple(
    OpSpec(name, options_bytes=ob, opdata_bytes=od, opdata_pointers=_POINTERS.get(name, 0),
           sig_kind=sk, cost_kind=ck, converter_version=_VERSIONS.get(name, 1))
    for name, (ob, od, sk, ck) in _TABLE.items())
