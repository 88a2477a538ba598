"""The `tinynas` console script.

Each subcommand lives in its own module under tinynas.commands and exposes
`add_parser(subparsers)`; the module's parser sets `func`. Commands are imported
lazily by name so that `tinynas boards` does not pay for importing TensorFlow.
Every command's help ends with one example, taken from COMMANDS here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import VERBOSE_ENV, UserError, one_line, os_error_text
from .version import __version__

# (command name, module under tinynas.commands, one-line help, one example)
COMMANDS: list[tuple[str, str, str, str]] = [
    ("boards", "boards", "list the built-in boards, or show one",
     "tinynas boards show stm32f746g-disco"),
    ("profile", "profile", "memory, flash and latency of a .tflite on a board",
     "tinynas profile model.tflite --board nucleo-f446re --plot memory.png"),
    ("space", "space", "search-space optimization: pick width x resolution for a board",
     "tinynas space --board stm32f746g-disco --input 32x32x3 --classes 10 --out space"),
    ("export", "export", "int8 TFLite, ONNX, C arrays and firmware for a model",
     "tinynas export model.tflite --target arduino --out fw"),
    ("lut", "lut", "latency lookup tables: measure kits and import logs",
     "tinynas lut measure --board nucleo-f446re --out kit_f446"),
    ("train-supernet", "train_supernet", "train a weight-sharing supernet (SPOS)",
     "tinynas train-supernet --space space/space.json --data digits --epochs 5 --out supernet"),
    ("search", "search", "constrained search over a trained supernet",
     "tinynas search --supernet supernet --board stm32f746g-disco --candidates 100 --out search"),
    ("finetune", "finetune", "fine-tune a found subnet",
     "tinynas finetune --arch search/best_arch.json --supernet supernet --epochs 5 --out finetune"),
    ("run", "run", "data to firmware in one command",
     "tinynas run --board stm32f746g-disco --data digits --time 5m --out runs/demo"),
    ("baseline", "baseline", "train a hand-designed model (resnet8, dscnn, mobilenetv2) like a run",
     "tinynas baseline resnet8 --data digits --time 2m --out runs/resnet8"),
]

DESCRIPTION = """\
Find a neural network that provably fits a microcontroller, and ship it to
TensorFlow Lite Micro: an int8 .tflite, C arrays and a firmware project, with
the tensor arena, flash and latency known before anything is flashed.

Start with `tinynas run` (data and a board in, a model, firmware and a report
out), or `tinynas profile` to check a .tflite you already have. The other
commands are the stages of `run`, one at a time.
"""

EPILOG = """\
examples:
  tinynas boards                                     # the built-in boards
  tinynas profile model.tflite --board nucleo-f446re # will it fit, how fast?
  tinynas run --board stm32f746g-disco --out runs/demo

`tinynas COMMAND --help` describes a command and ends with an example.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"tinynas: error: {one_line(message)} (see `{self.prog} --help`)\n")
        sys.exit(2)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(prog="tinynas", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinynas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's, absl's and oneDNN's own log lines (hidden by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module, help_text, example in COMMANDS:
        if wanted != name:  # only the command that runs is imported (`tinynas --help` needs none)
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
        _add_example(sub.choices[name], example)
        _add_verbose(sub.choices[name])
    return parser


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """Accept --verbose after the command too (`tinynas run --verbose`), in nested commands as well."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's, absl's and oneDNN's own log lines")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)


def _add_example(parser: argparse.ArgumentParser, example: str) -> None:
    """End the command's help with its example, kept on one line (argparse would re-wrap it)."""
    if parser.epilog is None:
        parser.epilog = f"example:\n  {example}"
        parser.formatter_class = _ExampleFormatter


class _ExampleFormatter(argparse.HelpFormatter):
    """Wraps descriptions and help as usual, but prints the epilog as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def quiet_third_party(verbose: bool) -> None:
    """Keep TensorFlow's, absl's and oneDNN's log lines out of tinynas's output unless --verbose.

    Must run before TensorFlow is imported: TF_CPP_MIN_LOG_LEVEL is read once,
    at import. It hides the C++ INFO/WARNING lines (oneDNN, cpu_feature_guard,
    absl's "All log messages before absl::InitializeLog()"); the lines the
    converter prints directly are caught by errors.quiet_native_logs, and the
    Python absl logger ("WARNING:absl:Please consider providing the
    trackable_obj ...") is raised to ERROR here. Values the user set win.
    """
    import logging

    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
    logging.getLogger("absl").setLevel(logging.ERROR)


def one_thread_default() -> None:
    """One OpenMP thread per process unless the user set OMP_NUM_THREADS (torchrun sets 1 itself).

    Must run before torch is imported (build_parser imports the command). On a shared
    2-core machine two intra-op threads measured 0.12x to 1.0x of one
    (bench/bench_throughput.py): when another process holds one core, every parallel
    region waits for the thread that lost its core. A `tinynas run --time 20s` next to
    a compile in another session spent 75 s, with its throughput probe 60 times slower.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    one_thread_default()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    quiet_third_party(bool(getattr(args, "verbose", False)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        rc = args.func(args)
    except UserError as e:
        sys.stderr.write(f"tinynas: error: {one_line(e.for_cli())}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("tinynas: interrupted\n")
        return 130
    except OSError as e:  # a filesystem error the checks did not foresee: still one line, exit 2
        sys.stderr.write(f"tinynas: error: {one_line(os_error_text(e))}\n")
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
