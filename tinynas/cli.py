"""The `tinynas` console script.

Each subcommand lives in its own module under tinynas.commands and exposes
`add_parser(subparsers)`; the module's parser sets `func`. Commands are imported
lazily by name so that `tinynas boards` does not pay for importing TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import UserError, one_line

# (command name, module under tinynas.commands, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("boards", "boards", "list the built-in boards, or show one"),
    ("profile", "profile", "memory, flash and latency of a .tflite on a board"),
    ("space", "space", "search-space optimization: pick width x resolution for a board"),
    ("export", "export", "int8 TFLite, ONNX, C arrays and firmware for a model"),
    ("lut", "lut", "latency lookup tables: measure kits and import logs"),
    ("train-supernet", "train_supernet", "train a weight-sharing supernet (SPOS)"),
    ("search", "search", "constrained search over a trained supernet"),
    ("finetune", "finetune", "fine-tune a found subnet"),
    ("run", "run", "data to firmware in one command"),
    ("baseline", "baseline", "train a hand-designed model (resnet8, dscnn, mobilenetv2) like a run"),
]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"tinynas: error: {one_line(message)} (see `{self.prog} --help`)\n")
        sys.exit(2)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="tinynas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module, help_text in COMMANDS:
        if wanted is not None and wanted != name:
            sub.add_parser(name, help=help_text)
            continue
        try:
            mod = importlib.import_module(f".commands.{module}", __package__)
        except ModuleNotFoundError as e:
            if e.name and e.name.endswith(f"commands.{module}"):
                sub.add_parser(name, help=help_text + " (not available yet)")
                continue
            raise
        mod.add_parser(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # TensorFlow's C++ start-up chatter buries our progress lines; users can still override it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        rc = args.func(args)
    except UserError as e:
        sys.stderr.write(f"tinynas: error: {one_line(e)}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("tinynas: interrupted\n")
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
