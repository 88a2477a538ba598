"""Search-space optimization: grids, the choice rule, `tinynas space` and its bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinynas.boards import load_board
from tinynas.cli import main
from tinynas.errors import UserError
from tinynas.space import default_space, load_space
from tinynas.spaceopt import choose, default_resolutions, optimize_space, plot_flops_cdf

PROFILES = Path(__file__).resolve().parent.parent / "tinynas" / "profiles"


def test_default_resolution_grids():
    assert default_resolutions((32, 32)) == [(r, r) for r in range(16, 65, 8)]
    assert default_resolutions((96, 96)) == [(r, r) for r in range(48, 193, 16)]
    mfcc = default_resolutions((49, 10))  # keeps the aspect ratio; anchored at the input
    assert (49, 10) in mfcc and mfcc[0] == (25, 5) and mfcc[-1] == (97, 20)
    assert default_resolutions((4, 4)) == [(4, 4)]  # 12 is past twice the input


def test_choose_prefers_mean_macs_among_eligible_spaces():
    rows = [{"fitting": 900, "fit_fraction": 0.9, "macs_mean": 5e6, "resolution": [32, 32], "width_mult": 0.3},
            {"fitting": 40, "fit_fraction": 0.04, "macs_mean": 9e6, "resolution": [48, 48], "width_mult": 0.5},
            {"fitting": 300, "fit_fraction": 0.3, "macs_mean": 7e6, "resolution": [40, 40], "width_mult": 0.4},
            {"fitting": 500, "fit_fraction": 0.5, "macs_mean": 7e6, "resolution": [40, 40], "width_mult": 0.4}]
    assert choose(rows) == 3  # 9e6 is below the 5% guard; the tie goes to the larger fitting share
    assert choose(rows[1:2]) is None


@pytest.fixture(scope="module")
def two_boards():
    spec = default_space(num_classes=10)
    return {b: optimize_space(spec, load_board(b), samples=300, rng=np.random.default_rng(0),
                              progress=False)
            for b in ("stm32f746g-disco", "arduino-nano-33-ble-sense")}


def test_boards_choose_different_spaces(two_boards, tmp_path):
    f746, nano = two_boards["stm32f746g-disco"], two_boards["arduino-nano-33-ble-sense"]
    picks = [(r.chosen_row["width_mult"], r.chosen_row["resolution"]) for r in (f746, nano)]
    assert picks[0] != picks[1], picks
    for r in (f746, nano):
        row = r.chosen_row
        assert row["fit_fraction"] >= 0.05
        assert row["max_fit_sram_bytes"] <= r.board.sram_bytes
        assert row["max_fit_flash_bytes"] <= r.board.flash_bytes
        eligible = [t["macs_mean"] for t in r.table if t["fit_fraction"] >= 0.05]
        assert row["macs_mean"] == max(eligible)
        assert len(r.table) == 9 * 7 and r.chosen_spec.stem_stride == 1
    # the larger board affords at least as many MACs
    assert f746.chosen_row["macs_mean"] >= nano.chosen_row["macs_mean"]
    plot_flops_cdf(f746, str(tmp_path / "cdf.png"))
    assert (tmp_path / "cdf.png").read_bytes()[:4] == b"\x89PNG"


def test_result_json_round_trips_through_load_space(two_boards, tmp_path):
    r = two_boards["stm32f746g-disco"]
    r.seed = 0
    doc = r.to_json()
    assert set(doc) >= {"board", "input", "classes", "chosen", "space", "table", "samples", "seed"}
    assert doc["input"] == [32, 32, 3] and doc["classes"] == 10
    p = tmp_path / "space.json"
    p.write_text(json.dumps(doc))
    spec = load_space(p)
    assert spec == r.chosen_spec
    assert spec.width_mult == doc["chosen"]["width_mult"]
    assert list(spec.resolution) == doc["chosen"]["resolution"]


def test_cli_writes_space_json_and_plot(tmp_path, capsys):
    out = tmp_path / "sp"
    rc = main(["space", "--board", "stm32f746g-disco", "--input", "49x10x1", "--classes", "12",
               "--widths", "0.3,0.5", "--resolutions", "25", "49", "--samples", "100", "--seed", "3",
               "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "chosen" in text and "MACs mean" in text
    doc = json.loads((out / "space.json").read_text())
    assert doc["input"] == [49, 10, 1] and doc["seed"] == 3 and len(doc["table"]) == 4
    assert {tuple(r["resolution"]) for r in doc["table"]} == {(25, 5), (49, 10)}
    spec = load_space(out / "space.json")
    assert spec.input_channels == 1 and spec.num_classes == 12
    assert (out / "flops_cdf.png").stat().st_size > 1000


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinynas.cli", "space", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, match", [
    (["--input", "32x32"], "--input '32x32': expected HxWxC"),
    (["--input", "32x32x3", "--widths", "0"], "width 0.0 is not a number > 0"),
    (["--input", "32x32x3", "--widths", "0.5,-1"], "width -1.0"),
    (["--input", "32x32x3", "--widths", ","], "width grid is empty"),
    (["--input", "32x32x3", "--resolutions", "0"], "not a positive side"),
    (["--input", "32x32x3", "--resolutions", "big"], "not a positive side"),
])
def test_bad_input_is_one_line_exit_2(args, match, tmp_path):
    r = _cli("--board", "stm32f746g-disco", "--classes", "10", "--out", str(tmp_path), *args)
    assert r.returncode == 2, r.stderr
    assert match in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_board_too_small_names_the_smallest_subnet(tmp_path):
    toml = (PROFILES / "adafruit-metro-m4.toml").read_text()
    toml = toml.replace('id = "adafruit-metro-m4"', 'id = "tiny-board"')
    toml = toml.replace("sram_bytes = 196_608", "sram_bytes = 40_960").replace(
        "flash_bytes = 524_288", "flash_bytes = 262_144")
    board = tmp_path / "tiny.toml"
    board.write_text(toml)
    r = _cli("--board", str(board), "--input", "32x32x3", "--classes", "10", "--samples", "50",
             "--out", str(tmp_path / "out"), "--quiet")
    assert r.returncode == 2
    msg = r.stderr.strip()
    assert len(msg.splitlines()) == 1 and "smallest needs SRAM" in msg and "B over" in msg
    assert not (tmp_path / "out" / "space.json").exists()
    with pytest.raises(UserError, match="no sampled subnet"):
        optimize_space(default_space(), load_board(str(board)), samples=20, progress=False)
