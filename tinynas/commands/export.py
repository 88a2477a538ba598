"""`tinynas export`: C arrays, headers and a firmware project for a model.

The command has three stages with a seam between each, so new input forms and
new arena sources slot in without touching the rest:

The library half lives in `tinynas.deploy.project`:

1. load: `load_model_input` dispatches on the input's suffix to a loader that
   returns a ModelInput (TFLite bytes + Graph); today `from_tflite`.
2. arena: `plan_arena` asks `tinynas.tflm_measure.measure_arena` (unless the
   caller measured already) and `tinynas.planner.cmsis_scratch_bytes`, then adds
   the margin.
3. write: `write_project` has cgen make the four C/C++ files and
   firmware.render_target lay out the target project, inside a staged folder that
   replaces --out only when everything succeeded.

An architecture JSON (+ PyTorch weights + data) takes a longer road through
`tinynas.deploy.pipeline.export_subnet` (convert to int8, ONNX, verify in TFLM and
LiteRT) and joins stages 2 and 3 with the TFLite it made; `run_arch` is that
road's CLI end.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .. import rundir as rd
from ..atomic import staged_dir
from ..boards import add_board_argument, load_board
from ..cgen import c_identifier, check_tflm_ops
from ..deploy.firmware_settings import QEMU_TARGET
from ..deploy.pipeline import DEFAULT_REP_SAMPLES, export_subnet, format_summary, load_export_data
from ..deploy.project import (ARCH_SUFFIX, DEFAULT_MARGIN, MIN_MARGIN_BYTES, load_model_input, model_op_types,
                              plan_arena, write_project)
from ..deploy.qemu_run import check_run_request, run_on_qemu
from ..deploy.tflite_export import load_weights, torch_subnet
from ..errors import UserError
from ..firmware import available_targets, load_target
from ..graph import Graph
from ..space.arch import load_arch

DEFAULT_NAME = "tinynas"  # cgen adds "_model": tinynas_model_data.cc, namespace tinynas_model


def parse_labels(value: str | None) -> list[str] | None:
    """--labels: a file with one label a line, or a comma-separated list."""
    if value is None:
        return None
    p = Path(value)
    if p.is_file():
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise UserError(f"labels file {p} is not UTF-8 text; give one label per line") from None
        labels = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if not labels:
            raise UserError(f"labels file {p} is empty; give one label per line")
        return labels
    if "," in value:
        labels = [s.strip() for s in value.split(",")]
        if any(not s for s in labels):
            raise UserError(f"--labels {value!r} has an empty entry; give non-empty comma-separated labels")
        return labels
    raise UserError(
        f"--labels {value!r} is neither an existing file nor a comma-separated list "
        "(e.g. --labels cat,dog or --labels labels.txt)"
    )


def _check_labels(labels: list[str] | None, graph: Graph) -> None:
    """Fail before the (slower) arena measurement when labels cannot match output 0."""
    if labels is None or not graph.outputs:
        return
    n = graph.tensor(graph.outputs[0]).num_elements
    if len(labels) != n:
        raise UserError(f"{len(labels)} labels given but output 0 has {n} elements; "
                        "pass one label per output class")


def _margin(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number (e.g. 0.05 for 5%)") from None
    if math.isnan(f) or not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be between 0 and 1 (e.g. 0.05 for 5%)")
    return f


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of bytes") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive number of bytes")
    return n


def _target_help(target: str) -> str:
    """'name (summary)'; a broken manifest must not break --help (render reports it)."""
    try:
        summary = load_target(target).summary
    except UserError:
        summary = ""
    return f"{target} ({summary})" if summary else target


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return n


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=(
        "Write the model as C arrays with an op resolver and settings header, inside a "
        "firmware project skeleton for the chosen target. From an architecture JSON + "
        "PyTorch weights, first convert to int8 TFLite and float ONNX and verify both "
        "(accuracy, TFLM vs LiteRT, arena), writing model.tflite, model.onnx and export.json."))
    p.add_argument("model", help="the model to export: a .tflite, or an arch .json (then also "
                                 "--weights and --data/--data-meta, defaulting to model.pt and "
                                 "data.json beside it)")
    targets = available_targets()
    p.add_argument("--target", default="cmake", choices=targets,
                   help="project skeleton to generate (default cmake): "
                        + "; ".join(_target_help(t) for t in targets))
    p.add_argument("--out", required=True, help="output folder (must be empty unless --force)")
    p.add_argument("--name", help="C identifier stem for symbols and files (default: the model's file name)")
    p.add_argument("--labels", help="class labels: a file with one per line, or a comma-separated list")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--arena-margin", type=_margin, default=DEFAULT_MARGIN, metavar="F",
                   help=f"fraction added to the measured arena (default {DEFAULT_MARGIN}; "
                        f"at least {MIN_MARGIN_BYTES} B unless 0)")
    add_board_argument(p)
    p.add_argument("--tflm-dir", metavar="DIR", default=os.environ.get("TFLM_DIR") or None,
                   help="TFLM Cortex-M tree (create_tflm_tree.py with CMSIS-NN) or its .tar.xz (default "
                        "$TFLM_DIR): with --target qemu, build the project against it and run it under "
                        "qemu-system-arm")
    p.add_argument("--op-counts", action="store_true",
                   help="with --target qemu and --tflm-dir: also print each operator's instruction count "
                        "(TFLM's profiler hook; QEMU -icount, deterministic)")
    p.add_argument("--arena-bytes", type=_positive_int, metavar="N",
                   help="use N bytes as the arena instead of measuring (rounded up to 16, no margin; "
                        ".tflite input only)")
    g = p.add_argument_group("architecture JSON input")
    g.add_argument("--weights", metavar="PT", help="state_dict of build_model(arch) (default: model.pt beside it)")
    g.add_argument("--data", metavar="D", help="training data (digits, .npz, folder or .zip); with --data-meta "
                                               "only where that data lives now")
    g.add_argument("--data-meta", metavar="JSON", help="data record of the training run: same split and "
                                                       "preprocessing (default: data.json beside the arch)")
    g.add_argument("--io", choices=["int8", "uint8", "float32"],
                   help="input/output type (default int8; uint8 and float32 add a QUANTIZE/DEQUANTIZE at each end)")
    g.add_argument("--rep-samples", type=_count, metavar="N",
                   help="training samples that calibrate the int8 ranges, 200..500 (default 300)")
    g.add_argument("--verify-limit", type=_count, metavar="N",
                   help="verify on N random held-out images (default: all of them)")
    g.add_argument("--seed", type=int, help="picks the calibration and verification samples (default 0)")
    p.set_defaults(func=run)
    return p


ARCH_ONLY = ("weights", "data", "data_meta", "io", "rep_samples", "verify_limit", "seed")


def run(args: argparse.Namespace) -> int:
    if Path(args.model).suffix.lower() == ARCH_SUFFIX:
        return run_arch(args)
    given = [f"--{k.replace('_', '-')}" for k in ARCH_ONLY if getattr(args, k, None) is not None]
    if given:
        raise UserError(f"{', '.join(given)}: only for an architecture JSON input, not for {args.model}")
    model = load_model_input(args.model, args)
    name = c_identifier(args.name if args.name is not None else model.default_name)
    ops = model_op_types(model)
    check_tflm_ops(ops)
    labels = parse_labels(args.labels)
    _check_labels(labels, model.graph)
    # Staging first refuses a non-empty --out before the measurement, and replaces
    # --out only once every file is written.
    board = load_board(args.board)
    tree = check_run_request(args.target, board, args.tflm_dir)
    with staged_dir(args.out, force=args.force) as tmp:
        arena = plan_arena(model, args.arena_margin, args.arena_bytes, board=board)
        written = write_project(model, args.target, tmp, name, labels, arena, ops, board)

    print(f"exported {name} ({args.target}, {board.id}) to {args.out}")
    print(f"  model  {len(model.tflite_bytes):,} B from {model.source}")
    print(f"  ops    {len(ops)}: {', '.join(ops)}")
    print(f"  arena  {arena.one_line()}")
    print(f"  files  {len(written)}: {', '.join(p.as_posix() for p in written)}")
    if tree is not None:
        print(run_on_qemu(Path(args.out), tree, board, op_counts=args.op_counts))
    elif args.target == QEMU_TARGET:
        print("  run    pass --tflm-dir (or set TFLM_DIR) to a TFLM Cortex-M tree to build and run it here")
    return 0


def _beside(arch_path: Path, given: str | None, sibling: str) -> Path | None:
    """An explicit path, else the finetune folder's sibling file if it exists."""
    if given is not None:
        return Path(given)
    p = arch_path.parent / sibling
    return p if p.is_file() else None


def run_arch(args: argparse.Namespace) -> int:
    """Export from arch JSON + weights: checks that need no data come first, so they fail fast."""
    if args.arena_bytes is not None:
        raise UserError("--arena-bytes applies only to a .tflite input; from an arch the arena is measured")
    board = load_board(args.board)
    tree = check_run_request(args.target, board, args.tflm_dir)
    arch_path = Path(args.model)
    arch = load_arch(arch_path)
    name = c_identifier(args.name if args.name is not None else DEFAULT_NAME)
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UserError(f"output directory {out} is not empty; pass --force to replace it")
    weights = _beside(arch_path, args.weights, rd.MODEL_WEIGHTS)
    if weights is None:
        raise UserError(f"no weights: pass --weights model.pt (none beside {arch_path})")
    state_dict = load_weights(weights)
    torch_subnet(arch, state_dict)  # a mismatch fails before the data loads
    bundle, record = load_export_data(args.data, _beside(arch_path, args.data_meta, "data.json"))
    report = export_subnet(arch, state_dict, bundle, out, io=args.io or "int8", target=args.target, name=name,
                           board=board,
                           rep_samples=args.rep_samples or DEFAULT_REP_SAMPLES, force=args.force,
                           verify_limit=args.verify_limit, labels=parse_labels(args.labels),
                           arena_margin=args.arena_margin, seed=args.seed or 0, data_record=record)
    print(format_summary(report, out))
    if tree is not None:
        print(run_on_qemu(out, tree, board, op_counts=getattr(args, "op_counts", False)))
    return 0
