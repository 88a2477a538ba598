"""`tinynas lut measure`: a profiling kit that measures a board's LUT entries.

The kit holds one single-op int8 model per LUT entry the space needs
(kit_models.py), their C arrays (tinynas.cgen), a firmware main that runs each
under TFLM's MicroProfiler and prints the serial log format of serial_log.py,
a manifest (entry index -> signature) and a README. Layout of DIR:

    README.md             how to build, flash and capture the log
    manifest.json         kit id, board, space, entries, parts, skipped signatures
    models/eNNN.tflite    one model per entry
    firmware/             CMake project (targets/lut_kit/cmake) + model/ (generated C)

Which entries: every distinct op signature of the space's subnets at its
width and resolution(s). Block shapes depend only on (stage, first block or
not, kernel, expand), never on depth, so the max-depth subnets with one
(kernel, expand) pair everywhere cover all of them: kernels x expands graphs.

Parts: all models rarely fit one board's flash, so they are packed in order
into parts that each fit; the firmware builds one part at a time
(-DTINYNAS_KIT_PART=p) and every part's log is imported together.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..boards import Board
from ..atomic import staged_dir, write_json
from ..cgen import arena_for_firmware, model_data_files, op_resolver_header
from ..errors import UserError
from ..firmware import render_target
from ..latency.cycle_model import signature_cycles
from ..latency.serial_log import LOG_MAGIC, LOG_VERSION
from ..latency.signature import op_signature
from ..paths import read_json, targets_dir
from ..planner import plan_arena
from ..space import arch_from_choices
from ..space.graph_builder import build_graph
from ..tflite_reader import parse_tflite
from ..version import __version__
from .kit_models import KitModelError, single_op_tflite

KIT_FORMAT = "tinynas-lut-kit"
KIT_VERSION = 1
KIT_NAME = "lut_kit"          # C identifier stem of the generated files
TEMPLATE = "cmake"            # folder under targets/lut_kit/
# Flash the kit needs besides model bytes and the board's reserve (which
# already holds TFLM and the kernels): the model table and signature strings.
KIT_FLASH_ALLOWANCE = 16 * 1024
# Static RAM of tflite::MicroProfiler (non-template TFLM versions keep 1,024
# events: tags, start and end ticks, per-tag totals ~ 20 KiB); counted
# against SRAM so no entry is planned that cannot run beside it.
PROFILER_RAM_BYTES = 20 * 1024


@dataclass(frozen=True)
class KitEntry:
    index: int
    signature: str
    op: str
    model: str          # path relative to the kit folder
    model_bytes: int
    sha256: str
    arena_bytes: int    # planned device arena of this model alone
    model_cycles: float  # what the cycle model predicts, for the import's comparison
    part: int = -1


# ----------------------------------------------------------------------------- which entries

def covering_archs(spec: Any, depth: int | None = None) -> list[dict]:
    """Subnets whose ops include every op signature the space's subnets can contain.

    Block shapes depend only on (stage, first block or not, kernel, expand), never on
    depth, so the kernels x expands uniform max-depth subnets at each resolution of the
    grid cover them all (tests/test_lut_kit.py checks sampled subnets against the set).
    `depth` caps the blocks per stage: two already hold a first and a repeated block.
    """
    archs = []
    for res in spec.resolution_grid:
        s = spec.with_config(resolution=list(res))
        n, d = len(s.stages), min(s.max_depth, depth or s.max_depth)
        for k in s.kernels:
            for e in s.expand_ratios:
                archs.append(arch_from_choices(s, [d] * n, [[k] * d] * n, [[e] * d] * n))
    return archs


def space_signatures(spec: Any) -> dict[str, str]:
    """signature -> TFLite op type for every op the space's subnets can contain.

    In execution order of first appearance (stem first, classifier last), at
    the spec's width multiplier and at every resolution of its grid.
    """
    sigs: dict[str, str] = {}
    for arch in covering_archs(spec):
        g = build_graph(arch)
        for op in g.ops:
            sigs.setdefault(op_signature(g, op), op.type)
    return sigs


# ----------------------------------------------------------------------------- models

def _progress(items: list, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="model", leave=False)


def _device_arena(tflite: bytes, board: Board) -> int:

    g = parse_tflite(tflite)
    return plan_arena(g, pointer_bytes=board.pointer_bytes, kernels=board.kernels,
                      core=board.core, dsp=board.dsp).arena_bytes


def build_models(sigs: dict[str, str], board: Board, rng: np.random.Generator,
                 progress: bool = True) -> tuple[list[tuple[KitEntry, bytes]], list[dict]]:
    """Convert each signature; returns ((entry, tflite), ...) and the skipped ones with reasons."""

    sram = board.sram_available - PROFILER_RAM_BYTES
    built: list[tuple[KitEntry, bytes]] = []
    skipped: list[dict] = []
    for sig in _progress(list(sigs), "lut kit", progress):
        try:
            buf = single_op_tflite(sig, rng)
        except KitModelError as e:
            skipped.append({"signature": sig, "reason": str(e)})
            continue
        arena = _device_arena(buf, board)
        if arena > sram:
            skipped.append({"signature": sig, "reason": f"needs a {arena:,} B arena; {board.id} has "
                            f"{sram:,} B beside its reserve and the profiler, so no model with "
                            "this op fits it either"})
            continue
        idx = len(built)
        built.append((KitEntry(index=idx, signature=sig, op=sigs[sig], model=f"models/e{idx:03d}.tflite",
                               model_bytes=len(buf), sha256=hashlib.sha256(buf).hexdigest(),
                               arena_bytes=arena, model_cycles=signature_cycles(sig, board)), buf))
    return built, skipped


def pack_parts(sizes: list[int], budget: int) -> list[int]:
    """Part number per model: consecutive models while their bytes fit `budget`."""
    parts, part, used = [], 0, 0
    for n in sizes:
        if used and used + n > budget:
            part, used = part + 1, 0
        parts.append(part)
        used += n
    return parts


def _flash_budget(board: Board) -> int:
    budget = board.flash_available - KIT_FLASH_ALLOWANCE
    if budget <= 0:
        raise UserError(f"{board.id} has {board.flash_available:,} B of flash beyond its reserve; "
                        f"the kit needs more than {KIT_FLASH_ALLOWANCE:,} B for its tables")
    return budget


# ----------------------------------------------------------------------------- C sources

def _model_ident(e: KitEntry) -> str:
    return f"lut_e{e.index:03d}"


def _settings_header(board: Board, kit_id: str, arena: int, runs: int, warmup: int, parts: int) -> str:
    return f"""// {KIT_NAME}_settings.h: generated by tinynas lut measure; do not edit.
#ifndef TINYNAS_LUT_KIT_SETTINGS_H_
#define TINYNAS_LUT_KIT_SETTINGS_H_

#include <cstddef>
#include <cstdint>

// The clock the board runs at (Hz): ticks become cycles with it when the
// platform's ticks_per_second() is not 0. Override with -DTINYNAS_CLOCK_HZ=...
#ifndef TINYNAS_CLOCK_HZ
#define TINYNAS_CLOCK_HZ {int(board.clock_hz)}u
#endif

namespace {KIT_NAME} {{

constexpr char kBoard[] = "{board.id}";
constexpr char kKitId[] = "{kit_id}";
constexpr uint32_t kClockHz = TINYNAS_CLOCK_HZ;
constexpr int kRuns = {runs};      // timed invokes per model
constexpr int kWarmup = {warmup};  // untimed invokes first (caches, lazy init)
constexpr int kParts = {parts};
// Largest planned arena of any kit model + margin (cgen.arena_for_firmware).
constexpr size_t kArenaBytes = {arena};

struct KitModel {{
  int index;              // entry index in manifest.json
  const char* signature;  // the LUT key this model measures
  const unsigned char* data;
}};

// Defined in {KIT_NAME}_part_<p>.cc: the models of the part being built.
extern const KitModel kModels[];
extern const int kModelCount;
extern const int kPart;

}}  // namespace {KIT_NAME}

#endif  // TINYNAS_LUT_KIT_SETTINGS_H_
"""


def _part_source(part: int, entries: list[KitEntry]) -> str:
    incs = "".join(f'#include "{_model_ident(e)}_model_data.h"\n' for e in entries)
    rows = "".join(f'    {{{e.index}, "{e.signature}", g_{_model_ident(e)}_model_data}},\n'
                   for e in entries)
    return (f"// {KIT_NAME}_part_{part}.cc: generated by tinynas lut measure; do not edit.\n"
            f'#include "{KIT_NAME}_settings.h"\n{incs}\n'
            f"namespace {KIT_NAME} {{\n\nconst KitModel kModels[] = {{\n{rows}}};\n"
            f"const int kModelCount = {len(entries)};\nconst int kPart = {part};\n\n"
            f"}}  // namespace {KIT_NAME}\n")


def _parts_cmake(by_part: list[list[KitEntry]]) -> str:
    lines = ["# generated by tinynas lut measure: the sources of each kit part",
             f"set(TINYNAS_KIT_PARTS {len(by_part)})"]
    for p, entries in enumerate(by_part):
        srcs = [f"model/{KIT_NAME}_part_{p}.cc"] + [f"model/{_model_ident(e)}_model_data.cc"
                                                    for e in entries]
        lines.append(f"set(TINYNAS_KIT_PART_{p}_SOURCES\n  " + "\n  ".join(srcs) + ")")
    return "\n".join(lines) + "\n"


def generated_sources(built: list[tuple[KitEntry, bytes]], board: Board, kit_id: str, arena: int,
                      runs: int, warmup: int) -> dict[str, str]:
    """Every generated firmware file (name -> text), for firmware.render_target."""

    n_parts = max(e.part for e, _ in built) + 1
    by_part: list[list[KitEntry]] = [[] for _ in range(n_parts)]
    files: dict[str, str] = {}
    for e, buf in built:
        by_part[e.part].append(e)
        files.update(model_data_files(_model_ident(e), buf, source=e.signature))
    ops = sorted({e.op for e, _ in built})
    files[f"{KIT_NAME}_op_resolver.h"] = op_resolver_header(KIT_NAME, ops)
    files[f"{KIT_NAME}_settings.h"] = _settings_header(board, kit_id, arena, runs, warmup, n_parts)
    for p, entries in enumerate(by_part):
        files[f"{KIT_NAME}_part_{p}.cc"] = _part_source(p, entries)
    files[f"{KIT_NAME}_parts.cmake"] = _parts_cmake(by_part)
    return files


# ----------------------------------------------------------------------------- the kit

def _kit_id(board: Board, entries: list[KitEntry], runs: int, warmup: int) -> str:
    key = json.dumps([board.id, runs, warmup, [(e.index, e.signature, e.sha256) for e in entries]])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _space_note(spec: Any) -> str:
    res = ", ".join(f"{h}x{w}" for h, w in spec.resolution_grid)
    return f"{spec.name} at width {spec.width_mult:g}, resolution {res}, {spec.input_channels} channels"


def write_kit(board: Board, spec: Any, out_dir: str | os.PathLike, *, limit: int | None = None,
              runs: int = 10, warmup: int = 2, seed: int = 0, force: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Write the profiling kit for `board` and `spec` into `out_dir`; returns the manifest."""

    if runs < 1 or warmup < 0:
        raise UserError(f"--runs {runs} must be >= 1 and --warmup {warmup} >= 0")
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit} must be >= 1")
    sigs = space_signatures(spec)
    wanted = dict(list(sigs.items())[:limit]) if limit else sigs
    built, skipped = build_models(wanted, board, np.random.default_rng(seed), progress)
    if not built:
        raise UserError(f"no LUT entry of this space can be measured on {board.id}: "
                        + "; ".join(f"{s['signature']}: {s['reason']}" for s in skipped[:3]))
    parts = pack_parts([e.model_bytes for e, _ in built], _flash_budget(board))
    built = [(KitEntry(**{**asdict(e), "part": p}), b) for (e, b), p in zip(built, parts)]
    entries = [e for e, _ in built]
    kit_id = _kit_id(board, entries, runs, warmup)
    arena = arena_for_firmware(max(e.arena_bytes for e in entries))
    manifest = {
        "format": KIT_FORMAT, "version": KIT_VERSION, "kit": kit_id,
        "log_format": f"{LOG_MAGIC} v{LOG_VERSION}", "tool_version": __version__,
        "board": board.id, "clock_hz": int(board.clock_hz), "core": board.core,
        "kernels": board.kernels, "runs": runs, "warmup": warmup, "seed": seed,
        "arena_bytes": arena, "space": spec.to_dict(), "space_signatures": len(sigs),
        "parts": [{"part": p, "entries": [e.index for e in entries if e.part == p],
                   "model_bytes": sum(e.model_bytes for e in entries if e.part == p)}
                  for p in range(parts[-1] + 1)],
        "entries": [asdict(e) for e in entries], "skipped": skipped,
    }
    settings = {"board": board.id, "board_name": board.name, "clock_hz": int(board.clock_hz),
                "core": board.core, "kernels": board.kernels, "kit": kit_id, "runs": runs,
                "warmup": warmup, "entries": len(entries), "parts": len(manifest["parts"]),
                "last_part": len(manifest["parts"]) - 1, "arena_bytes": arena,
                "space": _space_note(spec), "skipped": len(skipped)}
    with staged_dir(out_dir, force=force) as tmp:
        for e, buf in built:
            (tmp / e.model).parent.mkdir(parents=True, exist_ok=True)
            (tmp / e.model).write_bytes(buf)
        render_target(TEMPLATE, tmp, KIT_NAME,
                      generated_sources(built, board, kit_id, arena, runs, warmup), settings,
                      templates=targets_dir() / "lut_kit")
        write_json(tmp / "manifest.json", manifest)
    return manifest


def load_kit(kit_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a kit folder, checked enough to trust its index -> signature map."""
    p = Path(kit_dir) / "manifest.json"
    m = read_json(p, "kit manifest", "; pass --kit the folder `tinynas lut measure` wrote")
    if not isinstance(m, dict) or m.get("format") != KIT_FORMAT:
        raise UserError(f"{p} is not a tinynas LUT kit manifest")
    if int(m.get("version", 0)) > KIT_VERSION:
        raise UserError(f"{p} is kit version {m.get('version')}; upgrade tinynas")
    try:
        m["by_index"] = {int(e["index"]): str(e["signature"]) for e in m["entries"]}
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{p}: malformed entries ({e}); regenerate the kit") from None
    return m
