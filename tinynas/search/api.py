"""Entry points: `search` over any efficiency/accuracy pair, `run_search` over a supernet.

`search` is the algorithmic core (no files, no torch.distributed): the strategy
benchmark and the tests call it with the synthetic task; `run_search` wires the
real parts (supernet, BN-recalibrating evaluator, cost model, board), handles
the proxy subset and the finalists' re-ranking, and writes the outputs on rank 0.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..boards import Board, load_board
from ..costmodel import CostModel
from ..data.meta import load_from_meta
from ..distributed import pick_device, rank_and_world
from ..errors import UserError, option
from ..space.arch import smallest_arch
from ..space.spec import SpaceSpec
from ..supernet import SupernetEvaluator, load_supernet
from ..timebudget import Deadline, Spend, format_duration, plan_steps
from ..train.loop import agree_max
from .aging import run_aging
from .budget import Archive
from .evolution import run_evolution
from .grid import run_grid
from .predictor import Screen, kendall_tau
from .problem import Problem
from .random_search import run_random
from .results import summarize, write_outputs
from .rl import run_rl
from .sampling import check_space_fits
from .winner import check_prefer, choose_winner, near_best

STRATEGIES = ("evolution", "random", "aging", "rl", "grid")
PREDICTOR_STRATEGIES = ("evolution", "aging")
RL_STATE = "rl_state.pt"


def _check_args(strategy: str, budget: int, predictor: str | None) -> None:
    if strategy not in STRATEGIES:
        raise UserError(f"{option('strategy')} {strategy}: not one of {', '.join(STRATEGIES)}")
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise UserError(f"candidates to evaluate: {budget}; must be an integer >= 1 ({option('candidates')})")
    if predictor not in (None, "mlp"):
        raise UserError(f"{option('predictor')} {predictor}: only 'mlp' is available")
    if predictor and strategy not in PREDICTOR_STRATEGIES:
        raise UserError(f"{option('predictor')} {predictor} works with {option('strategy')} {' or '.join(PREDICTOR_STRATEGIES)}, "
                        f"not {strategy}")


def search(spec: SpaceSpec, efficiency: Any, accuracy: Callable, *, strategy: str = "evolution",
           budget: int = 300, seed: int = 0, latency_ms: float | None = None, latency_weight: float = 0.0,
           predictor: str | None = None, top_k: int = 10, progress: bool = False,
           state_path: str | os.PathLike | None = None, resume: bool = False,
           options: Mapping[str, Any] | None = None,
           predictor_options: Mapping[str, Any] | None = None,
           stop: Callable[[], bool] | None = None, chunk: int = 1,
           max_macs: float | None = None) -> dict[str, Any]:
    """Run one strategy under the constraints; returns the search.json content.

    `stop` (a time limit) ends the search early: it is asked between chunks
    of `chunk` candidates and, once true, no more candidates are evaluated.

    `max_macs` is a fourth limit beside SRAM, flash and latency: the compute
    a time budget can train (`tinynas run --time` sets it; see `search_macs_limit`).

    `options` override the strategy's defaults (EvolutionConfig fields, aging's
    population/sample_size/batch, RLConfig fields, random's chunk);
    `state_path`/`resume` apply to rl (the controller checkpoint).
    """
    _check_args(strategy, budget, predictor)
    problem = Problem(spec, efficiency, accuracy, latency_ms, latency_weight, max_macs)
    check_space_fits(problem)
    bar = _progress(budget, strategy, progress)
    archive = Archive(problem, budget, strategy, on_eval=bar, stop=stop, chunk=chunk)
    rng = np.random.default_rng(seed)
    screen = _screen(spec, seed, predictor_options) if predictor else None
    t0 = time.perf_counter()
    opts = dict(options or {})
    try:
        info = _dispatch(strategy, archive, rng, seed, screen, state_path, resume, opts)
    finally:
        if bar is not None:
            bar.close()
    if screen is not None:
        info["predictor"] = screen.report(archive)
    return summarize(archive, seed=seed, top_k=top_k, info=info, wall_s=time.perf_counter() - t0,
                     predictor=predictor)


def _screen(spec: SpaceSpec, seed: int, options: Mapping[str, Any] | None) -> Screen:
    """Screen options (factor, min_train, refit_growth); the rest go to the MLP (hidden, epochs, lr...)."""
    opts = dict(options or {})
    own = {k: opts.pop(k) for k in ("factor", "min_train", "refit_growth") if k in opts}
    return Screen(spec, seed=seed, predictor_kw=opts, **own)


def _dispatch(strategy: str, archive: Archive, rng: np.random.Generator, seed: int, screen,
              state_path, resume: bool, opts: dict) -> dict[str, Any]:
    if strategy == "evolution":
        return {"evolution": run_evolution(archive, rng, screen=screen, **opts)}
    if strategy == "aging":
        return {"aging": run_aging(archive, rng, screen=screen, **opts)}
    if strategy == "random":
        return {"random": run_random(archive, rng, **opts)}
    if strategy == "grid":
        return {"grid": run_grid(archive, rng)}
    return {"rl": run_rl(archive, rng, seed=seed, state_path=state_path, resume=resume, **opts)}


class _Bar:
    """tqdm over truly evaluated candidates, best fitness in the postfix."""

    def __init__(self, total: int, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, file=sys.stderr, unit="cand", dynamic_ncols=True)

    def __call__(self, n: int, best: float) -> None:
        self.bar.update(n)
        self.bar.set_postfix(best=f"{best:.4f}")

    def close(self) -> None:
        self.bar.close()


def _progress(budget: int, strategy: str, on: bool) -> _Bar | None:
    return _Bar(budget, f"search {strategy}") if on else None


# ---------------------------------------------------------------- with a supernet


def proxy_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """A class-balanced subset of the validation split (round-robin over shuffled classes).

    Balance keeps the proxy's accuracy an unbiased stand-in for the full
    split's, which is what preserves the ranking of candidates; the finalists'
    Kendall tau between proxy and full accuracy (search.json `proxy`) checks it.
    """
    y = np.asarray(labels)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(y == c)).tolist() for c in np.unique(y)]
    out: list[int] = []
    while len(out) < n:
        for p in pools:
            if p and len(out) < n:
                out.append(p.pop())
    return np.sort(np.array(out, dtype=np.int64))


def finalists(result: Mapping[str, Any], n: int, z: float) -> list[dict[str, Any]]:
    """The top candidates plus the Pareto-front ones that may tie with the best (3z standard errors on n)."""
    pool = {t["arch_hash"]: dict(t) for t in result["top"]}
    for t in near_best(result.get("front", []), n, 3 * z):
        pool.setdefault(t["arch_hash"], dict(t))
    return sorted(pool.values(), key=lambda t: -t["fitness"])


def rerank_finalists(result: dict[str, Any], pool: list[dict[str, Any]], full_accuracy: Callable,
                     problem: Problem) -> list[dict[str, Any]]:
    """Re-evaluate `pool` on the full selection split and re-rank; keeps the proxy figures."""
    if not pool:
        return pool
    full = np.asarray(full_accuracy([t["arch"] for t in pool]), dtype=np.float64)
    fit = problem.fitness(full, np.array([t["latency_ms"] for t in pool]))
    result["proxy"]["kendall_tau_finalists"] = kendall_tau([t["fitness"] for t in pool], fit)
    for t, a, f in zip(pool, full, fit):
        t["proxy_accuracy"], t["proxy_fitness"] = t["accuracy"], t["fitness"]
        t["accuracy"], t["fitness"] = float(a), float(f)
    pool.sort(key=lambda t: -t["fitness"])
    return pool


def _load(supernet, data: str | None, bundle, device):
    """(supernet module, spec, bundle, supernet dir or None) from a directory or a tuple."""
    if isinstance(supernet, (tuple, list)):
        sn, spec, b = supernet
        return sn, spec, b, None

    sn, spec, meta = load_supernet(supernet)
    sn = sn.to(pick_device(device, int(os.environ.get("LOCAL_RANK", "0"))))
    if bundle is None:
        dm = meta["data"] if isinstance(meta.get("data"), Mapping) else meta
        bundle = load_from_meta(dm, data)
    return sn, spec, bundle, str(supernet)


SEARCH_WRITE_S = 1.5  # search.json and the Pareto plot
FINALISTS_EST = 5  # finalists beyond top_k that may tie with the best (Pareto front), for the time plan


def _agreed_max(x: float) -> float:
    """The largest `x` over ranks, so every rank of a sharded search takes the same decision."""
    return agree_max(x)


def _agreed_min(x: float) -> float:
    return -_agreed_max(-x)


def _plan_search(sn, spec: SpaceSpec, acc_fn: Callable, proxy_ratio: float, deadline: Deadline, top_k: int,
                 say: bool) -> tuple[int, Deadline, dict[str, float]]:
    """(candidates, evaluation deadline, figures) from the measured seconds per candidate.

    Three probe evaluations (the first also builds the cached calibration and
    validation batches, so it is not timed; the largest and the smallest
    subnet bracket a typical candidate) give the seconds per candidate;
    the finalists' re-ranking on the full split (`proxy_ratio` times dearer per
    candidate) and the writing are kept back from the evaluation deadline.
    """
    small, large = smallest_arch(spec), sn.largest()
    acc_fn([small])
    t0 = time.perf_counter()
    acc_fn([large, small])
    cand_s = _agreed_max((time.perf_counter() - t0) / 2)
    full_s = cand_s * proxy_ratio if proxy_ratio else 0.0
    reserve = (top_k + FINALISTS_EST) * full_s + SEARCH_WRITE_S
    evals_until = deadline.sooner(reserve)
    n = plan_steps(_agreed_min(evals_until.remaining()), cand_s, 1)
    if say:
        print(f"search: {n} candidates planned from {cand_s:.2f} s per candidate for "
              f"{format_duration(deadline.remaining())}", file=sys.stderr, flush=True)
    return n, evals_until, {"candidate_s": round(cand_s, 4), "full_candidate_s": round(full_s, 4),
                            "reserve_s": round(reserve, 2)}


def _fit_pool(pool: list[dict[str, Any]], deadline: Deadline | None, full_s: float) -> list[dict[str, Any]]:
    """The best finalists that can be re-scored before the deadline (at least the best one)."""
    if deadline is None or not full_s or not pool:
        return pool
    n = int(_agreed_min(max(deadline.remaining() - SEARCH_WRITE_S, 0.0)) / full_s)
    return pool[:max(1, n)]


def run_search(supernet: str | os.PathLike | tuple, board: Board, out_dir: str | os.PathLike | None, *,
               strategy: str = "evolution", budget: int = 300, seed: int = 0, latency_ms: float | None = None,
               latency_weight: float = 0.0, predictor: str | None = None, calib_images: int = 500,
               proxy_images: int | None = None, top_k: int = 10, data: str | None = None,
               bundle: Any = None, device: str | None = "auto", resume: bool = False, force: bool = False, progress: bool = True,
               options: Mapping[str, Any] | None = None, evaluator_options: Mapping[str, Any] | None = None,
               prefer: str = "efficient", tie_z: float = 1.0,
               time_budget_s: float | None = None, max_macs: float | None = None) -> dict[str, Any]:
    """Search a trained supernet for `board`; rank 0 writes out_dir; returns the search.json content.

    With `time_budget_s` (counted from this call) `budget` is ignored: the
    candidate count (and so the evolution's population) is planned from the
    measured seconds per candidate, evaluation stops at the deadline less the
    time kept for re-ranking the finalists, and the re-ranking takes only as
    many finalists as still fit. search.json `time` records the plan.

    `supernet` is a train-supernet directory (its data record reloads the
    split unless `bundle` is given; `data` points at a moved copy of the data;
    the supernet goes to `device`, "auto" = this rank's GPU if any) or a
    (supernet, spec, bundle) tuple, used as is. The winner (`best`) is chosen
    by `tinynas.search.winner.choose_winner` (prefer, tie_z) among the
    finalists scored on the whole selection split. Under torchrun every rank runs the same seeded search and the
    evaluator shards each batch of candidates across ranks.
    """
    spend = Spend.starting_now()
    deadline = Deadline.after(time_budget_s) if time_budget_s is not None else None
    _check_args(strategy, budget, predictor)
    check_prefer(prefer, tie_z)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.is_dir() and any(out.iterdir()) and not (force or resume):
        raise UserError(f"output directory {out} is not empty; pass {option('force')} to overwrite or {option('resume')} to continue")
    if resume and strategy != "rl":
        raise UserError(f"{option('resume')} continues an rl search (the controller checkpoint); other strategies restart")
    b = board if isinstance(board, Board) else load_board(board)
    sn, spec, bundle, src = _load(supernet, data, bundle, device)
    ev_kw = {"calib_images": calib_images, "seed": seed, **(evaluator_options or {})}
    full_eval = SupernetEvaluator(sn, bundle, **ev_kw)
    proxy = None
    acc_fn = full_eval
    sel = bundle.split(bundle.selection_split).y
    if proxy_images and proxy_images < len(sel):
        idx = proxy_indices(sel, proxy_images, seed)
        acc_fn = SupernetEvaluator(sn, bundle, val_indices=idx, **ev_kw)
        proxy = {"images": int(len(idx)), "val_images": int(len(sel))}
    cm = CostModel(spec, b)
    state = out / RL_STATE if (out is not None and strategy == "rl") else None
    if resume and state is not None and not state.exists():
        raise UserError(f"{option('resume')}: {state} does not exist; run without {option('resume')} to start")
    rank, world = rank_and_world()
    stop, plan = None, {}
    if deadline is not None:
        ratio = (calib_images + len(sel)) / (calib_images + proxy["images"]) if proxy else 0.0
        budget, evals_until, plan = _plan_search(sn, spec, acc_fn, ratio, deadline, top_k, progress and rank == 0)
        stop = evals_until.expired
    result = search(spec, cm, acc_fn, strategy=strategy, budget=budget, seed=seed, latency_ms=latency_ms,
                    latency_weight=latency_weight, predictor=predictor, top_k=top_k,
                    progress=progress and rank == 0, state_path=state, resume=resume,
                    options={**({"save_state": rank == 0} if strategy == "rl" else {}), **(options or {})},
                    stop=_agreed(stop), chunk=world, max_macs=max_macs)
    result.update(supernet=src, calib_images=calib_images, proxy=proxy)
    pool = finalists(result, proxy["images"] if proxy else len(sel), tie_z) if result["best"] else []
    if proxy is not None:
        pool = _fit_pool(pool, deadline, plan.get("full_candidate_s", 0.0))
        rerank_finalists(result, pool, full_eval, Problem(spec, cm, full_eval, latency_ms, latency_weight,
                                                                  max_macs))
    if pool:
        result["best"], result["selection"] = choose_winner(pool, len(sel), prefer, tie_z)
        result["selection"]["split"] = bundle.selection_split
        result["finalists"] = pool
    if deadline is not None:
        result["time"] = {"budget_s": round(time_budget_s, 2), "planned_s": round(time_budget_s, 2),
                          "planned_candidates": budget, "candidates": len(result["history"]),
                          "finalists_rescored": len(pool) if proxy is not None else 0,
                          "stopped_at_deadline": bool(stop is not None and stop()), **plan,
                          "spent_s": round(spend.spent(), 2)}  # up to writing; the write is in the reserve
    if out is not None and rank == 0:
        result["files"] = write_outputs(out, result)
    if deadline is not None:
        result["time"]["spent_s"] = round(spend.spent(), 2)
    return result


def _agreed(stop: Callable[[], bool] | None) -> Callable[[], bool] | None:
    """`stop` as every rank sees it: true as soon as it is true on any rank."""
    if stop is None or rank_and_world()[1] == 1:
        return stop
    return lambda: _agreed_min(-float(stop())) < 0
