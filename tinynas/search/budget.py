"""Evaluation budget accounting: what was evaluated, what it cost, what was rejected.

`--budget N` means N candidates truly evaluated (N archs passed to the accuracy
function), the same for every strategy, so strategies compare at equal cost.
Everything else is free and only counted: costing a proposal, rejecting it for
a constraint, recognizing a duplicate. Candidates are deduplicated by their
canonical genome bytes plus input side, which is one-to-one with the arch hash
within a space (`tinynas.space.arch.arch_hash` is stored with each record).

The archive is the single place that calls the accuracy function, so the
budget cannot be overspent and every history row has the same fields.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from ..space.arch import arch_hash
from .problem import CONSTRAINTS, METRIC_OF, CostBatch, Problem


NEW, DUPLICATE, INFEASIBLE = 0, 1, 2  # Archive.classify labels


def candidate_key(genome: np.ndarray, side: int) -> bytes:
    return np.asarray(genome, np.int8).tobytes() + int(side).to_bytes(4, "little")


class Archive:
    """The budget, the dedupe cache, the history and the proposal counters of one search."""

    def __init__(self, problem: Problem, budget: int, strategy: str,
                 on_eval: Callable[[int, float], None] | None = None,
                 stop: Callable[[], bool] | None = None, chunk: int = 1) -> None:
        self.problem = problem
        self.budget = int(budget)
        self.stop, self.chunk = stop, max(1, int(chunk))  # a time limit, checked between chunks of candidates
        self.stopped = False
        self.strategy = strategy
        self.on_eval = on_eval
        self.history: list[dict[str, Any]] = []
        self.archs: dict[bytes, dict] = {}
        self._fitness: dict[bytes, float] = {}
        self.counts = {"proposed": 0, "duplicates": 0, "infeasible": 0, **{f"over_{k}": 0 for k in CONSTRAINTS}}
        self.min_seen = {k: math.inf for k in CONSTRAINTS}

    # ------------------------------------------------------------ budget

    @property
    def used(self) -> int:
        return len(self.history)

    @property
    def remaining(self) -> int:
        """Candidates left: the count, or none once the time limit (`stop`) has said so."""
        return 0 if self.stopped else max(0, self.budget - self.used)

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0

    # ------------------------------------------------------------ dedupe

    def keys(self, genomes: np.ndarray, res: np.ndarray) -> list[bytes]:
        return [candidate_key(g, r) for g, r in zip(genomes, res)]

    def seen(self, key: bytes) -> bool:
        return key in self._fitness

    def fitness_of(self, key: bytes) -> float:
        return self._fitness[key]

    def classify(self, genomes: np.ndarray, res: np.ndarray | None = None,
                 pending: set[bytes] | None = None) -> tuple[CostBatch, np.ndarray]:
        """Cost proposals and label each NEW, DUPLICATE or INFEASIBLE.

        DUPLICATE: feasible and evaluated before, kept earlier in this round
        (`pending`) or repeated within the call; a repeated infeasible
        proposal stays INFEASIBLE. Only first occurrences of never-evaluated
        candidates count as proposals (per violated constraint); the other
        rows count as duplicates.
        `pending` gains the keys of the first occurrences.
        """
        b = self.problem.cost(genomes, res)
        pending = set() if pending is None else pending
        feasible = b.feasible
        status = np.where(feasible, DUPLICATE, INFEASIBLE)
        first, local = [], set()
        for i, k in enumerate(self.keys(b.genomes, b.res)):
            if k in self._fitness or k in pending or k in local:
                continue
            local.add(k)
            first.append(i)
            status[i] = NEW if feasible[i] else INFEASIBLE
        pending.update(local)
        self._count(b.take(first))
        self.counts["duplicates"] += len(b) - len(first)
        return b, status

    def screen(self, genomes: np.ndarray, res: np.ndarray | None = None,
               pending: set[bytes] | None = None) -> CostBatch:
        """The feasible, never-seen, mutually distinct candidates among proposals (see classify)."""
        b, status = self.classify(genomes, res, pending)
        return b.take(np.flatnonzero(status == NEW))

    def _count(self, b: CostBatch) -> None:
        self.counts["proposed"] += len(b)
        self.counts["infeasible"] += int((~b.feasible).sum())
        for k in CONSTRAINTS:
            self.counts[f"over_{k}"] += int(b.violated[k].sum())
            if len(b):
                self.min_seen[k] = min(self.min_seen[k], float(np.min(b.values[METRIC_OF[k]])))

    # ------------------------------------------------------------ evaluation

    def evaluate(self, batch: CostBatch, step: int, extra: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Fitness of each row; new rows cost budget and rows past the budget get NaN.

        Rows must be feasible (strategies screen first); a violation here is a
        bug, not bad input, hence ValueError.
        """
        if len(batch) and not batch.feasible.all():
            raise ValueError("Archive.evaluate: infeasible candidates must never be evaluated")
        out = np.full(len(batch), np.nan)
        keys = self.keys(batch.genomes, batch.res)
        todo: list[int] = []
        taken: set[bytes] = set()
        for i, k in enumerate(keys):
            if k in self._fitness:
                out[i] = self._fitness[k]
            elif len(todo) < self.remaining and k not in taken:
                todo.append(i)
                taken.add(k)
        for part in self._chunks(todo):
            out[part] = self._run(batch.take(part), [keys[i] for i in part], step,
                                  {k: np.asarray(v)[part] for k, v in (extra or {}).items()})
        for i, k in enumerate(keys):  # duplicates inside the batch share the new value
            if np.isnan(out[i]) and k in self._fitness:
                out[i] = self._fitness[k]
        return out

    def _chunks(self, todo: list[int]):
        """All of `todo` at once without a time limit; else chunk by chunk until `stop` says time is up.

        Rows never evaluated stay NaN, exactly like rows cut by the count. The
        first chunk always runs, so a search that started has a winner.
        """
        if self.stop is None:
            if todo:
                yield todo
            return
        for i in range(0, len(todo), self.chunk):
            if self.stopped or (self.used and self.stop()):
                self.stopped = True
                return
            yield todo[i:i + self.chunk]

    def _run(self, b: CostBatch, keys: list[bytes], step: int, extra: Mapping[str, np.ndarray]) -> np.ndarray:
        archs = [self.problem.arch(g, r) for g, r in zip(b.genomes, b.res)]
        acc = np.asarray(self.problem.accuracy(archs), dtype=np.float64).reshape(-1)
        if len(acc) != len(archs):
            raise ValueError(f"accuracy function returned {len(acc)} values for {len(archs)} archs")
        fit = self.problem.fitness(acc, b.values["latency_ms"])
        for i, k in enumerate(keys):
            self._add(k, archs[i], b, i, float(acc[i]), float(fit[i]), step,
                      {n: np.asarray(v)[i].item() for n, v in extra.items()})
        if self.on_eval:
            self.on_eval(len(keys), self.best_fitness())
        return fit

    def _add(self, key: bytes, arch: dict, b: CostBatch, i: int, acc: float, fit: float, step: int,
             extra: dict) -> None:
        self.archs[key] = arch
        self._fitness[key] = fit
        self.history.append({"index": len(self.history), "step": int(step), "strategy": self.strategy,
                             "arch_hash": arch_hash(arch), "genome": b.genomes[i].tolist(),
                             "resolution": list(arch["input"][1:]), "accuracy": acc, "fitness": fit,
                             **b.row(i), **extra})

    # ------------------------------------------------------------ views

    def best_fitness(self) -> float:
        return max(self._fitness.values(), default=float("nan"))

    def ranked(self) -> list[dict[str, Any]]:
        """History rows, best fitness first (ties: earlier first)."""
        return sorted(self.history, key=lambda r: (-r["fitness"], r["index"]))

    def arch_of(self, row: Mapping[str, Any]) -> dict:
        return self.archs[candidate_key(np.asarray(row["genome"]), self._side(row))]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(genomes, sides, fitness) of everything evaluated, in evaluation order."""
        if not self.history:
            return np.zeros((0, self.problem.length), np.int8), np.zeros(0, np.int64), np.zeros(0)
        g = np.array([r["genome"] for r in self.history], np.int8)
        sides = np.array([self._side(r) for r in self.history], np.int64)
        return g, sides, np.array([r["fitness"] for r in self.history])

    def _side(self, row: Mapping[str, Any]) -> int:
        return 0 if list(row["resolution"]) == list(self.problem.spec.resolution) else int(row["resolution"][0])

    # ------------------------------------------------------------ resume

    def state(self) -> dict[str, Any]:
        """JSON-able state for a resumable strategy's checkpoint."""
        return {"history": self.history, "counts": dict(self.counts), "min_seen": dict(self.min_seen)}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.history = [dict(r) for r in state["history"]]
        self.counts = dict(state["counts"])
        self.min_seen = dict(state["min_seen"])
        for r in self.history:
            side = self._side(r)
            key = candidate_key(np.asarray(r["genome"]), side)
            self.archs[key] = self.problem.arch(np.asarray(r["genome"], np.int8), side)
            self._fitness[key] = r["fitness"]
