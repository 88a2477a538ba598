"""Issue 15, item 11: `import tinynas` offers profile, load_board, export and run, returning the --json data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tinynas
from tinynas.cli import main


def test_import_is_light():
    code = ("import sys, tinynas; heavy = [m for m in ('numpy', 'torch', 'tensorflow', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_api_is_documented():
    for name in ("profile", "load_board", "export", "run"):
        f = getattr(tinynas, name)
        assert f.__doc__ and name in tinynas.__all__
    assert "tinynas.profile(" in tinynas.__doc__


def test_load_board_is_boards_show_json(capsys):
    b = tinynas.load_board("F446")  # aliases and case work as on the command line
    assert main(["boards", "show", "nucleo-f446re", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(b.to_dict()))
    assert tinynas.load_board(b) is b and b.spec == "nucleo-f446re"


def test_profile_is_profile_json(capsys, shared_models):
    model = shared_models["hello_world_int8"]
    got = tinynas.profile(model, "nucleo-f446re", measure=False)
    assert main(["profile", str(model), "--board", "nucleo-f446re", "--no-measure", "--json"]) == 0
    assert got == json.loads(capsys.readouterr().out)


def test_profile_bad_input_raises_user_error(tmp_path):
    os.mkfifo(tmp_path / "fifo.tflite")
    with pytest.raises(tinynas.UserError, match="not a regular file"):
        tinynas.profile(tmp_path / "fifo.tflite", measure=False)
    with pytest.raises(tinynas.UserError, match="no-such-board"):
        tinynas.profile(tmp_path / "fifo.tflite", "no-such-board")


@pytest.mark.slow
def test_export_tflite(tmp_path, shared_models):
    r = tinynas.export(shared_models["hello_world_int8"], tmp_path / "fw", target="cmake", name="sine",
                       board=tinynas.load_board("nucleo-f446re"))
    assert r["out"] == str(tmp_path / "fw") and "model/sine_model_data.cc" in r["files"]
    with pytest.raises(tinynas.UserError, match="not empty"):
        tinynas.export(shared_models["hello_world_int8"], tmp_path / "fw")
    with pytest.raises(tinynas.UserError, match="unrecognized arguments"):
        tinynas.export(shared_models["hello_world_int8"], tmp_path / "fw2", no_such_option=1)


def test_run_passes_options_through_the_cli_parser(tmp_path, monkeypatch):
    """run() builds the same argparse namespace as `tinynas run` and returns summary.json."""
    import tinynas.pipeline.main as pm

    seen = {}

    def fake_run(args):
        seen.update(vars(args))
        os.makedirs(args.out)
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump({"fits": True, "board": args.board}, f)
        return 0

    monkeypatch.setattr(pm, "run", fake_run)
    s = tinynas.run(board=tinynas.load_board("nucleo-f446re"), out=tmp_path / "r", time="2m", latency_ms=50,
                    block="res", force=True)
    assert s == {"fits": True, "board": "nucleo-f446re"}
    assert seen["time"] == "2m" and seen["latency_ms"] == 50.0 and seen["block"] == "res" and seen["force"]
    assert seen["data"] == "digits"
    with pytest.raises(tinynas.UserError, match="'nope' is not a block type"):
        tinynas.run(out=tmp_path / "r2", block="nope")
