"""Constrained architecture search over a weight-sharing supernet.

Separable parts, after Once-for-All: an efficiency model (tinynas.costmodel, or
`synthetic.AnalyticCostModel`), an accuracy function (tinynas.supernet's
evaluator, or `synthetic.SyntheticAccuracy`) and the search algorithms
(evolution, random, aging, rl, grid; an MLP predictor can screen for evolution
and aging). They meet in `Problem` (what is asked) and `Archive` (the budget,
dedupe and history); `search` runs one strategy, `run_search` runs it on a
trained supernet and writes search.json / best_arch.json / pareto.png.
"""

from .api import PREDICTOR_STRATEGIES, STRATEGIES, proxy_indices, rerank_finalists, run_search, search
from .budget import Archive
from .problem import CostBatch, Problem
from .results import write_outputs

__all__ = ["Archive", "CostBatch", "PREDICTOR_STRATEGIES", "Problem", "STRATEGIES", "proxy_indices",
           "rerank_finalists", "run_search", "search", "write_outputs"]
