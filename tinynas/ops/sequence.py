"""Stateful sequence ops: UNIDIRECTIONAL_SEQUENCE_LSTM and SVDF.

Their state tensors (LSTM output and cell state, SVDF activation state) are
variable tensors, which the allocator puts in the persistent tail, not here.
What the kernels add themselves (tflite-micro kernels/unidirectional_sequence_lstm.cc,
lstm_shared.h, svdf_common.cc):

* LSTM: OpDataLSTM (size info, cell state info, four gates' and the inter-gate
  quantization parameters, four buffer indices; 680 B on x86-64) from Init; four
  scratch buffers of batch x cell units of the cell-state type (int16 for int8
  models, float32 for float ones), for every kernel library. Its Prepare builds
  24 temp TfLiteTensors with their quantization (LstmTensors): 1,496 B above the
  tail, shape-independent, of which 776 B stay in temp until the plan is made,
  so a stack of LSTMs peaks at the last one's Prepare (measured on 1- and
  2-layer models of several widths, lengths and batches).
* SVDF: OpDataSvdf from Init; int8 requests two int32 scratch buffers, batch x
  filters and batch x units; float one, batch x filters. CMSIS-NN on Helium also
  keeps per-filter kernel sums (int32) in a third scratch buffer.
"""

from __future__ import annotations

from .spec import Graph, Op, OpSpec, Target, elems, tensor_in, tensor_out

_LSTM_INPUT, _LSTM_CELL_STATE = 0, 19


def _batch_rows(shape: tuple[int, ...], time_major: bool) -> int:
    """Rows one LSTM step processes: batch (3-D input) or 1 (2-D input)."""
    if len(shape) < 3:
        return 1
    return max(int(shape[1] if time_major else shape[0]), 1)


def lstm_scratch(g: Graph, op: Op, t: Target) -> list[int]:
    x, cell, out = tensor_in(g, op, _LSTM_INPUT), tensor_in(g, op, _LSTM_CELL_STATE), tensor_out(g, op)
    if x is None or out is None:
        return []
    units = int(out.shape[-1]) if out.shape else 1
    cell_bytes = 2 if cell is not None and cell.dtype == "int16" else 4
    batch = _batch_rows(x.shape, bool(op.options.get("time_major", False)))
    return [batch * units * cell_bytes] * 4


def lstm_macs(g: Graph, op: Op) -> int:
    """Four gates, each an input FC and a recurrent FC, per time step and batch row."""
    x, out = tensor_in(g, op, _LSTM_INPUT), tensor_out(g, op)
    w_in, w_rec = tensor_in(g, op, 2), tensor_in(g, op, 6)
    if x is None or out is None or w_in is None or w_rec is None:
        return 0
    steps_rows = elems(x.shape) // max(int(x.shape[-1]), 1)
    return steps_rows * 4 * (elems(w_in.shape) + elems(w_rec.shape))


def svdf_scratch(g: Graph, op: Op, t: Target) -> list[int]:
    x, wf, out = tensor_in(g, op, 0), tensor_in(g, op, 1), tensor_out(g, op)
    if x is None or wf is None or out is None:
        return []
    batch, filters, units = int(x.shape[0]), int(wf.shape[0]), int(out.shape[-1])
    if x.dtype != "int8":
        return [4 * batch * filters]
    bufs = [4 * batch * filters, 4 * batch * units]
    if t.kernels == "cmsis-nn" and t.mve:
        bufs.append(4 * filters)
    return bufs


def svdf_macs(g: Graph, op: Op) -> int:
    """Feature FC (filters x input) plus the time convolution (filters x memory), per batch row."""
    x, wf, wt = tensor_in(g, op, 0), tensor_in(g, op, 1), tensor_in(g, op, 2)
    if x is None or wf is None or wt is None:
        return 0
    return int(x.shape[0]) * (elems(wf.shape) + elems(wt.shape))


SPECS = (
    OpSpec("UNIDIRECTIONAL_SEQUENCE_LSTM", options_bytes=16, opdata_bytes=680, opdata_pointers=0,
           scratch=lstm_scratch, macs=lstm_macs, sig_kind="lstm", cost_kind="fc",
           prepare_temp=1496, prepare_retained=776),
    OpSpec("SVDF", options_bytes=12, opdata_bytes=44, scratch=svdf_scratch, macs=svdf_macs,
           sig_kind="svdf", cost_kind="fc"),
)
