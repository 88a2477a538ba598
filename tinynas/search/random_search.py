"""Random search: SPOS's strong baseline, uniform over the feasible subnets.

Candidates are drawn uniformly from the space, rejected when they violate a
constraint or were already evaluated, and evaluated in chunks (a chunk is one
call of the accuracy function, which shards it across torchrun ranks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .budget import Archive
from .sampling import sample_feasible

CHUNK = 50


def run_random(archive: Archive, rng: np.random.Generator, chunk: int = CHUNK) -> dict[str, Any]:
    step = 0
    while not archive.exhausted:
        batch = sample_feasible(archive, min(chunk, archive.remaining), rng)
        if not len(batch):
            break  # the feasible space is exhausted
        archive.evaluate(batch, step)
        step += 1
    return {"chunks": step, "chunk": chunk}
