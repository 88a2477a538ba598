"""Issue 15, items 4 and 5: bad paths and shapes are refused before work starts, in one line, exit 2.

Each test is a case a new user hit: a traceback, a hang or a half-done job
where one clear line belonged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinynas.cli import main
from tinynas.commands.space import parse_input
from tinynas.errors import UserError

SPACE = ["space", "--input", "32x32x3", "--classes", "10", "--samples", "5", "--quiet"]


def _one_line_error(capsys, rc: int, needle: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("tinynas: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and needle in err, err
    return err


def _model(shared_models) -> Path:
    return shared_models["hello_world_int8"]


# ------------------------------------------------------------------ item 5: outputs checked first


def test_space_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "some_file.txt"
    f.write_text("keep me")
    rc = main([*SPACE, "--out", str(f)])
    _one_line_error(capsys, rc, "is not a directory")
    assert f.read_text() == "keep me"


def test_space_out_below_a_file(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    rc = main([*SPACE, "--out", str(tmp_path / "a_file" / "space")])
    _one_line_error(capsys, rc, "is a file, not a directory")


def test_space_out_checked_before_scoring(tmp_path, capsys, monkeypatch):
    import tinynas.commands.space as opt  # where the command looks it up

    def never(*a, **k):
        raise AssertionError("scored spaces before checking --out")

    monkeypatch.setattr(opt, "optimize_space", never)
    (tmp_path / "f").write_text("")
    _one_line_error(capsys, main([*SPACE, "--out", str(tmp_path / "f")]), "--out")


@pytest.mark.parametrize("make", ["file", "non-empty dir"])
def test_lut_measure_refuses_out_before_converting(tmp_path, capsys, monkeypatch, make):
    import tinynas.commands.lut as kit  # where the command looks it up

    def never(*a, **k):
        raise AssertionError("converted kit models before checking --out")

    monkeypatch.setattr(kit, "write_kit", never)
    out = tmp_path / "some_file.txt"
    if make == "file":
        out.write_text("")
    else:
        out.mkdir()
        (out / "x").write_text("")
    rc = main(["lut", "measure", "--board", "nucleo-f446re", "--out", str(out)])
    _one_line_error(capsys, rc, "--out")


def test_lut_import_log_must_be_a_file(tmp_path, capsys):
    rc = main(["lut", "import", "--board", "nucleo-f446re", str(tmp_path)])
    _one_line_error(capsys, rc, "is a directory")


def test_lut_emulate_refuses_a_core_it_cannot_count(tmp_path, capsys):
    rc = main(["lut", "emulate", "--board", "rpi-pico", "--out", str(tmp_path / "t.json")])
    _one_line_error(capsys, rc, "the emulator counts")


def test_lut_emulate_refuses_what_is_not_a_tflm_tree(tmp_path, capsys):
    from tinynas.deploy import tflm_build

    if tflm_build.cross_cxx_problem() is not None:
        pytest.skip("no Arm C++ toolchain: the command stops at that check first")
    rc = main(["lut", "emulate", "--board", "nucleo-l4r5zi", "--tflm-dir", str(tmp_path),
               "--out", str(tmp_path / "t.json")])
    _one_line_error(capsys, rc, "is not a TFLM tree")


# ------------------------------------------------------------------ item 5: inputs that hang or deny


def test_profile_refuses_a_fifo_instead_of_hanging(tmp_path):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "profile", str(fifo), "--no-measure"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a regular file" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_profile_unreadable_model_is_one_line(tmp_path, capsys, monkeypatch, shared_models):
    """As root chmod 000 still reads, so the denial is simulated where the file is opened."""
    import tinynas.paths as paths

    model = tmp_path / "m.tflite"
    model.write_bytes(_model(shared_models).read_bytes())

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(paths, "open", denied, raising=False)
    rc = main(["profile", str(model), "--no-measure"])
    _one_line_error(capsys, rc, "Permission denied")


def test_profile_plot_into_a_missing_parent_file(tmp_path, capsys, shared_models):
    (tmp_path / "f").write_text("")
    rc = main(["profile", str(_model(shared_models)), "--no-measure", "--plot", str(tmp_path / "f" / "m.png")])
    _one_line_error(capsys, rc, "--plot")


def test_any_filesystem_error_is_one_line(tmp_path, capsys, monkeypatch, shared_models):
    """The safety net: an OSError no check foresaw still gives one line and exit 2."""
    import tinynas.commands.profile as prof  # where the command looks profile_model up

    def full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "x.json"))

    monkeypatch.setattr(prof, "profile_model", full)
    rc = main(["profile", str(_model(shared_models)), "--no-measure"])
    _one_line_error(capsys, rc, "No space left on device")


# ------------------------------------------------------------------ item 5: a failed run leaves nothing


def _bad_npz(tmp_path: Path) -> str:
    """An .npz that exists (so it passes the up-front check) but holds no x/y: it fails once loading starts."""
    import numpy as np

    p = tmp_path / "bad.npz"
    np.savez(p, z=np.zeros(3))
    return str(p)


def _failed_run(tmp_path: Path, out: Path, capsys) -> None:
    rc = main(["run", "--data", _bad_npz(tmp_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.splitlines()[-1].startswith("tinynas: error: "), err


def test_missing_data_is_refused_before_out_is_touched(tmp_path, capsys):
    rc = main(["run", "--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "runs" / "new")])
    _one_line_error(capsys, rc, "does not exist")
    assert not (tmp_path / "runs").exists()


def test_failed_run_validation_leaves_no_folder(tmp_path, capsys):
    _failed_run(tmp_path, tmp_path / "runs" / "new", capsys)
    assert not (tmp_path / "runs").exists()


def test_failed_run_validation_restores_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.toml").write_text("# an earlier run\n")
    (out / "space").mkdir()
    _failed_run(tmp_path, out, capsys)
    assert sorted(p.name for p in out.iterdir()) == ["run.toml", "space"]
    assert (out / "run.toml").read_text() == "# an earlier run\n"


def test_failed_run_validation_leaves_an_empty_out_empty(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    _failed_run(tmp_path, out, capsys)
    assert list(out.iterdir()) == []


def test_failed_baseline_validation_leaves_no_folder(tmp_path, capsys):
    rc = main(["baseline", "resnet8", "--data", _bad_npz(tmp_path), "--out", str(tmp_path / "runs" / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ item 4: one shape convention


@pytest.mark.parametrize("text, channels, want", [
    ("32x32x3", None, (32, 32, 3)), ("49x10x1", None, (49, 10, 1)), ("64x64x4", None, (64, 64, 4)),
    ("32x32x32", 32, (32, 32, 32)), ("32x32", 2, (32, 32, 2)), ("8X8X1", None, (8, 8, 1)),
])
def test_input_is_hwc(text, channels, want):
    assert parse_input(text, channels) == want


@pytest.mark.parametrize("text, channels, msg", [
    ("3x32x32", None, "did you mean 32x32x3"),  # PyTorch's CxHxW typed by habit
    ("32x32x16", None, "--channels 16"),
    ("32x32", None, "has no channel count"),
    ("32x32x3", 1, "--channels says 1"),
    ("32x32x0", None, "positive integers"),
])
def test_input_that_is_probably_not_hwc_is_refused(text, channels, msg):
    with pytest.raises(UserError, match=msg):
        parse_input(text, channels)


def test_space_cli_refuses_chw(tmp_path, capsys):
    rc = main(["space", "--input", "3x32x32", "--classes", "10", "--out", str(tmp_path / "s")])
    _one_line_error(capsys, rc, "did you mean 32x32x3")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("cmd", [["train-supernet", "--data", "digits"],
                                 ["finetune", "--arch", "a.json", "--supernet", "sn"]])
@pytest.mark.parametrize("value, needle", [("-1e-3", "must be in [0, 0.1)"), ("0.1", "must be in [0, 0.1)"),
                                           ("lots", "is not a number")])
def test_weight_decay_refused_as_run_refuses_it(tmp_path, capsys, cmd, value, needle):
    """--weight-decay takes what `tinynas run` takes for train.weight_decay, before any data is read."""
    with pytest.raises(SystemExit) as e:  # argparse refuses it: usage errors leave through sys.exit(2)
        main([*cmd, f"--weight-decay={value}", "--out", str(tmp_path / "o")])
    _one_line_error(capsys, e.value.code, needle)
