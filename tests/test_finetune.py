"""`tinynas finetune`: inherits the supernet's weights, distils, and writes what export consumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_rgb_data

from tinynas.cli import main as cli_main
from tinynas.data import load_dataset
from tinynas.data.meta import data_meta
from tinynas.space import sample_arch, save_arch, smallest_arch
from tinynas.space.torch_model import build_model
from tinynas.supernet import Supernet, SupernetEvaluator, save_supernet
from tinynas.train.finetune import finetune, train_arch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A supernet DIR (random weights, real data record) over 12x12 RGB data of 4 classes."""
    root = tmp_path_factory.mktemp("ft")
    bundle, spec, _ = tiny_rgb_data(root)
    torch.manual_seed(0)
    sn = Supernet(spec)
    save_supernet(root / "sn" / "supernet.pt", sn, data_meta(root / "d.npz", bundle, val_fraction=0.25))
    arch = sample_arch(spec, np.random.default_rng(1))
    save_arch(root / "arch.json", arch)
    return root, bundle, spec, sn, arch


def test_finetune_inherits_weights_and_writes_contract(setup, tmp_path):
    root, bundle, spec, sn, arch = setup
    r = finetune(arch, root / "sn", bundle, tmp_path / "ft", 1, batch_size=16, steps_per_epoch=3,
                 progress=False, calib_images=64)
    ev = SupernetEvaluator(sn, bundle, calib_images=64)
    assert r["accuracy_inherited"] == pytest.approx(ev.evaluate_arch(arch), abs=1e-9)  # = the search's fitness
    for f in ("arch.json", "model.pt", "data.json", "finetune.json"):
        assert (tmp_path / "ft" / f).is_file(), f
    sd = torch.load(tmp_path / "ft" / "model.pt", weights_only=True)
    build_model(arch).load_state_dict(sd, strict=True)  # what `tinynas export --weights` consumes
    fj = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert 0 <= fj["accuracy_float"] <= 1 and len(fj["history"]) == 1 and fj["distill"] is False
    assert json.loads((tmp_path / "ft" / "data.json").read_text())["data"].endswith("d.npz")


def test_finetune_cli_distills_with_data_from_the_supernet(setup, tmp_path, capsys):
    root = setup[0]
    rc = cli_main(["finetune", "--arch", str(root / "arch.json"), "--supernet", str(root / "sn"),
                   "--out", str(tmp_path / "ft"), "--epochs", "1", "--distill", "--batch-size", "16",
                   "--steps-per-epoch", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    fj = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert fj["distill"] is True and np.isfinite(fj["history"][0]["loss"])
    rc = cli_main(["finetune", "--arch", str(root / "arch.json"), "--supernet", str(root / "sn"),
                   "--out", str(tmp_path / "ft"), "--epochs", "1"])
    assert rc == 2 and "not an empty directory" in capsys.readouterr().err


def test_finetune_refuses_an_arch_of_another_space(setup, tmp_path, capsys):
    root, _, spec, _, _ = setup
    save_arch(tmp_path / "other.json", smallest_arch(spec.with_config(width_mult=0.5)))
    rc = cli_main(["finetune", "--arch", str(tmp_path / "other.json"), "--supernet", str(root / "sn"),
                   "--out", str(tmp_path / "ft"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match the space" in err and err.count("\n") == 1


def test_train_arch_from_scratch_for_baselines(setup, tmp_path):
    root, bundle, spec, _, _ = setup
    arch = smallest_arch(spec)
    r = train_arch(arch, bundle, tmp_path / "base", 1, data_meta={"data": "x", "load": {}}, batch_size=16,
                   steps_per_epoch=2, progress=False)
    assert r["accuracy_inherited"] is None and 0 <= r["accuracy_float"] <= 1
    assert (tmp_path / "base" / "model.pt").is_file()


def test_train_arch_trains_an_exact_step_count_for_equal_steps_comparisons(setup, tmp_path):
    """bench_vs_scratch gives scratch the pipeline's steps to the step, the last epoch partial."""
    root, bundle, spec, _, _ = setup
    per_epoch = len(bundle.train) // 16
    r = train_arch(smallest_arch(spec), bundle, tmp_path / "s", None, data_meta={"data": "x", "load": {}},
                   batch_size=16, progress=False, total_steps=per_epoch + 1)
    assert r["steps"] == per_epoch + 1 and [h["steps"] for h in r["history"]] == [per_epoch, 1]
    assert r["config"]["total_steps"] == per_epoch + 1


def test_step_count_and_time_budget_are_refused_together_by_both_trainers(setup, tmp_path):
    """Both fix where the schedule ends; the supernet trainer used to drop the step count silently."""
    from tinynas.errors import UserError
    from tinynas.train.spos import train_supernet

    root, bundle, spec, _, _ = setup
    meta = {"data": "x", "load": {}}
    with pytest.raises(UserError, match="cannot be combined with a time budget"):
        train_arch(smallest_arch(spec), bundle, tmp_path / "a", None, data_meta=meta, progress=False,
                   total_steps=5, time_budget_s=30)
    with pytest.raises(UserError, match="cannot be combined with a time budget"):
        train_supernet(spec, bundle, meta, tmp_path / "s", 1, progress=False, total_steps=5, time_budget_s=30)
    assert not (tmp_path / "s").exists()


def test_finetune_keeps_the_best_epoch_by_holdout_and_never_ends_below_its_start(setup, tmp_path):
    root, _, spec, sn, arch = setup
    bundle = load_dataset(root / "d.npz", val_fraction=0.25, holdout_fraction=0.2)
    assert bundle.selection_split == "holdout" and len(bundle.holdout) == 24
    r = finetune(arch, root / "sn", bundle, tmp_path / "ft", 3, batch_size=16, steps_per_epoch=2, lr=0.5,
                 progress=False, calib_images=64)
    sel = r["selection"]
    assert sel["split"] == "holdout" and len(sel["per_epoch"]) == 4  # epoch 0 = the inherited weights
    assert sel["best"] == max(sel["per_epoch"]) >= sel["inherited"]
    assert sel["per_epoch"][sel["best_epoch"]] == sel["best"]
    model = build_model(arch)
    model.load_state_dict(torch.load(tmp_path / "ft" / "model.pt", weights_only=True))
    from tinynas.supernet import accuracy
    from tinynas.train.finetune import val_batches

    assert accuracy(model, val_batches(bundle, tuple(arch["input"][1:]), torch.device("cpu"),
                                       split="holdout")) == pytest.approx(sel["best"], abs=1e-5)


def test_a_teacher_no_better_than_the_student_is_dropped():
    from tinynas.train.finetune import _teacher_check

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 4)  # always class 0

    y = torch.tensor([0] * 10 + [1] * 30)
    batches = [(torch.zeros(40, 3, 4, 4), y)]
    kd = _teacher_check(Constant(), batches, student=0.30, n=40)  # teacher 0.25 < student 0.30
    assert kd["used"] is False and "not clearly better" in kd["reason"]
    assert _teacher_check(Constant(), batches, student=0.05, n=40)["used"] is True
    assert _teacher_check(None, batches, student=0.5, n=40)["used"] is False


def test_under_a_clock_a_dear_teacher_is_not_used(setup, tmp_path):
    from tinynas.train.finetune import TEACHER_MAX_EXTRA, _teacher_too_dear

    root, bundle, spec, sn, arch = setup
    assert _teacher_too_dear(sn, sn.largest()) is None  # the teacher itself: +33% per step
    small = smallest_arch(spec)
    dear = _teacher_too_dear(sn, small)
    assert dear["extra_step_cost"] > TEACHER_MAX_EXTRA and "time budget" in dear["reason"]
    r = finetune(small, root / "sn", bundle, tmp_path / "ft", None, distill=True, batch_size=16,
                 progress=False, calib_images=64, force=True, time_budget_s=6.0)
    assert r["distill"] is False and r["teacher"]["extra_step_cost"] == dear["extra_step_cost"]
