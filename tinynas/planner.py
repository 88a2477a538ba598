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
What each op adds (op data, per-channel arrays, LSTM/SVDF buffers, scratch per
kernel library, subgraphs it runs) is its spec's in the op registry
(tinynas.ops); this module only knows how TFLM's allocator lays those out:
one lifetime scope per op with called subgraphs nested inside the caller's
scope, variable tensors and resource-variable buffers in the tail, and the
arena peaks (plan, commit, the largest Prepare). The constants were read off
TFLM's RecordingMicroAllocator on the x86-64 Python runtime (tflite-micro
0.dev20261023) and are checked against it in the tests; the 32-bit figures
scale the pointer-sized fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


from .graph import Graph, Op
from .ops import Target, op_spec
from .ops.control import resource_variable_bytes

ALIGN = 16


def align_up(n: int, a: int = ALIGN) -> int:
    return (int(n) + a - 1) // a * a


# ------------------------------------------------------------------ lifetimes


def tensor_lifetimes(g: Graph) -> dict[int, tuple[int, int]]:
    """First-created and last-used op index of every tensor of the main subgraph the planner places.

    Constants live in flash and variables are persistent, so neither is planned.
    Graph inputs exist from op 0; graph outputs live to the end. (Subgraphs that
    control-flow ops run are planned by `planned_buffers`, in TFLM's scopes.)
    """
    return {t: (max(f - 1, 0), max(l - 1, 0)) for (sub, t), (f, l) in _scopes(g)[0].items()
            if sub == 0 and f >= 0}


@dataclass
class _Walk:
    """TFLM's AllocationInfoBuilder walk: one scope per op, nested subgraphs inside their caller."""

    graphs: list[Graph]
    scope: int = 0
    life: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    op_scopes: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)

    def _mark(self, key: tuple[int, int], first: bool) -> None:
        cur = self.life.setdefault(key, [-1, -1])
        if first and cur[0] == -1:
            cur[0] = self.scope
        if not first:
            cur[1] = self.scope

    def run(self, sub: int) -> None:
        g = self.graphs[sub]
        for t in g.inputs:
            self._mark((sub, t), True)
            self._mark((sub, t), False)
        for op in g.ops:
            self.scope += 1
            for t in op.outputs:
                if t >= 0:
                    self._mark((sub, t), True)
            start = self.scope
            for field_name in op_spec(op.type).subgraphs:
                callee = op.options.get(field_name)
                if isinstance(callee, int) and 0 < callee < len(self.graphs):
                    self.scope += 1
                    self.run(callee)
            for t in (*op.inputs, *op.outputs):
                if t >= 0:
                    self._mark((sub, t), False)
            self.op_scopes[(sub, op.index)] = (start, self.scope)
        for t in g.outputs:
            self._mark((sub, t), True)
            self._mark((sub, t), False)


def _scopes(g: Graph) -> tuple[dict[tuple[int, int], tuple[int, int]], dict[tuple[int, int], tuple[int, int]]]:
    """(lifetime per planned (subgraph, tensor), scope span per (subgraph, op)), in TFLM's scope units.

    A tensor is planned when it has no constant data, is not a variable, has
    bytes and is not a resource handle (tinynas.ops.control); one no op touches
    gets (-1, -1), which overlaps nothing (TFLM still places it).
    """
    w = _Walk(g.all_subgraphs)
    w.run(0)
    life = {}
    for sub, sg in enumerate(w.graphs):
        for t in sg.tensors:
            if t.is_const or t.is_variable or t.nbytes == 0 or t.dtype == "resource":
                continue
            f, l = w.life.get((sub, t.index), (-1, -1))
            life[(sub, t.index)] = (f, l)
    return life, w.op_scopes


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
    scratch_handle: int       # ScratchBufferHandle per scratch buffer (one pointer)
    subgraph_allocations: int  # SubgraphAllocations per subgraph beyond the first
    multi_subgraph_temp: int  # temp bytes while planning a multi-subgraph model (measured)
    per_subgraph_temp: int    # and per subgraph (subgraph offsets, scope bookkeeping)
    scratch_request: int      # ScratchBufferRequest per scratch buffer, in the head while planning


STRUCTS_64 = StructSizes(8, 488, 24, 64, 32, 64, 16, 32, 40, 8, 16, 40, 16, 16)
STRUCTS_32 = StructSizes(4, 264, 12, 40, 24, 32, 8, 20, 40, 4, 8, 40, 16, 12)


def _target(s: StructSizes, kernels: str = "reference", core: str = "cortex-m4", dsp: bool = True) -> Target:
    return Target(kernels=kernels, core=core, dsp=dsp, pointer_bytes=s.pointer_bytes)


def op_persistent_bytes(g: Graph, op: Op, s: StructSizes) -> int:
    """Tail bytes one op adds: node, builtin options, op data and what its spec adds (per-channel arrays...)."""
    spec = op_spec(op.type)
    opdata = spec.opdata(s.pointer_bytes)
    total = s.node + align_up(spec.options_bytes, 4)
    total += align_up(opdata) if opdata else 0
    if spec.persistent is not None:
        total += sum(align_up(n) for n in spec.persistent(g, op, _target(s)))
    return total


def tail_bytes(g: Graph, s: StructSizes, n_scratch: int = 0) -> int:
    """The persistent tail TFLM allocates for this graph and all its subgraphs."""
    graphs = g.all_subgraphs
    io = [g.tensors[i] for i in (*g.inputs, *g.outputs)]
    total = s.runtime_objects + s.kernel_globals + s.subgraph_allocations * (len(graphs) - 1)
    total += sum(s.io_tensor + (s.io_quant if t.is_quantized else 0) for t in io)
    total += s.scratch_handle * n_scratch
    for sg in graphs:
        total += s.eval_tensor * len(sg.tensors)
        total += sum(op_persistent_bytes(sg, op, s) for op in sg.ops)
        total += sum(align_up(t.nbytes) for t in sg.tensors if t.is_variable and not t.is_const)
    total += resource_variable_bytes(graphs, s.pointer_bytes, align_up)
    return align_up(total)


# ------------------------------------------------------------------ kernel scratch


def kernel_scratch_buffers(g: Graph, op: Op, kernels: str, core: str = "cortex-m4",
                           dsp: bool = True) -> list[int]:
    """Scratch buffers one op's kernel requests in the arena head, one entry per request."""
    spec = op_spec(op.type)
    if spec.scratch is None:
        return []
    return [b for b in spec.scratch(g, op, Target(kernels=kernels, core=core, dsp=dsp)) if b > 0]


def kernel_scratch_bytes(g: Graph, op: Op, kernels: str, core: str = "cortex-m4",
                         dsp: bool = True) -> int:
    """Total scratch one op requests (for ops with one buffer: that buffer)."""
    return sum(kernel_scratch_buffers(g, op, kernels, core, dsp))


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
    graphs = g.all_subgraphs
    life, op_scopes = _scopes(g)
    keys = sorted(life)
    sizes = [align_up(graphs[sub].tensors[t].nbytes) for sub, t in keys]
    firsts = [life[k][0] for k in keys]
    lasts = [life[k][1] for k in keys]
    offline = _offline_offsets(g, keys)
    scratch: dict[int, int] = {}
    n_scratch = 0
    for sub, sg in enumerate(graphs):
        for op in sg.ops:
            bufs = kernel_scratch_buffers(sg, op, kernels, core, dsp)
            if not bufs or (sub, op.index) not in op_scopes:
                continue
            first, last = op_scopes[(sub, op.index)]
            for b in bufs:
                sizes.append(align_up(b))
                firsts.append(first)
                lasts.append(last)
                offline.append(None)
            n_scratch += len(bufs)
            if sub == 0:
                scratch[op.index] = sum(bufs)
    offsets, head = greedy_offsets(sizes, firsts, lasts, offline)
    tail = tail_bytes(g, s, n_scratch)
    n_tensors = sum(len(sg.tensors) for sg in graphs)
    commit = commit_peak(s, tail, n_tensors, n_scratch, len(sizes))
    if len(graphs) > 1:
        commit += s.multi_subgraph_temp + s.per_subgraph_temp * len(graphs)
    arena = max(head + tail, commit, prepare_peak(g, s, tail, n_scratch))
    n_ops = len(g.ops)
    live = [0] * n_ops
    foot = [0] * n_ops
    for i in range(n_ops):
        lo, hi = op_scopes[(0, i)]
        for k in range(len(sizes)):
            if firsts[k] <= hi and lasts[k] >= lo and firsts[k] >= 0:
                live[i] += sizes[k]
                foot[i] = max(foot[i], offsets[k] + sizes[k])
    return ArenaPlan(head_bytes=head, tail_bytes=tail, commit_peak_bytes=commit,
                     arena_bytes=arena, scratch=scratch,
                     offsets={t: offsets[j] for j, (sub, t) in enumerate(keys) if sub == 0},
                     lifetimes=tensor_lifetimes(g), live_bytes=live, footprint_bytes=foot)


def commit_peak(s: StructSizes, tail: int, n_tensors, n_scratch, n_buffers):
    """Arena in use while CommitStaticMemoryPlan runs: the tail, one allocation record per
    tensor and scratch buffer, the scratch requests and the planner's per-buffer bookkeeping.

    Works on ints and numpy arrays alike, so the cost model uses this very formula."""
    return tail + s.allocation_info * (n_tensors + n_scratch) + s.scratch_request * n_scratch \
        + s.planner_per_buffer * n_buffers - ALIGN


def prepare_peak(g: Graph, s: StructSizes, tail: int, n_scratch: int) -> int:
    """Arena in use while the largest Prepare runs (0 when no op's spec has Prepare temp bytes).

    Prepare runs before the plan is committed, so variable tensors and scratch
    handles are not in the tail yet; some kernels (the LSTM) keep temp memory
    from one Prepare to the next, which `prepare_retained` carries forward.
    """
    base = tail - s.scratch_handle * n_scratch - sum(
        align_up(t.nbytes) for sg in g.all_subgraphs for t in sg.tensors if t.is_variable and not t.is_const)
    peak, retained = 0, 0
    for sg in g.all_subgraphs:
        for op in sg.ops:
            spec = op_spec(op.type)
            if spec.prepare_temp:
                peak = max(peak, base + retained + spec.prepare_temp)
            retained += spec.prepare_retained
    return peak


def _offline_offsets(g: Graph, keys: list[tuple[int, int]]) -> list[int | None]:
    """Offline offsets per planned buffer; the metadata numbers tensors across all subgraphs."""
    if not g.offline_plan:
        return [None] * len(keys)
    base = [0]
    for sg in g.all_subgraphs:
        base.append(base[-1] + len(sg.tensors))
    plan = g.offline_plan
    out: list[int | None] = []
    for sub, t in keys:
        i = base[sub] + t
        out.append(plan[i] if i < len(plan) and plan[i] >= 0 else None)
    return out


def board_scratch_bytes(g: Graph, board: Any) -> int:
    """Arena `board`'s kernel library adds over reference kernels at its pointer width (0 without scratch).

    What the firmware arena adds to the host measurement for this board; the
    profile and the export both use it, so their SRAM figures agree.
    """
    with_scratch = plan_arena(g, pointer_bytes=board.pointer_bytes, kernels=board.kernels,
                              core=board.core, dsp=board.dsp)
    without = plan_arena(g, pointer_bytes=board.pointer_bytes, kernels="reference")
    return with_scratch.arena_bytes - without.arena_bytes


def cmsis_scratch_bytes(g: Graph, core: str = "cortex-m7", dsp: bool = True,
                        kernels: str = "cmsis-nn") -> int:
    """Arena a device kernel library adds over the x86 reference kernels (0 if the scratch
    fits into gaps of the activation plan)."""
    with_scratch = plan_arena(g, pointer_bytes=4, kernels=kernels, core=core, dsp=dsp)
    without = plan_arena(g, pointer_bytes=4, kernels="reference")
    return with_scratch.arena_bytes - without.arena_bytes
