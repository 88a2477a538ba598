"""Per-board latency lookup tables keyed by op signature.

Decision: the default LUT is not a file. For any signature the cycle model
gives an entry on the fly, so there is nothing to generate, ship or keep in
sync with the model. Only tables that hold real information are files:
`profiles/<board-id>.lut.json`, written by `tinynas lut import` (or
save_lut), holding measured entries and whatever else was saved with them.

Which table a board gets (lut_for_board): its own file when there is one; else,
for a Cortex-M4/M7/M33 with CMSIS-NN, its core's committed emulated instruction
counts (profiles/emulated/<core>.json, tinynas.latency.emulated) times the
core's cycles per instruction; else the model alone.

Lookup precedence for one signature (Lut.lookup):
1. an entry for exactly this signature, with the source it was stored with
   ("measured" from `tinynas lut import`, "emulated" from `tinynas lut emulate`
   or the core's table);
2. "interpolated": a measured or emulated entry of the same class (op kind,
   kernel, stride, dilation, groups, dtype) but another size, rescaled by the model:
   measured_ref * model(sig) / model(ref). The model is linear in MACs (or in
   bytes for memory-bound ops), so this is the MACs ratio (bytes ratio) for
   big ops, but it keeps the fixed per-op overhead and the fast-path penalty
   out of the scaling: a measurement at 140 channels does not claim 138
   channels run at the same cycles per MAC. The nearest reference by
   |log size ratio| wins (size = MACs, or bytes moved for ops without MACs);
3. "model": the cycle model for the board.
Latency of a graph = sum of its ops' entries + the file's per-invoke overhead
(graph_latency, at the end of this module).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..atomic import write_json
from ..boards import load_board
from ..errors import UserError
from ..graph import Graph
from ..paths import profiles_dir, read_json
from ..version import __version__
from .cycle_model import Calibration, LatencyReport, OpLatency, features_cycles, invoke_overhead_cycles
from .emulated import cpi_for_core, emulated_counts_for
from .signature import OpFeatures, op_signature, parse_signature, signature_class, signature_features

LUT_FORMAT = "tinynas-lut"
LUT_VERSION = 1
SOURCES: tuple[str, ...] = ("model", "measured", "interpolated", "emulated")
REFERENCE_SOURCES = ("measured", "emulated")  # entries that other sizes of their class scale from


@dataclass(frozen=True)
class LutEntry:
    cycles: float
    source: str = "measured"


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _size(f: OpFeatures) -> float:
    return float(f.macs if f.macs > 0 else f.in_bytes + f.out_bytes)


@dataclass
class Lut:
    """Cycles per op signature for one board; the model fills in what is missing.

    `target` is the board object the model falls back to (attached by
    lut_for_board/load_lut; loaded by id on first need otherwise).
    """

    board: str
    clock_hz: float
    invoke_overhead_cycles: float
    entries: dict[str, LutEntry] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    tool_version: str = __version__
    target: Any = field(default=None, repr=False, compare=False)
    # Provenance of measured entries (kit id, logs, entries not measured...),
    # written by `tinynas lut import`; stored as "measurement" in the file.
    meta: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    calibration: Calibration | None = field(default=None, repr=False, compare=False)
    # class -> (sizes, signatures) of measured and emulated entries; rebuilt after set().
    _index: dict[tuple, tuple[np.ndarray, list[str]]] | None = field(
        default=None, init=False, repr=False, compare=False)
    # signature -> model cycles, valid for the (target, calibration) pair it was filled with:
    # a space's table interpolates thousands of signatures from a few dozen references.
    _model_memo: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)
    _memo_for: tuple = field(default=(None, None), init=False, repr=False, compare=False)

    def set(self, sig: str, cycles: float, source: str = "measured") -> None:
        """Add or replace one entry (the signature is validated)."""
        parse_signature(sig)
        if source not in SOURCES:
            raise ValueError(f"source {source!r} must be one of {', '.join(SOURCES)}")
        if not (math.isfinite(cycles) and cycles >= 0):
            raise ValueError(f"cycles {cycles!r} for {sig} must be a non-negative number")
        self.entries[sig] = LutEntry(float(cycles), source)
        self._index = None

    def _reference_index(self) -> dict[tuple, tuple[np.ndarray, list[str]]]:
        """class -> (sizes, signatures) of measured and emulated entries, sorted by signature."""
        if self._index is None:
            lists: dict[tuple, list[tuple[float, str]]] = {}
            refs = (s for s, e in self.entries.items() if e.source in REFERENCE_SOURCES)
            for s in sorted(refs):
                lists.setdefault(signature_class(s), []).append((_size(signature_features(s)), s))
            self._index = {c: (np.array([max(z, 1.0) for z, _ in v]), [s for _, s in v])
                           for c, v in lists.items()}
        return self._index

    def _board_for_model(self) -> Any:
        if self.target is None:
            self.target = load_board(self.board)
        return self.target

    def model_cycles(self, sig: str, features: OpFeatures | None = None) -> float:
        """The cycle model's figure for a signature (`features`: its parsed features, if at hand)."""
        target = self._board_for_model()
        if self._memo_for[0] is not target or self._memo_for[1] is not self.calibration:
            self._model_memo, self._memo_for = {}, (target, self.calibration)
        got = self._model_memo.get(sig)
        if got is None:
            f = signature_features(sig) if features is None else features
            got = self._model_memo[sig] = features_cycles(f, target, self.calibration)
        return got

    def interpolate(self, sig: str) -> float | None:
        """Cycles from the nearest measured or emulated entry of the same class, or None."""
        parsed = parse_signature(sig)
        sizes, refs = self._reference_index().get(signature_class(parsed), (np.zeros(0), []))
        features = signature_features(parsed)
        t_size = max(_size(features), 1.0)
        dist = np.abs(np.log(t_size / sizes))
        if sig in self.entries:  # never its own reference (leave-one-out asks for this)
            dist[[i for i, ref in enumerate(refs) if ref == sig]] = np.inf
        if not len(refs) or not np.isfinite(dist.min()):
            return None
        i = int(np.argmin(dist))  # the first of equals: refs are sorted by signature
        ref, r_size = refs[i], float(sizes[i])
        m_ref = self.model_cycles(ref)
        if m_ref > 0:
            return self.entries[ref].cycles * self.model_cycles(sig, features) / m_ref
        return self.entries[ref].cycles * t_size / r_size

    def lookup(self, sig: str) -> tuple[float, str]:
        """(cycles, source): stored entry > interpolated from measured or emulated > model."""
        e = self.entries.get(sig)
        if e is not None:
            return e.cycles, e.source
        got = self.interpolate(sig)
        if got is not None:
            return got, "interpolated"
        return self.model_cycles(sig), "model"

    def to_dict(self) -> dict[str, Any]:
        d = {
            "format": LUT_FORMAT, "version": LUT_VERSION,
            "board": self.board, "clock_hz": self.clock_hz,
            "invoke_overhead_cycles": self.invoke_overhead_cycles,
            "created": self.created, "tool_version": self.tool_version,
        }
        if self.meta:
            d["measurement"] = self.meta
        d["entries"] = {s: {"cycles": e.cycles, "source": e.source}
                        for s, e in sorted(self.entries.items())}
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "LUT") -> "Lut":
        if not isinstance(d, dict):
            raise UserError(f"{where} is not a JSON object; expected a tinynas LUT")
        if d.get("format", LUT_FORMAT) != LUT_FORMAT:
            raise UserError(f"{where} has format {d.get('format')!r}, not {LUT_FORMAT!r}")
        if int(d.get("version", LUT_VERSION)) > LUT_VERSION:
            raise UserError(f"{where} is LUT version {d.get('version')}; this tinynas reads "
                            f"up to {LUT_VERSION}, upgrade tinynas")
        missing = [k for k in ("board", "clock_hz", "invoke_overhead_cycles", "entries")
                   if k not in d]
        if missing:
            raise UserError(f"{where} lacks {', '.join(missing)}")
        if not isinstance(d["entries"], dict):
            raise UserError(f"{where}: 'entries' must map signatures to entries")
        try:
            lut = cls(board=str(d["board"]), clock_hz=float(d["clock_hz"]),
                      invoke_overhead_cycles=float(d["invoke_overhead_cycles"]),
                      created=str(d.get("created", "")),
                      tool_version=str(d.get("tool_version", "")),
                      meta=dict(d.get("measurement") or {}))
            for sig, e in d["entries"].items():
                if isinstance(e, (int, float)):
                    e = {"cycles": e}
                lut.set(sig, float(e["cycles"]), str(e.get("source", "measured")))
        except (ValueError, TypeError, KeyError) as err:
            raise UserError(f"{where} is malformed ({err})") from None
        return lut


def load_lut(path: str | os.PathLike, board: Any = None,
             calibration: Calibration | None = None) -> Lut:
    """Read a LUT file; `board` (if given) is what the model falls back to."""
    p = Path(path)
    lut = Lut.from_dict(read_json(p, "LUT file"), where=f"LUT file {p}")
    if board is not None and str(getattr(board, "id", lut.board)) != lut.board:
        raise UserError(f"LUT file {p} is for board {lut.board!r}, not {board.id!r}")
    lut.target, lut.calibration = board, calibration
    return lut


def save_lut(path: str | os.PathLike, lut: Lut) -> None:
    """Write a LUT atomically (a crash never leaves half a table)."""
    write_json(path, lut.to_dict())


def lut_path(board_id: str) -> Path:
    """Where a board's measured LUT lives: profiles/<board-id>.lut.json."""
    return profiles_dir() / f"{board_id}.lut.json"


def default_lut(board: Any, signatures: Iterable[str] = (),
                calibration: Calibration | None = None) -> Lut:
    """A model-only LUT for a board; `signatures` are pre-filled as "model" entries.

    Pre-filling is only for writing out a table to measure against; lookups
    of an empty default LUT give the same numbers.
    """
    lut = Lut(board=str(board.id), clock_hz=float(board.clock_hz),
              invoke_overhead_cycles=invoke_overhead_cycles(board), target=board,
              calibration=calibration)
    for sig in signatures:
        lut.set(sig, lut.model_cycles(sig), "model")
    return lut


def lut_for_board(board: Any, calibration: Calibration | None = None) -> Lut:
    """The board's own LUT (profiles/<id>.lut.json), else its core's emulated counts, else the model.

    A board's own file wins whole: it was made for that board (measured on it, or
    emulated for its space), and mixing in another source would blur what it says.
    """
    p = lut_path(str(board.id))
    if p.is_file():
        return load_lut(p, board, calibration)
    lut = default_lut(board, calibration=calibration)
    counts = emulated_counts_for(board)
    if counts is not None:
        cpi = cpi_for_core(board.core)
        for sig, n in counts.instructions.items():
            lut.set(sig, cpi * n, "emulated")
        lut.meta = {"emulated": {"cpi": cpi, "table": f"profiles/emulated/{board.core}.json",
                                 **{k: v for k, v in counts.meta.items() if k in ("counted_on", "tflm_tree")}}}
    return lut


def graph_latency(graph: Graph, board: Any, lut: "Lut | None" = None) -> LatencyReport:
    """Latency of a whole graph: sum of per-op LUT entries + per-invoke overhead.

    The one entry point `profile`, `space` and the search read latency
    through. Without a `lut`, the board's measured LUT
    (profiles/<board-id>.lut.json) is used when it exists, else the model.
    """
    if lut is None:
        lut = lut_for_board(board)
    clock = float(board.clock_hz)
    if not clock > 0:
        raise UserError(f"board {getattr(board, 'id', '?')} has clock_hz {board.clock_hz}; "
                        "it must be positive")
    per_op: list[OpLatency] = []
    sigs: list[str] = []
    for op in graph.ops:
        sig = op_signature(graph, op)
        cycles, source = lut.lookup(sig)
        per_op.append(OpLatency(op.index, cycles, cycles / clock * 1e3, source))
        sigs.append(sig)
    inv = float(lut.invoke_overhead_cycles)
    total = inv + sum(e.cycles for e in per_op)
    return LatencyReport(board=str(getattr(board, "id", "")), clock_hz=clock, total_cycles=total,
                         total_ms=total / clock * 1e3, invoke_overhead_cycles=inv,
                         per_op=per_op, signatures=sigs)
