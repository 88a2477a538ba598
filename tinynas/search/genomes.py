"""Genome operators shared by the strategies: masks, mutation, crossover, resolutions.

Canonical genomes keep inactive slots (past a stage's depth) at 0 so that one
subnet has one genome. Evolution must not inherit that artefact: if a mutation
deepens a stage, the newly active block should get a random kernel and expand
ratio, not always the first choice. So the operators first fill inactive slots
with fresh random values (as Once-for-All's arch dicts carry values for every
slot), operate on full genomes, and canonicalize at the end.
"""

from __future__ import annotations

import numpy as np

from ..space.arch import GENOME_DTYPE, canonicalize_genomes, genome_layout
from ..space.spec import SpaceSpec


def spec_at(spec: SpaceSpec, side: int | None) -> SpaceSpec:
    """The space at a square resolution (None or 0: its own)."""
    if not side or (side, side) == tuple(spec.resolution):
        return spec
    return spec.with_config(resolution=int(side))


def active_mask(spec: SpaceSpec, genomes: np.ndarray) -> np.ndarray:
    """(n, L) bool: which genome positions matter (depth genes and the slots below each depth)."""
    lay = genome_layout(spec)
    depth = np.asarray(spec.depths)[np.asarray(genomes)[:, lay.depth_slice]]
    slot = np.arange(spec.max_depth)[None, None, :] < depth[:, :, None]
    slot = slot.reshape(len(depth), -1)
    return np.concatenate([np.ones_like(depth, dtype=bool), slot, slot], axis=1)


def fill_inactive(spec: SpaceSpec, genomes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy with every inactive slot set to a uniform random choice."""
    g = np.asarray(genomes).astype(np.int64)
    fresh = rng.integers(0, genome_layout(spec).bounds, size=g.shape)
    return np.where(active_mask(spec, g), g, fresh)


def mutate(spec: SpaceSpec, genomes: np.ndarray, rng: np.random.Generator, prob: float = 0.1) -> np.ndarray:
    """OFA mutation: each gene (depth, kernel, expand) is resampled with probability `prob`."""
    full = fill_inactive(spec, genomes, rng)
    hit = rng.random(full.shape) < prob
    fresh = rng.integers(0, genome_layout(spec).bounds, size=full.shape)
    return canonicalize_genomes(spec, np.where(hit, fresh, full).astype(GENOME_DTYPE))


def crossover(spec: SpaceSpec, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """OFA crossover: every gene comes from either parent with probability 1/2."""
    fa, fb = fill_inactive(spec, a, rng), fill_inactive(spec, b, rng)
    pick = rng.random(fa.shape) < 0.5
    return canonicalize_genomes(spec, np.where(pick, fa, fb).astype(GENOME_DTYPE))


def onehot(spec: SpaceSpec, genomes: np.ndarray) -> np.ndarray:
    """(n, sum(bounds)) float32 one-hot of the active genes; inactive slots are all-zero."""
    g = np.asarray(genomes, dtype=np.int64)
    bounds = genome_layout(spec).bounds
    offsets = np.concatenate([[0], np.cumsum(bounds)[:-1]])
    out = np.zeros((len(g), int(bounds.sum())), dtype=np.float32)
    rows, cols = np.nonzero(active_mask(spec, g))
    out[rows, offsets[cols] + g[rows, cols]] = 1.0
    return out
