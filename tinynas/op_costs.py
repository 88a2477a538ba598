"""MACs and weight bytes per operator, from shapes alone.

MACs count multiply-accumulates of the linear ops (conv, depthwise, fully
connected, transpose conv, batch matmul); pooling, add and the like have none.
Weight bytes are the constant buffers an op reads, which is what it adds to flash.
"""

from __future__ import annotations

from .graph import Graph, Op


def _elems(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= max(int(d), 1)
    return n


def op_macs(g: Graph, op: Op) -> int:
    """Multiply-accumulates of one op, from its output and filter shapes."""
    ins = [g.tensors[i] if i >= 0 else None for i in op.inputs]
    outs = g.op_outputs(op)
    if not outs or len(ins) < 2 or ins[1] is None:
        return 0
    out, w = outs[0], ins[1]
    t = op.type
    if t == "CONV_2D" and len(w.shape) == 4:
        return _elems(out.shape) * w.shape[1] * w.shape[2] * w.shape[3]
    if t == "DEPTHWISE_CONV_2D" and len(w.shape) == 4:
        return _elems(out.shape) * w.shape[1] * w.shape[2]
    if t == "CONV_3D" and len(w.shape) == 5:
        return _elems(out.shape) * w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]
    if t == "FULLY_CONNECTED" and len(w.shape) == 2:
        return _elems(out.shape) * w.shape[1]
    if t == "TRANSPOSE_CONV" and len(ins) >= 3 and ins[2] is not None and len(ins[1].shape) == 4:
        filt, x = ins[1], ins[2]
        return _elems(x.shape) * filt.shape[0] * filt.shape[1] * filt.shape[2]
    if t == "BATCH_MATMUL" and ins[0] is not None and len(ins[0].shape) >= 2:
        return _elems(out.shape) * ins[0].shape[-1]
    return 0


def op_weight_bytes(g: Graph, op: Op) -> int:
    return sum(t.buffer_bytes for t in g.op_inputs(op) if t.is_const)


def annotate_costs(g: Graph) -> None:
    """Fill op.macs and op.weight_bytes in place."""
    for op in g.ops:
        op.macs = op_macs(g, op)
        op.weight_bytes = op_weight_bytes(g, op)
