"""Profile an int8 model against a board: memory, flash, latency, and a fit verdict.

Everything here is computed from the op graph with our own models (planner,
flash, latency); the TFLM measurement is an optional cross-check that runs in a
child process. The same functions serve `tinynas profile` and the report of
`tinynas run`, so both always agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .atomic import write_png
from .paths import check_input_file
from .plotstyle import FIG_DPI, FIG_WIDTH_IN, PLOT_STYLE

if TYPE_CHECKING:
    from .graph import Graph

# This module imports nothing heavy at module level: `import tinynas` loads it
# first so that the API function tinynas.profile is not replaced by this module
# (see tinynas/__init__.py). The cgen, latency, planner, tflite_reader and tflm_measure imports
# below bring NumPy, so they wait inside the functions that need them
# (allowed in tests/test_layering.py).


def tflm_unsupported(g: Graph) -> list[str]:
    """Op types TFLM has no kernel for (custom ops included)."""
    from .cgen import unsupported_ops

    return unsupported_ops(g.op_types)


@dataclass
class Verdict:
    fits: bool
    violations: list[dict[str, Any]]


def verdict(sram_bytes: int, flash_bytes: int, board, unsupported: list[str],
            latency_ms: float | None = None, latency_limit_ms: float | None = None) -> Verdict:
    """Which limits are exceeded, and by how many bytes."""
    v: list[dict[str, Any]] = []
    if sram_bytes > board.sram_bytes:
        v.append({"limit": "sram", "needed": sram_bytes, "available": board.sram_bytes,
                  "over_bytes": sram_bytes - board.sram_bytes})
    if flash_bytes > board.flash_bytes:
        v.append({"limit": "flash", "needed": flash_bytes, "available": board.flash_bytes,
                  "over_bytes": flash_bytes - board.flash_bytes})
    if latency_limit_ms is not None and latency_ms is not None and latency_ms > latency_limit_ms:
        v.append({"limit": "latency", "needed_ms": latency_ms, "available_ms": latency_limit_ms})
    if unsupported:
        v.append({"limit": "ops", "unsupported": unsupported})
    return Verdict(fits=not v, violations=v)


def profile_graph(g: Graph, board, measured_arena: int | None = None, lut=None,
                  latency_limit_ms: float | None = None, image_for: Any = None) -> dict[str, Any]:
    """The full profile as a JSON-able dict (the schema of `tinynas profile --json`).

    `image_for(graph, board, arena_bytes)` (tinynas.deploy.footprint.predict_if_calibrated,
    passed in by the caller, which sits above this layer) adds the linked TFLM image's
    own flash and SRAM for the kArenaBytes computed here: within 1% of arm-none-eabi-size
    on the calibrated cores, where model + reserve is off by -10% to +72%
    (tests/test_firmware_tflm.py).
    """
    from .cgen import firmware_arena_base, firmware_sram
    from .latency import graph_latency
    from .planner import plan_arena

    ref = plan_arena(g, pointer_bytes=8, kernels="reference")
    dev = plan_arena(g, pointer_bytes=board.pointer_bytes, kernels=board.kernels,
                     core=board.core, dsp=board.dsp)
    no_scratch = plan_arena(g, pointer_bytes=board.pointer_bytes, kernels="reference")
    lat = graph_latency(g, board, lut)
    per_op_lat = {p.index: p for p in lat.per_op}
    unsupported = tflm_unsupported(g)
    flash = g.model_bytes + board.flash_reserved_bytes
    # One SRAM figure: what the exported firmware allocates (kArenaBytes) plus the board's reserve.
    base, how = firmware_arena_base(measured_arena, ref.arena_bytes, no_scratch.arena_bytes)
    sram_parts = firmware_sram(base, dev.arena_bytes - no_scratch.arena_bytes, board.sram_reserved_bytes, how)
    sram = sram_parts["total_bytes"]
    image = image_for(g, board, sram_parts["firmware_arena_bytes"]) if image_for is not None else None
    ver = verdict(sram, flash, board, unsupported, lat.total_ms, latency_limit_ms)
    ops = []
    for op in g.ops:
        pl = per_op_lat.get(op.index)
        ops.append({
            "index": op.index, "type": op.type,
            "inputs": [list(g.tensors[i].shape) for i in op.inputs if i >= 0 and not g.tensors[i].is_const],
            "outputs": [list(g.tensors[i].shape) for i in op.outputs if i >= 0],
            "macs": op.macs, "weight_bytes": op.weight_bytes,
            "live_bytes": dev.live_bytes[op.index] if dev.live_bytes else 0,
            "arena_in_use_bytes": dev.footprint_bytes[op.index] if dev.footprint_bytes else 0,
            "scratch_bytes": dev.scratch.get(op.index, 0),
            "latency_ms": round(pl.ms, 4) if pl else None,
            "latency_source": pl.source if pl else None,
        })
    return {
        "model": g.source, "model_bytes": g.model_bytes,
        "board": board.id, "board_name": board.name,
        "macs": g.total_macs,
        "arena_bytes_measured": measured_arena,
        "arena_bytes_estimated": ref.arena_bytes,
        "arena_bytes_device": dev.arena_bytes,
        "cmsis_scratch_bytes": dev.arena_bytes - no_scratch.arena_bytes,
        "kernel_scratch_max_bytes": max(dev.scratch.values(), default=0),
        "kernels": board.kernels,
        "arena_bytes_firmware": sram_parts["firmware_arena_bytes"], "sram_breakdown": sram_parts,
        "flash_bytes": flash, "sram_bytes": sram,
        "flash_reserved_bytes": board.flash_reserved_bytes,
        "sram_reserved_bytes": board.sram_reserved_bytes,
        "board_sram_bytes": board.sram_bytes, "board_flash_bytes": board.flash_bytes,
        "latency_ms": round(lat.total_ms, 4),
        "fits": ver.fits, "violations": ver.violations,
        "unsupported_ops": unsupported,
        "input": [_io(g, i) for i in g.inputs], "output": [_io(g, i) for i in g.outputs],
        "ops": ops,
        "firmware_image": None if image is None else {
            "flash_bytes": int(image.flash), "sram_bytes": int(image.sram), "parts": dict(image.parts),
            "how": "linked qemu-target TFLM image predicted per op from calibrated code sizes "
                   "(tinynas.deploy.footprint); excludes the board's HAL and application"},
    }


def _image_line(p: dict[str, Any]) -> list[str]:
    im = p.get("firmware_image")
    if not im:
        return []
    return [f"image       flash {im['flash_bytes']:,} B, SRAM {im['sram_bytes']:,} B: the linked TFLM firmware "
            f"(code {im['parts']['code']:,} + model + data; arena {im['parts']['arena']:,} + static + stack + heap)"]


def profile_model(model: str | os.PathLike, board, lut=None, latency_ms: float | None = None,
                  measure: bool = True, timeout_s: float = 60.0, image_for: Any = None) -> dict[str, Any]:
    """Profile a .tflite file: what `tinynas profile --json` prints.

    `image_for(graph, board, arena_bytes)` (tinynas.deploy.footprint.predict_if_calibrated,
    passed in by the command) predicts the linked firmware image (see profile_graph).

    The file is checked first (a FIFO would block the read forever); the TFLM
    arena measurement, when asked for, runs in a child process and its failure
    becomes `measurement_note`, not an error.
    """
    from .tflite_reader import read_tflite  # NumPy (see above)

    path = check_input_file(model, "model")
    graph = read_tflite(path)
    measured, note = None, None
    if measure:
        from .tflm_measure import measure_arena  # NumPy (see above)

        m = measure_arena(path.read_bytes(), timeout_s=timeout_s)
        measured, note = m.arena_bytes, m.error
    prof = profile_graph(graph, board, measured_arena=measured, lut=lut, latency_limit_ms=latency_ms,
                         image_for=image_for)
    if note:
        prof["measurement_note"] = note
    return prof


def _io(g: Graph, i: int) -> dict[str, Any]:
    t = g.tensors[i]
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
            "scale": t.scale[0] if t.scale else None,
            "zero_point": t.zero_point[0] if t.zero_point else None}


# ------------------------------------------------------------------ text and plot


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def shape_str(shapes: list[list[int]]) -> str:
    """The first tensor's shape without its batch dimension, as HxWxC."""
    if not shapes:
        return ""
    dims = shapes[0][1:] if len(shapes[0]) > 1 else shapes[0]
    return "x".join(map(str, dims))


def latency_sources(ops: list[dict[str, Any]]) -> str:
    """Where the ops' latencies came from: the model, or so many measured / emulated / interpolated."""
    from collections import Counter

    n = Counter(o["latency_source"] for o in ops if o["latency_source"])
    if not n or set(n) == {"model"}:
        return "estimated by the cycle model"
    return ", ".join(f"{v} ops {k}" for k, v in sorted(n.items()))


def _sram_line(p: dict[str, Any]) -> str:
    """The one SRAM figure with its parts: the firmware's kArenaBytes plus the board's reserve."""
    b = p["sram_breakdown"]
    src = "measured" if b["arena_how"].startswith("measured") else "planned"
    return (f"SRAM        {p['sram_bytes']:,} B = firmware arena {b['firmware_arena_bytes']:,} (kArenaBytes: "
            f"{src} {b['arena_bytes']:,} + kernel scratch {b['kernel_scratch_bytes']:,} + margin "
            f"{b['margin_bytes']:,}) + reserve {b['reserve_bytes']:,}   of {p['board_sram_bytes']:,} B "
            f"({100 * p['sram_bytes'] / p['board_sram_bytes']:.0f}%)")


def format_report(p: dict[str, Any]) -> str:
    """The human-readable table of `tinynas profile`."""
    lines = [f"model  {p['model']}  ({p['model_bytes']:,} B)",
             f"board  {p['board']}  ({p['board_name']}; kernels {p['kernels']})", ""]
    hdr = f"{'#':>3} {'op':<20} {'input':<16} {'output':<16} {'MACs':>11} {'weights':>9} {'live act':>10} {'ms':>9}  src"
    lines += [hdr, "-" * len(hdr)]
    for o in p["ops"]:
        shp_in, shp_out = shape_str(o["inputs"]), shape_str(o["outputs"])
        ms = "-" if o["latency_ms"] is None else f"{o['latency_ms']:.3f}"
        lines.append(f"{o['index']:>3} {o['type'][:20]:<20} {shp_in[:16]:<16} {shp_out[:16]:<16} "
                     f"{o['macs']:>11,} {o['weight_bytes']:>9,} {o['live_bytes']:>10,} {ms:>9}  {o['latency_source'] or ''}")
    lines += ["", f"MACs        {p['macs']:,}",
              f"arena       estimated {p['arena_bytes_estimated']:,} B (x86-64 reference)"
              + (f", measured {p['arena_bytes_measured']:,} B (TFLM)" if p["arena_bytes_measured"] else "")
              + f", device {p['arena_bytes_device']:,} B (32-bit, {p['kernels']}, scratch {p['cmsis_scratch_bytes']:,} B)",
              _sram_line(p),
              f"flash       {p['flash_bytes']:,} B = model {p['model_bytes']:,} + reserve {p['flash_reserved_bytes']:,}"
              f"   of {p['board_flash_bytes']:,} B ({100 * p['flash_bytes'] / p['board_flash_bytes']:.0f}%)",
              *_image_line(p),
              f"latency     {p['latency_ms']:.2f} ms ({latency_sources(p['ops'])})"]
    if p["unsupported_ops"]:
        lines.append(f"unsupported TFLM ops: {', '.join(p['unsupported_ops'])}")
    if p["fits"]:
        lines.append(f"verdict     FITS {p['board']}")
    else:
        why = []
        for v in p["violations"]:
            if "over_bytes" in v:
                why.append(f"{v['limit']} over by {v['over_bytes']:,} B")
            elif v["limit"] == "latency":
                why.append(f"latency {v['needed_ms']:.1f} ms > {v['available_ms']} ms")
            else:
                why.append("ops TFLM lacks: " + ", ".join(v["unsupported"]))
        lines.append(f"verdict     DOES NOT FIT {p['board']}: " + "; ".join(why))
    return "\n".join(lines)


def memory_figure(p: dict[str, Any]):
    """Live activation memory per op against the board's SRAM line (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = [o["index"] for o in p["ops"]]
    live = [o["live_bytes"] / 1024 for o in p["ops"]]
    foot = [o["arena_in_use_bytes"] / 1024 for o in p["ops"]]
    tail = (p["arena_bytes_device"] - max([o["arena_in_use_bytes"] for o in p["ops"]], default=0)) / 1024
    with plt.rc_context(PLOT_STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN, 4.2))
        ax.bar(idx, live, color="#4C78A8", label="live activations + scratch")
        ax.step(idx, [f + tail for f in foot], where="mid", color="#F58518",
                label="arena in use (head + persistent tail)")
        avail = (p["board_sram_bytes"] - p["sram_reserved_bytes"]) / 1024
        ax.axhline(avail, color="#E45756", ls="--", label=f"SRAM for arena ({avail:.0f} KiB)")
        ax.set_xlabel("op index (execution order)")
        ax.set_ylabel("KiB")
        ax.set_title(f"{p['model'].split('/')[-1]} on {p['board']}")
        ax.legend(loc="center right")  # below the SRAM line, which sits at the top
        fig.tight_layout()
    return fig


def plot_memory(p: dict[str, Any], path: str) -> None:
    """Live activation memory per op against the board's SRAM line, as a PNG."""
    write_png(path, memory_figure(p), dpi=FIG_DPI)
