"""Convolutions, fully connected, matmul and pooling: the ops with weights or windows.

Per-channel quantized kernels allocate an int32 multiplier and an int32 shift
per output channel in Prepare (TFLM's OpDataConv / OpDataFullyConnected), each
its own 16-byte aligned tail allocation. CMSIS-NN's scratch follows its
*_get_buffer_size functions: a non-1x1 conv's im2col holds two columns of int16
(2 * Cin * Kh * Kw * 2 bytes; MVE pads the column to 16 and uses int32), the
optimized depthwise kernel one int16 column (none for 3x3 on DSP cores, which
work in registers), average pooling one int32 row on DSP cores. ESP-NN's scratch is of the
same order and is modelled with the same formulas.
"""

from __future__ import annotations

from .spec import Graph, Op, OpSpec, Target, elems, tensor_in, tensor_out


def _align16(n: int) -> int:
    return (int(n) + 15) // 16 * 16


def per_channel(g: Graph, op: Op, t: Target) -> list[int]:
    """Multiplier and shift arrays of a per-channel quantized kernel, 4 B per output channel."""
    w = tensor_in(g, op, 1)
    if w is None:
        return []
    if op.type == "FULLY_CONNECTED" and len(w.scale) <= 1:
        return []
    out = tensor_out(g, op)
    channels = out.shape[-1] if out is not None and out.shape else len(w.scale)
    return [4 * int(channels)] * 2


def _nhwc_input(g: Graph, op: Op, t: Target):
    if t.kernels == "reference" or len(op.inputs) < 2:
        return None
    x = tensor_in(g, op, 0)
    return x if x is not None and len(x.shape) == 4 else None


def conv_scratch(g: Graph, op: Op, t: Target) -> list[int]:
    x, w = _nhwc_input(g, op, t), tensor_in(g, op, 1)
    if x is None or w is None or len(w.shape) != 4:
        return []
    kh, kw = w.shape[1], w.shape[2]
    if kh == 1 and kw == 1 and op.options.get("stride_w", 1) == 1 and op.options.get("stride_h", 1) == 1:
        return []
    col = x.shape[3] * kh * kw
    n = 4 * _align16(col) if t.mve else (4 * col if t.dsp else 0)
    return [n] if n else []


def dwconv_scratch(g: Graph, op: Op, t: Target) -> list[int]:
    x, w = _nhwc_input(g, op, t), tensor_in(g, op, 1)
    if x is None or w is None or len(w.shape) != 4:
        return []
    kh, kw = w.shape[1], w.shape[2]
    if op.options.get("depth_multiplier", 1) != 1 or not (t.dsp or t.mve):
        return []
    if kh == 3 and kw == 3 and not t.mve:
        return []  # arm_depthwise_conv_3x3_s8 works in registers
    return [(4 if t.mve else 2) * x.shape[3] * kh * kw]


def avgpool_scratch(g: Graph, op: Op, t: Target) -> list[int]:
    """arm_avgpool_s8_get_buffer_size: an int32 row of channels on DSP cores, none on MVE."""
    if t.kernels == "reference" or t.mve or not t.dsp:
        return []
    x = tensor_in(g, op, 0)
    return [4 * x.shape[3]] if x is not None and len(x.shape) == 4 else []


def conv_macs(g: Graph, op: Op) -> int:
    out, w = tensor_out(g, op), tensor_in(g, op, 1)
    if out is None or w is None or len(w.shape) != 4:
        return 0
    return elems(out.shape) * w.shape[1] * w.shape[2] * w.shape[3]


def dwconv_macs(g: Graph, op: Op) -> int:
    out, w = tensor_out(g, op), tensor_in(g, op, 1)
    if out is None or w is None or len(w.shape) != 4:
        return 0
    return elems(out.shape) * w.shape[1] * w.shape[2]


def conv3d_macs(g: Graph, op: Op) -> int:
    out, w = tensor_out(g, op), tensor_in(g, op, 1)
    if out is None or w is None or len(w.shape) != 5:
        return 0
    return elems(out.shape) * w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]


def fc_macs(g: Graph, op: Op) -> int:
    out, w = tensor_out(g, op), tensor_in(g, op, 1)
    if out is None or w is None or len(w.shape) != 2:
        return 0
    return elems(out.shape) * w.shape[1]


def tconv_macs(g: Graph, op: Op) -> int:
    filt, x = tensor_in(g, op, 1), tensor_in(g, op, 2)
    if tensor_out(g, op) is None or filt is None or x is None or len(filt.shape) != 4:
        return 0
    return elems(x.shape) * filt.shape[0] * filt.shape[1] * filt.shape[2]


def bmm_macs(g: Graph, op: Op) -> int:
    a, out = tensor_in(g, op, 0), tensor_out(g, op)
    if a is None or out is None or tensor_in(g, op, 1) is None or len(a.shape) < 2:
        return 0
    return elems(out.shape) * a.shape[-1]


SPECS = (
    OpSpec("CONV_2D", options_bytes=28, opdata_bytes=80, opdata_pointers=2, persistent=per_channel,
           scratch=conv_scratch, macs=conv_macs, sig_kind="conv2d", cost_kind="conv",
           converter_version=3),
    OpSpec("DEPTHWISE_CONV_2D", options_bytes=28, opdata_bytes=80, opdata_pointers=2,
           persistent=per_channel, scratch=dwconv_scratch, macs=dwconv_macs, sig_kind="dwconv2d",
           cost_kind="dwconv", converter_version=3),
    OpSpec("FULLY_CONNECTED", options_bytes=32, opdata_bytes=72, opdata_pointers=2,
           persistent=per_channel, macs=fc_macs, sig_kind="fc", cost_kind="fc", converter_version=4),
    OpSpec("TRANSPOSE_CONV", options_bytes=20, persistent=per_channel, macs=tconv_macs,
           sig_kind="tconv2d", cost_kind="conv"),
    OpSpec("CONV_3D", macs=conv3d_macs),
    OpSpec("BATCH_MATMUL", macs=bmm_macs, sig_kind="bmm", cost_kind="fc"),
    OpSpec("AVERAGE_POOL_2D", options_bytes=40, opdata_bytes=32, scratch=avgpool_scratch,
           sig_kind="avgpool", cost_kind="pool"),
    OpSpec("MAX_POOL_2D", options_bytes=40, opdata_bytes=32, sig_kind="maxpool", cost_kind="pool"),
    OpSpec("L2_POOL_2D", options_bytes=40),
)
