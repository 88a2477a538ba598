"""tinynas profile: the arena model against real TFLM, the report, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tinynas.planner import plan_arena
from tinynas.tflite_reader import read_tflite
from tinynas.tflm_measure import measure_arena


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinynas.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def measured(shared_models):
    return {k: measure_arena(p.read_bytes()) for k, p in shared_models.items()}


def test_measured_arena_matches_published_min_arena(measured, shared_min_arena):
    for name, m in measured.items():
        assert m.arena_bytes is not None, (name, m.error)
        assert abs(m.arena_bytes - shared_min_arena[name]) <= 16, (name, m.arena_bytes)


def test_estimated_arena_within_2_percent_of_tflm(shared_models, measured):
    for name, path in shared_models.items():
        est = plan_arena(read_tflite(path)).arena_bytes
        meas = measured[name].arena_bytes
        assert abs(est - meas) / meas <= 0.02, (name, est, meas)


def test_head_is_tflm_greedy_plan_exactly(shared_models, measured):
    for name, path in shared_models.items():
        assert plan_arena(read_tflite(path)).head_bytes == measured[name].head_bytes, name


def test_device_figure_is_smaller_structs_plus_scratch(shared_models):
    g = read_tflite(shared_models["pretrainedResnet_quant"])
    ref = plan_arena(g)
    dev32 = plan_arena(g, pointer_bytes=4, kernels="reference")
    cmsis = plan_arena(g, pointer_bytes=4, kernels="cmsis-nn", core="cortex-m7")
    assert dev32.tail_bytes < ref.tail_bytes
    assert cmsis.scratch and cmsis.arena_bytes > dev32.arena_bytes  # im2col of the 3x3 convs


def test_profile_json_keys_and_person_detect(shared_models):
    r = _cli("profile", str(shared_models["person_detect"]), "--board", "stm32f746g-disco", "--json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    for key in ("board", "macs", "arena_bytes_measured", "arena_bytes_estimated", "arena_bytes_device",
                "cmsis_scratch_bytes", "flash_bytes", "sram_bytes", "latency_ms", "fits",
                "violations", "ops"):
        assert key in p, key
    assert p["fits"] is True and p["arena_bytes_measured"] > 80_000
    assert {"index", "type", "macs", "weight_bytes", "latency_ms"} <= set(p["ops"][0])
    assert sum(o["macs"] for o in p["ops"]) == p["macs"] > 7_000_000


def test_check_exits_1_and_names_the_limit(shared_models, tmp_path):
    board = tmp_path / "tiny.toml"
    board.write_text('id = "tiny"\nname = "Tiny"\naliases = []\ncore = "cortex-m4"\n'
                     'clock_hz = 64000000\nsram_bytes = 65536\nflash_bytes = 131072\n'
                     'dsp = true\nsimd = true\nfpu = "sp"\nkernels = "cmsis-nn"\n'
                     'notes = ""\nsources = []\n[reserve]\nsram_bytes = 8192\n'
                     'flash_bytes = 32768\nreasoning = "test"\n')
    r = _cli("profile", str(shared_models["vww_96_int8"]), "--board", str(board), "--check",
             "--no-measure", "--json")
    assert r.returncode == 1, r.stderr
    p = json.loads(r.stdout)
    limits = {v["limit"]: v for v in p["violations"]}
    assert limits["sram"]["over_bytes"] == p["sram_bytes"] - 65536
    assert limits["flash"]["over_bytes"] == p["flash_bytes"] - 131072


def test_plot_and_table(shared_models, tmp_path):
    png = tmp_path / "mem.png"
    r = _cli("profile", str(shared_models["kws_ref_model"]), "--board", "nucleo-f446re",
             "--plot", str(png), "--no-measure")
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "verdict" in r.stdout and "DEPTHWISE_CONV_2D" in r.stdout


def _assert_clean_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]


def test_bad_inputs_get_one_line_errors(tmp_path, shared_models):
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    _assert_clean_error(_cli("profile", str(empty), "--no-measure"), "empty")
    trunc = tmp_path / "trunc.tflite"
    trunc.write_bytes(shared_models["kws_ref_model"].read_bytes()[:3000])
    _assert_clean_error(_cli("profile", str(trunc), "--no-measure"), "corrupt")
    rnd = tmp_path / "random.tflite"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    _assert_clean_error(_cli("profile", str(rnd), "--no-measure"), "not a tflite")
    _assert_clean_error(_cli("profile", str(tmp_path), "--no-measure"), "directory")
    onnx_file = tmp_path / "model.tflite"
    onnx_file.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x032.1:" + b"\x00" * 64)
    _assert_clean_error(_cli("profile", str(onnx_file), "--no-measure"), "onnx")
    _assert_clean_error(_cli("profile", str(shared_models["hello_world_int8"]), "--board", "stm32f746"),
                        "stm32f746g-disco")
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\nname = "X"\n')
    _assert_clean_error(_cli("profile", str(shared_models["hello_world_int8"]), "--board", str(bad)),
                        "missing")
    neg = tmp_path / "neg.toml"
    neg.write_text('id = "x"\nname = "X"\naliases = []\ncore = "cortex-m4"\nclock_hz = 1000\n'
                   'sram_bytes = -5\nflash_bytes = 1000\ndsp = true\nsimd = true\nfpu = "sp"\n'
                   'kernels = "cmsis-nn"\nnotes = ""\nsources = []\n')
    _assert_clean_error(_cli("profile", str(shared_models["hello_world_int8"]), "--board", str(neg)),
                        "sram_bytes")


def _mutants(data: bytes, rng: np.random.Generator, n: int):
    for i in range(n):
        b = bytearray(data)
        kind = i % 3
        if kind == 0:  # flip a handful of bytes anywhere
            for pos in rng.integers(0, len(b), int(rng.integers(1, 16))):
                b[pos] = int(rng.integers(0, 256))
        elif kind == 1:  # truncate
            b = b[: int(rng.integers(8, len(b)))]
        else:  # corrupt the first kilobyte, where the tables and offsets live
            for pos in rng.integers(0, min(1024, len(b)), 8):
                b[pos] = int(rng.integers(0, 256))
        yield bytes(b)


def test_fuzzed_models_never_crash_the_cli(shared_models, tmp_path, capsys):
    """Every mutant ends in a report (exit 0/1) or a one-line error (exit 2)."""
    from tinynas.cli import main

    rng = np.random.default_rng(1234)
    count = 0
    for name in ("hello_world_int8", "kws_ref_model", "micro_speech_quantized", "ad01_int8"):
        for j, blob in enumerate(_mutants(shared_models[name].read_bytes(), rng, 30)):
            f = tmp_path / f"{name}_{j}.tflite"
            f.write_bytes(blob)
            rc = main(["profile", str(f), "--no-measure", "--json"])
            assert rc in (0, 1, 2), (name, j, rc)
            err = capsys.readouterr().err
            if rc == 2:
                assert len(err.strip().splitlines()) == 1, err
            count += 1
    assert count == 120


def test_fuzzed_models_with_tflm_measurement_in_child(shared_models, tmp_path):
    """The runtime may crash on a mutant; the CLI must not."""
    rng = np.random.default_rng(99)
    for j, blob in enumerate(_mutants(shared_models["hello_world_int8"].read_bytes(), rng, 6)):
        f = tmp_path / f"m{j}.tflite"
        f.write_bytes(blob)
        r = _cli("profile", str(f), "--json", "--timeout", "20")
        assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr, r.stderr
