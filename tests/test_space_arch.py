"""The space spec, the arch dict and the genome: loading, validation, identity, sampling."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tinynas.errors import UserError
from tinynas.space import (arch_from_choices, arch_hash, canonical_json, canonicalize_genomes, decode,
                           default_space, encode, genome_layout, largest_arch, layer_plan, load_arch,
                           load_space, make_divisible, sample_arch, sample_genomes, save_arch, skeleton,
                           smallest_arch, unpack_genomes, validate_arch)

INPUTS = {"cifar": (3, (32, 32)), "kws": (1, (49, 10)), "vww": (3, (96, 96))}


def _spec(kind: str = "cifar", width: float = 0.5):
    c, res = INPUTS[kind]
    return default_space(input_channels=c, resolution=list(res), width_mult=width)


def _fixed_arch():
    spec = _spec()
    return arch_from_choices(spec, [2, 3, 4, 2, 3, 2],
                             [[3, 5], [7, 3, 5], [3, 3, 5, 7], [5, 5], [7, 7, 3], [3, 5]],
                             [[3, 4], [6, 3, 4], [4, 4, 6, 3], [3, 6], [4, 4, 4], [6, 6]])


# ---------------------------------------------------------------- spec


def test_default_space_is_mcunet_like():
    s = default_space()
    assert [st.channels for st in s.stages] == [24, 40, 80, 96, 192, 320]
    assert [st.stride for st in s.stages] == [2, 2, 2, 1, 2, 1]
    assert (s.stem_channels, s.first_block_channels) == (32, 16)
    assert s.depths == (2, 3, 4) and s.kernels == (3, 5, 7) and s.expand_ratios == (3, 4, 6)
    assert s.widths == (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert s.max_depth == 4 and s.resolution_grid == ((32, 32),)


def test_make_divisible():
    assert [make_divisible(v) for v in (1, 8, 9.6, 12, 16 * 0.35, 24 * 0.5, 320 * 0.3)] == [8, 8, 16, 16, 8, 16, 96]


def test_width_mult_scales_to_multiples_of_8():
    for w in default_space().widths:
        chans = default_space(width_mult=w).stage_channels()
        assert all(c % 8 == 0 and c >= 8 for c in chans)


def test_load_space_json_toml_and_roundtrip(tmp_path):
    s = _spec("kws", 0.3)
    p = tmp_path / "space.json"
    p.write_text(json.dumps(s.to_dict()))
    assert load_space(p) == s
    t = tmp_path / "space.toml"
    t.write_text('input_channels = 1\nresolution = [49, 10]\nwidth_mult = 0.3\nkernels = [3, 5]\n')
    ts = load_space(t)
    assert ts.kernels == (3, 5) and ts.input_shape == (1, 49, 10) and ts.depths == (2, 3, 4)
    assert ts.with_config(width_mult=0.5, resolution=64).input_shape == (1, 64, 64)


@pytest.mark.parametrize("patch, field", [
    ({"kernels": [3, 4]}, "kernels[1]"),
    ({"stages": [{"channels": 24, "stride": 3}]}, "stages[0].stride"),
    ({"stages": [{"channels": 24}]}, "stages[0]"),
    ({"resolution": [32, 0]}, "resolution[1]"),
    ({"width_mult": -1}, "width_mult"),
    ({"depths": []}, "depths"),
    ({"depths": [2, 2]}, "depths"),
    ({"kernal": [3]}, "'kernal'"),
    ({"stem_stride": 4}, "stem_stride"),
])
def test_bad_space_names_the_field(patch, field):
    with pytest.raises(UserError) as e:
        load_space(patch)
    msg = str(e.value)
    assert field in msg and "\n" not in msg


def test_bad_space_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_space(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_space(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(UserError, match="top level"):
        load_space(tmp_path / "list.json")


# ---------------------------------------------------------------- strides for any input


def test_skeleton_per_input_kind():
    sk = skeleton(_spec("cifar"))
    assert sk.stem_stride == 1 and sk.stage_strides == (2, 2, 2, 1, 2, 1)
    assert sk.stem_channels == 16 and sk.first_block_channels == 8
    assert skeleton(_spec("kws")).stem_stride == 2  # 49 > 32
    assert skeleton(_spec("vww")).stem_stride == 2
    assert layer_plan(largest_arch(_spec("cifar"))).feature_hw == (2, 2)
    assert layer_plan(largest_arch(_spec("kws"))).feature_hw == (2, 1)  # 49x10 -> 25x5 -> ... never 0
    assert layer_plan(largest_arch(_spec("vww"))).feature_hw == (3, 3)


def test_strides_clamp_on_1x1_maps():
    sk = skeleton(default_space(resolution=[4, 4]))
    assert sk.stem_stride == 1 and sk.stage_strides == (2, 2, 1, 1, 1, 1)
    sk = skeleton(default_space(resolution=[4, 1], input_channels=1))
    assert sk.stage_strides == (2, 2, 1, 1, 1, 1)  # 4x1 -> 2x1 -> 1x1, then clamped
    plan = layer_plan(smallest_arch(default_space(resolution=1)))
    assert all(c.out_hw == (1, 1) and c.stride == 1 for c in plan.convs())


def test_same_padding_in_plan():
    plan = layer_plan(largest_arch(_spec("kws")))
    stem = plan.stem  # 49x10, k3 s2: 49 odd -> (1, 1); 10 even -> (0, 1)
    assert stem.out_hw == (25, 5) and stem.pad == (0, 1, 1, 1)
    for c in plan.convs():
        if c.stride == 1:
            assert c.pad == (c.kernel // 2,) * 4


# ---------------------------------------------------------------- the arch dict


def test_arch_example_shape():
    a = _fixed_arch()
    assert a["version"] == 1 and a["input"] == [3, 32, 32] and a["num_classes"] == 10
    assert a["width_mult"] == 0.5 and a["head"] == "avgpool-linear"
    assert a["stem"] == {"channels": 16, "stride": 1} and a["first_block"] == {"channels": 8}
    assert a["stages"][0] == {"channels": 16, "stride": 2,
                              "blocks": [{"kernel": 3, "expand": 3}, {"kernel": 5, "expand": 4}]}
    assert [len(s["blocks"]) for s in a["stages"]] == [2, 3, 4, 2, 3, 2]


def test_json_roundtrip_and_atomic_save(tmp_path):
    a = _fixed_arch()
    p = tmp_path / "sub" / "arch.json"
    save_arch(p, a)
    assert load_arch(p) == a and load_arch(p, _spec()) == a
    assert [f.name for f in p.parent.iterdir()] == ["arch.json"]  # no temp file left behind
    assert json.loads(canonical_json(a)) == a


def test_canonical_json_and_hash_are_stable():
    a = _fixed_arch()
    s = canonical_json(a)
    assert " " not in s and s.startswith('{"first_block":{"channels":8},"head":"avgpool-linear"')
    shuffled = json.loads(json.dumps(a))
    shuffled = {k: shuffled[k] for k in reversed(list(shuffled))}
    shuffled["width_mult"] = 0.50000000001  # float noise from grid arithmetic
    assert canonical_json(shuffled) == s
    assert arch_hash(a) == arch_hash(shuffled) == "030951c87812"  # pinned: run names depend on it
    assert arch_hash(a) == hashlib.sha256(s.encode()).hexdigest()[:12]
    b = json.loads(json.dumps(a))
    b["stages"][0]["blocks"][0]["kernel"] = 5
    assert arch_hash(b) != arch_hash(a)


def _mutated(path: str, value):
    a = json.loads(json.dumps(_fixed_arch()))
    obj = a
    keys = path.replace("]", "").replace("[", ".").split(".")
    for k in keys[:-1]:
        obj = obj[int(k)] if k.isdigit() else obj[k]
    last = keys[-1]
    if value is _DELETE:
        del obj[last]
    else:
        obj[int(last) if last.isdigit() else last] = value
    return a


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("stages[2].blocks[1].kernel", 4, "stages[2].blocks[1].kernel: 4 is not one of [3,5,7]"),
    ("stages[0].blocks[1].expand", 5, "stages[0].blocks[1].expand: 5 is not one of [3,4,6]"),
    ("stages[1].channels", 32, "stages[1].channels: 32 does not match the space"),
    ("stages[3].stride", 2, "stages[3].stride: 2 does not match the space"),
    ("stem.channels", 8, "stem.channels: 8 does not match the space"),
    ("width_mult", 0.25, "width_mult: 0.25 does not match the space"),
    ("input", [1, 32, 32], "input: [1, 32, 32] does not match the space"),
    ("num_classes", 2, "num_classes: 2 does not match the space"),
])
def test_rejections_against_space_name_the_field(path, value, message):
    with pytest.raises(UserError) as e:
        validate_arch(_mutated(path, value), _spec())
    assert str(e.value).startswith(message)


@pytest.mark.parametrize("path, value, field", [
    ("stages[2].blocks[1].kernel", 4, "stages[2].blocks[1].kernel"),
    ("stages[2].blocks[1].kernel", True, "stages[2].blocks[1].kernel"),
    ("stages[0].stride", 3, "stages[0].stride"),
    ("stages[0].blocks", [], "stages[0].blocks"),
    ("stages[0].blocks[0].expand", _DELETE, "stages[0].blocks[0].expand: missing"),
    ("stages[0].blocks[0].dilation", 2, "unknown field 'dilation'"),
    ("input", [3, 32], "input"),
    ("version", 2, "version"),
    ("head", "softmax", "head"),
    ("stem", _DELETE, "stem: missing"),
])
def test_structural_rejections_name_the_field(path, value, field):
    with pytest.raises(UserError) as e:
        validate_arch(_mutated(path, value))
    assert field in str(e.value) and "\n" not in str(e.value)


def test_depth_outside_choices_is_rejected():
    a = _fixed_arch()
    a["stages"][1]["blocks"].append({"kernel": 3, "expand": 3})
    a["stages"][1]["blocks"].append({"kernel": 3, "expand": 3})
    with pytest.raises(UserError, match=r"stages\[1\].blocks: depth 5 is not one of \[2,3,4\]"):
        validate_arch(a, _spec())
    validate_arch(a)  # structurally fine without a space


def test_load_arch_errors_name_the_file(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps(_mutated("stages[2].blocks[1].kernel", 4)))
    with pytest.raises(UserError, match=r"a.json: stages\[2\].blocks\[1\].kernel: 4 is not one of \[3,5,7\]"):
        load_arch(p, _spec())
    p.write_text("not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_arch(p)
    with pytest.raises(UserError, match="expected an object"):
        validate_arch([1, 2])


def test_arch_from_choices_rejects_bad_lengths():
    spec = _spec()
    with pytest.raises(UserError, match="depths: expected 6"):
        arch_from_choices(spec, [2] * 5, [[3] * 2] * 6, [[3] * 2] * 6)
    with pytest.raises(UserError, match=r"kernels\[0\]"):
        arch_from_choices(spec, [3] * 6, [[3] * 2] * 6, [[3] * 3] * 6)


# ---------------------------------------------------------------- genomes


def test_genome_layout_is_mcunet_like():
    lay = genome_layout(_spec())
    assert lay.length == 6 + 2 * 6 * 4 == 54
    assert list(lay.bounds[:6]) == [3] * 6 and set(lay.bounds[6:]) == {3}


def test_encode_decode_roundtrip():
    spec = _spec("kws", 0.3)
    rng = np.random.default_rng(0)
    for g in sample_genomes(spec, 50, rng):
        a = decode(spec, g)
        assert validate_arch(a, spec) == a
        assert np.array_equal(encode(spec, a), g)
    a = _fixed_arch()
    assert decode(_spec(), encode(_spec(), a)) == a


def test_sample_genomes_is_canonical_uniform_and_seeded():
    spec = _spec()
    lay = genome_layout(spec)
    g = sample_genomes(spec, 30000, np.random.default_rng(1))
    assert g.shape == (30000, lay.length) and g.dtype == np.int8
    assert np.array_equal(canonicalize_genomes(spec, g), g)
    ch = unpack_genomes(spec, g)
    assert ch.depth.shape == (30000, 6) and ch.kernel.shape == (30000, 6, 4)
    for values, counts in (np.unique(ch.depth, return_counts=True), np.unique(ch.kernel[ch.active], return_counts=True),
                           np.unique(ch.expand[ch.active], return_counts=True)):
        assert len(values) == 3 and counts.min() / counts.max() > 0.95
    assert not ch.kernel[~ch.active].any()
    assert np.array_equal(sample_genomes(spec, 5, np.random.default_rng(7)),
                          sample_genomes(spec, 5, np.random.default_rng(7)))
    assert sample_arch(spec, np.random.default_rng(7)) == decode(spec, sample_genomes(spec, 1, np.random.default_rng(7))[0])


def test_unpack_matches_decode():
    spec = _spec("vww", 0.4)
    g = sample_genomes(spec, 20, np.random.default_rng(3))
    ch = unpack_genomes(spec, g)
    for i in range(len(g)):
        a = decode(spec, g[i])
        assert [len(s["blocks"]) for s in a["stages"]] == list(ch.depth[i])
        for s, st in enumerate(a["stages"]):
            assert [b["kernel"] for b in st["blocks"]] == list(ch.kernel[i, s, :len(st["blocks"])])
            assert [b["expand"] for b in st["blocks"]] == list(ch.expand[i, s, :len(st["blocks"])])


def test_bad_genomes_are_rejected():
    spec = _spec()
    g = encode(spec, _fixed_arch())
    bad = g.copy()
    bad[7] = 3
    with pytest.raises(UserError, match=r"genome\[7\]: 3 is out of range 0..2"):
        decode(spec, bad)
    with pytest.raises(UserError, match="expected length 54"):
        decode(spec, g[:-1])
    with pytest.raises(UserError, match="integers"):
        decode(spec, g.astype(float))
