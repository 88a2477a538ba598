"""Strategies on the synthetic task: do they search, and do their parts behave as documented?

Figures asserted here (seeds fixed, budgets small to stay fast): evolution and
aging beat random search on average at equal budget; the REINFORCE controller's
entropy falls while its mean reward and the probability of the final best
architecture rise, and a resumed controller run equals an uninterrupted one;
the MLP predictor ranks held-out candidates (Kendall tau > 0.3) and predictor-
assisted evolution is not worse than plain evolution; grid search evaluates
only feasible points, largest first, including a resolution axis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinynas.search import search
from tinynas.search.grid import grid_genomes
from tinynas.search.synthetic import SyntheticAccuracy, synthetic_task
from tinynas.space import default_space

torch.set_num_threads(1)
SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def task():
    return synthetic_task()


def _best(task, strategy, budget, seed, **kw):
    spec, cm, _ = task
    return search(spec, cm, SyntheticAccuracy(spec, 0), strategy=strategy, budget=budget, seed=seed, **kw)


@pytest.fixture(scope="module")
def random_bests(task):
    return [_best(task, "random", 150, s)["best"]["accuracy"] for s in SEEDS]


@pytest.mark.parametrize("strategy", ["evolution", "aging"])
def test_evolutions_beat_random_at_equal_budget(task, random_bests, strategy):
    bests = [_best(task, strategy, 150, s)["best"]["accuracy"] for s in SEEDS]
    assert np.mean(bests) > np.mean(random_bests) + 0.02, (bests, random_bests)


def test_evolution_defaults_scale_with_the_budget(task):
    info = _best(task, "evolution", 150, 0)["info"]["evolution"]
    assert info["config"] == {"population": 15, "parents": 4, "mutations": 7, "crossovers": 8,
                              "mutate_prob": 0.1}
    assert info["generations"] == 9  # 15 initial + 9 x 15 children


def test_aging_removes_the_oldest_one_child_per_cycle(task):
    r = _best(task, "aging", 60, 0)
    info = r["info"]["aging"]
    assert (info["population"], info["sample_size"]) == (12, 3)
    assert info["cycles"] == 60 - 12
    assert [h["step"] for h in r["history"][12:]] == list(range(1, 49))


def test_rl_controller_learns(task):
    r = _best(task, "rl", 300, 0)
    st = r["info"]["rl"]["steps"]
    ent = [s["entropy"] for s in st]
    rew = [s["mean_reward"] for s in st]
    prob = r["info"]["rl"]["best_arch_decision_prob"]
    assert np.mean(ent[-5:]) < 0.85 * np.mean(ent[:5])
    assert np.mean(rew[-5:]) > np.mean(rew[:5]) + 0.2
    assert prob[-1] > prob[0] + 0.05
    assert r["budget_used"] == 300
    assert sum(s["infeasible"] for s in st) > 0  # infeasible samples were rewarded, not evaluated


def test_rl_resume_equals_uninterrupted(task, tmp_path):
    spec, cm, _ = task
    kw = dict(strategy="rl", budget=40, seed=3, options={"batch": 4})
    full = search(spec, cm, SyntheticAccuracy(spec, 0), state_path=tmp_path / "a.pt", **kw)

    class Crash(SyntheticAccuracy):
        def __call__(self, archs):
            if self.calls >= 20:
                raise KeyboardInterrupt
            return super().__call__(archs)

    with pytest.raises(KeyboardInterrupt):
        search(spec, cm, Crash(spec, 0), state_path=tmp_path / "b.pt", **kw)
    acc = SyntheticAccuracy(spec, 0)
    resumed = search(spec, cm, acc, state_path=tmp_path / "b.pt", resume=True, **kw)
    assert 0 < acc.calls < 40  # only the rest of the budget was spent
    assert [h["arch_hash"] for h in resumed["history"]] == [h["arch_hash"] for h in full["history"]]
    assert resumed["info"]["rl"]["steps"] == full["info"]["rl"]["steps"]


def test_predictor_ranks_heldout_candidates_and_helps(task):
    fast = {"epochs": 150}
    plain, screened, taus = [], [], []
    for s in (0, 1, 2):
        plain.append(_best(task, "evolution", 150, s)["best"]["accuracy"])
        r = _best(task, "evolution", 150, s, predictor="mlp", predictor_options=fast)
        screened.append(r["best"]["accuracy"])
        taus.append(r["info"]["predictor"]["kendall_tau_heldout"])
        assert all("predicted" in h for h in r["history"][40:])
    assert min(taus) > 0.3, taus
    assert np.mean(screened) >= np.mean(plain) - 0.005, (screened, plain)


def test_predictor_with_aging(task):
    r = _best(task, "aging", 80, 0, predictor="mlp", predictor_options={"epochs": 100, "refit_growth": 0.3})
    p = r["info"]["predictor"]
    assert r["budget_used"] == 80 and p["screened"] == 80 - 20  # every child after min_train was screened
    assert np.isfinite(p["kendall_tau_heldout"])


def test_grid_is_feasible_largest_first_and_scales_resolution():
    spec, cm, _ = synthetic_task(default_space(resolutions=[[24, 24], [32, 32]]), sram_q=0.5, flash_q=0.5)
    acc = SyntheticAccuracy(spec, 0)
    r = search(spec, cm, acc, strategy="grid", budget=100)
    pts = r["info"]["grid"]["points"]
    assert len(pts) == 3 * 3 * 3 * 2 == r["info"]["grid"]["grid_size"]
    feas = [p for p in pts if p["feasible"]]
    assert 0 < len(feas) < len(pts)
    assert all(p["evaluated"] == p["feasible"] for p in pts) and r["budget_used"] == len(feas)
    macs = [h["macs"] for h in r["history"]]
    assert macs == sorted(macs, reverse=True)
    assert {tuple(h["resolution"]) for h in r["history"]} == {(24, 24), (32, 32)}
    assert all(p["depth"] == 2 * p["d"] and p["expand"] == 3 * p["w"] for p in pts)
    small = search(spec, cm, SyntheticAccuracy(spec, 0), strategy="grid", budget=3)
    assert [h["macs"] for h in small["history"]] == macs[:3]


def test_grid_genomes_are_uniform_choices():
    spec = default_space()
    g, res, pts = grid_genomes(spec)
    assert len(g) == 27 and not res.any()
    assert pts[0] == {"d": 1.0, "w": 1.0, "k": 1.0, "r": 1.0, "depth": 2, "expand": 3, "kernel": 3, "resolution": 32}
