"""Block types (mb, fused, res, ds) and the hand-designed baselines through the whole chain.

Each type must give the same network in PyTorch, in the Keras mirror and in
the int8 file, and `graph_builder` must predict the converter's ops and the
planner's arena for it, as it does for the space's MBConv blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_graph_builder import _randomized_torch

from tinynas.baselines import NAMES, baseline_arch, dscnn, fits, mobilenetv2, resnet8, widest_fitting
from tinynas.boards import load_board
from tinynas.errors import UserError
from tinynas.planner import plan_arena
from tinynas.space import default_space, largest_arch, layer_plan, validate_arch
from tinynas.space.arch import canonical_json
from tinynas.space.graph_builder import build_graph
from tinynas.space.torch_model import MBBlock, build_model, zero_init_residual

MIXED = {"version": 1, "input": [3, 16, 16], "num_classes": 5, "width_mult": 1.0,
         "stem": {"channels": 16, "stride": 1}, "first_block": None,
         "stages": [{"channels": 16, "stride": 1, "block": "res", "blocks": [{"kernel": 3, "expand": 1}]},
                    {"channels": 24, "stride": 2, "block": "res", "blocks": [{"kernel": 3, "expand": 2}]},
                    {"channels": 32, "stride": 2, "block": "fused",
                     "blocks": [{"kernel": 3, "expand": 2}, {"kernel": 5, "expand": 1}]},
                    {"channels": 40, "stride": 1, "block": "ds",
                     "blocks": [{"kernel": 3, "expand": 1}, {"kernel": 5, "expand": 1}]},
                    {"channels": 48, "stride": 2, "blocks": [{"kernel": 3, "expand": 3}]}],
         "head": "avgpool-linear"}


def _ops(arch) -> list[str]:
    return [op.type for op in build_graph(arch).ops]


def test_mb_archs_keep_their_canonical_form():
    arch = largest_arch(default_space())
    assert '"block"' not in canonical_json(arch)
    assert validate_arch({**arch, "stages": [{**s, "block": "mb"} for s in arch["stages"]]}) == arch


@pytest.mark.parametrize("change, message", [
    (lambda a: a["stages"][0].update(block="vgg"), "stages[0].block: 'vgg' is not one of"),
    (lambda a: a["stages"][3]["blocks"][0].update(expand=2), "stages[3].blocks[0].expand: 2 is not 1"),
    (lambda a: a["stages"][0].update(colour=1), "unknown field 'colour'"),
])
def test_bad_block_fields_name_the_field(change, message):
    a = validate_arch(MIXED)
    change(a)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
        validate_arch(a)


def test_a_space_holds_mb_blocks_with_a_first_block_only():
    spec = default_space(width_mult=0.3)
    arch = largest_arch(spec)
    with pytest.raises(UserError, match="stages.1..block: .fused. does not match the space .its stage 1 holds .mb."):
        validate_arch({**arch, "stages": [arch["stages"][0], {**arch["stages"][1], "block": "fused"},
                                          *arch["stages"][2:]]}, spec)
    with pytest.raises(UserError, match="first_block: null does not match the space"):
        validate_arch({**arch, "first_block": None}, spec)


def test_layer_plan_of_each_type():
    blocks = {b.name: b for b in layer_plan(MIXED).blocks}
    kinds = {n: [c.kind for c in b.convs] for n, b in blocks.items()}
    assert kinds["stages.0.blocks.0"] == ["conv", "conv"] and blocks["stages.0.blocks.0"].residual
    r = blocks["stages.1.blocks.0"]
    assert r.shortcut is not None and r.shortcut.kernel == 1 and r.shortcut.stride == 2 and not r.residual
    assert r.convs[0].out_channels == 48 and r.convs[1].out_channels == 24  # res mid = cout * expand
    f = blocks["stages.2.blocks.0"]
    assert [c.kernel for c in f.convs] == [3, 1] and f.convs[0].stride == 2 and f.convs[0].out_channels == 48
    d = blocks["stages.3.blocks.0"]
    assert kinds["stages.3.blocks.0"] == ["dw", "conv"] and all(c.relu6 for c in d.convs)
    assert kinds["stages.4.blocks.0"] == ["conv", "dw", "conv"]
    assert _ops(MIXED) == ["CONV_2D", "CONV_2D", "CONV_2D", "ADD", "CONV_2D", "CONV_2D", "CONV_2D", "ADD",
                           "CONV_2D", "CONV_2D", "CONV_2D", "CONV_2D", "ADD",
                           "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD",
                           "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]


def test_torch_model_runs_and_zero_init_makes_blocks_their_shortcut():
    model = build_model(MIXED)
    n = zero_init_residual(model)
    assert n == sum(b.adds and b.kind != "ds" for b in layer_plan(MIXED).blocks) == 3  # ds: see below
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    assert model(x).shape == (2, 5)
    blk = model.stages[1].blocks[0]
    assert isinstance(blk, MBBlock)
    h = model.stages[0](model.stem(x))
    torch.testing.assert_close(blk(h), blk.shortcut(h))  # zeroed main path: only the projection


def test_baselines_have_the_published_shapes():
    r8 = build_graph(resnet8([3, 32, 32], 10))
    assert r8.total_macs == 12_501_632  # MLPerf Tiny ResNet-8: 12.5 M MACs
    params = sum(p.numel() for p in build_model(resnet8([3, 32, 32], 10)).parameters())
    assert 78_000 <= params <= 80_000  # 78 k weights (+ BN)
    assert _ops(dscnn([1, 49, 10], 12)).count("DEPTHWISE_CONV_2D") == 4
    mb = mobilenetv2([3, 32, 32], 10)
    assert [len(s["blocks"]) for s in mb["stages"]] == [2, 3, 4, 3, 3, 1]


def test_mobilenetv2_is_the_widest_that_fits():
    board = load_board("stm32f746g-disco")
    arch, wm = widest_fitting(lambda w: mobilenetv2([3, 32, 32], 10, w), board)
    assert fits(arch, board)[0] and wm < 1.0
    assert not fits(mobilenetv2([3, 32, 32], 10, round(wm + 0.05, 2)), board)[0]
    assert baseline_arch("mobilenetv2", [3, 32, 32], 10, board) == arch
    with pytest.raises(UserError, match="is not one of"):
        baseline_arch("vgg16", [3, 32, 32], 10, board)
    assert set(NAMES) == {"resnet8", "dscnn", "mobilenetv2"}


@pytest.mark.slow
def test_types_match_keras_and_the_converter():
    """torch == Keras in float; graph_builder == the converted file (ops, shapes, planner head)."""
    km = pytest.importorskip("tinynas.space.keras_model")
    from tinynas.tflite_reader import parse_tflite

    rng = np.random.default_rng(7)
    model = _randomized_torch(MIXED, rng)
    k = km.build_keras(MIXED)
    km.copy_torch_weights(k, model.state_dict(), MIXED)
    x = rng.random((3, 16, 16, 3)).astype(np.float32)
    want = model(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(km.float_outputs(k, x), want, atol=1e-4)
    g = parse_tflite(km.convert_int8(k, rng.random((16, 16, 16, 3)).astype(np.float32)))
    built = build_graph(MIXED)

    def sig(graph):
        return [(op.type, [tuple(graph.tensors[i].shape) for i in op.inputs if i >= 0]) for op in graph.ops]

    assert sig(g) == sig(built)
    assert plan_arena(g).head_bytes == plan_arena(built).head_bytes
    assert plan_arena(g).arena_bytes == plan_arena(built).arena_bytes


# ---------------------------------------------------------------- spaces of other block types


def test_block_spaces_downsample_to_their_min_feature_side():
    from tinynas.space.arch import skeleton
    from tinynas.space.spec import space_for_block

    res = space_for_block("res", resolution=[32, 32])
    assert skeleton(res).stage_strides == (1, 2, 2, 2)  # 32, 16, 8, 4
    assert skeleton(space_for_block("res", resolution=[8, 8])).stage_strides == (1, 2, 1, 1)  # stops at 4x4
    fused = space_for_block("fused", resolution=[32, 32])
    assert skeleton(fused).stage_strides == (2, 2, 2, 1, 1, 1)  # 16, 8, 4, then 4x4 stays
    assert skeleton(default_space()).stage_strides == (2, 2, 2, 1, 2, 1)  # mb as before: down to 2x2
    with pytest.raises(UserError, match="block: 'ds' is not a block type"):
        space_for_block("ds")
    arch = largest_arch(res)
    assert all(s["block"] == "res" for s in arch["stages"]) and validate_arch(arch, res) == arch


def test_a_space_can_name_a_block_type_per_stage():
    """'res,mb': stage 1 res, every later stage mb (the last type repeats); archs must follow it."""
    from tinynas.space.spec import load_space, space_for_block

    spec = space_for_block("res, mb", resolution=[32, 32])
    assert spec.block == "res,mb" and spec.stage_blocks == ("res", "mb", "mb", "mb")
    assert spec.name == "tinynas-res-mb" and spec.kernels == (3, 5)  # res's preset
    arch = largest_arch(spec)
    assert [s.get("block", "mb") for s in arch["stages"]] == ["res", "mb", "mb", "mb"]
    assert validate_arch(arch, spec) == arch
    with pytest.raises(UserError, match=r"stages\[0\].block: 'mb' does not match the space \(its stage 0 holds 'res'"):
        validate_arch({**arch, "stages": [{**arch["stages"][0], "block": "mb"}, *arch["stages"][1:]]}, spec)
    assert load_space(None, block=["fused", "mb"]).stage_blocks[:2] == ("fused", "mb")  # a TOML list
    with pytest.raises(UserError, match=r"^block: 'res,res,res,res,mb' names 5 block types, but the res space has 4 stages$"):
        space_for_block("res,res,res,res,mb")
    with pytest.raises(UserError, match=r"^space: block: 'mb,mb,mb,mb,mb,mb,mb' names 7 block types, but the space has 6"):
        load_space({"block": "mb," * 6 + "mb"})  # a space file: the same check, the file's name first
    with pytest.raises(UserError, match="'res,dw' is not a block type"):
        space_for_block("res,dw")


def test_space_choice_respects_a_trainable_macs_cap():
    from tinynas.spaceopt import choose

    rows = [{"fitting": 10, "fit_fraction": 0.5, "macs_mean": m, "resolution": [32, 32], "width_mult": w}
            for m, w in ((5e6, 0.5), (20e6, 1.0), (40e6, 1.5))]
    assert choose(rows) == 2
    assert choose(rows, max_macs=25e6) == 1
    assert choose(rows, max_macs=1e6) == 0  # nothing within: the cheapest


def test_probe_fits_seconds_per_image_to_macs():
    from tinynas.space.spec import space_for_block
    from tinynas.train.probe import probe_train_cost

    torch.set_num_threads(1)
    spec = space_for_block("res", input_channels=1, resolution=[8, 8], width_mult=0.5)
    cost = probe_train_cost(spec, batch_size=8)
    (m0, s0), (m1, s1) = cost.points
    assert m1 > m0 and cost.per_mac_s > 0
    assert cost.images_per_s(m0) == pytest.approx(1 / s0, rel=0.05) or cost.intercept_s == 0
    cap = cost.max_trainable_macs(seconds=60, n_images=1000, min_epochs=5)
    assert cost.images_per_s(cap) * 60 == pytest.approx(5000, rel=1e-6) or cap == 0


def test_zero_init_leaves_relu_ended_blocks_trainable():
    """A "ds" block ends in ReLU6: zeroing its last BN scale would freeze it (no gradient at 0)."""
    arch = dscnn([1, 16, 16], 4)
    model = build_model(arch)
    assert zero_init_residual(model) == 0
    x = torch.randn(4, 1, 16, 16)
    torch.nn.functional.cross_entropy(model(x), torch.arange(4)).backward()
    assert all(blk.project.bn.weight.grad.abs().sum() > 0 for blk in model.stages[0].blocks)


def test_baseline_command_bad_input_is_one_line(capsys):
    from tinynas.cli import main

    assert main(["baseline", "resnet8", "--time", "2m", "--epochs", "3"]) == 2
    assert main(["baseline", "resnet8", "--time", "soon"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not both" in err[0] and "is not a duration" in err[1]


@pytest.mark.slow
def test_baseline_command_trains_exports_and_reports(tmp_path, capsys):
    """`tinynas baseline` writes what a run writes: finetune/, export/, profile/, summary.json, report."""
    import json

    from tinynas.cli import main

    out = tmp_path / "bl"
    rc = main(["baseline", "dscnn", "--data", "digits", "--time", "8s", "--out", str(out), "--target", "none"])
    assert rc == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["fits"] and s["arch"]["stages"][0]["block"] == "ds" and 0 <= s["accuracy_int8"] <= 1
    assert s["time"]["budget_s"] == 8 and s["time"]["stages"]["train"]["spent_s"] <= 8 * 1.1 + 2
    report = (out / "report.md").read_text()
    assert report.startswith("# tinynas baseline dscnn") and "DS conv k3 e1" in report
    assert "tinynas baseline dscnn" in report.split("## Reproduce")[1]
