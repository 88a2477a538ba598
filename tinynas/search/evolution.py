"""Constrained evolutionary search as in Once-for-All and SPOS.

Each generation keeps the best `parents` of the population and breeds
`mutations` mutants (each gene resampled with probability `mutate_prob`) and
`crossovers` children (each gene from either of two random parents); the next
population is parents + children. Every child must satisfy the constraints and
be new (never evaluated); as in OFA, infeasible children are redrawn, but here
the redraws are bounded, so a tight constraint shortens a generation instead of
hanging it. OFA's defaults (population 100, 25 parents, 50 + 50 children) are
scaled down so that a small budget still gets about ten generations.

With a `screen` (the MLP predictor), each generation breeds `factor` times more
children than it can afford and only the predicted best are truly evaluated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .budget import Archive
from .genomes import crossover, mutate
from .problem import CostBatch
from .sampling import collect, sample_feasible

CHILD_TRIES = 50  # proposals allowed per wanted child before a generation gives up


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 100
    parents: int = 25
    mutations: int = 50
    crossovers: int = 50
    mutate_prob: float = 0.1

    @classmethod
    def for_budget(cls, budget: int) -> "EvolutionConfig":
        """OFA's ratios, with the population at a tenth of the budget (8..100)."""
        pop = int(min(100, max(8, budget // 10)))
        mut = pop // 2
        return cls(population=pop, parents=max(2, round(pop / 4)), mutations=mut, crossovers=pop - mut)


@dataclass
class Population:
    batch: CostBatch
    fitness: np.ndarray

    def best(self, n: int) -> "Population":
        order = np.argsort(-self.fitness, kind="stable")[:n]
        return Population(self.batch.take(order), self.fitness[order])

    def __len__(self) -> int:
        return len(self.fitness)


def evaluate_new(archive: Archive, batch: CostBatch, step: int, screen=None) -> Population:
    """Truly evaluate a batch (within budget); rows cut by the budget are dropped."""
    extra = {}
    if screen is not None and screen.last is not None:
        extra = {"predicted": screen.last}
    fit = archive.evaluate(batch, step, extra)
    if screen is not None:
        screen.observe(fit)
    keep = np.flatnonzero(~np.isnan(fit))
    return Population(batch.take(keep), fit[keep])


def initial_population(archive: Archive, rng: np.random.Generator, size: int) -> Population:
    return evaluate_new(archive, sample_feasible(archive, min(size, archive.remaining), rng), 0)


def breed(archive: Archive, parents: Population, rng: np.random.Generator, n_mut: int, n_cross: int,
          prob: float) -> CostBatch:
    """n_mut mutants and n_cross crossovers of random parents, feasible and new (bounded tries)."""
    spec = archive.problem.spec
    g, pending = parents.batch.genomes, set()

    def mutants(k: int):
        return mutate(spec, g[rng.integers(0, len(g), k)], rng, prob), None

    def crosses(k: int):
        return crossover(spec, g[rng.integers(0, len(g), k)], g[rng.integers(0, len(g), k)], rng), None

    a, _ = collect(archive, mutants, n_mut, CHILD_TRIES * max(n_mut, 1), pending)
    b, _ = collect(archive, crosses, n_cross, CHILD_TRIES * max(n_cross, 1), pending)
    return CostBatch.concat([a, b], archive.problem.length)


def run_evolution(archive: Archive, rng: np.random.Generator, config: EvolutionConfig | None = None,
                  screen=None, **overrides: Any) -> dict[str, Any]:
    """Evolve until the budget is spent (or no new feasible child can be found)."""
    cfg = config or EvolutionConfig.for_budget(archive.budget)
    if overrides:
        cfg = EvolutionConfig(**{**asdict(cfg), **overrides})
    pop = initial_population(archive, rng, cfg.population)
    gen = 0
    while not archive.exhausted and len(pop):
        gen += 1
        parents = pop.best(cfg.parents)
        n = min(cfg.mutations + cfg.crossovers, archive.remaining)
        n_mut = round(n * cfg.mutations / max(cfg.mutations + cfg.crossovers, 1))
        factor = screen.factor if screen is not None and screen.ready(archive) else 1
        kids = breed(archive, parents, rng, n_mut * factor, (n - n_mut) * factor, cfg.mutate_prob)
        if len(kids) < n:  # converged: immigrants keep the budget in use
            kids = CostBatch.concat([kids, sample_feasible(archive, n - len(kids), rng)], archive.problem.length)
        if not len(kids):
            break
        if factor > 1:
            kids = screen.select(archive, kids, n)
        new = evaluate_new(archive, kids, gen, screen)
        pop = Population(CostBatch.concat([parents.batch, new.batch], archive.problem.length),
                         np.concatenate([parents.fitness, new.fitness]))
    return {"generations": gen, "config": asdict(cfg)}
