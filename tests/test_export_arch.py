"""`tinynas export ARCH.json`: arch + PyTorch weights -> verified int8 TFLite, ONNX, C and a project.

A tiny subnet (width 0.2, 16x16 digits) is trained for one epoch and saved as a
finetune folder (arch.json + model.pt + data.json), then exported end to end
through the CLI, and through the Python API for the other I/O types. Bad inputs
must each give one line, exit code 2 and no output folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tinynas.cli import main as cli_main
from tinynas.errors import UserError
from tinynas.graph import Graph, Op, Tensor

RES = 16
EXPORT_KEYS = {
    "accuracy_float", "accuracy_int8", "accuracy_drop_pts", "tflm_litert_identical_fraction", "max_lsb_diff",
    "arena_bytes_measured", "cmsis_scratch_bytes", "arena_bytes_estimated", "arena_estimate_error_pct",
    "arena_bytes_firmware", "ops", "model_bytes", "files", "onnx_max_abs_diff", "keras_max_abs_diff",
    "input", "output", "timings_s", "wall_s", "verify_samples", "rep_samples", "data", "arch", "preprocessing",
}


def _spec(width: float = 0.2):
    from tinynas.space import default_space

    return default_space(input_channels=1, resolution=[RES, RES], width_mult=width, num_classes=10)


@pytest.fixture(scope="module")
def digits():
    from tinynas.data import load_dataset

    return load_dataset("digits", image_size=RES)


@pytest.fixture(scope="module")
def finetune_dir(digits, tmp_path_factory) -> Path:
    """What `tinynas finetune` leaves: arch.json, model.pt (plain state_dict), data.json."""
    from tinynas.data.meta import data_meta
    from tinynas.space import smallest_arch
    from tinynas.space.arch import save_arch
    from tinynas.space.torch_model import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    arch = smallest_arch(_spec())
    model = build_model(arch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        for x, y in digits.iter_batches("train", 64, shuffle=True, generator=gen):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    d = tmp_path_factory.mktemp("finetune")
    save_arch(d / "arch.json", arch)
    torch.save(model.state_dict(), d / "model.pt")
    (d / "data.json").write_text(json.dumps(data_meta("digits", digits, image_size=RES)))
    return d


def _load(d: Path):
    from tinynas.space.arch import load_arch

    return load_arch(d / "arch.json"), torch.load(d / "model.pt", weights_only=True)


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def cli_export(finetune_dir: Path, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("exp") / "out"
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "export", str(finetune_dir / "arch.json"),
                        "--out", str(out), "--target", "cmake", "--name", "digits net", "--verify-limit", "120"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


@pytest.mark.slow
def test_export_from_finetune_dir(cli_export) -> None:
    out, r = cli_export
    rep = json.loads((out / "export.json").read_text())
    assert EXPORT_KEYS <= set(rep), EXPORT_KEYS - set(rep)
    for line in ("exported digits_net (cmake, io int8)", "accuracy  float", "TFLM vs LiteRT", "arena     measured",
                 "ops       5: CONV_2D, DEPTHWISE_CONV_2D, ADD, MEAN, FULLY_CONNECTED"):
        assert line in r.stdout, r.stdout
    assert rep["ops"] == ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"]
    assert rep["input"]["dtype"] == rep["output"]["dtype"] == "int8" and rep["input"]["shape"] == [1, RES, RES, 1]
    assert rep["keras_max_abs_diff"] <= 1e-4 and rep["onnx_max_abs_diff"] <= 1e-4
    assert rep["verify_samples"] == 120 and rep["rep_samples"] == 300
    assert rep["accuracy_float"] > 0.3 and abs(rep["accuracy_drop_pts"]) <= 10
    assert rep["tflm_litert_identical_fraction"] >= 0.9 and rep["max_lsb_diff"] <= 1
    assert abs(rep["arena_estimate_error_pct"]) <= 2.0
    # The board's figure covers the planner's 32-bit plan (+ scratch); a 64-bit host build its measurement.
    assert rep["arena_bytes_firmware_host"] >= rep["arena_bytes_measured"]
    assert rep["arena_bytes_firmware"] >= rep["arena_bytes_measured"] * 0.9 and rep["arena_bytes_firmware"] % 16 == 0
    assert rep["data"]["load"] == {"image_size": RES}  # the sibling data.json was used
    assert rep["model_bytes"] == (out / "model.tflite").stat().st_size
    for f in rep["files"]:
        assert (out / f).is_file(), f
    for f in ("model/digits_net_model_data.cc", "model/digits_net_op_resolver.h", "CMakeLists.txt", "main.cc"):
        assert f in rep["files"]
    settings = (out / "model/digits_net_model_settings.h").read_text()
    assert f"constexpr int kArenaBytesDevice = {rep['arena_bytes_firmware']};" in settings
    assert f"constexpr int kArenaBytesHost = {rep['arena_bytes_firmware_host']};" in settings
    assert '"0",' in settings and "kNumLabels = 10" in settings  # digits' class names


@pytest.mark.slow
def test_exported_c_compiles(cli_export) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not on PATH")
    out, _ = cli_export
    r = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-c", "digits_net_model_data.cc",
                        "-o", "/dev/null"], cwd=out / "model", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_onnx_file_matches_torch(cli_export, finetune_dir: Path, digits) -> None:
    import onnxruntime as ort

    from tinynas.space.torch_model import build_model

    out, _ = cli_export
    arch, sd = _load(finetune_dir)
    model = build_model(arch).eval()
    model.load_state_dict(sd)
    x = digits.preprocess(digits.val.x[:32])
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("io", ["uint8", "float32"])
def test_io_variants(io: str, finetune_dir: Path, digits, tmp_path: Path) -> None:
    from tinynas.deploy.pipeline import export_subnet
    from tinynas.tflite_reader import read_tflite

    arch, sd = _load(finetune_dir)
    rep = export_subnet(arch, sd, digits, tmp_path / io, io=io, target="none", rep_samples=200,
                        verify_limit=60, progress=False)
    g = read_tflite(tmp_path / io / "model.tflite")
    assert g.tensor(g.inputs[0]).dtype == io and g.tensor(g.outputs[0]).dtype == io
    # uint8: a QUANTIZE (uint8 <-> int8) at each end; float32: QUANTIZE in, DEQUANTIZE out
    types = [op.type for op in g.ops]
    assert types[0] == "QUANTIZE" and types[-1] == ("QUANTIZE" if io == "uint8" else "DEQUANTIZE")
    assert "QUANTIZE" not in types[1:-1] and "DEQUANTIZE" not in types[1:-1]
    assert rep["io"] == io and rep["max_lsb_diff"] <= 1 and abs(rep["accuracy_drop_pts"]) <= 10
    assert (tmp_path / io / "model_model_settings.h").is_file()


# ------------------------------------------------------------------ op checks


def _graph(types: list[str]) -> Graph:
    """A chain t0 -> op0 -> t1 -> ... ; input t0, output the last tensor."""
    tensors = [Tensor(i, f"t{i}", (1, 4), "int8") for i in range(len(types) + 1)]
    ops = [Op(i, t, (i,), (i + 1,)) for i, t in enumerate(types)]
    return Graph(tensors, ops, (0,), (len(types),))


def test_check_ops() -> None:
    from tinynas.deploy.tflite_export import check_ops

    assert check_ops(_graph(["CONV_2D", "MEAN", "CONV_2D"]), "int8") == ["CONV_2D", "MEAN"]
    assert check_ops(_graph(["QUANTIZE", "CONV_2D", "DEQUANTIZE"]), "float32") == ["QUANTIZE", "CONV_2D",
                                                                                    "DEQUANTIZE"]
    with pytest.raises(UserError, match="no kernel for op REDUCE_PROD"):
        check_ops(_graph(["CONV_2D", "REDUCE_PROD"]), "int8")
    with pytest.raises(UserError, match="TRANSPOSE"):
        check_ops(_graph(["TRANSPOSE", "CONV_2D"]), "int8")
    with pytest.raises(UserError, match="QUANTIZE at the model's ends with io int8") as e:
        check_ops(_graph(["QUANTIZE", "CONV_2D"]), "int8")
    assert "with --io int8" in e.value.for_cli()  # the library names its parameter, the CLI its flag
    with pytest.raises(UserError, match=r"DEQUANTIZE mid-graph \(op 1\)"):
        check_ops(_graph(["QUANTIZE", "DEQUANTIZE", "CONV_2D"]), "float32")


# ------------------------------------------------------------------ bad input


def _fails(capsys, argv: list[str], *needles: str) -> str:
    assert cli_main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tinynas: error:"), err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def _npz(path: Path, n: int, channels: int) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (n, RES, RES, channels), dtype=np.uint8), y=np.arange(n) % 10)
    return path


def test_bad_inputs_exit_2_nothing_written(finetune_dir: Path, tmp_path: Path, capsys) -> None:
    from tinynas.space import largest_arch
    from tinynas.space.torch_model import build_model

    arch = str(finetune_dir / "arch.json")
    out = tmp_path / "out"
    base = [arch, "--out", str(out), "--target", "none"]
    other = tmp_path / "other.pt"
    torch.save(build_model(largest_arch(_spec())).state_dict(), other)
    _fails(capsys, [*base, "--weights", str(other)], "'stages.0.blocks.0.expand.conv.weight' has shape")
    sd = torch.load(finetune_dir / "model.pt", weights_only=True)
    del sd["classifier.bias"]
    torch.save(sd, other)
    _fails(capsys, [*base, "--weights", str(other)], "no tensor 'classifier.bias'")
    sd = torch.load(finetune_dir / "model.pt", weights_only=True)
    sd["head.extra"] = torch.zeros(2)
    torch.save(sd, other)
    _fails(capsys, [*base, "--weights", str(other)], "'head.extra', which the arch does not have")
    _fails(capsys, [*base, "--name", "!!!"], "'!!!'")
    _fails(capsys, [*base, "--rep-samples", "100"], "100 is outside 200..500")
    rgb, few = _npz(tmp_path / "rgb.npz", 400, 3), _npz(tmp_path / "few.npz", 150, 1)
    # beside data.json, --data only relocates the recorded data, and other data is caught
    _fails(capsys, [*base, "--data", str(few)], "differs from the recorded one")
    _fails(capsys, [*base, "--weights", str(tmp_path / "none.pt")], "does not exist")
    _fails(capsys, [*base, "--arena-bytes", "4096"], "--arena-bytes applies only to a .tflite")
    _fails(capsys, [str(tmp_path / "m.tflite"), "--out", str(out), "--io", "uint8"], "--io: only for an arch")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(finetune_dir / "arch.json", lone / "arch.json")
    _fails(capsys, [str(lone / "arch.json"), "--out", str(out)], "no weights")
    lone_base = [str(lone / "arch.json"), "--out", str(out), "--weights", str(finetune_dir / "model.pt")]
    _fails(capsys, lone_base, "--data D or --data-meta")
    _fails(capsys, [*lone_base, "--data", str(rgb)], "3 channel(s), the arch takes 1")
    _fails(capsys, [*lone_base, "--data", str(few)], "training split has 135 samples")
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _fails(capsys, base, "not empty", "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no staging left


@pytest.mark.slow
def test_late_failure_leaves_nothing(finetune_dir: Path, digits, tmp_path: Path, monkeypatch) -> None:
    """An op TFLM lacks, found after conversion, is named, and the staged folder goes away."""
    import tinynas.deploy.pipeline as pipeline
    from tinynas.deploy.pipeline import export_subnet

    real = pipeline.parse_tflite

    def with_bad_op(buf: bytes, source: str = "<bytes>") -> Graph:
        g = real(buf, source)
        g.ops.append(Op(len(g.ops), "REDUCE_PROD", (g.outputs[0],), (g.outputs[0],)))
        return g

    monkeypatch.setattr(pipeline, "parse_tflite", with_bad_op)
    arch, sd = _load(finetune_dir)
    with pytest.raises(UserError, match="REDUCE_PROD"):
        export_subnet(arch, sd, digits, tmp_path / "out", rep_samples=200, progress=False)
    assert list(tmp_path.iterdir()) == []
