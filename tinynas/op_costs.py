"""MACs and weight bytes per operator, from shapes alone.

MACs count multiply-accumulates of the ops whose registry spec has a MAC rule
(conv, depthwise, fully connected, transpose conv, batch matmul, LSTM, SVDF;
see tinynas.ops); pooling, add and the like have none. Weight bytes are the
constant buffers an op reads, which is what it adds to flash.
"""

from __future__ import annotations

from .graph import Graph, Op
from .ops import op_spec


def op_macs(g: Graph, op: Op) -> int:
    """Multiply-accumulates of one op, by its registry rule (0 for ops without one)."""
    rule = op_spec(op.type).macs
    return int(rule(g, op)) if rule is not None else 0


def op_weight_bytes(g: Graph, op: Op) -> int:
    return sum(t.buffer_bytes for t in g.op_inputs(op) if t.is_const)


def annotate_costs(g: Graph) -> None:
    """Fill op.macs and op.weight_bytes in place."""
    for op in g.ops:
        op.macs = op_macs(g, op)
        op.weight_bytes = op_weight_bytes(g, op)
