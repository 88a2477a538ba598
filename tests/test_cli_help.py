"""Issue 15, item 9: help a new user can act on, and options that mean one thing everywhere."""

from __future__ import annotations

import shlex

import pytest

from tinynas.boards import DEFAULT_BOARD
from tinynas.cli import COMMANDS, build_parser, main

NAMES = [c[0] for c in COMMANDS]


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_says_what_tinynas_does(capsys):
    out = _help(capsys)
    assert "console script" not in out
    assert "microcontroller" in out and "tinynas run" in out and "examples:" in out


@pytest.mark.parametrize("name", NAMES)
def test_every_command_ends_with_an_example_that_parses(capsys, name):
    out = _help(capsys, name)
    example = out.rstrip().splitlines()[-1].strip()
    assert out.rstrip().splitlines()[-2].strip() == "example:", out
    argv = shlex.split(example)
    assert argv[:2] == ["tinynas", name]
    build_parser(argv[1:]).parse_args(argv[1:])  # the example is valid syntax for this command


@pytest.mark.parametrize("name", ["profile", "space", "search", "run"])
def test_board_defaults_the_same_way(capsys, name):
    """--board is optional wherever a model is checked against a board, with the same default."""
    out = " ".join(_help(capsys, name).split())
    assert "--board ID" in out and f"else {DEFAULT_BOARD}" in out or f"(default: {DEFAULT_BOARD})" in out
    args = build_parser([name]).parse_args([name, *{"profile": ["m.tflite"], "search": ["--supernet", "s",
                                                                                      "--out", "o"],
                                                    "space": ["--input", "8x8x1", "--classes", "2"]}.get(name, [])])
    assert args.board in (DEFAULT_BOARD, None)  # None: `run` leaves it to run.toml, whose default is the same


def test_search_counts_candidates_like_run(tmp_path, capsys):
    args = build_parser(["search"]).parse_args(["search", "--supernet", "s", "--out", "o", "--candidates", "7"])
    assert args.candidates == 7
    assert "--candidates" in _help(capsys, "search") and "--budget" not in _help(capsys, "search")


def test_search_budget_still_works_with_a_warning(tmp_path, capsys):
    rc = main(["search", "--supernet", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--budget", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and "deprecated; use --candidates" in err


def test_verbose_is_accepted_before_and_after_the_command():
    for argv in (["-v", "boards"], ["boards", "--verbose"], ["lut", "measure", "--board", "x", "--out", "o", "-v"]):
        assert build_parser(argv).parse_args(argv).verbose is True
    assert build_parser(["boards"]).parse_args(["boards"]).verbose is False


def test_version(capsys):
    from tinynas import __version__

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"tinynas {__version__}"


def test_one_openmp_thread_unless_the_user_says(monkeypatch):
    """Two OpenMP threads on a shared 2-core box can run 60x slower than one; a user's value wins."""
    import os

    from tinynas.cli import one_thread_default

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    one_thread_default()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    one_thread_default()
    assert os.environ["OMP_NUM_THREADS"] == "2"
