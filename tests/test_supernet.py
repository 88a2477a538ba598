"""The supernet: sliced subnets compute what the supernet path computes; exact BN; no drift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinynas.errors import UserError
from tinynas.space import default_space, largest_arch, load_space, sample_arch, smallest_arch
from tinynas.space.torch_model import build_model
from tinynas.supernet import Supernet, SupernetEvaluator, load_supernet, recalibrate_bn, save_supernet
from tinynas.train.optim import MaskedSGD

torch.set_num_threads(1)

SPEC = default_space(width_mult=0.25, resolution=[20, 20])  # 20 is even: asymmetric TF padding on stride 2
KWS = default_space(width_mult=0.2, input_channels=1, resolution=[49, 10], num_classes=12)
FUSED = default_space(width_mult=0.25, resolution=[20, 20], block="fused", kernels=[3, 5], expand_ratios=[1, 2])
RES = default_space(width_mult=0.25, resolution=[20, 20], block="res", kernels=[3, 5], expand_ratios=[1, 2])
MIXED = default_space(width_mult=0.25, resolution=[20, 20], block="res,fused,mb", kernels=[3, 5],
                      expand_ratios=[1, 2])


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, so that slicing mistakes in BN would show in the outputs."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def _archs(spec, n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [largest_arch(spec), smallest_arch(spec)] + [sample_arch(spec, rng) for _ in range(n)]


@pytest.mark.parametrize("spec", [SPEC, KWS, FUSED, RES, MIXED],
                         ids=["rgb20", "kws49x10", "fused", "res", "res,fused,mb"])
def test_get_subnet_equals_supernet_path(spec):
    torch.manual_seed(0)
    sn = Supernet(spec)
    _randomize_bn(sn)
    sn.eval()
    x = torch.randn(3, *spec.input_shape)
    for arch in _archs(spec, 4):
        sub = sn.get_subnet(arch).eval()
        with torch.no_grad():
            torch.testing.assert_close(sub(x), sn(x, arch), rtol=0, atol=1e-5)
        build_model(arch).load_state_dict(sub.state_dict(), strict=True)  # the export contract


@pytest.mark.parametrize("spec", [SPEC, RES, MIXED], ids=["mb", "res", "res,fused,mb"])
def test_training_gradients_match_standalone_subnet(spec):
    """A training-mode step on a supernet path gives the standalone subnet's gradients, slice by slice."""
    torch.manual_seed(1)
    sn = Supernet(spec)
    arch = _archs(spec, 1, seed=3)[-1]
    sub = sn.get_subnet(arch).train()
    x, y = torch.randn(6, *spec.input_shape), torch.randint(0, 10, (6,))
    torch.nn.functional.cross_entropy(sn(x, arch), y).backward()
    torch.nn.functional.cross_entropy(sub(x), y).backward()
    idx = sn.path_indices(arch)
    params = dict(sn.named_parameters())
    for name, p in sub.named_parameters():
        torch.testing.assert_close(params[name].grad[idx[name]], p.grad, rtol=1e-4, atol=1e-6)
    untouched = [n for n, p in params.items() if n not in idx]
    assert untouched and all(params[n].grad is None for n in untouched)  # skipped blocks


def test_elastic_kernel_is_centre_crop_and_expand_is_prefix():
    sn = Supernet(SPEC)
    arch = largest_arch(SPEC)
    arch["stages"][1]["blocks"][0] = {"kernel": 3, "expand": min(SPEC.expand_ratios)}
    sd = sn.get_subnet(arch).state_dict()
    full = sn.state_dict()["stages.1.blocks.0.dw.conv.weight"]
    mid = arch["stages"][0]["channels"] * min(SPEC.expand_ratios)
    assert torch.equal(sd["stages.1.blocks.0.dw.conv.weight"], full[:mid, :, 2:5, 2:5])
    assert torch.equal(sd["stages.1.blocks.0.project.conv.weight"],
                       sn.state_dict()["stages.1.blocks.0.project.conv.weight"][:, :mid])


def _train_steps(sn: Supernet, archs_per_step: list[list[dict]], opt: MaskedSGD) -> None:
    g = torch.Generator().manual_seed(0)
    sn.train()
    for archs in archs_per_step:
        x = torch.randn(4, *SPEC.input_shape, generator=g)
        y = torch.randint(0, 10, (4,), generator=g)
        for a in archs:
            (torch.nn.functional.cross_entropy(sn(x, a), y) / len(archs)).backward()
        opt.step(0.5, [sn.path_indices(a) for a in archs])
        opt.zero_grad()


@pytest.mark.parametrize("paths", [1, 2])
def test_unsampled_weights_do_not_drift(paths):
    """Elements outside every sampled slice stay bit-identical (momentum and decay included)."""
    torch.manual_seed(2)
    sn = Supernet(SPEC)
    before = {k: v.clone() for k, v in sn.named_parameters()}
    small = smallest_arch(SPEC)
    other = largest_arch(SPEC)  # with 2 paths: the union mask path; kernel 3 vs 7 and short vs long stages
    other["stages"][2]["blocks"] = other["stages"][2]["blocks"][:min(SPEC.depths)]
    for b in other["stages"][2]["blocks"]:
        b["kernel"] = 5
    steps = [[small] if paths == 1 else [small, other] for _ in range(3)]
    opt = MaskedSGD(sn.named_parameters(), momentum=0.9, weight_decay=0.1)
    _train_steps(sn, steps, opt)
    touched = torch.zeros(0)
    for name, p in sn.named_parameters():
        mask = torch.zeros_like(p, dtype=torch.bool)
        for a in steps[0]:
            idx = sn.path_indices(a).get(name)
            if idx is not None:
                mask[idx] = True
        assert torch.equal(p[~mask], before[name][~mask]), name
        assert torch.count_nonzero(opt.buffers[name][~mask]) == 0, name
        touched = torch.cat([touched, (p[mask] != before[name][mask]).float()])
    assert touched.mean() > 0.9  # the sampled slices did train
    # stage 2's dw kernel with 2 paths: only the 5x5 centre moved
    if paths == 2:
        w, w0 = sn.stages[2].blocks[0].dw.conv.weight, before["stages.2.blocks.0.dw.conv.weight"]
        assert torch.equal(w[:, :, 0], w0[:, :, 0]) and not torch.equal(w[:, :, 1:6, 1:6], w0[:, :, 1:6, 1:6])


def test_plain_sgd_would_drift():
    """Why MaskedSGD exists: torch's SGD moves zero-gradient elements through momentum and decay."""
    torch.manual_seed(2)
    sn = Supernet(SPEC)
    w0 = sn.stages[0].blocks[0].dw.conv.weight.detach().clone()
    opt = torch.optim.SGD(sn.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    x, y = torch.randn(4, *SPEC.input_shape), torch.randint(0, 10, (4,))
    for _ in range(2):
        torch.nn.functional.cross_entropy(sn(x, smallest_arch(SPEC)), y).backward()
        opt.step()
        opt.zero_grad()
    assert not torch.equal(sn.stages[0].blocks[0].dw.conv.weight[:, :, 0], w0[:, :, 0])


def test_recalibrate_bn_is_exact_and_batching_independent():
    torch.manual_seed(3)
    model = build_model(smallest_arch(SPEC))
    x = torch.randn(60, *SPEC.input_shape)
    with torch.no_grad():
        stem = model.stem.conv(x).double()
    n_images = recalibrate_bn(model, list(x.split(7)))  # unequal last batch on purpose
    assert n_images == 60 and model.training  # mode restored
    torch.testing.assert_close(model.stem.bn.running_mean.double(), stem.mean((0, 2, 3)), rtol=0, atol=1e-6)
    torch.testing.assert_close(model.stem.bn.running_var.double(), stem.var((0, 2, 3), unbiased=True),
                               rtol=1e-5, atol=1e-6)
    deep_a = model.stages[3].blocks[0].dw.bn.running_var.clone()
    recalibrate_bn(model, list(x.split(7)))  # no memory of the previous pass: a reset, not a blend
    assert torch.equal(model.stages[3].blocks[0].dw.bn.running_var, deep_a)


def _tiny_bundle():
    from tinynas.data import load_dataset

    return load_dataset("digits", image_size=(16, 16), val_fraction=0.2)


def test_evaluator_scores_and_shards_consistently(tmp_path):
    bundle = _tiny_bundle()
    spec = load_space(None, input_channels=1, resolution=[16, 16], num_classes=10, width_mult=0.2)
    torch.manual_seed(4)
    sn = Supernet(spec)
    archs = _archs(spec, 1)[1:]  # smallest and a random one: cheap to score
    ev = SupernetEvaluator(sn, bundle, calib_images=100, val_indices=np.arange(64))
    acc = ev(archs)
    assert acc.shape == (2,) and ((acc >= 0) & (acc <= 1)).all()
    assert np.array_equal(acc, ev(archs))  # cached batches, no state carried between candidates
    assert acc[0] == ev.evaluate_arch(archs[0])
    save_supernet(tmp_path / "supernet.pt", sn, {"data": "digits", "load": {}})
    sn2, spec2, meta = load_supernet(tmp_path)
    assert spec2 == spec and meta["data"] == "digits"
    assert np.array_equal(SupernetEvaluator(sn2, bundle, calib_images=100, val_indices=np.arange(64))(archs), acc)


def test_load_supernet_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_supernet(tmp_path / "nope")
    (tmp_path / "supernet.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable"):
        load_supernet(tmp_path)
