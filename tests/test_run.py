"""`tinynas run` end to end on the embedded digits data, with a tiny budget."""

from __future__ import annotations

import json
import subprocess
import sys


def test_run_produces_a_fitting_verified_model(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "run", "--board", "stm32f746g-disco",
                        "--out", str(out), "--epochs", "2", "--samples", "40", "--width", "0.3",
                        "--target", "cmake"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    for key in ("board", "accuracy_float", "accuracy_int8", "arena_bytes", "sram_bytes", "flash_bytes",
                "latency_ms", "macs", "fits", "arch", "files"):
        assert key in s, key
    assert s["fits"] is True
    assert s["accuracy_float"] > 0.3  # ten classes; two epochs already learn a lot
    assert abs(s["accuracy_int8"] - s["accuracy_float"]) <= 0.05  # int8 in TFLM tracks float
    prof = json.loads((out / "profile" / "profile.json").read_text())
    assert s["arena_bytes"] == prof["arena_bytes_device"]
    meas, est = prof["arena_bytes_measured"], prof["arena_bytes_estimated"]
    assert abs(est - meas) / meas <= 0.02
    assert (out / "firmware" / "model" / "tinynas_model_model_data.cc").is_file()
    assert (out / "report.md").read_text().startswith("# tinynas run")


def test_run_refuses_non_empty_out(tmp_path):
    (tmp_path / "x").write_text("keep me")
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "run", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not empty" in r.stderr and "Traceback" not in r.stderr
