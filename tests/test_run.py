"""`tinynas run` end to end on tiny synthetic data: every output file, every summary key, resume."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SUMMARY_KEYS = ("board", "accuracy_float", "accuracy_int8", "arena_bytes", "sram_bytes", "flash_bytes",
                "latency_ms", "macs", "fits", "arch", "files")

TINY = """
[space]
samples = 60
widths = [0.2]
[train]
epochs = 1
batch_size = 64
[search]
candidates = 3
calib_images = 64
[finetune]
epochs = 1
[export]
rep_samples = 200
target = "cmake"
"""

OUTPUTS = ["run.toml", "summary.json", "report.md", "report.html", "report_budget.png",
           "space/space.json", "space/flops_cdf.png",
           "supernet/supernet.pt", "supernet/checkpoint.pt", "supernet/train.json", "supernet/train_curve.png",
           "supernet/data.json", "search/search.json", "search/best_arch.json", "search/pareto.png",
           "finetune/arch.json", "finetune/model.pt", "finetune/finetune.json",
           "export/model.tflite", "export/model.onnx", "export/export.json", "export/CMakeLists.txt",
           "export/model/tinynas_model_data.cc", "export/model/tinynas_model_settings.h",
           "export/model/tinynas_op_resolver.h",
           "profile/profile.json", "profile/profile.txt", "profile/memory.png", "profile/latency.png"]


def _tiny_npz(path: Path) -> Path:
    """Four classes of 16x16 RGB blobs in different corners: learnable in one epoch."""
    rng = np.random.default_rng(0)
    n = 320
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 60, (n, 16, 16, 3))
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * 8:(r + 1) * 8, q * 8:(q + 1) * 8, :] += 150
    np.savez(path, x=x.astype(np.uint8), y=y)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinynas.cli", "run", *args], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_run_end_to_end_then_skip_and_rerun_downstream(tmp_path):
    data, cfg, out = _tiny_npz(tmp_path / "tiny.npz"), tmp_path / "tiny.toml", tmp_path / "run"
    cfg.write_text(TINY)
    base = ["--board", "stm32f746g-disco", "--data", str(data), "--out", str(out), "--config", str(cfg)]
    r = _run(*base)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in OUTPUTS:
        assert (out / f).is_file(), f
    s = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(s)
    assert s["fits"] is True and s["board"] == "stm32f746g-disco"
    assert 0 <= s["accuracy_int8"] <= 1 and 0 <= s["accuracy_float"] <= 1
    prof = json.loads((out / "profile" / "profile.json").read_text())
    assert s["arena_bytes"] == prof["arena_bytes_firmware"] and s["flash_bytes"] == prof["flash_bytes"]
    # One SRAM figure: what the firmware compiles (kArenaBytes) + the board's reserve, everywhere.
    header = next((out / "export" / "model").glob("*_model_settings.h")).read_text()
    k_arena = int(re.search(r"constexpr int kArenaBytes(?:Device)? = (\d+);", header).group(1))
    assert s["sram_bytes"] == prof["sram_bytes"] == k_arena + prof["sram_reserved_bytes"]
    assert f"{s['sram_bytes']:,} B" in (out / "report.md").read_text()
    assert s["macs"] == prof["macs"]
    assert abs(prof["arena_bytes_estimated"] - prof["arena_bytes_measured"]) <= 0.02 * prof["arena_bytes_measured"]
    search = json.loads((out / "search" / "search.json").read_text())
    assert search["best"]["arch"] == s["arch"]
    assert search["best"]["sram_bytes"] == s["sram_bytes"]  # the cost model predicted the exported model
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6 and "tinynas run --board" in html

    again = _run(*base)  # nothing changed: every stage is skipped
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("finished earlier") == 6

    (out / "supernet" / "stage.json").unlink()  # as if killed after the last checkpoint
    cfg.write_text(TINY.replace("candidates = 3", "candidates = 4"))
    third = _run(*base)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "supernet: resuming from" in third.stderr and "space: finished earlier" in third.stderr
    assert "search: running" in third.stderr
    assert len(json.loads((out / "search" / "search.json").read_text())["history"]) == 4


def test_run_refuses_a_foreign_non_empty_out(tmp_path):
    (tmp_path / "x").write_text("keep me")
    r = _run("--out", str(tmp_path))
    assert r.returncode == 2 and "no earlier tinynas run" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "x").read_text() == "keep me"


@pytest.mark.parametrize("args, msg", [
    (["--budget", "huge"], "invalid choice"),
    (["--epochs", "0"], "train.epochs must be at least 1"),
    (["--time", "0"], "must be a positive duration"),
    (["--time", "ten"], "not a duration; e.g. 90s"),
    (["--board", "no-such-board"], "no-such-board"),
])
def test_run_bad_input_is_one_line(tmp_path, args, msg):
    r = _run("--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


TIMED = """
[space]
samples = 60
widths = [0.2]
[train]
paths = "searchable"
[export]
rep_samples = 200
target = "none"
"""


@pytest.mark.slow
def test_run_with_a_time_budget_finishes_within_it(tmp_path):
    """--time 20s on tiny data: every timed stage plans from its throughput, the run stays within budget + 10%."""
    data, cfg, out = _tiny_npz(tmp_path / "tiny.npz"), tmp_path / "timed.toml", tmp_path / "run"
    cfg.write_text(TIMED)
    t0 = time.monotonic()
    r = _run("--board", "stm32f746g-disco", "--data", str(data), "--out", str(out), "--config", str(cfg),
             "--time", "20s")
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert "supernet: " in r.stderr and " steps planned from " in r.stderr and "candidates planned from" in r.stderr
    tm = json.loads((out / "summary.json").read_text())["time"]
    assert tm["mode"] == "time" and tm["budget_s"] == 20 and tm["spent_s"] <= 22.0
    assert set(tm["stages"]) == {"space", "supernet", "search", "finetune", "export", "profile"}
    for st in ("supernet", "search", "finetune"):
        assert tm["stages"][st]["planned_s"] > 0 and tm["stages"][st]["spent_s"] > 0
    # the whole process, less export and profile, less Python's start-up (a few seconds, not budgeted)
    assert wall - tm["outside_budget_s"] <= 22.0 + STARTUP_S, (wall, tm)
    train = json.loads((out / "supernet" / "train.json").read_text())
    assert train["time"]["planned_steps"] >= 1 and train["config"]["total_steps"] == train["time"]["planned_steps"]
    assert train["paths"]["max_macs"] > 0 and 0 < train["paths_accepted"] <= 1  # train.paths = "searchable"
    assert "supernet: training only paths the search may hand back" in r.stderr
    assert "## Time" in (out / "report.md").read_text()
    assert 'time = "20s"' in (out / "run.toml").read_text()


STARTUP_S = 8.0  # interpreter + torch import before the run's clock starts, on a loaded 2-core machine


def test_run_refuses_time_and_epochs_together(tmp_path):
    r = _run("--out", str(tmp_path / "o"), "--time", "1m", "--epochs", "3")
    assert r.returncode == 2 and "--time and --epochs/--candidates both given" in r.stderr
    assert "Traceback" not in r.stderr
