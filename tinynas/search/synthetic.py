"""A synthetic search task: an analytic cost model and a hidden accuracy function.

Why: the strategies must be testable, benchmarkable and debuggable without a
trained supernet (minutes to hours of CPU). This task has the same duck types
as the real parts, so every strategy runs unchanged on it:

- `AnalyticCostModel(spec, board)` has CostModel's `evaluate(genomes,
  resolution=None) -> Costs`, `constraint_masks` and `feasible`. Its numbers are a
  rough MBConv model (MACs, params, peak of block working sets), not the
  planner: good enough to make SRAM/flash/latency limits bind the way the real
  ones do (bigger choices cost more), cheap enough for 100,000 genomes a second.
- `SyntheticAccuracy(spec, seed)` is a hidden score: a random linear function of
  the one-hot genes, tilted so that larger choices help (as capacity does in
  reality, which puts the optimum on the constraint boundary), squashed into
  (0.3, 0.9), plus a small noise fixed per architecture (so re-evaluating an
  arch gives the same value, like a deterministic supernet evaluation).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..costmodel import Costs
from ..space.arch import encode, genome_layout, sample_genomes, skeleton, unpack_genomes
from ..space.spec import SpaceSpec, default_space, same_out
from .genomes import active_mask, spec_at

COST_FIELDS = ("macs", "params", "flash_bytes", "arena_bytes", "sram_bytes", "latency_ms")


@dataclass(frozen=True)
class SyntheticBoard:
    """The few board fields the search reads; real `tinynas.boards.Board`s work too."""

    id: str
    sram_bytes: int
    flash_bytes: int
    sram_reserved_bytes: int = 0
    flash_reserved_bytes: int = 0
    clock_hz: int = 200_000_000


class AnalyticCostModel:
    """A vectorized stand-in for CostModel (see module doc)."""

    def __init__(self, spec: SpaceSpec, board: Any, macs_per_cycle: float = 0.25) -> None:
        self.spec = spec
        self.board = board
        self.macs_per_cycle = macs_per_cycle

    def evaluate(self, genomes: np.ndarray, resolution: int | np.ndarray | None = None) -> Costs:
        g = np.asarray(genomes)
        res = np.full(len(g), -1) if resolution is None else np.broadcast_to(np.asarray(resolution), (len(g),))
        out = {f: np.zeros(len(g), dtype=np.float64 if f == "latency_ms" else np.int64) for f in COST_FIELDS}
        for side in np.unique(res):
            rows = np.flatnonzero(res == side)
            part = self._evaluate_at(g[rows], None if side < 0 else int(side))
            for f in COST_FIELDS:
                out[f][rows] = part[f]
        return Costs(**out)

    def _evaluate_at(self, g: np.ndarray, side: int | None) -> dict[str, np.ndarray]:
        spec = spec_at(self.spec, side)
        sk = skeleton(spec)
        ch = unpack_genomes(spec, g)
        hw = same_out(sk.input[1], sk.stem_stride) * same_out(sk.input[2], sk.stem_stride)
        c0, c1 = sk.stem_channels, sk.first_block_channels
        macs = np.full(len(g), hw * (27 * c0 + 9 * c0 + c0 * c1), dtype=np.float64)
        params = np.full(len(g), 27 * c0 + 9 * c0 + c0 * c1, dtype=np.float64)
        peak = np.full(len(g), hw * (3 + c0 + c1), dtype=np.float64)
        side_h, side_w = same_out(sk.input[1], sk.stem_stride), same_out(sk.input[2], sk.stem_stride)
        cin = c1
        for s, cout in enumerate(sk.stage_channels):
            for j in range(spec.max_depth):
                stride = sk.stage_strides[s] if j == 0 else 1
                oh, ow = same_out(side_h, stride), same_out(side_w, stride)
                hin, hout = side_h * side_w, oh * ow
                mid = cin * ch.expand[:, s, j]
                k2 = ch.kernel[:, s, j] ** 2
                macs += hin * cin * mid + hout * mid * (k2 + cout)
                params += cin * mid + mid * (k2 + cout)
                peak = np.maximum(peak, hin * (cin + mid) + hout * mid)
                if j == 0:
                    side_h, side_w, cin = oh, ow, cout
        params += cin * spec.num_classes
        return self._finish(macs, params, peak, len(sk.stage_channels) * spec.max_depth)

    def _finish(self, macs, params, peak, layers: int) -> dict[str, np.ndarray]:
        arena = (peak + 2048).astype(np.int64)
        flash = (params + 20_000 + 64 * layers).astype(np.int64)
        lat = macs / (self.board.clock_hz * self.macs_per_cycle) * 1000.0 + 1.0
        return {"macs": macs.astype(np.int64), "params": params.astype(np.int64),
                "arena_bytes": arena, "sram_bytes": arena + int(self.board.sram_reserved_bytes),
                "flash_bytes": flash + int(self.board.flash_reserved_bytes), "latency_ms": lat}

    def constraint_masks(self, c: Costs, latency_ms: float | None = None) -> dict[str, np.ndarray]:
        lat = np.zeros(len(c), bool) if latency_ms is None else c.latency_ms > latency_ms
        return {"sram": c.sram_bytes > self.board.sram_bytes,
                "flash": c.flash_bytes > self.board.flash_bytes, "latency": lat}

    def feasible(self, c: Costs, latency_ms: float | None = None) -> np.ndarray:
        m = self.constraint_masks(c, latency_ms)
        return ~(m["sram"] | m["flash"] | m["latency"])


class SyntheticAccuracy:
    """Hidden accuracy over archs (see module doc); `calls` counts archs scored."""

    def __init__(self, spec: SpaceSpec, seed: int = 0, noise: float = 0.005, tilt: float = 0.6,
                 sharpness: float = 0.4) -> None:
        rng = np.random.default_rng(seed)
        lay = genome_layout(spec)
        self.spec = spec
        self.noise = noise
        self.seed = seed
        self.sharpness = sharpness
        self.weights = [rng.normal(0.0, 1.0, int(b)) + tilt * np.linspace(-1, 1, int(b)) for b in lay.bounds]
        self.calls = 0

    def genome_score(self, genomes: np.ndarray) -> np.ndarray:
        """The noiseless hidden score of canonical genomes (inactive slots contribute nothing)."""
        g = np.asarray(genomes, dtype=np.int64)
        active = active_mask(self.spec, g)
        total = np.zeros(len(g))
        for p, w in enumerate(self.weights):
            total += np.where(active[:, p], w[g[:, p]], 0.0)
        return total / np.sqrt(len(self.weights) / 3.0)

    def __call__(self, archs: Sequence[Mapping]) -> np.ndarray:
        self.calls += len(archs)
        out = np.empty(len(archs))
        for i, a in enumerate(archs):
            side = int(a["input"][1])
            g = encode(spec_at(self.spec, side), a)[None]
            bonus = 0.3 * np.log2(side / self.spec.resolution[0])
            acc = 0.3 + 0.6 / (1.0 + np.exp(-(self.sharpness * self.genome_score(g)[0] + bonus)))
            out[i] = np.clip(acc + self.noise * self._noise(a), 0.0, 1.0)
        return out

    def _noise(self, arch: Mapping) -> float:
        key = hashlib.sha256(f"{self.seed}:{arch['input']}:{arch['stages']}".encode()).digest()
        return float(np.random.default_rng(int.from_bytes(key[:8], "little")).normal())


def quantile_board(spec: SpaceSpec, sram_q: float = 0.5, flash_q: float = 0.9, seed: int = 0,
                   samples: int = 2000, board_id: str = "synthetic") -> SyntheticBoard:
    """A board whose limits sit at quantiles of random subnets' costs, so constraints bind."""
    free = AnalyticCostModel(spec, SyntheticBoard(board_id, 1 << 62, 1 << 62))
    c = free.evaluate(sample_genomes(spec, samples, np.random.default_rng(seed)))
    return SyntheticBoard(board_id, int(np.quantile(c.sram_bytes, sram_q)),
                          int(np.quantile(c.flash_bytes, flash_q)))


def synthetic_task(spec: SpaceSpec | None = None, sram_q: float = 0.4, flash_q: float = 0.6,
                   seed: int = 0) -> tuple[SpaceSpec, AnalyticCostModel, SyntheticAccuracy]:
    """(spec, cost model, accuracy) of a task where SRAM and flash both bind (tests, --synthetic)."""
    spec = spec or default_space()
    board = quantile_board(spec, sram_q, flash_q, seed)
    return spec, AnalyticCostModel(spec, board), SyntheticAccuracy(spec, seed)
