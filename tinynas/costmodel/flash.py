"""MACs, parameters, tensor/op counts and flash bytes per (row, choice).

Everything here is additive over ops, so an arch's figure is a sum of table
cells. The file-size terms are `tinynas.flash.tflite_bytes_estimate`'s, term
for term, on the graph `graph_builder.build_graph` makes: per weighted op an
int8 weight tensor and an int32 bias tensor, both per-channel quantized
(4 B per scale + 8 B per zero point each), and one per-tensor quantized int8
activation out of every op; plus the model input and MEAN's int32 axis pair.
"""

from __future__ import annotations

import numpy as np

from ..flash import FIXED, PER_OP, PER_TENSOR
from .layers import CONV, DW, FC, WEIGHTED, OpTable

QUANT_PER_CHANNEL = 4 + 8  # one float32 scale + one int64 zero point
AXIS_BYTES = 2 * 4         # MEAN's axis constant: int32 [1, 2]


def weight_elems(t: OpTable) -> np.ndarray:
    """(R, C+1) int8 weight values per op (0 for ops without weights)."""
    kk = t.kernel * t.kernel
    return np.select([t.mask((CONV,))[:, None], t.mask((DW,))[:, None], t.mask((FC,))[:, None]],
                     [t.cout * kk * t.cin, t.cout * kk, t.cout * t.cin], 0)


def bias_elems(t: OpTable) -> np.ndarray:
    return np.where(t.mask(WEIGHTED)[:, None], t.cout, 0)


def macs(t: OpTable) -> np.ndarray:
    """(R, C+1) multiply-accumulates, as op_costs.op_macs counts them (conv, depthwise, FC only)."""
    out_px = t.out_h * t.out_w
    return np.where(t.mask((FC,))[:, None], t.cin * t.cout, out_px * weight_elems(t))


def counts(t: OpTable) -> tuple[np.ndarray, np.ndarray]:
    """(tensors, ops) each row adds: weighted ops bring weights, bias and output; others the output."""
    present = (t.cout > 0).astype(np.int64)
    tensors = present * np.where(t.mask(WEIGHTED)[:, None], 3, 1)
    return tensors, present


def model_bytes(t: OpTable) -> np.ndarray:
    """(R, C+1) bytes each row adds to the .tflite, fixed overhead excluded (see flash_constant)."""
    tensors, ops = counts(t)
    consts = weight_elems(t) + 4 * bias_elems(t)
    quant = QUANT_PER_CHANNEL * (2 * bias_elems(t) + ops)  # weights + bias per channel, output per tensor
    return consts + quant + PER_TENSOR * tensors + PER_OP * ops


def flash_constant() -> int:
    """Bytes every model has: the file's fixed part, the input tensor and MEAN's axis tensor."""
    return FIXED + 2 * PER_TENSOR + QUANT_PER_CHANNEL + AXIS_BYTES
