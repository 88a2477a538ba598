"""A model of TFLite Micro's tensor arena, independent of where the graph came from.

The arena has two ends. The head holds non-persistent buffers (activations and
kernel scratch), placed by TFLM's greedy planner: buffers sorted by size
(descending, stable), each put at the lowest offset that does not collide with
an already placed buffer whose lifetime overlaps. The tail holds persistent
data: one eval tensor per tensor, node structs, kernel op data with its
per-channel multipliers and shifts, builtin option structs, and the runtime's
own objects. Every allocation is aligned to 16 bytes.

Struct sizes differ between the 64-bit x86 runtime we can measure against and
the 32-bit boards we ship to, so the tail is parameterized by pointer width.
The per-op constants were read off TFLM's RecordingMicroAllocator on the x86-64
Python runtime (tflite-micro 0.dev20261023) and are checked against it in the
tests; the 32-bit figures scale the pointer-sized fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from .graph import Graph, Op

ALIGN = 16


def align_up(n: int, a: int = ALIGN) -> int:
    return (int(n) + a - 1) // a * a


# ------------------------------------------------------------------ lifetimes


def tensor_lifetimes(g: Graph) -> dict[int, tuple[int, int]]:
    """First-created and last-used op index of every tensor the planner places.

    Constants live in flash and variables are persistent, so neither is planned.
    Graph inputs exist from op 0; graph outputs live to the end.
    """
    n_ops = len(g.ops)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in g.inputs:
        first[t] = 0
    for i, op in enumerate(g.ops):
        for t in op.inputs:
            if t >= 0:
                first.setdefault(t, i)
                last[t] = i
        for t in op.outputs:
            if t >= 0:
                first.setdefault(t, i)
                last[t] = max(last.get(t, i), i)
    for t in g.outputs:
        first.setdefault(t, 0)
        last[t] = max(n_ops - 1, 0)
    planned = {}
    for t, f in first.items():
        ten = g.tensors[t]
        if ten.is_const or ten.is_variable:
            continue
        planned[t] = (f, last.get(t, f))
    return planned


# ------------------------------------------------------------------ greedy placement


def greedy_offsets(sizes: list[int], firsts: list[int], lasts: list[int],
                   offline: list[int | None] | None = None) -> tuple[list[int], int]:
    """TFLM's greedy placement: returns (offset per buffer, total bytes).

    Sizes must already be aligned. Offline-planned buffers keep their offset and
    are placed first; the rest go largest first, ties in reverse insertion order.
    """
    n = len(sizes)
    if n == 0:
        return [], 0
    offline = offline or [None] * n
    fixed = [i for i in range(n) if offline[i] is not None]
    # TFLM fills online buffers from the back of its array and then bubble-sorts
    # stably, so equal sizes are placed in reverse insertion order.
    online = sorted((i for i in reversed(range(n)) if offline[i] is None), key=lambda i: -sizes[i])
    order = fixed + online
    offsets = [-1] * n
    placed: list[int] = []  # buffer ids sorted by offset (stable on ties: insert after equals)
    for k, b in enumerate(order):
        if offline[b] is not None:
            off = int(offline[b])
        elif k == 0:
            off = 0
        else:
            off = _first_gap(b, placed, offsets, sizes, firsts, lasts)
        offsets[b] = off
        _insert_sorted(placed, b, offsets, first_entry=(k == 0))
    total = max(offsets[i] + sizes[i] for i in range(n))
    return offsets, total


def _first_gap(b: int, placed: list[int], offsets: list[int], sizes: list[int],
               firsts: list[int], lasts: list[int]) -> int:
    """Lowest offset after which `b` fits before the next time-overlapping buffer."""
    f, l, size = firsts[b], lasts[b], sizes[b]
    cand = 0
    for p in placed:
        if firsts[p] > l or f > lasts[p]:
            continue
        if offsets[p] - cand >= size:
            return cand
        cand = max(cand, offsets[p] + sizes[p])
    return cand


def _insert_sorted(placed: list[int], b: int, offsets: list[int], first_entry: bool) -> None:
    """Mirror TFLM's offset-ordered list: a new entry goes after entries at the same offset,
    except that one strictly below the head becomes the new head."""
    off = offsets[b]
    if not placed or first_entry:
        placed.append(b)
        return
    if offsets[placed[0]] > off:
        placed.insert(0, b)
        return
    i = 1
    while i < len(placed) and offsets[placed[i]] <= off:
        i += 1
    placed.insert(i, b)


# ------------------------------------------------------------------ persistent tail


@dataclass(frozen=True)
class StructSizes:
    """Bytes of TFLM's persistent objects for one pointer width.

    The 64-bit figures were read off RecordingMicroAllocator's categories on the
    x86-64 Python runtime; the 32-bit ones halve the pointer fields of the same
    structs (TfLiteEvalTensor is two pointers and an enum, a node is seven
    pointers and an int, and so on).
    """

    pointer_bytes: int
    runtime_objects: int      # allocator, planner, interpreter graph objects
    eval_tensor: int          # TfLiteEvalTensor per tensor
    io_tensor: int            # persistent TfLiteTensor per graph input/output
    io_quant: int             # its TfLiteAffineQuantization + zero-point array
    node: int                 # NodeAndRegistration per op
    kernel_globals: int       # persistent buffers every model allocates once
    allocation_info: int      # per tensor, in temp memory while the plan is made
    planner_per_buffer: int   # greedy planner bookkeeping per planned buffer


STRUCTS_64 = StructSizes(8, 488, 24, 64, 32, 64, 16, 32, 40)
STRUCTS_32 = StructSizes(4, 264, 12, 40, 24, 32, 8, 20, 40)

# Builtin option structs (ints only, so the same on both widths), 4-byte aligned.
BUILTIN_BYTES = {
    "CONV_2D": 28, "DEPTHWISE_CONV_2D": 28, "FULLY_CONNECTED": 32, "ADD": 8, "SUB": 8,
    "MUL": 8, "AVERAGE_POOL_2D": 40, "MAX_POOL_2D": 40, "L2_POOL_2D": 40, "SOFTMAX": 4,
    "RESHAPE": 36, "MEAN": 4, "SUM": 4, "REDUCE_MAX": 4, "CONCATENATION": 8, "PACK": 8,
    "UNPACK": 8, "STRIDED_SLICE": 24, "SHAPE": 4, "SQUEEZE": 36, "TRANSPOSE_CONV": 20,
    "SPLIT": 4, "LEAKY_RELU": 4, "GATHER": 8, "RESIZE_NEAREST_NEIGHBOR": 4,
    "RESIZE_BILINEAR": 4, "PAD": 0, "QUANTIZE": 0, "DEQUANTIZE": 0, "LOGISTIC": 0,
    "RELU": 0, "RELU6": 0, "TANH": 0, "HARD_SWISH": 0,
}
_DEFAULT_BUILTIN = 16

# Kernel op data allocated in Init/Prepare (x86-64 reference kernels), excluding
# the per-channel multiplier/shift arrays, which are counted from channel counts.
OPDATA_BYTES = {
    "CONV_2D": 80, "DEPTHWISE_CONV_2D": 80, "FULLY_CONNECTED": 72, "ADD": 60, "SUB": 60,
    "MUL": 40, "AVERAGE_POOL_2D": 32, "MAX_POOL_2D": 32, "SOFTMAX": 80, "MEAN": 44,
    "SUM": 44, "QUANTIZE": 24, "DEQUANTIZE": 24, "LOGISTIC": 24, "TANH": 24,
    "RESHAPE": 0, "SQUEEZE": 0, "CONCATENATION": 48, "PAD": 24, "HARD_SWISH": 32,
    "LEAKY_RELU": 16, "RELU": 16, "RELU6": 16,
}
_DEFAULT_OPDATA = 32
_OPDATA_POINTERS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "SOFTMAX": 2}
_PER_CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def per_channel_arrays(g: Graph, op: Op) -> list[int]:
    """Sizes of the per-channel multiplier and shift arrays a kernel allocates."""
    if op.type not in _PER_CHANNEL_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
        return []
    w = g.tensors[op.inputs[1]]
    if op.type == "FULLY_CONNECTED" and len(w.scale) <= 1:
        return []
    out = g.tensors[op.outputs[0]] if op.outputs else None
    channels = out.shape[-1] if out is not None and out.shape else len(w.scale)
    return [4 * int(channels)] * 2


def op_persistent_bytes(g: Graph, op: Op, s: StructSizes) -> int:
    """Tail bytes one op adds: node, builtin options, op data, per-channel arrays."""
    opdata = OPDATA_BYTES.get(op.type, _DEFAULT_OPDATA)
    if opdata and s.pointer_bytes == 4:
        opdata -= 4 * _OPDATA_POINTERS.get(op.type, 0)
    total = s.node + align_up(BUILTIN_BYTES.get(op.type, _DEFAULT_BUILTIN), 4)
    total += align_up(opdata) if opdata else 0
    total += sum(align_up(n) for n in per_channel_arrays(g, op))
    return total


def tail_bytes(g: Graph, s: StructSizes) -> int:
    """The persistent tail TFLM allocates for this graph."""
    io = [g.tensors[i] for i in (*g.inputs, *g.outputs)]
    total = s.runtime_objects + s.kernel_globals + s.eval_tensor * len(g.tensors)
    total += sum(s.io_tensor + (s.io_quant if t.is_quantized else 0) for t in io)
    total += sum(op_persistent_bytes(g, op, s) for op in g.ops)
    return align_up(total)


# ------------------------------------------------------------------ CMSIS-NN scratch


def kernel_scratch_bytes(g: Graph, op: Op, kernels: str, core: str = "cortex-m4",
                         dsp: bool = True) -> int:
    """Scratch a device kernel requests in the arena for this op (x86 reference kernels need none).

    Sizes follow CMSIS-NN's *_get_buffer_size functions: the im2col buffer of a
    non-1x1 conv holds two columns of int16 (2 * Cin * Kh * Kw * 2 bytes), the
    optimized depthwise kernel one int16 column, average pooling one int32 row.
    ESP-NN's scratch is of the same order and is modelled with the same formulas.
    """
    if kernels == "reference" or len(op.inputs) < 2:
        return 0
    mve = core in ("cortex-m55", "cortex-m85")
    x = g.tensors[op.inputs[0]] if op.inputs[0] >= 0 else None
    w = g.tensors[op.inputs[1]] if op.inputs[1] >= 0 else None
    if x is None or len(x.shape) != 4:
        return 0
    cin = x.shape[3]
    if op.type == "CONV_2D" and w is not None and len(w.shape) == 4:
        kh, kw = w.shape[1], w.shape[2]
        pointwise = kh == 1 and kw == 1 and op.options.get("stride_w", 1) == 1 \
            and op.options.get("stride_h", 1) == 1
        if pointwise:
            return 0
        col = cin * kh * kw
        return 4 * align_up(col, 16) if mve else (4 * col if dsp else 0)
    if op.type == "DEPTHWISE_CONV_2D" and w is not None and len(w.shape) == 4:
        kh, kw = w.shape[1], w.shape[2]
        if op.options.get("depth_multiplier", 1) != 1 or not (dsp or mve):
            return 0
        if kh == 3 and kw == 3 and not mve:
            return 0  # arm_depthwise_conv_3x3_s8 works in registers
        return 4 * cin * kh * kw if mve else 2 * cin * kh * kw
    if op.type == "AVERAGE_POOL_2D" and (dsp or mve):
        return 4 * cin
    return 0


# ------------------------------------------------------------------ the whole arena


@dataclass
class ArenaPlan:
    """The planned arena for one graph, one pointer width and one kernel library."""

    head_bytes: int
    tail_bytes: int
    commit_peak_bytes: int
    arena_bytes: int
    scratch: dict[int, int] = field(default_factory=dict)  # op index -> scratch bytes
    offsets: dict[int, int] = field(default_factory=dict)  # tensor index -> head offset
    lifetimes: dict[int, tuple[int, int]] = field(default_factory=dict)
    live_bytes: list[int] = field(default_factory=list)    # activations live at each op
    footprint_bytes: list[int] = field(default_factory=list)  # head extent in use at each op


def plan_arena(g: Graph, pointer_bytes: int = 8, kernels: str = "reference",
               core: str = "cortex-m4", dsp: bool = True) -> ArenaPlan:
    """Plan TFLM's arena: greedy head (tensors + kernel scratch) and persistent tail.

    The arena must also survive the moment the plan is made, when per-tensor
    allocation records and the planner's bookkeeping sit in temp memory above the
    tail; for tiny fully-connected models that moment, not the plan, sets the size.
    """
    s = STRUCTS_64 if pointer_bytes == 8 else STRUCTS_32
    lt = tensor_lifetimes(g)
    ids = sorted(lt)
    sizes = [align_up(g.tensors[t].nbytes) for t in ids]
    firsts = [lt[t][0] for t in ids]
    lasts = [lt[t][1] for t in ids]
    offline = _offline_offsets(g, ids)
    scratch = {op.index: kernel_scratch_bytes(g, op, kernels, core, dsp) for op in g.ops}
    for i, b in scratch.items():
        if b:
            sizes.append(align_up(b))
            firsts.append(i)
            lasts.append(i)
            offline.append(None)
    offsets, head = greedy_offsets(sizes, firsts, lasts, offline)
    tail = tail_bytes(g, s)
    n_scratch = sum(1 for b in scratch.values() if b)
    commit = tail + s.allocation_info * (len(g.tensors) + n_scratch) \
        + s.planner_per_buffer * len(sizes) - ALIGN
    arena = max(head + tail, commit)
    n_ops = len(g.ops)
    live = [0] * n_ops
    foot = [0] * n_ops
    for k in range(len(sizes)):
        for i in range(firsts[k], min(lasts[k], n_ops - 1) + 1):
            live[i] += sizes[k]
            foot[i] = max(foot[i], offsets[k] + sizes[k])
    return ArenaPlan(head_bytes=head, tail_bytes=tail, commit_peak_bytes=commit,
                     arena_bytes=arena, scratch={k: v for k, v in scratch.items() if v},
                     offsets={t: offsets[j] for j, t in enumerate(ids)}, lifetimes=lt,
                     live_bytes=live, footprint_bytes=foot)


def _offline_offsets(g: Graph, ids: list[int]) -> list[int | None]:
    if not g.offline_plan:
        return [None] * len(ids)
    plan = g.offline_plan
    return [plan[t] if t < len(plan) and plan[t] >= 0 else None for t in ids]


def cmsis_scratch_bytes(g: Graph, core: str = "cortex-m7", dsp: bool = True,
                        kernels: str = "cmsis-nn") -> int:
    """Arena a device kernel library adds over the x86 reference kernels (0 if the scratch
    fits into gaps of the activation plan)."""
    with_scratch = plan_arena(g, pointer_bytes=4, kernels=kernels, core=core, dsp=dsp)
    without = plan_arena(g, pointer_bytes=4, kernels="reference")
    return with_scratch.arena_bytes - without.arena_bytes
