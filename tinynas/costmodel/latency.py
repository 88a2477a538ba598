"""Cycles per (row, choice) from the board's latency LUT, as `graph_latency` would cost each op.

`graph_latency` keys every op by its signature and asks the LUT. A LUT with no
entries answers every key from the cycle model, so the whole table is a few
`cycles_vectorized` calls on the same features `signature_features` derives
from a key. A LUT with measured entries is asked key by key (the keys are the
ones `op_signature` gives for this op), so measured, interpolated and modelled
entries all come out as they would for the built graph.
"""

from __future__ import annotations


import numpy as np

from ..boards import Board
from ..latency import Lut, cycles_vectorized
from ..latency.signature import format_signature
from ..ops import op_spec
from .layers import ADD, CONV, DW, FC, MEAN, OpTable


def op_features(t: OpTable) -> dict[str, np.ndarray]:
    """(R, C+1) arrays of what the cycle model reads: MACs, bytes moved, channels."""
    n_in, n_out = t.in_elems, t.out_elems
    kk = t.kernel * t.kernel
    conv, dw, add, mean, fc = (t.mask((k,))[:, None] for k in (CONV, DW, ADD, MEAN, FC))
    macs = np.select([conv, dw, mean, fc], [n_out * kk * t.cin, n_out * kk, n_in, t.cin * t.cout], 0)
    in_bytes = np.where(add, n_in + n_out, n_in)  # ADD reads two operands
    return {"macs": macs, "in_bytes": in_bytes, "out_bytes": n_out, "in_ch": t.cin, "out_ch": t.cout}


def cost_kinds(t: OpTable) -> np.ndarray:
    """(R, C+1) cycle-model kernel kind of every cell (a kxk CONV_2D is "conv", 1x1 "conv1x1")."""
    kinds = np.array([op_spec(op).cost_kind for op in t.types], dtype=object)[:, None]
    return np.where((kinds == "conv") & (t.kernel == 1), "conv1x1", kinds)


def signature(t: OpTable, r: int, c: int) -> str:
    """The LUT key `op_signature` gives row r at choice c."""
    op, k, s = t.types[r], int(t.kernel[r, c]), int(t.stride[r])
    hw_in = (int(t.in_h[r, c]), int(t.in_w[r, c]), int(t.cin[r, c]))
    hw_out = (int(t.out_h[r, c]), int(t.out_w[r, c]), int(t.cout[r, c]))
    if op in (CONV, DW):
        return format_signature("conv2d" if op == CONV else "dwconv2d", **{"in": hw_in}, out=hw_out,
                                k=(k, k), s=(s, s))
    if op == ADD:
        return format_signature("add", **{"in": hw_in}, out=hw_out)
    if op == MEAN:
        return format_signature("mean", **{"in": hw_in}, out=(hw_out[2],))
    return format_signature("fc", **{"in": (hw_in[2],)}, out=(hw_out[2],))


def cycles_table(t: OpTable, board: Board, lut: Lut) -> np.ndarray:
    """(R, C+1) cycles of every op cell (0 in the absent column)."""
    if lut.entries:
        return _lookup_table(t, lut)
    target = lut.target if lut.target is not None else board
    feats = op_features(t)
    kinds = cost_kinds(t)
    out = np.zeros(t.kernel.shape, dtype=np.float64)
    for kind in set(kinds.ravel()):
        m = kinds == kind
        out[m] = cycles_vectorized(kind, *(feats[k][m] for k in ("macs", "in_bytes", "out_bytes",
                                                                  "in_ch", "out_ch")),
                                   target.core, target.kernels, dsp=getattr(target, "dsp", None),
                                   simd=getattr(target, "simd", None), fpu=getattr(target, "fpu", "sp"),
                                   calibration=lut.calibration)
    out[:, -1] = 0.0
    return out


def _lookup_table(t: OpTable, lut: Lut) -> np.ndarray:
    out = np.zeros(t.kernel.shape, dtype=np.float64)
    memo: dict[str, float] = {}
    for r in range(t.n_rows):
        for c in range(t.n_choices):
            sig = signature(t, r, c)
            if sig not in memo:
                memo[sig] = lut.lookup(sig)[0]
            out[r, c] = memo[sig]
    return out
