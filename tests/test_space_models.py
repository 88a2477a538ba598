"""The PyTorch model and its Keras mirror: shapes, module names, sliceability, float equivalence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tinynas.errors import UserError
from tinynas.space import default_space, largest_arch, layer_plan, sample_arch, smallest_arch
from tinynas.space.torch_model import build_model

INPUTS = {"cifar": (3, (32, 32)), "kws": (1, (49, 10)), "vww": (3, (96, 96)), "dot": (1, (1, 1))}


def _spec(kind: str, width: float = 0.3, classes: int = 10):
    c, res = INPUTS[kind]
    return default_space(input_channels=c, resolution=list(res), width_mult=width, num_classes=classes)


def randomize(model: torch.nn.Module, rng: np.random.Generator) -> torch.nn.Module:
    """Non-trivial BN statistics and biases, so that folding and copying errors show."""
    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.from_numpy(rng.uniform(lo, hi, tuple(t.shape)).astype(np.float32)))

    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name.endswith("conv.weight") or name == "classifier.weight":
                bound = (3.0 / (p[0].numel())) ** 0.5  # variance 1/fan_in keeps logits O(1)
                uniform(p, -bound, bound)
            elif name.endswith("bn.weight") or name.endswith("running_var"):
                uniform(p, 0.5, 1.5)
            elif name.endswith("bn.bias") or name.endswith("running_mean") or name == "classifier.bias":
                uniform(p, -0.3, 0.3)
    return model.eval()


# ---------------------------------------------------------------- torch


@pytest.mark.parametrize("kind", ["cifar", "kws", "vww", "dot"])
def test_forward_shapes(kind):
    rng = np.random.default_rng(0)
    c, (h, w) = INPUTS[kind]
    for arch in (smallest_arch(_spec(kind, 0.2, 12)), sample_arch(_spec(kind, 0.5, 12), rng)):
        model = build_model(arch).eval()
        x = torch.randn(2, c, h, w)
        with torch.no_grad():
            assert model(x).shape == (2, 12)
            fh, fw = layer_plan(arch).feature_hw
            assert model.features(x).shape[2:] == (fh, fw) and fh >= 1 and fw >= 1


def test_module_names_are_stable():
    arch = sample_arch(_spec("cifar"), np.random.default_rng(2))
    keys = set(build_model(arch).state_dict())
    for k in ("stem.conv.weight", "stem.bn.running_var", "first_block.dw.conv.weight",
              "first_block.project.bn.weight", "stages.0.blocks.0.expand.conv.weight",
              "stages.5.blocks.1.project.conv.weight", "classifier.weight", "classifier.bias"):
        assert k in keys
    assert not any(k.startswith("first_block.expand") for k in keys)
    for i, st in enumerate(arch["stages"]):
        d = len(st["blocks"])
        assert f"stages.{i}.blocks.{d - 1}.dw.conv.weight" in keys
        assert f"stages.{i}.blocks.{d}.dw.conv.weight" not in keys


def _slice(full: dict[str, torch.Tensor], shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """What a supernet's get_subnet does: centre-crop kernels, keep leading channels."""
    out = {}
    for k, shape in shapes.items():
        t = full[k]
        if t.dim() == 4 and t.shape[2] > shape[2]:
            off = (t.shape[2] - shape[2]) // 2
            t = t[:, :, off:off + shape[2], off:off + shape[3]]
        out[k] = t[tuple(slice(0, n) for n in shape)] if t.dim() else t
    return out


def test_any_subnet_is_a_slice_of_the_largest():
    spec = _spec("cifar", 0.3)
    full = build_model(largest_arch(spec)).state_dict()
    rng = np.random.default_rng(4)
    for _ in range(5):
        sub = build_model(sample_arch(spec, rng))
        shapes = {k: v.shape for k, v in sub.state_dict().items()}
        assert set(shapes) <= set(full)
        sub.load_state_dict(_slice(full, shapes), strict=True)


def test_asymmetric_padding_uses_zeropad():
    model = build_model(largest_arch(_spec("cifar")))
    assert isinstance(model.stages[0].blocks[0].dw.pad, torch.nn.ZeroPad2d)  # 32 -> 16, pad (0, 1)
    assert model.stages[0].blocks[0].dw.pad.padding == (2, 3, 2, 3)  # k7 on 32: total 5
    assert isinstance(model.stages[0].blocks[1].dw.pad, torch.nn.Identity)
    assert model.stages[0].blocks[1].dw.conv.padding == (3, 3)


def test_importing_space_stays_light():
    code = ("import sys, tinynas.space, tinynas.space.graph_builder; "
            "print('torch' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- Keras mirror


@pytest.fixture(scope="module")
def keras_mod():
    return pytest.importorskip("tinynas.space.keras_model")


def _keras_twin(km, arch, rng):
    model = randomize(build_model(arch), rng)
    k = km.build_keras(arch)
    km.copy_torch_weights(k, model.state_dict(), arch)
    return model, k


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cifar", "kws", "vww", "dot"])
def test_keras_matches_torch(keras_mod, kind):
    rng = np.random.default_rng(sorted(INPUTS).index(kind))
    c, (h, w) = INPUTS[kind]
    for arch in (sample_arch(_spec(kind, 0.2), rng), sample_arch(_spec(kind, 0.4), rng)):
        model, k = _keras_twin(keras_mod, arch, rng)
        x = rng.standard_normal((3, c, h, w)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        got = keras_mod.float_outputs(k, x.transpose(0, 2, 3, 1))
        # measured 2e-7 .. 6e-7 with logits ~1 (float32 summation order only)
        assert np.abs(want - got).max() <= 1e-4, np.abs(want - got).max()


@pytest.mark.slow
def test_copy_rejects_foreign_weights(keras_mod):
    spec = _spec("cifar", 0.2)
    small, big = smallest_arch(spec), largest_arch(spec)
    k = keras_mod.build_keras(small)
    with pytest.raises(UserError, match=r"'stages.0.blocks.0.expand.conv.weight' has shape \[48, 8, 1, 1\]"):
        keras_mod.copy_torch_weights(k, build_model(big).state_dict(), small)
    sd = build_model(small).state_dict()
    del sd["classifier.bias"]
    with pytest.raises(UserError, match="no tensor 'classifier.bias'"):
        keras_mod.copy_torch_weights(k, sd, small)


@pytest.mark.slow
def test_keras_layer_names_follow_torch(keras_mod):
    arch = smallest_arch(_spec("kws", 0.2))
    names = {layer.name for layer in keras_mod.build_keras(arch).layers}
    assert {"stem.conv", "stem.bn", "first_block.dw.conv", "stages.0.blocks.1.add", "pool",
            "classifier"} <= names


@pytest.mark.slow
def test_copy_into_keras_of_another_arch(keras_mod):
    spec = _spec("cifar", 0.2)
    small, big = smallest_arch(spec), largest_arch(spec)
    with pytest.raises(UserError, match="Keras layer 'stages.0.blocks.0.expand.conv'"):
        keras_mod.copy_torch_weights(keras_mod.build_keras(small), build_model(big).state_dict(), big)
