"""Feasible sampling with a bounded number of tries, and the error when nothing fits.

Never hang: every loop that looks for feasible, new candidates stops after
`max_tries` proposals. If even the smallest subnet of the space (least depth,
kernel and expand everywhere; with MBConv blocks it has the least SRAM, flash
and latency of the space) violates a limit, nothing can fit, and the search
stops at once with one line naming the tightest constraint, i.e. the one the
smallest subnet misses by the largest factor. If the smallest fits but random
proposals rarely do, sampling falls back to it rather than failing.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import UserError, option
from ..space.arch import encode, sample_genomes, smallest_arch
from .budget import Archive
from .problem import CONSTRAINTS, METRIC_OF, CostBatch, Problem

DEFAULT_TRIES = 20_000

Proposer = Callable[[int], "tuple[np.ndarray, np.ndarray | None]"]

_NAMES = {"sram": "SRAM", "flash": "flash", "latency": "latency", "macs": "compute"}


def _fmt(k: str, v: float) -> str:
    return {"latency": f"{v:.2f} ms", "macs": f"{v / 1e6:.1f} M MACs"}.get(k, f"{int(v):,} B")


def infeasible_message(problem: Problem, smallest: CostBatch) -> str:
    """One line: which constraint the smallest subnet misses worst, by how much, and what to do."""
    lim = problem.limits()
    over = [k for k in CONSTRAINTS if smallest.violated[k][0]]
    ratio = {k: smallest.values[METRIC_OF[k]][0] / lim[k] if lim[k] else np.inf for k in over}
    over.sort(key=lambda k: -ratio[k])
    parts = []
    for k in over:
        need = _fmt(k, smallest.values[METRIC_OF[k]][0])
        allows = (f"limit {option('latency_ms')} {lim[k]:g}" if k == "latency"
                  else f"the time budget trains {_fmt(k, lim[k])}" if k == "macs"
                  else f"{problem.board_id} allows {_fmt(k, lim[k])}" if lim[k] else "over the limit")
        parts.append(f"{_NAMES[k]} needs at least {need} ({allows})")
    hint = (f"raise {option('latency_ms')} or pick a faster board" if over[0] == "latency"
            else f"give the run more {option('time')}" if over[0] == "macs"
            else "pick a smaller space (lower width multiplier or resolution, see `tinynas space`) or a larger board")
    return f"no subnet of the space fits {problem.board_id}: even the smallest one misses: {'; '.join(parts)}; {hint}"


def smallest_candidate(problem: Problem) -> CostBatch:
    return problem.cost(encode(problem.spec, smallest_arch(problem.spec))[None])


def check_space_fits(problem: Problem) -> CostBatch:
    """The smallest subnet's costs; a UserError at once if it does not fit."""
    s = smallest_candidate(problem)
    if not s.feasible[0]:
        raise UserError(infeasible_message(problem, s))
    return s


def collect(archive: Archive, propose: Proposer, n: int, max_tries: int,
            pending: set[bytes] | None = None) -> tuple[CostBatch, int]:
    """Up to n feasible, new, distinct candidates from `propose`, in at most `max_tries` proposals."""
    pending = set() if pending is None else pending
    got: list[CostBatch] = []
    count = tried = 0
    while count < n and tried < max_tries:
        k = min(max(2 * (n - count), 32), max_tries - tried)
        genomes, res = propose(k)
        tried += len(genomes)
        b = archive.screen(genomes, res, pending)
        got.append(b.take(np.arange(min(len(b), n - count))))
        count += len(got[-1])
        if len(genomes) == 0:
            break
    return CostBatch.concat(got, archive.problem.length), tried


def sample_feasible(archive: Archive, n: int, rng: np.random.Generator,
                    max_tries: int = DEFAULT_TRIES) -> CostBatch:
    """Up to n new feasible subnets, uniform over the feasible part of the space.

    Returns fewer when the bounded search finds fewer (falling back to the
    smallest subnet when nothing else is found and it is new); raises the
    one-line infeasibility error when the smallest subnet does not fit.
    """
    problem = archive.problem
    spec = problem.spec
    batch, _ = collect(archive, lambda k: (sample_genomes(spec, k, rng), None), n, max_tries)
    if len(batch) or n <= 0:
        return batch
    small = check_space_fits(problem)
    return archive.screen(small.genomes, small.res)
