"""Flash bytes of the int8 .tflite a graph becomes, before it is converted.

The file is the constant buffers plus flatbuffer tables. The tables were
measured on TF 2.21's converter output for subnets of our space: per-channel
quantization stores 4 B per scale and 8 B per zero point (int64); each tensor
costs about 98 B of table plus about 160 B of name; each op about 65 B; and the
file about 727 B of fixed structure.
"""

from __future__ import annotations

from .graph import Graph

PER_TENSOR = 98 + 160
PER_OP = 65
FIXED = 727


def tflite_bytes_estimate(g: Graph) -> int:
    """Estimated .tflite size; a graph read from a file reports its real size instead."""
    if g.model_bytes:
        return g.model_bytes
    consts = sum(t.buffer_bytes for t in g.tensors if t.is_const)
    quant = sum(4 * len(t.scale) + 8 * len(t.zero_point) for t in g.tensors)
    return consts + quant + PER_TENSOR * len(g.tensors) + PER_OP * len(g.ops) + FIXED
