"""What a search is asked: a space, an efficiency model, an accuracy function, limits.

Following Once-for-All's split, the three parts are separable and duck-typed:

- efficiency: any object with `evaluate(genomes, resolution=None) -> costs`
  (fields macs, params, flash_bytes, arena_bytes, sram_bytes, latency_ms) and
  `constraint_masks(costs, latency_ms) -> {"sram", "flash", "latency": bool}`
  (tinynas.costmodel.CostModel, or the synthetic stand-in);
  (`macs` is a fourth, optional limit: the compute a time budget can train);
- accuracy: any callable `(archs: list[dict]) -> array of accuracies in [0, 1]`
  (tinynas.supernet.SupernetEvaluator, or a synthetic function);
- the search algorithm (the strategy modules) sees only `Problem` and `Archive`.

A candidate is a canonical genome plus a square input side (0 = the space's own
resolution); only compound scaling (grid) varies the side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import UserError, option
from ..space.arch import Arch, canonicalize_genomes, decode, genome_layout
from ..space.spec import SpaceSpec
from .genomes import spec_at

COST_FIELDS = ("macs", "params", "flash_bytes", "arena_bytes", "sram_bytes", "latency_ms")
CONSTRAINTS = ("sram", "flash", "latency", "macs")
METRIC_OF = {"sram": "sram_bytes", "flash": "flash_bytes", "latency": "latency_ms", "macs": "macs"}


@dataclass
class CostBatch:
    """Candidates with their costs and which constraints each violates."""

    genomes: np.ndarray  # (n, L) canonical
    res: np.ndarray  # (n,) square side, 0 = the space's resolution
    values: dict[str, np.ndarray]
    violated: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.genomes)

    @property
    def feasible(self) -> np.ndarray:
        bad = np.zeros(len(self.genomes), bool)
        for k in CONSTRAINTS:
            bad |= self.violated[k]
        return ~bad

    def take(self, idx: np.ndarray | Sequence[int]) -> "CostBatch":
        idx = np.asarray(idx, dtype=np.int64)
        return CostBatch(self.genomes[idx], self.res[idx], {k: v[idx] for k, v in self.values.items()},
                         {k: v[idx] for k, v in self.violated.items()})

    def row(self, i: int) -> dict[str, Any]:
        return {k: self.values[k][i].item() for k in COST_FIELDS}

    @staticmethod
    def concat(batches: Sequence["CostBatch"], length: int) -> "CostBatch":
        """Concatenate; `length` is the genome length, for an empty result."""
        if not batches:
            return CostBatch(np.zeros((0, length), np.int8), np.zeros(0, np.int64),
                             {k: np.zeros(0) for k in COST_FIELDS}, {k: np.zeros(0, bool) for k in CONSTRAINTS})
        return CostBatch(np.concatenate([b.genomes for b in batches]), np.concatenate([b.res for b in batches]),
                         {k: np.concatenate([b.values[k] for b in batches]) for k in COST_FIELDS},
                         {k: np.concatenate([b.violated[k] for b in batches]) for k in CONSTRAINTS})


@dataclass
class Problem:
    """The search's view of the world (see module doc)."""

    spec: SpaceSpec
    efficiency: Any
    accuracy: Callable[[list[Arch]], Any]
    latency_ms: float | None = None
    latency_weight: float = 0.0
    max_macs: float | None = None  # a time budget's limit: bigger subnets cannot be trained in it
    _specs: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.latency_ms is not None and not self.latency_ms > 0:
            raise UserError(f"{option('latency_ms')} {self.latency_ms}: must be > 0")
        if self.latency_weight > 0:
            raise UserError(f"{option('latency_weight')} {self.latency_weight}: must be <= 0 "
                            "(MnasNet uses -0.07: slower models are rewarded less)")
        if self.latency_weight and self.latency_ms is None:
            raise UserError(f"{option('latency_weight')} needs {option('latency_ms')} T (the target of ACC * (LAT/T)^w)")
        if self.max_macs is not None and not self.max_macs > 0:
            raise UserError(f"MACs limit {self.max_macs}: must be > 0")

    @property
    def length(self) -> int:
        return genome_layout(self.spec).length

    @property
    def board_id(self) -> str:
        return str(getattr(getattr(self.efficiency, "board", None), "id", "the board"))

    def limits(self) -> dict[str, float | None]:
        """The limit behind each constraint (None where unknown or unset)."""
        b = getattr(self.efficiency, "board", None)
        return {"sram": getattr(b, "sram_bytes", None), "flash": getattr(b, "flash_bytes", None),
                "latency": self.latency_ms, "macs": self.max_macs}

    def spec_for(self, side: int) -> SpaceSpec:
        if side not in self._specs:
            self._specs[side] = spec_at(self.spec, side)
        return self._specs[side]

    def arch(self, genome: np.ndarray, side: int = 0) -> Arch:
        return decode(self.spec_for(int(side)), genome)

    def cost(self, genomes: np.ndarray, res: np.ndarray | None = None) -> CostBatch:
        """Costs and constraint violations of candidates, in one vectorized call."""
        g = canonicalize_genomes(self.spec, genomes)
        r = np.zeros(len(g), np.int64) if res is None else np.asarray(res, np.int64)
        if len(g) == 0:
            return CostBatch.concat([], self.length)
        if r.any():
            c = self.efficiency.evaluate(g, np.where(r == 0, self.spec.resolution[0], r))
        else:
            c = self.efficiency.evaluate(g)
        masks = self.efficiency.constraint_masks(c, self.latency_ms)
        values = {k: np.asarray(getattr(c, k)) for k in COST_FIELDS}
        violated = {k: np.asarray(masks.get(k, np.zeros(len(g), bool)), bool) for k in CONSTRAINTS}
        if self.max_macs is not None:
            violated["macs"] = values["macs"] > self.max_macs
        return CostBatch(g, r, values, violated)

    def fitness(self, accuracy: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
        """What strategies maximize: accuracy, or MnasNet's ACC * (LAT / T)^w when w != 0."""
        acc = np.asarray(accuracy, dtype=np.float64)
        if not self.latency_weight:
            return acc
        return acc * (np.asarray(latency_ms, np.float64) / self.latency_ms) ** self.latency_weight


def metric_summary(values: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Smallest value of each constrained metric in a batch (for error messages)."""
    return {k: float(np.min(values[m])) for k, m in METRIC_OF.items() if len(values[m])}
