"""Canonical op signatures: one string per op that fixes its latency.

A latency lookup table (LUT) is only useful if the same op in two different
graphs gets the same key, and if the key alone carries enough to cost the op.
The format follows Once-for-All's `expanded_conv-input:..-output:..` keys:

    conv2d-in:32x32x3-out:32x32x16-k:3-s:1
    dwconv2d-in:48x48x16-out:24x24x16-k:3-s:2
    fc-in:64-out:10
    add-in:32x32x16-out:32x32x16
    avgpool-in:8x8x64-out:1x1x64-k:8-s:8
    softmax-in:10-out:10

Fields are `name:value`, joined by `-`. Shapes drop a leading batch dimension of
1 and join dims with `x`; `k`, `s` and `d` (kernel, stride, dilation) are written
once when square. Optional fields appear only when they differ from the common
case, so that the usual op keeps its short key: `d` (dilation != 1), `g`
(groups > 1), `b` (FC rows > 1), `dt` (input dtype other than int8), `macs`
(MACs of an op kind we do not cost by shape, e.g. CONV_3D). A dynamic dimension
(-1) is written as 1: the key must never contain a bare `-`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..graph import DTYPE_BYTES, Graph, Op, Tensor
from ..ops import cost_kind_of_signature, signature_kind

# Which op has which signature kind and cycle-model kind is the op registry's
# (tinynas.ops: OpSpec.sig_kind, OpSpec.cost_kind); an op without a sig_kind
# gets its lower-cased name. Kinds whose MACs the key's shapes give:
_SHAPE_COSTED = frozenset({"conv2d", "dwconv2d", "tconv2d", "fc", "bmm", "avgpool", "maxpool",
                           "mean", "sum"})

_SHAPE_FIELDS = ("in", "in2", "out")
_PAIR_FIELDS = ("k", "s", "d")
_INT_FIELDS = ("g", "b", "macs")
_STR_FIELDS = ("dt",)
_FIELD_ORDER = ("in", "in2", "out", "k", "s", "d", "g", "b", "dt", "macs")
_KIND_RE = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class OpFeatures:
    """What the cycle model needs of one op; all derivable from its signature.

    `macs` is multiply-accumulates for conv/fc and accumulations for pooling and
    mean (the work their inner loop does), 0 for the rest. Channel counts are the
    last dims of input and output (FC: input features and units); they decide
    whether CMSIS-NN's fast path applies.
    """

    kind: str          # cycle-model kernel kind, one of cycle_model.COST_KINDS
    macs: int
    in_bytes: int
    out_bytes: int
    in_ch: int
    out_ch: int
    dtype: str = "int8"


def _dims(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop a leading batch of 1; clamp dynamic (-1) and zero dims to 1."""
    s = tuple(max(int(d), 1) for d in shape)
    if len(s) > 1 and s[0] == 1:
        s = s[1:]
    return s or (1,)


def _fmt_value(name: str, value: Any) -> str:
    if name in _SHAPE_FIELDS:
        return "x".join(str(int(d)) for d in value)
    if name in _PAIR_FIELDS:
        h, w = value
        return str(int(h)) if h == w else f"{int(h)}x{int(w)}"
    return str(value)


def format_signature(kind: str, **fields: Any) -> str:
    """Build a signature from its parts; the inverse of parse_signature.

    Fields with a None value are omitted, so callers can pass optional fields
    unconditionally.
    """
    if not _KIND_RE.match(kind):
        raise ValueError(f"signature kind {kind!r} must be lower-case letters, digits or _")
    unknown = set(fields) - set(_FIELD_ORDER)
    if unknown:
        raise ValueError(f"unknown signature field(s) {sorted(unknown)}")
    parts = [kind]
    for name in _FIELD_ORDER:
        v = fields.get(name)
        if v is not None:
            parts.append(f"{name}:{_fmt_value(name, v)}")
    return "-".join(parts)


def _parse_ints(text: str, sig: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(p) for p in text.split("x"))
    except ValueError:
        raise ValueError(f"bad dimensions {text!r} in signature {sig!r}") from None
    if not vals or any(v < 0 for v in vals):
        raise ValueError(f"bad dimensions {text!r} in signature {sig!r}")
    return vals


def parse_signature(sig: str) -> dict[str, Any]:
    """Split a signature into {"kind": str, field: value}.

    Shapes come back as int tuples, k/s/d as (h, w) pairs, g/b/macs as ints and
    dt as a string; format_signature(**parsed) gives the same string back.
    """
    parts = sig.strip().split("-")
    kind = parts[0]
    if not _KIND_RE.match(kind):
        raise ValueError(f"signature {sig!r} does not start with an op kind")
    out: dict[str, Any] = {"kind": kind}
    for part in parts[1:]:
        name, sep, text = part.partition(":")
        if not sep or not text:
            raise ValueError(f"signature {sig!r}: field {part!r} is not name:value")
        if name in out:
            raise ValueError(f"signature {sig!r}: field {name!r} given twice")
        if name in _SHAPE_FIELDS:
            out[name] = _parse_ints(text, sig)
        elif name in _PAIR_FIELDS:
            v = _parse_ints(text, sig)
            if len(v) == 1:
                v = (v[0], v[0])
            if len(v) != 2:
                raise ValueError(f"signature {sig!r}: {name} must be N or HxW")
            out[name] = v
        elif name in _INT_FIELDS:
            v = _parse_ints(text, sig)
            if len(v) != 1:
                raise ValueError(f"signature {sig!r}: {name} must be one integer")
            out[name] = v[0]
        elif name in _STR_FIELDS:
            out[name] = text
        else:
            raise ValueError(f"signature {sig!r}: unknown field {name!r}")
    return out


def _pair(options: dict, h: str, w: str, default: int = 1) -> tuple[int, int]:
    return (int(options.get(h) or default), int(options.get(w) or default))


def op_signature(graph: Graph, op: Op) -> str:
    """The canonical key of one op, read from the graph's tensor shapes.

    The filter shape comes from the op's second input; strides, dilation and
    pool windows from its options. The first non-constant input is "in".
    """
    kind = signature_kind(op.type)
    ins: list[Tensor | None] = [graph.tensors[i] if i >= 0 else None for i in op.inputs]
    acts = [t for t in ins if t is not None and not t.is_const]
    outs = graph.op_outputs(op)
    x = acts[0] if acts else next((t for t in ins if t is not None), None)
    y = outs[0] if outs else None
    w = ins[1] if len(ins) > 1 else None
    f: dict[str, Any] = {
        "in": _dims(x.shape) if x is not None else (1,),
        "out": _dims(y.shape) if y is not None else (1,),
    }
    if x is not None and x.dtype != "int8":
        f["dt"] = x.dtype
    opts = op.options or {}

    if kind in ("conv2d", "dwconv2d", "tconv2d") and w is not None and len(w.shape) == 4:
        f["k"] = (int(w.shape[1]), int(w.shape[2]))
        f["s"] = _pair(opts, "stride_h", "stride_w")
        d = _pair(opts, "dilation_h_factor", "dilation_w_factor")
        f["d"] = d if d != (1, 1) else None
        if kind == "tconv2d" and len(ins) > 2 and ins[2] is not None:
            f["in"] = _dims(ins[2].shape)  # TRANSPOSE_CONV: (output_shape, filter, input)
            f["dt"] = ins[2].dtype if ins[2].dtype != "int8" else None
        if kind == "conv2d" and len(w.shape) == 4 and w.shape[3] > 0:
            groups = max(f["in"][-1] // max(int(w.shape[3]), 1), 1)
            f["g"] = groups if groups > 1 else None
    elif kind in ("avgpool", "maxpool"):
        f["k"] = _pair(opts, "filter_height", "filter_width")
        f["s"] = _pair(opts, "stride_h", "stride_w")
    elif kind == "fc" and w is not None and len(w.shape) == 2:
        units, feats = int(w.shape[0]), int(w.shape[1])
        n_in = x.num_elements if x is not None else feats
        rows = max(n_in // max(feats, 1), 1)
        f = {"in": (feats,), "out": (units,), "b": rows if rows > 1 else None, "dt": f.get("dt")}
    elif kind == "bmm" and len(acts) > 1:
        f["in2"] = _dims(acts[1].shape)
    elif kind not in _SHAPE_COSTED and op.macs > 0:
        f["macs"] = int(op.macs)
    return format_signature(kind, **f)


def _prod(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def signature_features(sig: str | dict[str, Any]) -> OpFeatures:
    """Cost features of a signature (its MACs, bytes moved, channel counts).

    Works from the key alone, so a LUT entry can be costed by the model without
    the graph it came from.
    """
    p = parse_signature(sig) if isinstance(sig, str) else sig
    kind = p["kind"]
    dt = p.get("dt", "int8")
    eb = DTYPE_BYTES.get(dt, 1)
    shp_in = p.get("in", (1,))
    shp_out = p.get("out", (1,))
    n_in, n_out = _prod(shp_in), _prod(shp_out)
    in_ch, out_ch = int(shp_in[-1]), int(shp_out[-1])
    kh, kw = p.get("k", (1, 1))
    macs = 0
    cost_kind = cost_kind_of_signature(kind)
    if kind == "conv2d":
        macs = n_out * kh * kw * (in_ch // max(p.get("g", 1), 1))
        cost_kind = "conv1x1" if (kh, kw) == (1, 1) else "conv"
    elif kind == "dwconv2d":
        macs = n_out * kh * kw
    elif kind == "tconv2d":
        macs = n_in * kh * kw * out_ch
    elif kind == "fc":
        rows = p.get("b", 1)
        macs = rows * in_ch * out_ch
        n_in, n_out = rows * in_ch, rows * out_ch
    elif kind == "bmm":
        macs = n_out * in_ch
        n_in += _prod(p.get("in2", (0,)))
    elif kind in ("avgpool", "maxpool"):
        macs = n_out * kh * kw
    elif kind in ("mean", "sum"):
        macs = n_in
    elif kind in ("add", "sub", "mul"):
        n_in += _prod(p["in2"]) if "in2" in p else n_out  # two operands are read
    elif p.get("macs"):
        macs = int(p["macs"])
        cost_kind = "conv" if cost_kind == "other" else cost_kind
    return OpFeatures(kind=cost_kind, macs=int(macs), in_bytes=int(n_in * eb),
                      out_bytes=int(n_out * eb), in_ch=in_ch, out_ch=out_ch, dtype=dt)


def signature_class(sig: str | dict[str, Any]) -> tuple:
    """What must match for one measured entry to stand in for another (sizes aside).

    Same op kind, same kernel, stride, dilation, groups and dtype; in/out sizes
    and FC rows may differ. For conv2d the 1x1-vs-kxk split is already in `k`.
    """
    p = parse_signature(sig) if isinstance(sig, str) else sig
    return (p["kind"], p.get("k"), p.get("s"), p.get("d"), p.get("g"), p.get("dt", "int8"))
