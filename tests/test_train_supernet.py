"""`tinynas train-supernet`: outputs, exact resume, NaN stop, bad input, and 2-process torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import tinynas.train.spos as spos
from tinynas.cli import main as cli_main
from tinynas.data import load_dataset
from tinynas.data.meta import data_meta, load_from_meta
from tinynas.errors import UserError
from tinynas.space import load_space
from tinynas.supernet import load_supernet
from tinynas.train.loop import NonFiniteLoss

torch.set_num_threads(1)

TINY = ["--width-mult", "0.2", "--batch-size", "8", "--steps-per-epoch", "3", "--no-progress"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """160 RGB 12x12 images of 4 classes whose mean brightness carries the label."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 40)
    x = np.clip(rng.normal(40 + 50 * y[:, None, None, None], 30, (160, 12, 12, 3)), 0, 255).astype(np.uint8)
    p = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(p, x=x, y=y)
    return p


def _api_run(npz, out, **kw):
    bundle = load_dataset(npz, val_fraction=0.2)
    spec = load_space(None, input_channels=3, resolution=[12, 12], resolutions=[[12, 12], [10, 10]],
                      num_classes=4, width_mult=0.2)
    return spos.train_supernet(spec, bundle, data_meta(npz, bundle, val_fraction=0.2), out, 2, batch_size=8,
                               seed=3, progress=False, paths_per_step=2, steps_per_epoch=3, final_eval=False, **kw)


def _nan_after(monkeypatch, calls: int) -> None:
    """Make the training loss NaN from the given call on: a diverging run, on demand."""
    real, n = spos.smoothed_ce, [0]

    def loss(logits, y, ls):
        n[0] += 1
        out = real(logits, y, ls)
        return out * float("nan") if n[0] > calls else out
    monkeypatch.setattr(spos, "smoothed_ce", loss)


def test_outputs_follow_the_contract(npz, tmp_path, capsys):
    out = tmp_path / "sn"
    rc = cli_main(["train-supernet", "--data", str(npz), "--out", str(out), "--epochs", "2", "--weight-decay", "2e-4",
                   *TINY])
    assert rc == 0, capsys.readouterr().err
    for f in ("supernet.pt", "checkpoint.pt", "space.json", "data.json", "train.json", "train_curve.png"):
        assert (out / f).is_file(), f
    t = json.loads((out / "train.json").read_text())
    assert [h["epoch"] for h in t["history"]] == [1, 2]
    assert t["config"]["weight_decay"] == 2e-4  # the option reaches the optimiser's config
    for key in ("loss", "acc", "images_per_s", "wall_s"):
        assert all(np.isfinite(h[key]) for h in t["history"]), key
    assert 0 <= t["final_eval"]["largest_acc"] <= 1 and t["world_size"] == 1
    sn, spec, meta = load_supernet(out)
    assert spec.input_channels == 3 and spec.num_classes == 4 and spec.resolution == (12, 12)
    assert load_space(out / "space.json") == spec
    assert load_from_meta(json.loads((out / "data.json").read_text())).val.y.tolist() \
        == load_from_meta(meta).val.y.tolist()
    rc = cli_main(["train-supernet", "--data", str(npz), "--out", str(out), "--epochs", "1", *TINY])
    assert rc == 2 and "not empty" in capsys.readouterr().err  # never clobbers a run silently


def test_resume_after_nan_stop_is_bit_identical(npz, tmp_path, monkeypatch):
    _api_run(npz, tmp_path / "a", resume=True)  # nothing to resume yet: starts afresh (what a pipeline passes)
    _nan_after(monkeypatch, 3 * 2)  # epoch 1 = 3 steps x 2 paths; NaN from epoch 2 on
    with pytest.raises(NonFiniteLoss, match=r"loss became nan at epoch 2, step 1.*\(epoch 1\) is kept"):
        _api_run(npz, tmp_path / "b")
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1  # the last good checkpoint is kept
    monkeypatch.undo()
    _api_run(npz, tmp_path / "b", resume=True)
    a = torch.load(tmp_path / "a" / "supernet.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "supernet.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(Exception, match="'lr' was 0.1"):
        _api_run(npz, tmp_path / "b", resume=True, lr=0.2)


def test_nan_loss_is_a_one_line_error(npz, tmp_path, monkeypatch, capsys):
    _nan_after(monkeypatch, 0)
    rc = cli_main(["train-supernet", "--data", str(npz), "--out", str(tmp_path / "o"), "--epochs", "1", *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "loss became nan" in err and err.count("\n") == 1 and "Traceback" not in err


def test_space_data_mismatch_is_a_one_line_error(npz, tmp_path, capsys):
    (tmp_path / "space.json").write_text(json.dumps({"input_channels": 1, "num_classes": 4}))
    rc = cli_main(["train-supernet", "--space", str(tmp_path / "space.json"), "--data", str(npz),
                   "--out", str(tmp_path / "o"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "input_channels=1" in err and "3 channel" in err and err.count("\n") == 1
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("not a run")
    rc = cli_main(["train-supernet", "--data", str(npz), "--out", str(tmp_path / "r"), "--resume", *TINY])
    assert rc == 2 and "checkpoint.pt does not exist" in capsys.readouterr().err


RANK_SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    import tinynas.train.spos as spos
    from tinynas.cli import main
    from tinynas.space import arch_hash

    out, seen = sys.argv[2], []
    sample, write = spos.SposStep.sample, spos._Writer.__call__

    def record(self, rng):
        res, archs = sample(self, rng)
        seen.append([list(res)] + [arch_hash(a) for a in archs])
        return res, archs

    def dump(self, history):
        write(self, history)
        h = hashlib.sha256(b"".join(p.detach().contiguous().numpy().tobytes() for p in self.sn.parameters()))
        with open(os.path.join(os.path.dirname(out), "rank%s.json" % os.environ["RANK"]), "w") as f:
            json.dump({"paths": seen, "weights": h.hexdigest()}, f)

    spos.SposStep.sample, spos._Writer.__call__ = record, dump
    sys.exit(main(["train-supernet", "--data", sys.argv[1], "--out", out, "--epochs", "1", "--device", "cpu",
                   "--width-mult", "0.2", "--batch-size", "8", "--steps-per-epoch", "4", "--no-progress"]))
""")


def test_torchrun_two_processes_share_paths_and_weights(npz, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script), str(npz), str(tmp_path / "sn")], capture_output=True, text=True,
                       timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert len(r0["paths"]) == 4 and r0["paths"] == r1["paths"]  # the same path on every rank, every step
    assert r0["weights"] == r1["weights"]  # averaged gradients + masked steps keep the replicas identical
    t = json.loads((tmp_path / "sn" / "train.json").read_text())
    assert t["world_size"] == 2 and t["history"][0]["steps"] == 4
    assert 0 <= t["final_eval"]["smallest_acc"] <= 1  # scored by the evaluator sharded over both ranks


def test_masked_sgd_without_masks_is_torch_sgd():
    """touched=None (fine-tuning) is SGD with momentum; decay on conv/linear weights only."""
    import copy

    from tinynas.space import smallest_arch
    from tinynas.space.torch_model import build_model
    from tinynas.train.optim import MaskedSGD

    torch.manual_seed(0)
    a = build_model(smallest_arch(load_space(None, resolution=[12, 12], width_mult=0.2)))
    b = copy.deepcopy(a)
    opt_a = MaskedSGD(a.named_parameters(), momentum=0.9, weight_decay=0.01)
    groups = [{"params": [p for p in b.parameters() if p.ndim > 1], "weight_decay": 0.01},
              {"params": [p for p in b.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
    opt_b = torch.optim.SGD(groups, lr=0.05, momentum=0.9)
    x, y = torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 2, 3])
    for _ in range(3):
        for m in (a, b):
            torch.nn.functional.cross_entropy(m(x), y).backward()
        opt_a.step(0.05)
        opt_a.zero_grad()
        opt_b.step()
        opt_b.zero_grad()
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=n)


def test_sandwich_trains_largest_and_smallest_and_distils(npz, tmp_path):
    from tinynas.space.arch import largest_arch, smallest_arch
    from tinynas.supernet import Supernet
    from tinynas.train.spos import SposStep

    bundle = load_dataset(npz, val_fraction=0.2)
    spec = load_space(None, input_channels=3, resolution=[12, 12], num_classes=4, width_mult=0.2)
    sn = Supernet(spec)
    step = SposStep(sn, spec, bundle, 3, 0.1, sampling="sandwich")
    res, archs = step.sample(np.random.default_rng(0))
    assert archs[0] == largest_arch(spec) and archs[1] == smallest_arch(spec) and len(archs) == 3
    x, y = next(bundle.iter_batches("train", 8))
    r = step(x, y, np.random.default_rng(0))
    assert len(r.touched) == 3 and torch.isfinite(r.loss)
    with pytest.raises(UserError, match="paths_per_step >= 2"):
        SposStep(sn, spec, bundle, 1, 0.1, sampling="sandwich")
    s = _api_run(npz, tmp_path / "sw", sampling="sandwich", warmup_epochs=0.5)
    assert s["sampling"] == "sandwich" and s["zero_init"] is True and len(s["history"]) == 2


def test_resume_refuses_another_sampling(npz, tmp_path):
    _api_run(npz, tmp_path / "r")
    with pytest.raises(UserError, match="sampling"):
        _api_run(npz, tmp_path / "r", resume=True, sampling="sandwich")


def test_zero_init_makes_every_residual_block_start_as_identity():
    from tinynas.space.arch import largest_arch
    from tinynas.space.torch_model import MBBlock, build_model, zero_init_residual

    spec = load_space(None, input_channels=3, resolution=[12, 12], num_classes=4, width_mult=0.2)
    m = build_model(largest_arch(spec)).eval()
    n = zero_init_residual(m)
    blocks = [b for b in m.modules() if isinstance(b, MBBlock) and b.residual]
    assert n == len(blocks) > 0
    x = torch.randn(2, 3, 3, 3)
    for b in blocks:
        c = b.project.conv.out_channels
        x = torch.randn(2, c, 3, 3)
        torch.testing.assert_close(b(x), x)  # residual branch contributes exactly zero


def test_warmup_then_cosine_schedule():
    from tinynas.train.optim import cosine_lr

    lrs = [cosine_lr(s, 10, 1.0, warmup_steps=4) for s in range(11)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0] and lrs[4] == 1.0 and lrs[10] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert cosine_lr(0, 10, 1.0) == 1.0  # no warm-up: the old schedule
    ends = [cosine_lr(s, 10, 1.0, warmup_steps=4, end_lr=0.3) for s in range(11)]
    assert ends[:4] == lrs[:4] and ends[10] == pytest.approx(0.3) and min(ends[4:]) == pytest.approx(0.3)


def _depth_filter(spec, most: int):
    """Paths of at most `most` blocks in all: a stand-in for the pipeline's board/MACs limits."""
    from tinynas.space.arch import genome_layout

    n = len(spec.stages)
    depth = np.asarray(spec.depths)

    def blocks(g):
        return depth[np.asarray(g)[:, :n]].sum(axis=1)
    assert genome_layout(spec).length > n
    return spos.PathFilter(lambda g: blocks(g) <= most, blocks, {"max_blocks": most})


def test_path_filter_trains_only_accepted_paths(npz, tmp_path):
    """train.paths = "searchable": every sampled path passes the filter; the health check scores the
    largest accepted path; a resume under other limits is refused; no accepted path is one line."""
    from tinynas.space.arch import encode
    from tinynas.supernet import Supernet

    bundle = load_dataset(npz, val_fraction=0.2)
    spec = load_space(None, input_channels=3, resolution=[12, 12], num_classes=4, width_mult=0.2)
    most = len(spec.stages) * min(spec.depths) + 1
    filt = _depth_filter(spec, most)
    step = spos.SposStep(Supernet(spec), spec, bundle, 4, 0.1, paths=filt)
    rng = np.random.default_rng(0)
    for _ in range(5):
        _, archs = step.sample(rng)
        assert all(sum(len(s["blocks"]) for s in a["stages"]) <= most for a in archs)
    seen, top = filt.probe(spec, np.random.default_rng(1))
    assert 0 < seen["paths_accepted"] < 1 and filt.macs(top[None])[0] == most >= seen["paths_macs_mean"]
    s = _api_run(npz, tmp_path / "f", paths=filt)
    assert s["paths"] == {"max_blocks": most} and 0 < s["paths_accepted"] < 1
    with pytest.raises(UserError, match="paths"):
        _api_run(npz, tmp_path / "f", resume=True, paths=_depth_filter(spec, most + 1))
    with pytest.raises(UserError, match='train.paths = "all"'):
        _api_run(npz, tmp_path / "none", paths=spos.PathFilter(lambda g: np.zeros(len(g), bool), len, {}))
    assert encode(spec, step.sample(rng)[1][0]).shape == top.shape
