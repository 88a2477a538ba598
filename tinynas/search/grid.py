"""Compound scaling in the EfficientNet style, mapped onto the MBConv space.

EfficientNet scales a base network uniformly in depth (d), width (w) and input
resolution (r) and grid-searches the multipliers under a resource limit. Our
space is discrete and keeps stage widths fixed (the width multiplier belongs to
the space, chosen by `tinynas space`), so the multipliers map onto choices
that every stage and block share:

- base subnet: the smallest one (least depth, expand ratio and kernel
  everywhere) at the smallest resolution of the grid;
- d -> the depth choice, d = depth / min depth (every stage the same depth);
- w -> the expand ratio, w = expand / min expand (the inner width of every
  MBConv block, the only width a subnet can choose);
- k -> the kernel, k = kernel / min kernel. EfficientNet keeps kernels fixed;
  the space has them as a searchable axis, so they get their own uniform level
  rather than being frozen at one arbitrary value;
- r -> the input side from `spec.resolution_grid` when it lists more than one
  square resolution (the supernet is trained on those), else fixed.

The grid is every (d, w, k, r) combination: 27 points on the default space
(times the resolutions). Feasible points are evaluated largest (most MACs)
first, because under a limit the largest network that fits is the usual
compound-scaling winner; when the budget exceeds the feasible grid, the search
stops early and `budget_used` in search.json says so.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..space.arch import GENOME_DTYPE, canonicalize_genomes, genome_layout
from ..space.spec import SpaceSpec
from .budget import Archive
from .problem import CONSTRAINTS
from .sampling import check_space_fits


def grid_sides(spec: SpaceSpec) -> list[int]:
    """Square input sides to scale over (0 stands for the space's own, fixed, resolution)."""
    grid = [r for r in spec.resolution_grid if r[0] == r[1]]
    if len(grid) < 2 or spec.resolution[0] != spec.resolution[1]:
        return [0]
    return sorted({r[0] for r in grid})


def grid_genomes(spec: SpaceSpec) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Every uniform (depth, expand, kernel, side) point: genomes, sides and a description each."""
    lay = genome_layout(spec)
    depths, expands, kernels = sorted(spec.depths), sorted(spec.expand_ratios), sorted(spec.kernels)
    sides = grid_sides(spec)
    genomes, res, points = [], [], []
    for d, e, k, side in itertools.product(depths, expands, kernels, sides):
        g = np.zeros(lay.length, np.int64)
        g[lay.depth_slice] = spec.depths.index(d)
        g[lay.kernel_slice] = spec.kernels.index(k)
        g[lay.expand_slice] = spec.expand_ratios.index(e)
        genomes.append(g)
        own = side == 0 or side == spec.resolution[0]
        res.append(0 if own else side)
        points.append({"d": d / depths[0], "w": e / expands[0], "k": k / kernels[0],
                       "r": side / sides[0] if side else 1.0, "depth": d, "expand": e, "kernel": k,
                       "resolution": side or spec.resolution[0]})
    g = canonicalize_genomes(spec, np.array(genomes).astype(GENOME_DTYPE))
    return g, np.array(res, np.int64), points


def run_grid(archive: Archive, rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Evaluate the feasible grid points, largest first, within the budget."""
    problem = archive.problem
    genomes, res, points = grid_genomes(problem.spec)
    costs = problem.cost(genomes, res)
    for i, p in enumerate(points):
        p.update(macs=int(costs.values["macs"][i]), feasible=bool(costs.feasible[i]),
                 violated=[k for k in CONSTRAINTS if costs.violated[k][i]])
    ok = np.flatnonzero(costs.feasible)
    if not len(ok):
        check_space_fits(problem)  # the one-line error: not even the smallest subnet fits
    order = ok[np.argsort(-costs.values["macs"][ok], kind="stable")]
    cand = archive.screen(genomes[order], res[order])  # dedupe + counting, order kept
    fit = archive.evaluate(cand, 0)
    keys = dict(zip(archive.keys(cand.genomes, cand.res), fit))
    for i, k in enumerate(archive.keys(costs.genomes, costs.res)):
        f = keys.get(k, np.nan)
        points[i].update(evaluated=not np.isnan(f), fitness=None if np.isnan(f) else float(f))
    return {"points": points, "grid_size": len(points), "feasible_points": int(len(ok))}
