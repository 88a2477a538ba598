"""Turn parsed kit logs into a board's measured LUT (`tinynas lut import`).

Only verified records enter the table (serial_log checks every line). On top
of that, this module checks what a single line cannot: that the log belongs
to this board (a mismatch is a user error, not noise), to the given kit, and
that each entry's signature is the one the kit manifest has at that index.

The table holds measured entries only. Everything else keeps coming from the
LUT's lookup chain (interpolated from a measured op of the same class, else
the cycle model), and every per-op latency says which one it is, so an
unmeasured op is always flagged rather than passed off as measured.

Repeated measurements of one signature (a part run twice, two kits) are
combined by their lower median: a real measured value, robust to one run
disturbed by an interrupt.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ..boards import Board
from ..errors import UserError
from .lut import Lut, default_lut
from .serial_log import LogIssue, LogSession, ParsedLog
from .signature import signature_features

# Timers slower than clock / COARSE_TIMER_RATIO give few ticks per small op.
COARSE_TIMER_RATIO = 100


@dataclass
class ImportReport:
    """What the import did, for the command's summary."""

    lut: Lut
    issues: dict[str, list[LogIssue]] = field(default_factory=dict)  # per log source
    measured: dict[str, list[int]] = field(default_factory=dict)     # signature -> values
    failed: dict[str, str] = field(default_factory=dict)             # signature -> stage
    not_measured: list[str] = field(default_factory=list)            # kit entries absent
    notes: list[str] = field(default_factory=list)

    def ratios_by_kind(self) -> dict[str, tuple[float, int]]:
        """Median measured / model ratio per kernel kind: how far the default model was off."""
        per: dict[str, list[float]] = {}
        for sig in self.measured:
            model = self.lut.model_cycles(sig)
            if model > 0:
                per.setdefault(signature_features(sig).kind, []).append(
                    self.lut.entries[sig].cycles / model)
        return {k: (statistics.median(v), len(v)) for k, v in sorted(per.items())}


def _check_session(s: LogSession, board: Board, kit: dict | None, source: str) -> None:
    h = s.header
    if h.board != board.id:
        raise UserError(f"{source} line {h.line}: the log is from a kit for board {h.board!r}, "
                        f"not {board.id!r}; pass --board {h.board}")
    if kit is not None and h.kit != kit["kit"]:
        raise UserError(f"{source} line {h.line}: the log was printed by kit {h.kit}, but --kit "
                        f"is kit {kit['kit']}; pass the kit folder that was flashed")


def _collect(log: ParsedLog, board: Board, kit: dict | None, rep: ImportReport,
             overheads: list[int]) -> None:
    issues = rep.issues.setdefault(log.source, list(log.issues))
    for s in log.sessions:
        _check_session(s, board, kit, log.source)
        for e in s.entries:
            want = kit["by_index"].get(e.index) if kit else e.signature
            if want != e.signature:
                issues.append(LogIssue(e.line, f"entry {e.index} of the kit is {want}, the log says "
                                       "otherwise; skipped", e.signature))
                continue
            if e.cycles == 0:
                issues.append(LogIssue(e.line, "cycles=0: the board's tick source does not count "
                                       "(see the kit README); skipped", e.signature))
                continue
            rep.measured.setdefault(e.signature, []).append(e.cycles)
            overheads.append(e.overhead)
        for f in s.failures:
            rep.failed.setdefault(f.signature, f.stage)
        tps, clock = s.header.ticks_per_s, s.header.clock_hz
        if 0 < tps < clock / COARSE_TIMER_RATIO:
            rep.notes.append(f"{log.source}: timer of {tps:,} ticks/s against a {clock:,} Hz clock "
                             "is coarse; small ops are measured imprecisely")
        if clock != int(board.clock_hz):
            rep.notes.append(f"{log.source}: measured at {clock:,} Hz, board profile says "
                             f"{int(board.clock_hz):,} Hz; cycles are stored, ms use the profile")


def build_measured_lut(logs: list[ParsedLog], board: Board, kit: dict | None = None,
                       base: Lut | None = None) -> ImportReport:
    """A LUT of the measured entries of `logs` (merged into `base` when given)."""
    lut = base if base is not None else default_lut(board)
    rep = ImportReport(lut=lut)
    overheads: list[int] = []
    for log in logs:
        _collect(log, board, kit, rep, overheads)
    if not rep.measured:
        n_bad = sum(len(v) for v in rep.issues.values())
        raise UserError(f"{', '.join(log.source for log in logs)}: no valid ENTRY line "
                        f"({n_bad} line(s) rejected); is this the serial log of a tinynas LUT kit?")
    for sig, values in rep.measured.items():
        lut.set(sig, float(statistics.median_low(values)), "measured")
    lut.invoke_overhead_cycles = float(statistics.median_low(overheads))
    lut.clock_hz = float(board.clock_hz)
    if kit is not None:
        rep.not_measured = [s for s in kit["by_index"].values() if s not in rep.measured]
    lut.meta = {"kit": kit["kit"] if kit else sorted({s.header.kit for g in logs for s in g.sessions}),
                "logs": [log.source for log in logs],
                "runs": sorted({s.header.runs for g in logs for s in g.sessions}),
                "ticks_per_s": sorted({s.header.ticks_per_s for g in logs for s in g.sessions}),
                "not_measured": rep.not_measured, "failed": rep.failed}
    return rep
