"""CostModel: MACs, parameters, flash, peak SRAM and latency of many subnets at once.

The figures are the ones `tinynas profile` would print for the exported int8
model of each subnet (see the package doc), computed without building a graph:

* one `OpTable` per resolution (the deepest subnet, one column per choice);
* additive figures (MACs, params, model bytes, op tails, cycles) summed per
  block column into (n_columns, C+1) tables, so an arch is one gather and a sum;
* the arena head from the compiled greedy planner (`arena.greedy_heads`),
  run once for all resolutions that share a buffer structure, in chunks that
  bound the memory of the per-buffer keys.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np

from ..boards import Board
from ..cgen import arena_for_firmware_np
from ..errors import UserError
from ..latency import lut_for_board
from ..space.arch import canonicalize_genomes, encode, genome_layout, validate_arch
from ..space.spec import SpaceSpec
from . import arena as A
from .flash import bias_elems, counts, flash_constant, macs, model_bytes, weight_elems
from .latency import cycles_table
from .layers import OpTable, build_op_table, choice_columns

CHUNK = 8192


@dataclass
class Costs:
    """Per-subnet costs, one array entry per genome.

    arena_bytes: the board's arena (its pointer width and kernel scratch), as
    profile's arena_bytes_device; sram_bytes = the firmware's kArenaBytes for
    it (cgen.arena_for_firmware: + 5% margin, to 16 B) + the board's SRAM
    reserve, the one SRAM figure profile and the run's summary report; flash_bytes = .tflite bytes + the board's flash reserve;
    arena_ref_bytes: the x86-64 reference-kernel arena (what TFLM measures on
    this machine), None when not asked for.
    """

    macs: np.ndarray
    params: np.ndarray
    flash_bytes: np.ndarray
    arena_bytes: np.ndarray
    sram_bytes: np.ndarray
    latency_ms: np.ndarray
    arena_ref_bytes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.macs)

    def row(self, i: int) -> dict[str, Any]:
        """One subnet's costs as python scalars (JSON-able)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = v[i].item()
        return out


@dataclass
class _Tables:
    """Everything evaluate needs at one resolution."""

    table: OpTable
    buffers: A.Buffers
    board: A.ArenaTables
    reference: A.ArenaTables | None  # built on first use
    ints: np.ndarray     # (n_columns, C+1, 5): macs, params, model bytes, tensors, ops
    cycles: np.ndarray   # (n_columns, C+1)


class CostModel:
    """Costs of the subnets of one space (one width multiplier) on one board.

    `lut` None means the board's LUT (its measured file if any, else the model).
    Resolution is per call, so one CostModel serves a whole resolution grid;
    tables are built once per resolution and kept.
    """

    def __init__(self, spec: SpaceSpec, board: Board, lut: Any = None) -> None:
        self.spec = spec
        self.board = board
        self.lut = lut if lut is not None else lut_for_board(board)
        self.layout = genome_layout(spec)
        self._tables: dict[tuple[int, int], _Tables] = {}
        self._variant = A.board_variant(board)
        self._memo: dict[A.Variant, dict] = {}  # per-op planner results, shared by all resolutions

    # ------------------------------------------------------------ tables

    def tables(self, resolution: tuple[int, int]) -> _Tables:
        hw = (int(resolution[0]), int(resolution[1]))
        if hw not in self._tables:
            self._tables[hw] = self._build(hw)
        return self._tables[hw]

    def _build(self, hw: tuple[int, int]) -> _Tables:
        spec = self.spec if hw == tuple(self.spec.resolution) else self.spec.with_config(resolution=list(hw))
        t = build_op_table(spec)
        buf = A.build_buffers(t, spec.depths)
        tensors, ops = counts(t)
        ints = np.stack([macs(t), weight_elems(t) + bias_elems(t), model_bytes(t), tensors, ops], axis=-1)
        ints = A.per_column(t, ints)
        cycles = A.per_column(t, cycles_table(t, self.board, self.lut))
        return _Tables(table=t, buffers=buf, board=self._arena_tables(t, buf, self._variant),
                       reference=None, ints=ints, cycles=cycles)

    def _arena_tables(self, t: OpTable, buf: A.Buffers, v: A.Variant) -> A.ArenaTables:
        return A.arena_tables(t, buf, v, self._memo.setdefault(v, {}))

    def _reference(self, tb: _Tables) -> A.ArenaTables:
        if tb.reference is None:
            tb.reference = self._arena_tables(tb.table, tb.buffers, A.REFERENCE)
        return tb.reference

    # ------------------------------------------------------------ evaluation

    def evaluate(self, genomes: np.ndarray, resolution: Any = None, *, reference: bool = True) -> Costs:
        """Costs of n genomes ((n, L) ints) at one resolution or a per-row int array of them.

        resolution: None (the spec's), an int (square), an (H, W) tuple, or an
        (n,) int array of square resolutions (a numpy array is always per-row).
        reference=False skips arena_ref_bytes (half the planner work on boards
        whose kernels request scratch).
        """
        g = self._genomes(genomes)
        if not len(g):
            z = np.zeros(0, dtype=np.int64)
            return Costs(z, z, z, z, z, np.zeros(0), z if reference else None)
        if isinstance(resolution, np.ndarray) and resolution.ndim == 1 and len(resolution) == len(g):
            if not np.issubdtype(resolution.dtype, np.integer):
                raise UserError(f"resolution: expected integers, got dtype {resolution.dtype}")
            jobs = [(np.flatnonzero(resolution == r), self._resolution(int(r)))
                    for r in np.unique(resolution)]
        else:
            jobs = [(np.arange(len(g)), self._resolution(resolution))]
        parts = self._run(g, jobs, reference)
        out = Costs(**{f.name: None if getattr(parts[0], f.name) is None else
                       np.empty(len(g), dtype=getattr(parts[0], f.name).dtype) for f in fields(Costs)})
        for (idx, _), part in zip(jobs, parts):
            for f in fields(Costs):
                if getattr(part, f.name) is not None:
                    getattr(out, f.name)[idx] = getattr(part, f.name)
        return out

    def evaluate_grid(self, genomes: np.ndarray, resolutions: list, *,
                      reference: bool = True) -> list[Costs]:
        """The same genomes at each resolution of a grid, in one batched planner pass."""
        g = self._genomes(genomes)
        if not len(g):
            return [self.evaluate(g, reference=reference) for _ in resolutions]
        return self._run(g, [(np.arange(len(g)), self._resolution(r)) for r in resolutions], reference)

    def latency_ms(self, genomes: np.ndarray, resolution: Any = None) -> np.ndarray:
        """Latency alone (a gather and a sum per arch), for searches that query it often."""
        g = self._genomes(genomes)
        tb = self.tables(self._resolution(resolution))
        return self._latency(tb, _cells(tb.cycles, self._choices(tb, g)))

    def _choices(self, tb: _Tables, g: np.ndarray) -> np.ndarray:
        lay = self.layout
        return choice_columns(tb.table, g[:, lay.depth_slice].astype(np.int64), g[:, lay.kernel_slice],
                              g[:, lay.expand_slice], self.spec.depths)

    def _latency(self, tb: _Tables, cells: np.ndarray) -> np.ndarray:
        cycles = tb.cycles.reshape(-1)[cells].sum(axis=1) + float(self.lut.invoke_overhead_cycles)
        return cycles / float(self.board.clock_hz) * 1e3

    def _genomes(self, genomes: np.ndarray) -> np.ndarray:
        """Validated canonical genomes (inactive slots zeroed, so they cannot change a cost)."""
        g = np.asarray(genomes)
        if g.ndim == 2 and g.shape[0] == 0 and g.shape[1] == self.layout.length:
            return g.astype(np.int8)
        return canonicalize_genomes(self.spec, g)

    def _resolution(self, resolution: Any) -> tuple[int, int]:
        if resolution is None:
            return tuple(self.spec.resolution)
        if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
            hw = (int(resolution), int(resolution))
        else:
            try:
                hw = tuple(int(v) for v in np.asarray(resolution).ravel())
            except (TypeError, ValueError):
                hw = ()
            if len(hw) != 2:
                raise UserError(f"resolution: {resolution!r} is not an int, an (H, W) pair or a "
                                "per-row int array")
        if min(hw) < 1:
            raise UserError(f"resolution: {list(hw)} must be positive")
        return hw

    def _run(self, g: np.ndarray, jobs: list[tuple[np.ndarray, tuple[int, int]]],
             reference: bool) -> list[Costs]:
        """Costs of g[idx] at hw for every job; one planner batch per buffer structure."""
        depth = g[:, self.layout.depth_slice].astype(np.int64)
        tbs = [self.tables(hw) for _, hw in jobs]
        ch = self._choices(tbs[0], g)
        parts, counts = [], []
        for (idx, _), tb in zip(jobs, tbs):
            c, tensors, ops = self._additive(tb, ch[idx])
            parts.append(c)
            counts.append((tensors, ops))
        variants = [lambda tb: tb.board]
        if reference:
            variants.append(self._reference)
        heads: list[np.ndarray] = []
        for k, pick in enumerate(variants):
            if not k or any(tb.board.has_scratch for tb in tbs):
                # else: without kernel scratch both variants place the same buffers
                heads = _batched_heads([(ch[idx], depth[idx], pick(tb), tb.buffers)
                                        for (idx, _), tb in zip(jobs, tbs)])
            for part, tb, h, (idx, _), (tensors, ops) in zip(parts, tbs, heads, jobs, counts):
                arena = A.arena_bytes(pick(tb), ch[idx], h, tensors, ops)
                if k:
                    part.arena_ref_bytes = arena
                else:
                    part.arena_bytes = arena
                    part.sram_bytes = arena_for_firmware_np(arena) + self.board.sram_reserved_bytes
        return parts

    def _additive(self, tb: _Tables, ch: np.ndarray) -> tuple[Costs, np.ndarray, np.ndarray]:
        """Everything but the arena: sums of per-(column, choice) table cells."""
        cells = _cells(tb.cycles, ch)
        mac, params, model, tensors, ops = (tb.ints[..., q].reshape(-1)[cells].sum(axis=1)
                                            for q in range(tb.ints.shape[-1]))
        z = np.zeros(len(ch), dtype=np.int64)
        c = Costs(macs=mac, params=params,
                  flash_bytes=model + flash_constant() + self.board.flash_reserved_bytes,
                  arena_bytes=z, sram_bytes=z, latency_ms=self._latency(tb, cells))
        return c, tensors + 2, ops  # + the model input and MEAN's axis

    def evaluate_arch(self, arch: Mapping) -> dict[str, Any]:
        """Costs of one arch dict (its own input resolution) as python scalars."""
        a = validate_arch(arch)
        _, h, w = a["input"]
        spec = self.spec if (h, w) == tuple(self.spec.resolution) else \
            self.spec.with_config(resolution=[h, w])
        return self.evaluate(encode(spec, a)[None], (h, w)).row(0)

    # ------------------------------------------------------------ constraints

    def constraint_masks(self, c: Costs, latency_ms: float | None = None) -> dict[str, np.ndarray]:
        """Which limit each subnet violates (True = violated), as profile's verdict judges it."""
        lat = np.zeros(len(c), dtype=bool) if latency_ms is None else c.latency_ms > float(latency_ms)
        return {"sram": c.sram_bytes > self.board.sram_bytes,
                "flash": c.flash_bytes > self.board.flash_bytes, "latency": lat}

    def feasible(self, c: Costs, latency_ms: float | None = None) -> np.ndarray:
        m = self.constraint_masks(c, latency_ms)
        return ~(m["sram"] | m["flash"] | m["latency"])



def _cells(tab: np.ndarray, ch: np.ndarray) -> np.ndarray:
    """(n, n_columns) flat indices of each arch's (column, choice) cells in a (columns, C+1) table."""
    return ch + np.arange(tab.shape[0]) * tab.shape[1]


def _batched_heads(items: list[tuple[np.ndarray, np.ndarray, A.ArenaTables, A.Buffers]]
                   ) -> list[np.ndarray]:
    """Greedy heads for several (choices, depths, variant tables, buffers) jobs.

    Jobs with the same buffer structure (every resolution of a width, as a
    rule) share one planner run: their size and neighbour tables are stacked
    and each arch reads its job's part.
    """
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(items)
    groups: dict[int, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(id(item[3].overlaps), []).append(i)
    for members in groups.values():
        keys = A.PlacementKeys([items[i][2] for i in members], items[members[0]][3])
        ch = np.concatenate([items[i][0] for i in members])
        depth = np.concatenate([items[i][1] for i in members])
        table = np.repeat(np.arange(len(members)), [len(items[i][0]) for i in members])
        heads = np.concatenate([keys.heads(ch[a:a + CHUNK], depth[a:a + CHUNK], table[a:a + CHUNK])
                                for a in range(0, len(ch), CHUNK)])
        ends = np.cumsum([len(items[i][0]) for i in members])
        for i, part in zip(members, np.split(heads, ends[:-1])):
            out[i] = part
    return out
