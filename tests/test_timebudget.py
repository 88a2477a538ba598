"""Time budgets: durations, deadlines, shares, planned schedules, and a trainer that stops on time."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import tiny_rgb_data

from tinynas.errors import UserError
from tinynas.pipeline.config import build_config, stage_hash
from tinynas.search import Archive, Problem, search
from tinynas.search.synthetic import SyntheticAccuracy, synthetic_task
from tinynas.space import smallest_arch
from tinynas.space.torch_model import build_model
from tinynas.timebudget import Deadline, allot, format_duration, parse_duration, plan_steps
from tinynas.distributed import DistContext
from tinynas.train.finetune import PlainStep, train_arch
from tinynas.train.loop import LoopConfig, Trainer
from tinynas.train.optim import MaskedSGD

torch.set_num_threads(1)


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("10m", 600), ("1h", 3600), ("2h30m", 9000), ("1h5m30s", 3930), ("45", 45), (" 2M ", 120),
    ("1.5h", 5400), (30, 30), ("0.5s", 0.5),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, msg", [
    ("", "empty"), ("  ", "empty"), ("0", "positive"), ("0m", "positive"), ("-5m", "not a duration"),
    ("-5", "positive"), ("ten minutes", "not a duration"), ("10x", "not a duration"), ("30m2h", "not a duration"),
    ("1h1h", "not a duration"), ("m", "not a duration"), ("inf", "positive"), (True, "not a duration"),
])
def test_parse_duration_rejects_with_one_line_and_an_example(text, msg):
    with pytest.raises(UserError) as e:
        parse_duration(text)
    assert msg in str(e.value) and "e.g. 90s, 10m" in str(e.value) and "\n" not in str(e.value)


def test_format_duration():
    assert [format_duration(s) for s in (0, 45, 180, 3900, 59.6)] == ["0s", "45s", "3m00s", "1h05m", "1m00s"]


def test_deadline_is_monotonic_and_can_keep_time_back():
    d = Deadline.after(0.2)
    assert 0.1 < d.remaining() <= 0.2 and not d.expired()
    assert d.sooner(0.2).expired() and d.sooner(1.0).remaining() == 0.0
    time.sleep(0.21)
    assert d.expired() and d.remaining() == 0.0


def test_shares_of_what_is_left_roll_unused_time_over():
    shares = {"supernet": 0.6, "search": 0.1, "finetune": 0.3}
    order = ("supernet", "search", "finetune")
    assert allot(100, shares, "supernet", order) == pytest.approx(60)
    assert allot(40, shares, "search", order) == pytest.approx(10)  # supernet spent its 60
    assert allot(35, shares, "finetune", order) == pytest.approx(35)  # search left 5 s: they roll over
    assert plan_steps(10, 0.1, 50) == 95 and plan_steps(10, 0.1, 10, per_epoch_s=1.0) == 47
    assert plan_steps(0.0, 1.0, 10) == 1  # a tiny budget still trains; the hard stop ends it


@pytest.mark.parametrize("over, msg", [
    ({"time": {"supernet": 1.0}}, "time.supernet must be a share between 0 and 1"),
    ({"time": {"search": 0.0}}, "time.search must be a share"),
    ({"time": {"supernet": 0.05}}, "must add up to 1, got 0.9"),
    ({"run": {"time": "ten"}}, "not a duration"),
    ({"run": {"time": "-1m"}}, "not a duration"),
])
def test_bad_time_config_is_one_line(over, msg):
    with pytest.raises(UserError) as e:
        build_config(over, {})
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_clock_or_counts():
    assert build_config(None, {})["run"]["time"] == "3m"  # presets are time budgets
    assert build_config(None, {"run": {"budget": "medium"}})["run"]["time"] == "30m"
    assert build_config(None, {"run": {"time": "90s"}})["run"]["time"] == "90s"
    assert build_config(None, {"train": {"epochs": 3}})["run"]["time"] == ""  # counts on the command line
    assert build_config({"search": {"candidates": 5}}, {})["run"]["time"] == ""  # counts in a file
    assert build_config({"run": {"time": "1m"}, "train": {"epochs": 3}}, {})["run"]["time"] == "1m"  # run.toml
    assert build_config({"run": {"time": "1m"}}, {"train": {"epochs": 3}})["run"]["time"] == ""
    assert build_config({"run": {"time": 90}}, {})["run"]["time"] == "90s"
    with pytest.raises(UserError, match="--time and --epochs/--candidates both given"):
        build_config(None, {"run": {"time": "1m"}, "train": {"epochs": 3}})


def test_the_budget_is_part_of_a_timed_stage_identity():
    a = build_config(None, {"run": {"time": "4m"}})
    assert stage_hash(a, "supernet") == stage_hash(build_config(None, {"run": {"time": "240s"}}), "supernet")
    b = build_config(None, {"run": {"time": "5m"}})
    assert stage_hash(a, "space") != stage_hash(b, "space")  # the space's trainable-MACs cap follows the clock
    assert stage_hash(a, "supernet") != stage_hash(b, "supernet")
    assert stage_hash(a, "search", "x") != stage_hash(b, "search", "x")
    c = build_config({"time": {"supernet": 0.5, "search": 0.2, "finetune": 0.3}}, {})
    assert stage_hash(a, "finetune", "x") != stage_hash(c, "finetune", "x")
    # under a clock the counts are ignored, so changing one re-runs nothing
    d = build_config({"run": {"time": "4m"}, "train": {"epochs": 99}}, {})
    assert stage_hash(a, "supernet") == stage_hash(d, "supernet")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    bundle, spec, _ = tiny_rgb_data(tmp_path_factory.mktemp("tb"))
    return bundle, spec


def test_a_planned_cosine_schedule_ends_at_the_planned_step(tiny):
    bundle, spec = tiny
    arch = smallest_arch(spec)
    model = build_model(arch)
    opt = MaskedSGD(model.named_parameters())
    cfg = LoopConfig(epochs=99, batch_size=16, lr=0.1, warmup_epochs=1.0, total_steps=17)
    tr = Trainer(model, opt, bundle, cfg, DistContext(0, 1, torch.device("cpu")),
                 PlainStep(model, (12, 12), bundle, 0.1), progress=False)
    assert tr.plan.steps == 7 and tr.total_steps == 17 and tr.epochs == 3
    assert [tr.steps_in(e) for e in range(3)] == [7, 7, 3]  # the last epoch is partial
    assert tr.lr_at(tr.warmup_steps - 1) == pytest.approx(0.1)  # warm-up peaks, then the decay
    assert 0 < tr.lr_at(16) < 0.01 and tr.lr_at(17) == 0.0  # ends exactly at the planned step
    hist = tr.fit(0, [])
    assert sum(h["steps"] for h in hist) == 17


def test_replan_moves_the_end_without_a_jump_in_the_learning_rate(tiny):
    """A re-planned schedule goes on from the current LR and still ends at 0, longer or shorter."""
    bundle, spec = tiny
    model = build_model(smallest_arch(spec))
    cfg = LoopConfig(epochs=99, batch_size=16, lr=0.1, warmup_epochs=1.0, total_steps=20)
    tr = Trainer(model, MaskedSGD(model.named_parameters()), bundle, cfg, DistContext(0, 1, torch.device("cpu")),
                 PlainStep(model, (12, 12), bundle, 0.1), progress=False)
    assert not tr.replan(3, 40)  # inside warm-up (7 steps): never moved
    before = tr.lr_at(10)
    assert tr.replan(10, 40) and tr.total_steps == 40 and tr.epochs == 6
    assert tr.lr_at(10) == pytest.approx(before) and tr.lr_at(40) == 0.0
    assert tr.lr_at(11) < before and tr.lr_at(25) > 0  # decays more slowly now
    mid = tr.lr_at(20)
    assert tr.replan(20, 25) and tr.lr_at(20) == pytest.approx(mid) and tr.lr_at(25) == 0.0
    hist = tr.fit(0, [], lambda h: None)
    assert sum(h["steps"] for h in hist) == 25
    stay = Trainer(model, MaskedSGD(model.named_parameters()), bundle,
                   LoopConfig(epochs=99, batch_size=16, lr=0.1, total_steps=20, end_lr=0.03),
                   DistContext(0, 1, torch.device("cpu")), PlainStep(model, (12, 12), bundle, 0.1), progress=False)
    assert stay.replan(10, 40) and stay.lr_at(40) == pytest.approx(0.03)  # a re-plan keeps the end LR


def test_train_arch_stops_within_its_time_budget(tiny, tmp_path):
    bundle, spec = tiny
    budget = 4.0
    t0 = time.monotonic()
    r = train_arch(smallest_arch(spec), bundle, tmp_path / "base", None, data_meta={"data": "x", "load": {}},
                   batch_size=16, progress=False, time_budget_s=budget)
    wall = time.monotonic() - t0
    assert wall <= 1.1 * budget, wall
    assert r["planned_s"] == budget and 0 < r["spent_s"] <= 1.1 * budget
    assert r["planned_steps"] >= 1 and 1 <= r["steps"] <= r["planned_steps"]
    assert r["time"]["step_s"] > 0 and r["time"]["planned_steps"] == r["planned_steps"]
    assert (tmp_path / "base" / "model.pt").is_file()


def test_train_arch_epochs_without_a_budget_still_count_steps(tiny, tmp_path):
    bundle, spec = tiny
    r = train_arch(smallest_arch(spec), bundle, tmp_path / "e", 1, data_meta={"data": "x", "load": {}},
                   batch_size=16, steps_per_epoch=2, progress=False)
    assert r["planned_s"] is None and r["planned_steps"] == 2 and r["steps"] == 2 and r["spent_s"] > 0


def test_a_search_stops_when_told_and_keeps_what_it_evaluated():
    spec, cm, _ = synthetic_task()
    acc = SyntheticAccuracy(spec, 0)
    r = search(spec, cm, acc, strategy="evolution", budget=200, seed=0, stop=lambda: acc.calls >= 13, chunk=2)
    assert 13 <= len(r["history"]) <= 14 and r["best"] is not None
    ar = Archive(Problem(spec, cm, acc), budget=5, strategy="t", stop=lambda: True)
    assert ar.remaining == 5 and not ar.stopped  # nothing evaluated yet: the first chunk always runs


def test_run_clock_forecasts_a_later_stages_seconds():
    """Before the supernet runs, the fine-tune's seconds are its share of what is left among the timed stages."""
    from tinynas.pipeline.stages import RunClock

    clock = RunClock.start(100.0, {"supernet": 0.25, "search": 0.1, "finetune": 0.65})
    assert abs(clock.forecast("finetune", "supernet") - 65.0) < 0.5
    assert abs(clock.forecast("finetune", "search") - 100.0 * 0.65 / 0.75) < 0.5
    assert RunClock(None, {}).forecast("finetune", "supernet") is None
