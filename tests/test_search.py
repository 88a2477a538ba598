"""Search core: budget and dedupe accounting, constraints, errors, outputs, the command.

Strategies run on the synthetic task (tinynas.search.synthetic): an analytic
cost model and a hidden accuracy function with the real duck types, so no
supernet has to be trained. One test uses the real CostModel, one the real
Supernet + SupernetEvaluator (random weights) through run_search.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from tinynas.errors import UserError
from tinynas.search import STRATEGIES, Archive, Problem, proxy_indices, rerank_finalists, search, write_outputs
from tinynas.search.genomes import crossover, mutate, onehot
from tinynas.search.sampling import smallest_candidate
from tinynas.search.synthetic import AnalyticCostModel, SyntheticAccuracy, SyntheticBoard, synthetic_task
from tinynas.space import arch_hash, canonicalize_genomes, default_space, load_arch, sample_genomes

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task():
    return synthetic_task()


def _assert_feasible(result, cm, latency_ms=None):
    g = np.array([r["genome"] for r in result["history"]], np.int8)
    c = cm.evaluate(g)
    assert cm.feasible(c, latency_ms).all()
    assert [r["sram_bytes"] for r in result["history"]] == c.sram_bytes.tolist()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_budget_is_exact_and_every_candidate_fits(task, strategy):
    spec, cm, _ = task
    acc = SyntheticAccuracy(spec, 0)
    r = search(spec, cm, acc, strategy=strategy, budget=37, seed=1, latency_ms=560.0)
    n = 37 if strategy != "grid" else r["info"]["grid"]["feasible_points"]
    assert acc.calls == r["budget_used"] == len(r["history"]) == min(n, 37)
    hashes = [h["arch_hash"] for h in r["history"]]
    assert len(set(hashes)) == len(hashes)  # deduplicated by arch hash
    _assert_feasible(r, cm, 560.0)
    assert all(h["latency_ms"] <= 560.0 for h in r["history"])
    best = r["best"]
    assert best["accuracy"] == max(h["accuracy"] for h in r["history"])
    assert arch_hash(best["arch"]) == best["arch_hash"]
    assert {"arch", "accuracy", "sram_bytes", "flash_bytes", "latency_ms", "macs"} <= set(best)


def test_archive_dedupes_counts_and_truncates(task):
    spec, cm, _ = task
    acc = SyntheticAccuracy(spec, 0)
    ar = Archive(Problem(spec, cm, acc), budget=5, strategy="t")
    g = sample_genomes(spec, 200, np.random.default_rng(0))
    g = np.concatenate([g, g[:50]])  # 50 repeats inside one call
    b = ar.screen(g)
    assert ar.counts["proposed"] == 200
    assert ar.counts["infeasible"] == 200 - len(b)
    assert ar.counts["duplicates"] == 50 + (200 - len(np.unique(g[:200], axis=0)))
    fit = ar.evaluate(b.take(np.arange(8)), step=0)
    assert acc.calls == 5 == ar.used and ar.exhausted
    assert np.isnan(fit[5:]).all() and not np.isnan(fit[:5]).any()
    again = ar.evaluate(b.take(np.arange(5)), step=1)  # cached: free
    assert acc.calls == 5 and np.array_equal(again, fit[:5])
    assert len(ar.screen(b.genomes[:5])) == 0  # evaluated ones are duplicates now


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_infeasible_board_is_a_quick_one_line_error(task, strategy):
    spec, _, _ = task
    tiny = AnalyticCostModel(spec, SyntheticBoard("tiny-board", sram_bytes=10_000, flash_bytes=10 ** 9))
    t0 = time.perf_counter()
    with pytest.raises(UserError) as e:
        search(spec, tiny, SyntheticAccuracy(spec), strategy=strategy, budget=50)
    msg = str(e.value)
    assert time.perf_counter() - t0 < 2.0
    assert "SRAM needs at least" in msg and "tiny-board allows 10,000 B" in msg and "\n" not in msg


def test_latency_limit_error_names_latency(task):
    spec, cm, acc = task
    with pytest.raises(UserError, match="latency needs at least .* ms .*latency_ms 1"):
        search(spec, cm, acc, budget=10, latency_ms=1.0)


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_macs_limit_keeps_every_candidate_trainable(task, strategy):
    spec, cm, _ = task
    free = search(spec, cm, SyntheticAccuracy(spec, 0), strategy=strategy, budget=30, seed=2)
    cap = float(np.median([h["macs"] for h in free["history"]]))
    r = search(spec, cm, SyntheticAccuracy(spec, 0), strategy=strategy, budget=30, seed=2, max_macs=cap)
    assert r["history"] and all(h["macs"] <= cap for h in r["history"])
    assert r["limits"]["macs"] == cap
    with pytest.raises(UserError, match=r"compute needs at least .* M MACs \(the time budget trains .*more time$"):
        search(spec, cm, SyntheticAccuracy(spec), budget=5, max_macs=1.0)


def test_search_macs_limit_follows_the_space_cap():
    from tinynas.pipeline.stages import search_macs_limit

    row = {"width_mult": 0.5, "resolution": [32, 32], "macs_p10": 10e6, "macs_p50": 20e6, "macs_mean": 20e6}
    space = {"chosen": {"width_mult": 0.5, "resolution": [32, 32]}, "table": [row]}
    assert search_macs_limit(space) is None  # counts, not a clock
    assert search_macs_limit({**space, "train_cost": {"max_macs": 30e6}}) == 30e6
    assert search_macs_limit({**space, "train_cost": {"max_macs": 5e6}}) == 10e6  # part of the space stays


def test_search_macs_limit_uses_the_supernets_measured_speed():
    """A probe that saw twice the true speed must not let twice-too-big winners through."""
    from tinynas.pipeline.stages import search_macs_limit
    from tinynas.train.probe import TrainCost

    row = {"width_mult": 0.5, "resolution": [32, 32], "macs_p10": 1e6, "macs_p50": 20e6, "macs_mean": 20e6}
    probe = TrainCost(intercept_s=1e-3, per_mac_s=1e-10, points=(), probe_s=1.0)  # 3 ms per image at 20 M MACs
    space = {"chosen": {"width_mult": 0.5, "resolution": [32, 32]}, "table": [row],
             "train_cost": {"max_macs": 30e6, "min_epochs": 2.0, **probe.to_json()}}
    true = probe.rescaled(20e6, 1 / 6e-3)  # the supernet trained at 6 ms per image: twice the probe's
    limit = search_macs_limit(space, 1 / 6e-3, finetune_s=600.0, n_images=40_000)
    assert abs(1 / true.images_per_s(limit) - 600.0 / (2.0 * 40_000)) < 1e-9  # 2 epochs fit, exactly
    assert limit < probe.max_trainable_macs(600.0, 40_000, 2.0) / 1.5
    assert search_macs_limit(space, None, None, 40_000) == 30e6  # no fine-tune seconds: the space cap
    forecast = search_macs_limit(space, None, 600.0, 40_000)  # before the supernet ran: the probe's speed
    assert forecast == probe.max_trainable_macs(600.0, 40_000, 2.0)
    # a supernet that trained only paths of 10 M MACs on average measured their speed, not the space's
    small = search_macs_limit(space, 1 / 6e-3, finetune_s=600.0, n_images=40_000, trained_macs_mean=10e6)
    assert abs(1 / probe.rescaled(10e6, 1 / 6e-3).images_per_s(small) - 600.0 / (2.0 * 40_000)) < 1e-9
    assert small < limit
    three = search_macs_limit(space, 1 / 6e-3, finetune_s=600.0, n_images=40_000, min_epochs=3.0)
    assert abs(1 / true.images_per_s(three) - 600.0 / (3.0 * 40_000)) < 1e-9  # finetune.min_epochs, not the space's


def test_tight_board_falls_back_to_the_smallest_without_hanging(task):
    spec, cm, _ = task
    s = smallest_candidate(Problem(spec, cm, SyntheticAccuracy(spec)))
    board = SyntheticBoard("exact", int(s.values["sram_bytes"][0]), int(s.values["flash_bytes"][0]))
    t0 = time.perf_counter()
    r = search(spec, AnalyticCostModel(spec, board), SyntheticAccuracy(spec), strategy="random", budget=20)
    assert time.perf_counter() - t0 < 10
    assert 1 <= r["budget_used"] < 20


def test_bad_arguments(task):
    spec, cm, acc = task
    for kw, pat in [({"strategy": "nope"}, "--strategy"), ({"budget": 0}, "--candidates"),
                    ({"predictor": "mlp", "strategy": "rl"}, "--predictor"),
                    ({"latency_weight": -0.07}, "needs --latency-ms"),
                    ({"latency_weight": 0.5, "latency_ms": 500.0}, "must be <= 0")]:
        with pytest.raises(UserError) as e:
            search(spec, cm, acc, **kw)
        assert pat in e.value.for_cli()  # as the command line shows it


def test_mnasnet_soft_latency_fitness(task):
    spec, cm, acc = task
    r = search(spec, cm, acc, strategy="random", budget=30, latency_ms=600.0, latency_weight=-0.07)
    for h in r["history"]:
        assert h["fitness"] == pytest.approx(h["accuracy"] * (h["latency_ms"] / 600.0) ** -0.07)
    assert r["best"]["fitness"] == max(h["fitness"] for h in r["history"])


def test_genome_operators_stay_canonical(task):
    spec = task[0]
    rng = np.random.default_rng(0)
    g = sample_genomes(spec, 50, rng)
    assert np.array_equal(mutate(spec, g, rng, prob=0.0), g)
    assert np.array_equal(crossover(spec, g, g, rng), g)
    m = mutate(spec, g, rng, prob=0.5)
    assert np.array_equal(m, canonicalize_genomes(spec, m))
    x = onehot(spec, g)
    n_active = len(spec.stages) + 2 * np.array(spec.depths)[g[:, :len(spec.stages)]].sum(1)
    assert np.array_equal(x.sum(1), n_active)


def test_outputs_are_strict_json_with_plots(task, tmp_path):
    spec, cm, acc = task
    r = search(spec, cm, acc, strategy="rl", budget=24, seed=0, options={"batch": 4})
    files = write_outputs(tmp_path, r)
    d = json.loads((tmp_path / "search.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert {"best", "top", "history", "strategy", "budget", "seed", "board"} <= set(d)
    assert d["top"][0]["arch_hash"] == d["best"]["arch_hash"] and len(d["history"]) == 24
    assert {"step", "strategy", "accuracy", "sram_bytes", "genome"} <= set(d["history"][0])
    assert load_arch(files["best_arch"], spec) == d["best"]["arch"]
    assert (tmp_path / "pareto.png").stat().st_size > 0 and (tmp_path / "controller.png").stat().st_size > 0


def test_proxy_subset_is_class_balanced_and_finalists_rerank(task):
    y = np.repeat(np.arange(10), [50, 40, 30, 60, 50, 50, 50, 50, 50, 5])
    idx = proxy_indices(y, 95, seed=0)
    counts = np.bincount(y[idx], minlength=10)
    assert len(np.unique(idx)) == 95 and counts[9] == 5 and counts.max() - counts[:9].min() <= 1
    spec, cm, acc = task
    r = search(spec, cm, acc, strategy="random", budget=20, top_k=5)
    r["proxy"] = {"images": 95}
    flipped = lambda archs: 1.0 - acc(archs)  # noqa: E731  a full split that disagrees completely
    pool = rerank_finalists(r, [dict(t) for t in r["top"]], flipped, Problem(spec, cm, acc))
    assert pool[0]["accuracy"] == max(t["accuracy"] for t in pool)
    assert all(t["proxy_accuracy"] == pytest.approx(1.0 - t["accuracy"]) for t in pool)
    assert r["proxy"]["kendall_tau_finalists"] == pytest.approx(-1.0)


def _cand(h: str, acc: float, lat: float, sram: int = 100, flash: int = 100) -> dict:
    return {"arch_hash": h, "accuracy": acc, "fitness": acc, "latency_ms": lat, "sram_bytes": sram,
            "flash_bytes": flash}


def test_winner_prefers_the_cheapest_within_noise():
    from tinynas.search.winner import choose_winner

    pool = [_cand("big", 0.990, 100.0), _cand("mid", 0.985, 40.0), _cand("small", 0.95, 5.0),
            _cand("mid_lowsram", 0.985, 40.0, sram=50)]
    # on 162 images one standard error at 0.99 is 0.0078: 'mid' ties with 'big', 'small' does not
    win, info = choose_winner(pool, 162, "efficient", 1.0)
    assert win["arch_hash"] == "mid_lowsram" and info["tied"] == 3 and info["most_accurate"] == "big"
    assert choose_winner(pool, 162, "accuracy")[0]["arch_hash"] == "big"
    assert choose_winner(pool, 162, "efficient", 0.0)[0]["arch_hash"] == "big"  # z=0: no ties
    # on 100,000 images nothing ties
    assert choose_winner(pool, 100_000, "efficient")[0]["arch_hash"] == "big"


def test_winner_rejects_bad_options():
    from tinynas.errors import UserError
    from tinynas.search.winner import choose_winner

    with pytest.raises(UserError, match="prefer"):
        choose_winner([_cand("a", 0.5, 1.0)], 10, "smallest")
    with pytest.raises(UserError, match="tie_z"):
        choose_winner([_cand("a", 0.5, 1.0)], 10, "efficient", -1.0)


def test_real_cost_model_constraints():
    from tinynas.boards import load_board
    from tinynas.costmodel import CostModel

    spec = default_space(width_mult=0.4)
    cm = CostModel(spec, load_board("arduino-nano-33-ble-sense"))
    r = search(spec, cm, SyntheticAccuracy(spec), strategy="evolution", budget=40, seed=0)
    assert r["budget_used"] == 40 and r["counts"]["over_flash"] > 0
    _assert_feasible(r, cm)


def test_run_search_with_a_real_supernet(tmp_path):
    from tinynas.data import load_dataset
    from tinynas.search import run_search
    from tinynas.space import load_space
    from tinynas.supernet import Supernet

    b = load_dataset("digits")
    c, h, w = b.input_shape
    spec = load_space(None, input_channels=c, resolution=[h, w], num_classes=b.num_classes, width_mult=0.3)
    sn = Supernet(spec).eval()
    r = run_search((sn, spec, b), "arduino-nano-33-ble-sense", tmp_path / "s", strategy="random", budget=4,
                   calib_images=32, proxy_images=40, top_k=2, progress=False)
    assert r["budget_used"] == 4 and r["proxy"]["images"] == 40
    assert {"proxy_accuracy", "accuracy"} <= set(r["finalists"][0])
    assert r["best"]["arch_hash"] in r["selection"]["tied_hashes"] and r["selection"]["n_images"] == len(b.val)
    assert (tmp_path / "s" / "search.json").exists() and (tmp_path / "s" / "best_arch.json").exists()


def test_cli_missing_supernet_is_one_line(tmp_path, capsys):
    from tinynas.cli import main

    assert main(["search", "--supernet", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_library_errors_name_parameters_and_the_cli_names_flags(task):
    """A script calling search() reads `strategy`; the command line's user reads `--strategy`."""
    spec, cm, _ = task
    with pytest.raises(UserError) as e:
        search(spec, cm, SyntheticAccuracy(spec), strategy="annealing", budget=5)
    assert str(e.value).startswith("strategy annealing: not one of")
    assert e.value.for_cli().startswith("--strategy annealing: not one of")
    with pytest.raises(UserError) as e:
        search(spec, cm, SyntheticAccuracy(spec), budget=5, latency_weight=-0.07)
    assert "latency_weight needs latency_ms T" in str(e.value)
    assert "--latency-weight needs --latency-ms T" in e.value.for_cli()


def test_an_interrupted_supernet_resumes_under_its_own_paths_limit(tmp_path):
    """A resumed run re-forecasts from less time; the supernet must keep the limit its checkpoint has."""
    import json

    from tinynas.boards import load_board
    from tinynas.pipeline.stages import Context, _resumed_paths_macs

    board = load_board("stm32f746g-disco")
    ctx = Context(cfg={}, out=tmp_path, board=board, bundle=None, meta={})
    assert _resumed_paths_macs(ctx, None) is None  # nothing to resume
    d = tmp_path / "supernet"
    d.mkdir()
    (d / "checkpoint.pt").write_bytes(b"x")
    (d / "train.json").write_text(json.dumps({"paths": {"board": board.id, "latency_ms": None, "max_macs": 8157584}}))
    assert _resumed_paths_macs(ctx, None) == 8157584.0
    assert _resumed_paths_macs(ctx, 50.0) is None  # another latency limit: another filter, no resume
