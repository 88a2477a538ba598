"""tinynas: find a network that provably fits a microcontroller, and ship it to TFLite Micro.

The Python API mirrors the commands and returns what their `--json` prints:

    import tinynas

    board = tinynas.load_board("nucleo-f446re")        # a Board; board.to_dict() is `boards show --json`
    prof = tinynas.profile("model.tflite", board)       # dict: `tinynas profile --json`
    if not prof["fits"]:
        print(prof["violations"])
    tinynas.export("model.tflite", "fw", target="arduino", board=board)
    summary = tinynas.run(data="digits", board=board, out="runs/demo", time="5m")  # summary.json

Bad input raises tinynas.UserError with a one-line message, as the CLI prints it.
`import tinynas` stays light (no NumPy, PyTorch or TensorFlow): each function
imports what it needs when it is called.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import rundir as rd
from . import profile as _profile_module  # noqa: F401  (light) loaded before the function below is defined
from .errors import UserError
from .version import __version__

if TYPE_CHECKING:  # typing only: importing boards at run time is cheap, but keep this module minimal
    from .boards import Board

__all__ = ["UserError", "__version__", "export", "load_board", "profile", "run"]

PathLike = str | os.PathLike


def load_board(board: "str | PathLike | Board") -> "Board":
    """A built-in board by id or alias (case-insensitive), or a board .toml file.

    Returns the Board; its `to_dict()` is what `tinynas boards show ID --json` prints.
    A Board passed in is returned as it is, so every function takes either.
    """
    from .boards import Board, load_board as _load

    return board if isinstance(board, Board) else _load(board)


# The function tinynas.profile shares its name with the module tinynas/profile.py. Importing a
# submodule binds it as a package attribute, but only on its first import; the module was
# imported above, so this definition is what `tinynas.profile` names from here on. Code that
# needs the module imports from it (`from tinynas.profile import profile_graph`) or uses
# sys.modules["tinynas.profile"]; `import tinynas.profile as m` would give this function.
def profile(model: PathLike, board: "str | PathLike | Board" = "stm32f746g-disco", *, measure: bool = True,
            latency_ms: float | None = None, lut: PathLike | None = None,
            timeout_s: float = 60.0) -> dict[str, Any]:
    """Memory, flash, latency and a fit verdict of a .tflite on a board: `tinynas profile --json`.

    `measure` also runs the model in TFLM (a child process) for the measured arena;
    `latency_ms` adds a latency limit to the verdict; `lut` is a latency table file
    (default: the board's measured one, if any).
    """
    from .deploy.footprint import predict_if_calibrated  # NumPy, the planner
    from .latency import load_lut, lut_for_board  # the cost model pulls in NumPy
    from .profile import profile_model

    b = load_board(board)
    table = load_lut(lut, b) if lut is not None else lut_for_board(b)
    return profile_model(model, b, lut=table, latency_ms=latency_ms, measure=measure, timeout_s=timeout_s,
                         image_for=predict_if_calibrated)


def export(model: PathLike, out: PathLike, *, target: str = "cmake", board: "str | PathLike | Board | None" = None,
           name: str | None = None, force: bool = False, **options: Any) -> dict[str, Any]:
    """C arrays, op resolver, settings and a `target` firmware project in `out`: `tinynas export`.

    `model` is an int8 .tflite, or an arch .json from a search (then also
    weights=..., data_meta=... or data=..., as the command's options). Other
    keyword `options` are the command's, with underscores: labels, io,
    arena_margin, rep_samples, seed ... Returns {"out", "files"} and, for an
    arch input, "export": the export.json it wrote.
    """
    import json
    from pathlib import Path

    argv = ["export", os.fspath(model), "--out", os.fspath(out), "--target", target]
    if board is not None:
        argv += ["--board", _board_arg(board)]
    argv += _options(name=name, force=force, **options)
    _call_command(argv)
    root = Path(out)
    result: dict[str, Any] = {"out": str(root),
                              "files": sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())}
    if (root / rd.EXPORT_JSON).is_file():
        result["export"] = json.loads((root / rd.EXPORT_JSON).read_text(encoding="utf-8"))
    return result


def run(*, data: PathLike = "digits", board: "str | PathLike | Board | None" = None, out: PathLike | None = None,
        config: PathLike | None = None, time: str | None = None, force: bool = False,
        **options: Any) -> dict[str, Any]:
    """Data and a board in, a verified model, firmware and a report out: `tinynas run`.

    Returns summary.json (accuracy, arena, SRAM, flash, latency, fit, arch and
    the files written). `time` is a budget such as "90s" or "10m"; other keyword
    `options` are the command's, with underscores: budget, latency_ms, block,
    target, epochs, candidates, val_count, seed ... Progress goes to stderr.
    A model that does not fit raises UserError after summary.json is written.
    """
    import json
    from pathlib import Path

    argv = ["run", "--data", os.fspath(data)]
    argv += _options(board=_board_arg(board) if board is not None else None, out=out, config=config, time=time,
                     force=force, **options)
    args = _call_command(argv)
    from .pipeline.config import build_config, read_toml  # where the run wrote: --out, else run.toml's

    if out is None:
        from .pipeline.main import cli_overrides

        cfg = build_config(read_toml(args.config) if args.config else None, cli_overrides(args),
                           args.config or "--config")
        out = cfg["run"]["out"]
    return json.loads(rd.RunDir(Path(out)).summary_json.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ helpers: the API goes through the CLI's parser


def _board_arg(board: "str | PathLike | Board") -> str:
    """What --board takes: a Board becomes its id (built-in) or the .toml it was read from."""
    spec = getattr(board, "spec", None)
    return spec if spec is not None else os.fspath(board)


def _options(**kw: Any) -> list[str]:
    """Keyword arguments as command-line options: None is left out, True is a bare flag."""
    argv: list[str] = []
    for key, value in kw.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):  # e.g. labels=["yes", "no"]
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return argv


def _call_command(argv: list[str]) -> Any:
    """Parse `argv` exactly as the CLI would (same checks, same defaults) and run the command.

    The command's human-readable stdout is dropped (the caller returns data);
    an option the command does not know raises UserError, not SystemExit.
    """
    import contextlib
    import io

    from .cli import build_parser

    parser = build_parser(argv)
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            args = parser.parse_args(argv)
    except SystemExit:
        raise UserError(f"tinynas.{argv[0]}(): {err.getvalue().strip().removeprefix('tinynas: error: ')}") from None
    with contextlib.redirect_stdout(io.StringIO()):
        rc = args.func(args)
    if rc:
        raise UserError(f"tinynas.{argv[0]}() failed (exit {rc})")
    return args
