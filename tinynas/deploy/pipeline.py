"""`export_subnet`: a trained subnet (arch + state_dict) to a verified firmware folder.

One staged folder receives everything, and replaces `out_dir` only when every
step passed, so a failed check never leaves a model behind that looks exported:

    weights  -> torch model, checked tensor by tensor against the arch
    data     -> representative training samples and held-out images, both
                through the training preprocessing
    keras    -> Keras mirror, float-equivalent to PyTorch within 1e-4
    convert  -> full-integer TFLite, op list checked
    onnx     -> float ONNX, onnxruntime parity within 1e-4 on 32 inputs
    arena    -> TFLM-measured arena, planner estimate, CMSIS-NN scratch
    verify   -> float vs int8 top-1, TFLM vs LiteRT agreement
    c        -> C arrays, op resolver, settings and the target project, by the
                same code as `tinynas export MODEL.tflite`
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .. import rundir as rd
from ..atomic import staged_dir
from ..boards import Board, DEFAULT_BOARD
from ..cgen import c_identifier
from ..data import load_dataset
from ..data.meta import data_meta, load_from_meta
from ..errors import UserError, option
from ..firmware import load_target
from ..paths import read_json
from ..space.arch import arch_hash, validate_arch
from ..tflite_reader import parse_tflite
from . import onnx_export, project, tflite_export as tx, verify
from .input_stage import input_stage
from .tflite_export import IO_TYPES, check_calibration_data

DEFAULT_REP_SAMPLES = 300
EXPORT_JSON, TFLITE_FILE, ONNX_FILE = rd.EXPORT_JSON, rd.TFLITE_FILE, rd.ONNX_FILE


class _Clock:
    """Wall time per stage, and a progress line per stage on stderr."""

    def __init__(self, progress: bool) -> None:
        self.progress, self.times, self.t0 = progress, {}, time.perf_counter()

    @contextmanager
    def stage(self, key: str, what: str) -> Iterator[None]:
        if self.progress:
            print(f"[export] {what}", file=sys.stderr, flush=True)
        t = time.perf_counter()
        yield
        self.times[key] = round(time.perf_counter() - t, 2)

    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 2)


def load_export_data(data: str | os.PathLike | None, meta_path: str | os.PathLike | None) -> tuple[Any, dict]:
    """The bundle to export with, and its data record.

    A data record (data.json from train-supernet/finetune) reloads exactly the
    training split and preprocessing; `data` then only says where the data
    lives now. Without a record, `data` is loaded with the default split.
    """

    if meta_path is not None:
        meta = read_json(meta_path, "data record", "; pass the data.json written with the model")
        bundle = load_from_meta(meta, data=data)
        return bundle, data_meta(data if data is not None else meta["data"], bundle, **meta["load"])
    if data is None:
        raise UserError(f"no data to calibrate and verify with: pass {option('data')} D or {option('data_meta')} data.json "
                        "(the one written next to the model)")
    bundle = load_dataset(data)
    return bundle, data_meta(data, bundle)


def _check_request(arch: Mapping, bundle: Any, io: str, target: str, labels: Sequence[str] | None,
                   verify_limit: int | None, rep_samples: int) -> list[str]:
    """Cheap checks before any work; returns the labels to compile in."""

    if io not in IO_TYPES:
        raise UserError(f"io {io!r} is not one of {', '.join(IO_TYPES)}")
    load_target(target)
    if bundle.num_classes != arch["num_classes"]:
        raise UserError(f"data has {bundle.num_classes} classes, the arch has {arch['num_classes']} outputs; "
                        "use the data the model was trained on")
    check_calibration_data(bundle, arch, rep_samples)
    if verify_limit is not None and verify_limit < 1:
        raise UserError(f"verify limit {verify_limit} must be at least 1")
    labels = list(bundle.class_names if labels is None else labels)
    if len(labels) != arch["num_classes"]:
        raise UserError(f"{len(labels)} labels given but the model has {arch['num_classes']} classes; "
                        "pass one label per class")
    return labels


def _tensor_io(graph: Any, i: int) -> dict[str, Any]:
    t = graph.tensor(i)
    return {"shape": list(t.shape), "dtype": t.dtype, "scale": t.scale[0] if t.scale else None,
            "zero_point": t.zero_point[0] if t.zero_point else None}


def export_subnet(arch: Mapping, state_dict: Mapping[str, Any], bundle: Any, out_dir: str | os.PathLike, *,
                  io: str = "int8", target: str = "cmake", name: str = "model",
                  rep_samples: int = DEFAULT_REP_SAMPLES, force: bool = False, progress: bool = True,
                  verify_limit: int | None = None, labels: Sequence[str] | None = None,
                  arena_margin: float | None = None, seed: int = 0,
                  data_record: Mapping | None = None, board: Board | None = None) -> dict[str, Any]:
    """Export a trained subnet to `out_dir`; returns the export.json content.

    `state_dict` is that of `build_model(arch)`; `bundle` is the training data
    (its train split calibrates, its val split verifies; `verify_limit` caps the
    images verified). `seed` picks the calibration samples. `board` (a Board or an id;
    default the default board) sets the firmware's core flags. Raises UserError on
    bad input or a failed check, leaving `out_dir` untouched.
    """

    arch = validate_arch(arch)
    ident = c_identifier(name)
    labels = _check_request(arch, bundle, io, target, labels, verify_limit, rep_samples)
    clock = _Clock(progress)
    with staged_dir(out_dir, force=force) as tmp:
        report = _build(arch, state_dict, bundle, tmp, clock, io=io, target=target, ident=ident,
                        rep_samples=rep_samples, verify_limit=verify_limit, labels=labels,
                        arena_margin=arena_margin, seed=seed, progress=progress, board=board)
        report["preprocessing"] = bundle.preprocessing  # what firmware must do to raw pixels
        report["data"] = dict(data_record) if data_record is not None else None
        report["timings_s"] = clock.times
        report["wall_s"] = clock.total()
        (tmp / EXPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _build(arch: dict, state_dict: Mapping, bundle: Any, tmp: Path, clock: _Clock, *, io: str, target: str,
           ident: str, rep_samples: int, verify_limit: int | None, labels: list[str],
           arena_margin: float | None, seed: int, progress: bool, board: Board | None = None) -> dict[str, Any]:

    rng = np.random.default_rng(seed)
    with clock.stage("weights", "loading weights"):
        model = tx.torch_subnet(arch, state_dict)
    with clock.stage("data", f"preprocessing {rep_samples} calibration and the held-out images"):
        rep = tx.representative_nchw(bundle, arch, rep_samples, rng)
        x_val, y_val = verify.held_out(bundle, arch, verify_limit, rng)
    with clock.stage("keras", "building the Keras mirror and checking float equivalence"):
        km, keras_diff = tx.keras_mirror(arch, model, rep[:tx.EQUIVALENCE_SAMPLES])
    with clock.stage("convert", f"converting to full-integer TFLite (io {io})"):
        tfl = tx.convert(km, rep, io)
        graph = parse_tflite(tfl, source=TFLITE_FILE)
        ops = tx.check_ops(graph, io)
    with clock.stage("onnx", "exporting ONNX and checking it in onnxruntime"):
        onnx_bytes = onnx_export.export_onnx(model, tx.arch_input(arch))
        onnx_diff = onnx_export.onnx_parity(onnx_bytes, model, rep[:onnx_export.PARITY_SAMPLES])
    with clock.stage("arena", "measuring the arena in TFLM"):
        arena = verify.arena_figures(tfl, graph)
    with clock.stage("verify", f"verifying on {len(y_val)} held-out images (PyTorch, TFLM, LiteRT)"):
        checks = verify.verify_tflite(tfl, graph, model, x_val, y_val, arena["arena_bytes_measured"], progress)
    with clock.stage("c", "writing C files" + ("" if target == "none" else f" and the {target} project")):
        (tmp / TFLITE_FILE).write_bytes(tfl)
        (tmp / ONNX_FILE).write_bytes(onnx_bytes)
        fw, written = _write_c(tfl, graph, ops, tmp, target, ident, labels, arena, arena_margin, board,
                               input_stage(bundle.preprocessing, graph))
    return {
        "name": ident, "target": target, "io": io, "arch_hash": arch_hash(arch),
        "params": int(sum(p.numel() for p in model.parameters())), "macs": int(graph.total_macs),
        **checks, **arena, "arena_bytes_firmware": fw.firmware_bytes,
        "arena_bytes_firmware_host": fw.host_bytes or fw.firmware_bytes, "arena_firmware_how": fw.measured_how,
        "ops": ops, "model_bytes": len(tfl), "onnx_bytes": len(onnx_bytes),
        "keras_max_abs_diff": keras_diff, "onnx_max_abs_diff": onnx_diff,
        "rep_samples": int(len(rep)), "seed": seed,
        "input": _tensor_io(graph, graph.inputs[0]), "output": _tensor_io(graph, graph.outputs[0]),
        "labels": labels, "arch": arch,
        "files": sorted([TFLITE_FILE, ONNX_FILE, EXPORT_JSON, *(p.as_posix() for p in written)]),
    }


def _write_c(tfl: bytes, graph: Any, ops: list[str], out: Path, target: str, ident: str,
             labels: list[str], arena: Mapping[str, int], margin: float | None,
             board: Board | None = None, stage: Any = None) -> tuple[project.FirmwareArena, list[Path]]:
    """The .tflite export path's own stages 2 and 3, fed the arena already measured."""
    model = project.ModelInput(tflite_bytes=tfl, graph=graph, source=TFLITE_FILE, default_name=ident)
    fw = project.plan_arena(model, project.DEFAULT_MARGIN if margin is None else margin,
                            measurement=(arena["arena_bytes_measured"], project.MEASURED_HOW),
                            board=board if board is not None else DEFAULT_BOARD)
    return fw, project.write_project(model, target, out, ident, labels, fw, ops,
                                                    board if board is not None else DEFAULT_BOARD, stage)


def format_summary(r: Mapping[str, Any], out_dir: str | os.PathLike) -> str:
    """The printed summary of an export.json."""
    t = r["timings_s"]
    return "\n".join([
        f"exported {r['name']} ({r['target']}, io {r['io']}) to {out_dir}",
        f"  accuracy  float {r['accuracy_float']:.4f} (PyTorch), int8 {r['accuracy_int8']:.4f} (TFLM), "
        f"drop {r['accuracy_drop_pts']:+.2f} pts on {r['verify_samples']:,} held-out images",
        f"  runtimes  TFLM vs LiteRT (BUILTIN_REF): {100 * r['tflm_litert_identical_fraction']:.2f}% identical, "
        f"max {r['max_lsb_diff']} LSB",
        f"  arena     measured {r['arena_bytes_measured']:,} B (TFLM), estimated {r['arena_bytes_estimated']:,} B "
        f"(planner, {r['arena_estimate_error_pct']:+.2f}%), CMSIS-NN scratch {r['cmsis_scratch_bytes']:,} B, "
        f"firmware {r['arena_bytes_firmware']:,} B",
        f"  model     {r['model_bytes']:,} B TFLite, {r['params']:,} params, {r['macs']:,} MACs",
        f"  ops       {len(r['ops'])}: {', '.join(r['ops'])}",
        f"  checks    Keras mirror max abs diff {r['keras_max_abs_diff']:.2g}, "
        f"ONNX (onnxruntime) {r['onnx_max_abs_diff']:.2g}",
        f"  files     {len(r['files'])}: {', '.join(r['files'])}",
        f"  time      {r['wall_s']:.1f} s (" + ", ".join(f"{k} {v:.1f}" for k, v in t.items()) + ")",
    ])
