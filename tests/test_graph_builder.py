"""The cost graph built from an arch against the graph of a real int8 conversion.

Flatbuffer overhead (file bytes - sum of constant buffer bytes) of the converted
files below, TF 2.21, `convert_int8` (frozen concrete function, dynamic batch):

    case   file B   consts B  overhead B  = quant params + names + rest   ops  tensors
    cifar  293472   158876    134596        82740         29036   22820   68   180
    kws    774656   547052    227604        170184        32277   25143   75   199
    vww    357288   208676    148612        96756         29036   22820   68   180
    tiny   293448   166796    126652        80352         25801   20499   61   161

  - quant params = sum over tensors of 4 B per scale + 8 B per zero point
    (int64!); exact from a built Graph since the counts match: 24 B per output
    channel of every conv (weights and bias are both per-channel), 12 B per
    activation. It is the largest overhead: ~40-50% of the weights' bytes here.
  - names = tensor names the converter derives from Keras layer paths
    (~160 B per tensor); an exporter that blanks names saves all of it.
  - rest ~= 727 + 98 * tensors + 65 * ops (least-squares over 7 converted
    archs, residuals within 10 B).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinynas.space import default_space, largest_arch, layer_plan, sample_arch, smallest_arch
from tinynas.space.graph_builder import build_graph
from tinynas.space.torch_model import build_model

CASES = {  # kind: (C, (H, W), width_mult); tiny has 1x1 maps, clamped strides, ADDs on 1x1
    "cifar": (3, (32, 32), 0.2),
    "kws": (1, (49, 10), 0.3),
    "vww": (3, (96, 96), 0.2),
    "tiny": (1, (2, 2), 0.2),
}


def _spec(kind: str):
    c, res, w = CASES[kind]
    return default_space(input_channels=c, resolution=list(res), width_mult=w, num_classes=5)


def _expected_ops(arch) -> list[str]:
    ops = ["CONV_2D"]
    for b in layer_plan(arch).blocks:
        ops += ["DEPTHWISE_CONV_2D" if c.kind == "dw" else "CONV_2D" for c in b.convs]
        ops += ["ADD"] if b.residual else []
    return ops + ["MEAN", "FULLY_CONNECTED"]


def _expected_costs(arch) -> tuple[int, int]:
    """MACs and weight bytes counted by hand from the layer plan."""
    plan = layer_plan(arch)
    macs = weight = 0
    for c in plan.convs():
        oh, ow = c.out_hw
        per_out = c.kernel * c.kernel * (1 if c.kind == "dw" else c.in_channels)
        macs += oh * ow * c.out_channels * per_out
        weight += c.out_channels * per_out + 4 * c.out_channels
    n, f = plan.num_classes, plan.feature_channels
    return macs + n * f, weight + n * f + 4 * n + 8  # + MEAN's int32 axis pair


# ---------------------------------------------------------------- without TensorFlow


@pytest.mark.parametrize("kind", list(CASES))
def test_built_graph_structure_and_costs(kind):
    rng = np.random.default_rng(1)
    for arch in (smallest_arch(_spec(kind)), largest_arch(_spec(kind)), sample_arch(_spec(kind), rng)):
        g = build_graph(arch)
        assert [op.type for op in g.ops] == _expected_ops(arch)
        macs, weight = _expected_costs(arch)
        assert g.total_macs == macs and sum(t.buffer_bytes for t in g.tensors) == weight
        assert sum(op.weight_bytes for op in g.ops) == weight
        c, (h, w), _ = CASES[kind]
        assert g.tensors[g.inputs[0]].shape == (1, h, w, c) and g.tensors[g.outputs[0]].shape == (1, 5)
        assert all(t.dtype == "int8" for t in g.tensors if not t.is_const)
        assert [t.index for t in g.tensors] == list(range(len(g.tensors)))
        produced = {o for op in g.ops for o in op.outputs}
        assert all(i in produced or g.tensors[i].is_const or i in g.inputs
                   for op in g.ops for i in op.inputs)


def test_quantization_counts():
    g = build_graph(largest_arch(_spec("cifar")))
    for op in g.ops:
        if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            x, w, b = (g.tensors[i] for i in op.inputs)
            cout = g.tensors[op.outputs[0]].shape[-1]
            assert len(w.scale) == len(b.scale) == len(w.zero_point) == cout
            assert w.quantized_dimension == (3 if op.type == "DEPTHWISE_CONV_2D" else 0)
            assert (w.dtype, b.dtype) == ("int8", "int32")
        assert all(len(g.tensors[i].scale) == 1 for i in op.outputs)


def test_residual_adds_follow_the_rule():
    """An ADD exactly where stride is 1 and in == out channels (also the first block, at small widths)."""
    for width, first_block_add in ((0.2, 1), (1.0, 0)):  # 0.2: stem 8 -> first block 8; 1.0: 32 -> 16
        arch = largest_arch(default_space(width_mult=width))
        adds = sum(op.type == "ADD" for op in build_graph(arch).ops)
        prev, stage_adds = arch["first_block"]["channels"], 0
        for st in arch["stages"]:
            stage_adds += len(st["blocks"]) - 1 + (st["stride"] == 1 and st["channels"] == prev)
            prev = st["channels"]
        assert adds == first_block_add + stage_adds


# ---------------------------------------------------------------- against the converter


def _randomized_torch(arch, rng):
    model = build_model(arch)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if name.endswith(("bn.weight", "running_var")):
                p.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, tuple(p.shape)).astype(np.float32)))
            elif name.endswith(("bn.bias", "running_mean")) or name == "classifier.bias":
                p.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
    return model.eval()


@pytest.fixture(scope="module")
def converted():
    """Each case converted once: (arch, keras model, representative data, .tflite bytes)."""
    km = pytest.importorskip("tinynas.space.keras_model")
    out = {}
    for i, kind in enumerate(CASES):
        rng = np.random.default_rng(100 + i)
        c, res, _ = CASES[kind]
        arch = sample_arch(_spec(kind), rng)
        k = km.build_keras(arch)
        km.copy_torch_weights(k, _randomized_torch(arch, rng).state_dict(), arch)
        rep = rng.random((20, *res, c)).astype(np.float32)
        out[kind] = (arch, k, rep, km.convert_int8(k, rep))
    return out


def _tensor_key(t):
    qdim = t.quantized_dimension if len(t.scale) > 1 else 0
    return (t.shape, t.dtype, t.is_const, t.buffer_bytes, len(t.scale), len(t.zero_point), qdim)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CASES))
def test_graph_matches_converter(converted, kind):
    from tinynas.tflite_reader import parse_tflite

    arch, _, _, buf = converted[kind]
    real, built = parse_tflite(buf), build_graph(arch)
    assert [op.type for op in real.ops] == [op.type for op in built.ops] == _expected_ops(arch)
    assert not {"QUANTIZE", "DEQUANTIZE", "PAD", "TRANSPOSE", "RESHAPE"} & set(real.op_types)
    assert (real.inputs, real.outputs) == (built.inputs, built.outputs)
    assert len(real.tensors) == len(built.tensors)
    for r, b in zip(real.tensors, built.tensors):  # same index order as the converter's
        assert _tensor_key(r) == _tensor_key(b), (r.index, r.name)
    for r, b in zip(real.ops, built.ops):
        assert (r.inputs, r.outputs, r.options, r.version) == (b.inputs, b.outputs, b.options, b.version), r
        assert (r.macs, r.weight_bytes) == (b.macs, b.weight_bytes), r
    assert real.total_macs == built.total_macs
    consts = sum(t.buffer_bytes for t in real.tensors)
    assert consts == sum(t.buffer_bytes for t in built.tensors)
    overhead = len(buf) - consts  # see the module docstring for measured figures
    assert 0 < overhead < len(buf)


@pytest.mark.slow
def test_int8_model_runs_and_tracks_float(converted):
    """The export really runs (LiteRT) and its dequantized logits follow the float model."""
    from ai_edge_litert.interpreter import Interpreter
    from tinynas.space.keras_model import float_outputs

    arch, k, rep, buf = converted["kws"]
    it = Interpreter(model_content=buf)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = inp["quantization"], out["quantization"]
    for x in rep[:3]:
        it.set_tensor(inp["index"], np.clip(np.round(x[None] / si + zi), -128, 127).astype(np.int8))
        it.invoke()
        y = (it.get_tensor(out["index"]).astype(np.float32) - zo) * so
        f = float_outputs(k, x[None])
        assert np.abs(y - f).max() <= 0.15 * np.abs(f).max()  # measured 0.016 .. 0.026


def test_bad_io_is_a_user_error():
    km = pytest.importorskip("tinynas.space.keras_model")
    from tinynas.errors import UserError

    with pytest.raises(UserError, match="io: 'uint16'"):
        km.convert_int8(None, np.zeros((1, 2, 2, 1)), io="uint16")
