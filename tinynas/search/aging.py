"""Regularized (aging) evolution, as in AmoebaNet (Real et al., 2019).

A fixed-size population is a queue ordered by age. Each cycle draws
`sample_size` members at random (tournament), mutates the best of them, adds
the child and removes the *oldest* member, not the worst: a good architecture
survives only by having good descendants, which regularizes against lucky
evaluations. `batch` children per cycle (default 1, the sequential algorithm;
under torchrun pass the world size so each rank evaluates one) come from
independent tournaments. Defaults scale with the budget: population a fifth of
it (8..100), sample size a quarter of the population (the paper's 100 / 25).
With a `screen`, each cycle breeds `factor` times more children and evaluates
the predicted best.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .budget import Archive
from .evolution import CHILD_TRIES, Population, evaluate_new, initial_population
from .genomes import mutate
from .problem import CostBatch
from .sampling import collect, sample_feasible


def default_sizes(budget: int) -> tuple[int, int]:
    pop = int(min(100, max(8, budget // 5)))
    return pop, max(2, pop // 4)


def run_aging(archive: Archive, rng: np.random.Generator, population: int | None = None,
              sample_size: int | None = None, batch: int = 1, mutate_prob: float = 0.1,
              screen=None) -> dict[str, Any]:
    p_def, s_def = default_sizes(archive.budget)
    size = population or p_def
    s = min(sample_size or s_def, size)
    pop = initial_population(archive, rng, size)  # oldest first
    spec, cycle = archive.problem.spec, 0
    while not archive.exhausted and len(pop):
        cycle += 1
        n = min(batch, archive.remaining)
        factor = screen.factor if screen is not None and screen.ready(archive) else 1

        def children(k: int):
            # k independent tournaments, each of s distinct members
            picks = np.argsort(rng.random((k, len(pop))), axis=1)[:, :min(s, len(pop))]
            winners = picks[np.arange(k), np.argmax(pop.fitness[picks], axis=1)]
            return mutate(spec, pop.batch.genomes[winners], rng, mutate_prob), None

        kids, _ = collect(archive, children, n * factor, CHILD_TRIES * n * factor)
        if not len(kids):
            kids = sample_feasible(archive, n, rng)
            if not len(kids):
                break
        if factor > 1:
            kids = screen.select(archive, kids, n)
        new = evaluate_new(archive, kids, cycle, screen)
        merged = CostBatch.concat([pop.batch, new.batch], archive.problem.length)
        fit = np.concatenate([pop.fitness, new.fitness])
        drop = max(0, len(fit) - size)
        pop = Population(merged.take(np.arange(drop, len(fit))), fit[drop:])
    return {"cycles": cycle, "population": size, "sample_size": s, "batch": batch}
