"""TFLM's arena for many subnets at once: the planner's greedy head, from tables.

`tinynas.planner.plan_arena` places one graph's buffers largest first, each at
the lowest offset free of every already placed buffer whose lifetime overlaps.
Here the same placement runs for n subnets from precomputed tables: each
subnet's buffers are one gather of packed (size, neighbour-row) keys, sorted
per subnet (size descending, ties in reverse insertion order, as TFLM does),
then placed by a small compiled loop (numba), about 85 buffers per subnet.

Two facts make a placement cheap:

* First fit does not depend on the order in which the placed neighbours are
  scanned: the result is the lowest x >= 0 that no placed, time-overlapping
  buffer intersects, found by jumping x to the end of any buffer that
  intersects [x, x + size) until none does.
* Which buffers overlap in time is local. A buffer of stage i can only overlap
  buffers of its own block, its neighbour blocks, the last block of stage
  i - 1 and the first block of stage i + 1, and which ones exist depends only on
  the depths of stages i - 1 and i. So every buffer has a short, exact
  neighbour list per (depth of previous stage, depth of own stage), computed
  once per space structure by simulating lifetimes as `tensor_lifetimes` does.

Per-op figures come from the planner's own functions (`op_persistent_bytes`,
`kernel_scratch_bytes`) applied to one-op graphs with the tensors
`graph_builder` makes, so no struct size or CMSIS-NN formula is restated here;
only plan_arena's sums (tail, max of head + tail and the commit peak) are,
in `arena_bytes`; the commit peak is the planner's own `commit_peak`.
tests/test_costmodel.py checks the result against plan_arena byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np

from ..graph import Graph, Op, Tensor
from ..planner import (ALIGN, STRUCTS_32, STRUCTS_64, StructSizes, commit_peak, kernel_scratch_bytes,
                       op_persistent_bytes)
from .layers import ADD, CONV, DW, FC, MEAN, OpTable


@dataclass(frozen=True)
class Variant:
    """One way TFLM lays out the arena: pointer width and kernel library."""

    pointer_bytes: int = 8
    kernels: str = "reference"
    core: str = "cortex-m4"
    dsp: bool = True

    @property
    def structs(self) -> StructSizes:
        return STRUCTS_64 if self.pointer_bytes == 8 else STRUCTS_32  # as plan_arena picks


REFERENCE = Variant()


def board_variant(board) -> Variant:
    """The variant `tinynas profile` reports as arena_bytes_device for this board."""
    return Variant(int(board.pointer_bytes), str(board.kernels), str(board.core), bool(board.dsp))


# ---------------------------------------------------------------- one-op graphs


def _act(shape: tuple[int, ...]) -> Tensor:
    return Tensor(index=-1, name="", shape=shape, dtype="int8", scale=(1.0,), zero_point=(0,))


def _const(shape: tuple[int, ...], dtype: str, channels: int) -> Tensor:
    return Tensor(index=-1, name="", shape=shape, dtype=dtype, is_const=True,
                  scale=(1.0,) * channels, zero_point=(0,) * channels)


def one_op_graph(op_type: str, cin: int, cout: int, k: int, stride: int) -> tuple[Graph, Op]:
    """The op with the tensors graph_builder gives it (shapes, per-channel counts, options).

    Enough for the planner's per-op functions, which never read spatial sizes
    (so maps are 1x1); not a runnable model.
    """
    x, y = _act((1, 1, 1, cin)), _act((1, 1, 1, cout))
    if op_type == DW:
        ins = [x, _const((1, k, k, cout), "int8", cout), _const((cout,), "int32", cout)]
    elif op_type == CONV:
        ins = [x, _const((cout, k, k, cin), "int8", cout), _const((cout,), "int32", cout)]
    elif op_type == FC:
        x, y = _act((1, cin)), _act((1, cout))
        ins = [x, _const((cout, cin), "int8", cout), _const((cout,), "int32", cout)]
    elif op_type == MEAN:
        y = _act((1, cout))
        ins = [x, _const((2,), "int32", 0)]
    else:
        ins = [x, _act((1, 1, 1, cin))]
    tensors = ins + [y]
    for i, t in enumerate(tensors):
        t.index = i
    opts = {"stride_w": stride, "stride_h": stride, "depth_multiplier": 1}
    op = Op(index=0, type=op_type, inputs=tuple(range(len(ins))), outputs=(len(ins),), options=opts)
    return Graph(tensors=tensors, ops=[op], inputs=(0,), outputs=(len(ins),)), op


def _per_cell(table: OpTable, rows: np.ndarray, fn, memo: dict) -> np.ndarray:
    """fn(op_type, cin, cout, kernel, stride) for every real choice of the given rows.

    Calls are memoized on those five values: they do not depend on the
    resolution, so a CostModel reuses them across its whole resolution grid.
    """
    whole = (table.types, rows.tobytes(), table.cin.tobytes(), table.cout.tobytes(),
             table.kernel.tobytes(), table.stride.tobytes())
    if whole in memo:  # the same widths and kernels at another resolution
        return memo[whole]
    out = np.zeros((table.n_rows, table.n_choices + 1), dtype=np.int64)
    memo[whole] = out
    r = np.flatnonzero(rows)
    if not len(r):
        return out
    C = table.n_choices
    code = np.unique(np.asarray(table.types), return_inverse=True)
    cells = np.stack([np.broadcast_to(code[1][r, None], (len(r), C)), table.cin[r, :C],
                      table.cout[r, :C], table.kernel[r, :C],
                      np.broadcast_to(table.stride[r, None], (len(r), C))], axis=-1).reshape(-1, 5)
    uniq, inv = np.unique(cells, axis=0, return_inverse=True)
    vals = np.empty(len(uniq), dtype=np.int64)
    for u, (t, cin, cout, k, stride) in enumerate(uniq.tolist()):
        key = (code[0][t], cin, cout, k, stride)
        if key not in memo:
            memo[key] = fn(*key)
        vals[u] = memo[key]
    out[r, :C] = vals[inv.ravel()].reshape(len(r), C)
    return out


def scratch_table(table: OpTable, v: Variant, memo: dict | None = None) -> np.ndarray:
    """(R, C+1) kernel scratch bytes per row and choice (0 where the kernel asks for none)."""
    def one(op_type, cin, cout, k, stride):
        g, op = one_op_graph(op_type, cin, cout, k, stride)
        return kernel_scratch_bytes(g, op, v.kernels, v.core, v.dsp)
    return _per_cell(table, scratch_rows(table), one, {} if memo is None else memo)


def op_tail_table(table: OpTable, v: Variant, memo: dict | None = None) -> np.ndarray:
    """(R, C+1) persistent bytes each op adds to the tail (node, options, op data, per-channel)."""
    def one(op_type, cin, cout, k, stride):
        g, op = one_op_graph(op_type, cin, cout, k, stride)
        return op_persistent_bytes(g, op, v.structs)
    return _per_cell(table, np.ones(table.n_rows, dtype=bool), one, {} if memo is None else memo)


def scratch_rows(table: OpTable) -> np.ndarray:
    """Rows whose kernel may request scratch: all but stride-1 1x1 convolutions (see kernel_scratch_bytes)."""
    return (table.mask((DW,)) | (table.mask((CONV,)) & ((table.kernel[:, 0] > 1) | (table.stride > 1))))


def tail_constant(s: StructSizes) -> int:
    """Tail bytes every model has: runtime objects, kernel globals, the quantized input and output."""
    return s.runtime_objects + s.kernel_globals + 2 * (s.io_tensor + s.io_quant)


def align(n: np.ndarray) -> np.ndarray:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# ---------------------------------------------------------------- buffers and neighbours


@dataclass(frozen=True)
class Buffers:
    """The planner's buffers of the deepest subnet: input, one output per row, scratch rows.

    Index order is the planner's insertion order (input, activations in
    execution order, then scratch in op order), which sets its tie-break.
    A neighbour-table row is `buffer << ctx_bits | context`, where the context
    is (depth index of the previous stage) * n_depths + (depth index of the own stage).
    """

    column: np.ndarray       # (B,) block column that decides presence and size
    stage: np.ndarray        # (B,) pseudo stage
    scratch_row: np.ndarray  # (n_scratch,) op row of each scratch buffer
    overlaps: np.ndarray     # (B << ctx_bits, W) time-overlapping buffers per row; B = none
    n_depths: int
    ctx_bits: int

    @property
    def n(self) -> int:
        return len(self.column)


def build_buffers(table: OpTable, depths: tuple[int, ...]) -> Buffers:
    srows = np.flatnonzero(scratch_rows(table))
    stage = np.concatenate([[0], table.row_stage, table.row_stage[srows]])
    ctx_bits = max(int(len(depths) ** 2 - 1).bit_length(), 1)
    overlaps = _overlap_table(table.types, table.blocks, tuple(int(r) for r in srows),
                              tuple(depths), table.n_stages, ctx_bits)
    return Buffers(column=np.concatenate([[0], table.row_block, table.row_block[srows]]),
                   stage=stage, scratch_row=srows, overlaps=overlaps, n_depths=len(depths),
                   ctx_bits=ctx_bits)


def _lifetimes(types, blocks, srows, depth: list[int], n_buf: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) op row of every buffer for one depth vector (-1: absent).

    The same walk as planner.tensor_lifetimes, over rows instead of op indices:
    an arch's ops are a subsequence of the rows in the same order, so which
    buffers overlap is the same as with its real op indices.
    """
    first = np.full(n_buf, -1)
    last = np.full(n_buf, -1)
    first[0] = last[0] = 0
    cur, active_rows = 0, set()
    for blk in blocks:
        if blk.column and blk.slot >= depth[blk.stage - 1]:
            continue
        x = prev = skip = cur
        for r in blk.rows:
            if r == blk.shortcut_row:  # reads the block input; the main path goes on from prev
                last[x] = max(last[x], r)
                first[r + 1] = last[r + 1] = r
                skip = r + 1
                active_rows.add(r)
                continue
            for t in ((skip, prev) if types[r] == ADD else (prev,)):
                last[t] = max(last[t], r)
            first[r + 1] = last[r + 1] = r
            prev = r + 1
            active_rows.add(r)
        cur = prev
    for k, r in enumerate(srows):
        if r in active_rows:
            first[1 + len(types) + k] = last[1 + len(types) + k] = r
    return first, last


def _context_depths(st: int, a: int, c: int, depths: tuple[int, ...], n_stages: int) -> list[int]:
    """A depth vector with previous-stage depth index a and own-stage depth index c.

    Other stages cannot change which buffers of pseudo stage `st` overlap (see
    the module doc), so they stay at the maximum.
    """
    depth = [max(depths)] * n_stages
    if 2 <= st <= n_stages + 1:
        depth[st - 2] = depths[a]
    if 1 <= st <= n_stages:
        depth[st - 1] = depths[c]
    return depth


@lru_cache(maxsize=64)
def _overlap_table(types: tuple[str, ...], blocks: tuple, srows: tuple[int, ...],
                   depths: tuple[int, ...], n_stages: int, ctx_bits: int) -> np.ndarray:
    """Time-overlapping buffers per (buffer, context); a pure function of the structure, so cached."""
    n_buf, nd = 1 + len(types) + len(srows), len(depths)
    row_stage = {r: b.stage for b in blocks for r in b.rows}
    stage = np.array([0] + [row_stage[r] for r in range(len(types))] + [row_stage[r] for r in srows])
    lists: dict[int, np.ndarray] = {}
    for st in range(n_stages + 2):
        mine = np.flatnonzero(stage == st)
        for a in range(nd):
            for c in range(nd):
                first, last = _lifetimes(types, blocks, srows,
                                         _context_depths(st, a, c, depths, n_stages), n_buf)
                live = first >= 0
                for b in mine[live[mine]]:
                    ov = live & (first <= last[b]) & (last >= first[b])
                    ov[b] = False
                    lists[(int(b) << ctx_bits) | (a * nd + c)] = np.flatnonzero(ov)
    width = max([len(v) for v in lists.values()] + [1])
    table = np.full((n_buf << ctx_bits, width), n_buf, dtype=np.int64)
    for row, nbrs in lists.items():
        table[row, :len(nbrs)] = nbrs
    table.setflags(write=False)
    return table


def stage_contexts(buf: Buffers, depth_idx: np.ndarray) -> np.ndarray:
    """(n, S + 2) neighbour-table context of each pseudo stage (depth_idx is (n, S)).

    Context = (depth index of the previous stage) * n_depths + (depth index of
    the own stage); pseudo stages 0 (stem) and S + 1 (head) have no depth of their own.
    """
    n = len(depth_idx)
    dext = np.zeros((n, depth_idx.shape[1] + 2), dtype=np.int64)
    dext[:, 1:-1] = depth_idx
    out = np.zeros_like(dext)
    out[:, 1:] = dext[:, :-1] * buf.n_depths + dext[:, 1:]
    return out


# ---------------------------------------------------------------- greedy placement


@dataclass(frozen=True)
class Neighbours:
    """Per neighbour-table row: the neighbours that can be placed before that buffer.

    `ids` is (rows, W): row r's first count[r] slots are its neighbours, the
    rest hold B, a buffer that is never placed.
    """

    ids: np.ndarray
    count: np.ndarray
    ctx_bits: int
    none: int  # the id of the never-placed buffer (B)

    @property
    def span(self) -> int:
        return _span(self.none, self.ctx_bits)

    @property
    def b_mask(self) -> int:
        return (self.span >> self.ctx_bits) - 1


def prune_neighbours(buf: Buffers, sizes: np.ndarray) -> Neighbours:
    """Keep only neighbours that can precede a buffer in the size order, for these sizes.

    A neighbour placed after the buffer cannot move it, so it need not be read.
    `sizes` is (B, C+1) per buffer and choice; the last column is "absent".
    Buffers of different blocks have independent choices (compare the
    extremes); buffers of one block share its choice (compare per choice).
    """
    B, C = buf.n, sizes.shape[1] - 1
    nb = buf.overlaps
    r, slot = np.nonzero(nb < B)
    b, p = r >> buf.ctx_bits, nb[r, slot]
    real = sizes[:, :C].astype(np.int64)
    big = real.max(axis=1)
    small = np.where(real > 0, real, np.iinfo(np.int64).max).min(axis=1)
    later = p > b  # inserted later: wins a tie (TFLM places equal sizes in reverse order)
    keep = (big[p] > small[b]) | ((big[p] == small[b]) & later)
    shared = np.flatnonzero((buf.column[p] == buf.column[b]) & (buf.column[b] != 0))
    sp, sb = real[p[shared]], real[b[shared]]
    keep[shared] = (((sp > sb) | ((sp == sb) & later[shared, None])) & (sp > 0)).any(axis=1)
    keep &= big[p] > 0
    r, p = r[keep], p[keep]
    count = np.bincount(r, minlength=len(nb))
    starts = np.cumsum(count) - count
    pos = np.arange(len(r)) - np.repeat(starts, count)  # slot within the row, in overlap order
    width = max(int(count.max(initial=0)), 1)
    span = _span(B, buf.ctx_bits)
    ids = np.full((span, width), B, dtype=np.int64)
    ids[r, pos] = p
    return Neighbours(ids=ids, count=np.pad(count, (0, span - len(count))), ctx_bits=buf.ctx_bits,
                      none=B)


def _span(n_buf: int, ctx_bits: int) -> int:
    """Rows of one neighbour table: a power of two, so stacked tables keep `row >> ctx_bits & b_mask`."""
    return 1 << max((n_buf << ctx_bits) - 1, 1).bit_length()


def stack_neighbours(parts: list[Neighbours]) -> Neighbours:
    """One table holding several (same-structure) tables one after another."""
    if len(parts) == 1:
        return parts[0]
    w = max(p.ids.shape[1] for p in parts)
    ids = [np.hstack([p.ids, np.full((p.ids.shape[0], w - p.ids.shape[1]), p.none, p.ids.dtype)])
           for p in parts]
    return Neighbours(ids=np.ascontiguousarray(np.concatenate(ids, axis=0)),
                      count=np.concatenate([p.count for p in parts]), ctx_bits=parts[0].ctx_bits,
                      none=parts[0].none)


def greedy_heads(keys: np.ndarray, rbits: int, nbr: Neighbours) -> np.ndarray:
    """Head bytes of the greedy plan for each arch.

    keys: (n, B) `size / 16 << rbits | row` per buffer (size 0 = absent; row =
    the buffer's neighbour-table row, see PlacementKeys); sorted in place.
    Sorting packed values is several times faster than argsort; rows grow
    with the buffer index, so equal sizes come out in reverse insertion
    order, as TFLM places them.
    """
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    keys.sort(axis=1)
    return _heads_compiled(keys, rbits, nbr.ids, nbr.count, nbr.ctx_bits, nbr.b_mask, nbr.none) * ALIGN


@numba.njit(cache=True, nogil=True)
def _heads_compiled(keys, rbits, ids, count, ctx_bits, b_mask, none):
    """Greedy first fit per arch, largest buffer first, in units of 16 bytes.

    Each buffer goes to the lowest x >= 0 that no placed, time-overlapping
    buffer intersects: x jumps to the end of any neighbour that intersects
    [x, x + s) until none does. Every x skipped that way would intersect that
    neighbour, so the order in which neighbours are scanned does not matter
    and the result is TFLM's first fit. Compiled: a plain loop over about 85
    placements per subnet beats any vectorized form by 2x (bench_costmodel).
    """
    n, n_keys = keys.shape
    rmask = (1 << rbits) - 1
    out = np.empty(n, np.int64)
    off = np.zeros(none + 1, np.int64)
    end = np.zeros(none + 1, np.int64)  # 0: not placed (cannot block anything)
    for a in range(n):
        head = 0
        for j in range(n_keys - 1, -1, -1):
            s = keys[a, j] >> rbits
            if s == 0:  # absent buffers sort first
                break
            row = keys[a, j] & rmask
            x = 0
            moved = True
            while moved:
                moved = False
                for w in range(count[row]):
                    p = ids[row, w]
                    if end[p] > x and off[p] < x + s:
                        x = end[p]
                        moved = True
            b = (row >> ctx_bits) & b_mask
            off[b] = x
            end[b] = x + s
            head = max(head, x + s)
        out[a] = head
        end[:] = 0
    return out


class PlacementKeys:
    """Placement keys of one or more same-structure variant tables, stacked.

    Entry [j, b, c, x] is `size / 16 << rbits | row` for table j, buffer b,
    choice c and context x, where row = j * span + (b << ctx_bits | x) indexes
    the stacked neighbour tables. An arch's keys are then one gather (int32
    index arithmetic: the table is small).
    """

    def __init__(self, tabs: list["ArenaTables"], buf: Buffers) -> None:
        self.buf = buf
        self.nbr = stack_neighbours([t.neighbours for t in tabs])
        n_ctx, c1 = buf.n_depths ** 2, tabs[0].buffer_sizes.shape[1]
        units = np.stack([t.buffer_sizes for t in tabs]).astype(np.int64) >> 4  # (J, B, C+1)
        j, b = np.arange(len(tabs))[:, None], np.arange(buf.n)[None, :]
        rows = (j * self.nbr.span + (b << buf.ctx_bits))[:, :, None, None] + np.arange(n_ctx)
        self.rbits = max(int(len(tabs) * self.nbr.span - 1).bit_length(), 1)
        small = int(units.max(initial=0)) < (1 << (31 - self.rbits))
        table = (units[..., None] << self.rbits) | rows
        self.table = table.astype(np.int32 if small else np.int64).reshape(-1)
        if len(self.table) >= 1 << 31:
            raise ValueError("placement key table too large for int32 indices")
        self.n_ctx, self.per_table = n_ctx, buf.n * c1 * n_ctx
        self.offset = (np.arange(buf.n) * (c1 * n_ctx)).astype(np.int32)

    def keys(self, ch: np.ndarray, depth_idx: np.ndarray, table: np.ndarray) -> np.ndarray:
        """(n, B) keys for archs with choices ch (n, n_columns), depths and table index (n,)."""
        col = (ch * self.n_ctx + (table * self.per_table)[:, None]).astype(np.int32)
        ctx = stage_contexts(self.buf, depth_idx).astype(np.int32)
        idx = col.take(self.buf.column, axis=1)
        idx += ctx.take(self.buf.stage, axis=1)
        idx += self.offset
        return self.table.take(idx)

    def heads(self, ch: np.ndarray, depth_idx: np.ndarray, table: np.ndarray) -> np.ndarray:
        return greedy_heads(self.keys(ch, depth_idx, table), self.rbits, self.nbr)


# ---------------------------------------------------------------- one variant, whole arena


@dataclass(frozen=True)
class ArenaTables:
    """Everything one variant's arena needs, per buffer or per (block column, choice)."""

    variant: Variant
    buffer_sizes: np.ndarray  # (B, C+1) aligned bytes per buffer and choice
    op_tail: np.ndarray       # (n_columns, C+1) persistent op bytes summed per block
    n_scratch: np.ndarray     # (n_columns, C+1) scratch buffers per block
    has_scratch: bool
    neighbours: Neighbours


def arena_tables(table: OpTable, buf: Buffers, v: Variant, memo: dict | None = None) -> ArenaTables:
    """One variant's tables; `memo` (keep one per variant) saves the per-op planner calls."""
    memo = {} if memo is None else memo
    scratch = scratch_table(table, v, memo.setdefault("scratch", {}))
    h, w, c = table.input_shape
    sizes = np.concatenate([np.full((1, table.n_choices + 1), align(h * w * c), dtype=np.int64),
                            align(table.out_elems), align(scratch[buf.scratch_row])])
    if sizes.max() < (1 << 31):
        sizes = sizes.astype(np.int32)  # halves the planner's memory traffic
    return ArenaTables(variant=v, buffer_sizes=sizes,
                       op_tail=per_column(table, op_tail_table(table, v, memo.setdefault("tail", {}))),
                       n_scratch=per_column(table, (scratch > 0).astype(np.int64)),
                       has_scratch=bool(scratch.any()), neighbours=prune_neighbours(buf, sizes))


def per_column(table: OpTable, cells: np.ndarray) -> np.ndarray:
    """Sum an (R, C+1, ...) per-row table into (n_columns, C+1, ...) per block column."""
    onehot = (np.arange(table.n_columns)[:, None] == table.row_block[None, :]).astype(cells.dtype)
    return np.tensordot(onehot, cells, axes=1)


def gather_columns(tab: np.ndarray, ch: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
    """(n, len(tab)) per-arch values: row r of `tab` read at the choice of block column columns[r].

    `tab` is (rows, C+1); `ch` (n, n_columns) the per-arch choice of each block
    column; `columns` defaults to "row r is block column r".
    """
    rows = np.arange(tab.shape[0])
    cols = rows if columns is None else columns
    return tab.reshape(-1)[rows * tab.shape[1] + ch[:, cols]]


def arena_bytes(at: ArenaTables, ch: np.ndarray, head: np.ndarray, n_tensors: np.ndarray,
                n_ops: np.ndarray) -> np.ndarray:
    """plan_arena(...).arena_bytes for every arch: max(head + tail, commit peak)."""
    s = at.variant.structs
    op_tail = gather_columns(at.op_tail, ch).sum(axis=1)
    n_scr = gather_columns(at.n_scratch, ch).sum(axis=1)
    tail = align(tail_constant(s) + s.eval_tensor * n_tensors + op_tail + s.scratch_handle * n_scr)
    planned = 1 + n_ops + n_scr  # input + one output per op + scratch buffers
    return np.maximum(head + tail, commit_peak(s, tail, n_tensors, n_scr, planned))
