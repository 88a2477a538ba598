"""The deepest subnet of a space at one resolution, as per-choice op tables.

Every subnet of a space is the space's deepest subnet with some blocks left
out and each remaining block's kernel and expand ratio chosen. So one table of
the deepest subnet's ops, with one column per (kernel, expand) choice, describes
them all: an arch's cost is a gather from this table plus a sum (or, for the
arena, a greedy placement of the gathered buffer sizes). Geometry comes from
`layer_plan(largest_arch(spec))`, the plan the torch, Keras and graph builders
share; only mid channels and kernels vary with the choice.

Rows are ops in execution order, exactly as `graph_builder.build_graph` emits
them: stem CONV_2D; first block DEPTHWISE_CONV_2D, CONV_2D[, ADD]; per stage
block, by the space's block type, "mb": CONV_2D (expand), DEPTHWISE_CONV_2D,
CONV_2D (project)[, ADD]; "fused": CONV_2D (kxk expand), CONV_2D (project)[, ADD];
"res": CONV_2D (kxk), CONV_2D (kxk)[, CONV_2D (1x1 projection shortcut)][, ADD];
then MEAN; FULLY_CONNECTED. A shortcut row reads the block's input, not the
row before it (`Block.shortcut_row`).

Block columns: column 0 holds the ops every subnet has (stem, first block,
head); column 1 + i * max_depth + j is block j of stage i, present when j is
below stage i's depth. Choice index c = kernel_index * n_expands + expand_index;
choice n_choices stands for "block absent" and has all-zero costs.

Pseudo stages (for the arena's neighbour tables): 0 = stem and first block,
1..S = the stages, S + 1 = the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..space.arch import largest_arch, layer_plan
from ..space.spec import SpaceSpec

CONV, DW, ADD, MEAN, FC = "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"
WEIGHTED = (CONV, DW, FC)


@dataclass(frozen=True)
class Block:
    """One block of the deepest subnet: which rows it owns and where it sits."""

    column: int
    stage: int          # pseudo stage
    slot: int           # block index within its stage (0 for the static parts)
    rows: tuple[int, ...]
    residual: bool
    shortcut_row: int | None = None  # a projection shortcut: reads the block input; ADD reads its output


@dataclass(frozen=True)
class OpTable:
    """Per-row, per-choice shapes of the deepest subnet (arrays are (rows, n_choices + 1)).

    Channel and spatial arrays describe the op's activation input and output;
    for MEAN the output is (1, C) and for FULLY_CONNECTED both sides are (1, C)
    (h = w = 1). The last choice column is the absent block: zeros everywhere.
    """

    types: tuple[str, ...]
    blocks: tuple[Block, ...]
    row_block: np.ndarray     # (R,) block column of each row
    row_stage: np.ndarray     # (R,) pseudo stage of each row
    stride: np.ndarray        # (R,)
    kernel: np.ndarray        # (R, C+1)
    cin: np.ndarray
    cout: np.ndarray
    in_h: np.ndarray
    in_w: np.ndarray
    out_h: np.ndarray
    out_w: np.ndarray
    input_shape: tuple[int, int, int]  # (H, W, C) of the model input
    n_columns: int
    n_choices: int
    n_expands: int
    n_stages: int
    max_depth: int

    @property
    def n_rows(self) -> int:
        return len(self.types)

    def mask(self, types: tuple[str, ...]) -> np.ndarray:
        """(R,) rows whose op type is one of `types`."""
        return np.isin(np.asarray(self.types), types)

    @property
    def in_elems(self) -> np.ndarray:
        return self.in_h * self.in_w * self.cin

    @property
    def out_elems(self) -> np.ndarray:
        return self.out_h * self.out_w * self.cout


class _Rows:
    """Accumulates rows as scalars; channels are `fixed + per_expand * e`, kernels fixed or chosen.

    Expanding to (rows, choices) arrays happens once, in `arrays`.
    """

    def __init__(self) -> None:
        self.types: list[str] = []
        self.vals: list[tuple[int, ...]] = []

    def add(self, op: str, column: int, stage: int, stride: int, kernel: int, cin: tuple[int, int],
            cout: tuple[int, int], in_hw: tuple[int, int], out_hw: tuple[int, int]) -> int:
        """kernel 0 means "the block's kernel choice"; cin/cout are (fixed, per_expand)."""
        self.types.append(op)
        self.vals.append((column, stage, stride, kernel, *cin, *cout, *in_hw, *out_hw))
        return len(self.types) - 1

    def conv(self, op: str, column: int, stage: int, layer, cin: tuple[int, int],
             cout: tuple[int, int], kernel: int) -> int:
        return self.add(op, column, stage, layer.stride, kernel, cin, cout, layer.in_hw, layer.out_hw)

    def arrays(self, ks: np.ndarray, es: np.ndarray) -> dict[str, np.ndarray]:
        v = np.asarray(self.vals, dtype=np.int64)
        col = {name: v[:, i] for i, name in enumerate(
            ("column", "stage", "stride", "kernel", "cin0", "cinx", "cout0", "coutx",
             "in_h", "in_w", "out_h", "out_w"))}
        n = len(ks)
        full = {"kernel": np.where(col["kernel"][:, None] > 0, col["kernel"][:, None], ks[None, :]),
                "cin": col["cin0"][:, None] + col["cinx"][:, None] * es[None, :],
                "cout": col["cout0"][:, None] + col["coutx"][:, None] * es[None, :]}
        for k in ("in_h", "in_w", "out_h", "out_w"):
            full[k] = np.repeat(col[k][:, None], n, axis=1)
        out = {k: _with_absent(a) for k, a in full.items()}
        out.update(row_block=col["column"], row_stage=col["stage"], stride=col["stride"])
        return out


def _choices(spec: SpaceSpec) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and expand value of every choice index c = k_index * n_expands + e_index."""
    k = np.repeat(np.asarray(spec.kernels, dtype=np.int64), len(spec.expand_ratios))
    e = np.tile(np.asarray(spec.expand_ratios, dtype=np.int64), len(spec.kernels))
    return k, e


def _static_block(rows: _Rows, layers, stage: int, residual: bool, slot: int = 0) -> Block:
    ids = []
    for layer in layers:
        op = DW if layer.kind == "dw" else CONV
        ids.append(rows.conv(op, 0, stage, layer, (layer.in_channels, 0), (layer.out_channels, 0),
                             layer.kernel))
    if residual:
        last = layers[-1]
        c = (last.out_channels, 0)
        ids.append(rows.conv(ADD, 0, stage, last, c, c, 1))
    return Block(0, stage, slot, tuple(ids), residual)


def _stage_block(rows: _Rows, blk, column: int, stage: int, slot: int) -> Block:
    """A stage block's rows; channel sizes that scale with the expand choice are (0, per_expand)."""
    first, last = blk.convs[0], blk.convs[-1]
    cin, cout = (first.in_channels, 0), (last.out_channels, 0)
    if blk.kind == "res":  # mid = cout * expand; both convs take the kernel choice
        mid = (0, last.out_channels)
        ids = [rows.conv(CONV, column, stage, first, cin, mid, 0),
               rows.conv(CONV, column, stage, last, mid, cout, 0)]
    elif blk.kind == "fused":  # kxk expand to cin * expand, 1x1 project
        mid = (0, first.in_channels)
        ids = [rows.conv(CONV, column, stage, first, cin, mid, 0),
               rows.conv(CONV, column, stage, last, mid, cout, 1)]
    else:
        expand, dw, project = blk.convs
        mid = (0, expand.in_channels)  # in_channels * expand ratio
        ids = [rows.conv(CONV, column, stage, expand, cin, mid, 1),
               rows.conv(DW, column, stage, dw, mid, mid, 0),
               rows.conv(CONV, column, stage, project, mid, cout, 1)]
    sc = None
    if blk.shortcut is not None:
        sc = rows.conv(CONV, column, stage, blk.shortcut, cin, cout, 1)
        ids.append(sc)
    if blk.adds:
        ids.append(rows.conv(ADD, column, stage, last, cout, cout, 1))
    return Block(column, stage, slot, tuple(ids), blk.residual, sc)


def build_op_table(spec: SpaceSpec) -> OpTable:
    """The op table of `spec` at its own (width_mult, resolution)."""
    plan = layer_plan(largest_arch(spec))
    ks, es = _choices(spec)
    depth, n_st = spec.max_depth, len(spec.stages)
    rows = _Rows()
    blocks = [_static_block(rows, (plan.stem,), 0, False)]
    first = plan.blocks[0]
    blocks.append(_static_block(rows, first.convs, 0, first.residual))
    for idx, blk in enumerate(plan.blocks[1:]):
        i, j = divmod(idx, depth)
        blocks.append(_stage_block(rows, blk, 1 + idx, i + 1, j))
    (fh, fw), fc, n = plan.feature_hw, plan.feature_channels, plan.num_classes
    head = [rows.add(MEAN, 0, n_st + 1, 1, 1, (fc, 0), (fc, 0), (fh, fw), (1, 1)),
            rows.add(FC, 0, n_st + 1, 1, 1, (fc, 0), (n, 0), (1, 1), (1, 1))]
    blocks.append(Block(0, n_st + 1, 0, tuple(head), False))
    c, h, w = plan.input
    return OpTable(types=tuple(rows.types), blocks=tuple(blocks), input_shape=(h, w, c),
                   n_columns=1 + n_st * depth, n_choices=len(ks), n_expands=len(spec.expand_ratios),
                   n_stages=n_st, max_depth=depth, **rows.arrays(ks, es))


def _with_absent(a: np.ndarray) -> np.ndarray:
    """Append the all-zero "block absent" choice column."""
    return np.concatenate([a, np.zeros((len(a), 1), dtype=a.dtype)], axis=1)


def choice_columns(table: OpTable, depth_idx: np.ndarray, kernel_idx: np.ndarray,
                   expand_idx: np.ndarray, depths: tuple[int, ...]) -> np.ndarray:
    """(n, n_columns) choice index per block column; absent blocks get n_choices.

    depth_idx is (n, S); kernel_idx / expand_idx are (n, S * max_depth) as the
    genome stores them.
    """
    n = len(depth_idx)
    depth = np.asarray(depths, dtype=np.int64)[depth_idx]
    active = np.arange(table.max_depth)[None, None, :] < depth[:, :, None]
    ch = kernel_idx.astype(np.int64) * table.n_expands + expand_idx
    ch = np.where(active.reshape(n, -1), ch, table.n_choices)
    return np.concatenate([np.zeros((n, 1), dtype=np.int64), ch], axis=1)

