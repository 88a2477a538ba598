"""From emulated instruction counts to board milliseconds: one cycles-per-instruction scale.

QEMU runs the real TFLM + CMSIS-NN code and counts its instructions exactly
(tinynas.deploy.emulate), but models no pipeline, caches or flash wait states.
What turns instructions into time on a board is therefore a cycles-per-instruction
(CPI) factor, fitted here on published whole-model measurements:

    ms = CPI x instructions / clock_hz x 1000

One CPI for a class of cores (Armv7E-M / Armv8-M mainline with DSP: Cortex-M4,
M33; their CMSIS-NN paths and instruction counts agree within 0.4%), fitted as the
geometric mean of measured / emulated cycles, because errors are relative. Only
measurements of the runtime generation the counts come from enter the fit: a 2020
TFLM executes different code, and no single factor maps one onto the other (the
FC-only autoencoder gained 1.4x from later runtimes, the conv models 1.9x).
`leave_one_out` refits without each measurement and predicts it, the honest error
of the method with so few points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import UserError
from ..paths import profiles_dir, read_json
from ..version import __version__
from .cycle_model import FAMILIES
from .signature import parse_signature

# Fitted by bench/bench_emulated_latency.py (2026-12-01) on the three current-runtime
# MLPerf Tiny measurements (EK-RA6M4, Cortex-M33 at 200 MHz: ResNet-8, MobileNetV1-0.25 VWW,
# FC autoencoder), counted on QEMU's M33 (mps2-an505); leave-one-out median 11.2%, max
# 19.2%. The later-TFLM ResNet-8 on a Cortex-M4 (NUCLEO-L4R5ZI, 413.3 ms) implies 1.66.
CPI_ARMV7EM_DSP = 1.5185


@dataclass(frozen=True)
class Measured:
    """A published whole-model latency, with the emulated instruction count of that model."""

    case: str
    instructions: int
    clock_hz: float
    measured_ms: float

    @property
    def cpi(self) -> float:
        """Cycles per emulated instruction that this measurement implies."""
        return self.measured_ms * 1e-3 * self.clock_hz / self.instructions


@dataclass(frozen=True)
class CpiFit:
    """A cycles-per-instruction scale and the cases it came from."""

    cpi: float
    cases: tuple[str, ...]

    def predict_ms(self, instructions: int, clock_hz: float) -> float:
        return self.cpi * instructions / clock_hz * 1e3


def fit_cpi(rows: Sequence[Measured]) -> CpiFit:
    """The geometric mean of the rows' CPIs: the least-squares fit in log space."""
    if not rows:
        raise ValueError("fit_cpi needs at least one measurement")
    cpi = math.exp(sum(math.log(r.cpi) for r in rows) / len(rows))
    return CpiFit(cpi, tuple(r.case for r in rows))


def leave_one_out(rows: Sequence[Measured]) -> list[dict[str, float | str]]:
    """Each row predicted by a fit on the others: case, measured, predicted, error in percent."""
    out: list[dict[str, float | str]] = []
    for i, r in enumerate(rows):
        fit = fit_cpi([o for j, o in enumerate(rows) if j != i])
        pred = fit.predict_ms(r.instructions, r.clock_hz)
        out.append({"case": r.case, "measured_ms": r.measured_ms, "predicted_ms": round(pred, 3),
                    "error_pct": round(100 * (pred / r.measured_ms - 1), 2), "cpi_fitted": round(fit.cpi, 4)})
    return out


def median_max_ape(errors: Sequence[float]) -> tuple[float, float]:
    """Median and max absolute percentage error."""
    a = sorted(abs(e) for e in errors)
    if not a:
        return math.nan, math.nan
    mid = len(a) // 2
    med = a[mid] if len(a) % 2 else (a[mid - 1] + a[mid]) / 2
    return med, a[-1]


def cpi_for_core(core: str) -> float:
    """Cycles per emulated instruction for `core`: fitted for M4/M33, a prior for the M7.

    The M7 runs the same instructions (its counts are within 1% of the M4's) on a
    dual-issue pipeline; without a measurement its CPI is the M4's times the latency
    model's prior M7/M4 ratio on the MAC loops (FAMILIES["cortex-m7"].mac).
    """
    if core in ("cortex-m4", "cortex-m33"):
        return CPI_ARMV7EM_DSP
    if core == "cortex-m7":
        return CPI_ARMV7EM_DSP * FAMILIES["cortex-m7"].mac
    raise ValueError(f"no cycles-per-instruction scale for {core}")


# --- per-core instruction tables (profiles/emulated/<core>.json) ---------------------------
#
# Instruction counts depend on the core's build (-mcpu) and the TFLM tree, not on the board:
# every board with that core, its DSP extension and CMSIS-NN kernels runs the same code. So
# the committed tables are per core, and a board's LUT takes CPI x count from its core's
# table (tinynas.latency.lut.lut_for_board). tools/fill_emulated_tables.py writes them.

COUNTS_FORMAT = "tinynas-emulated-counts"
COUNTS_VERSION = 1


@dataclass
class CoreCounts:
    """Instructions per Invoke() of each op signature, counted under QEMU for one core."""

    core: str
    instructions: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # where and how they were counted

    def to_dict(self) -> dict[str, Any]:
        return {"format": COUNTS_FORMAT, "version": COUNTS_VERSION, "core": self.core,
                "tool_version": __version__, **self.meta,
                "instructions": {k: int(v) for k, v in sorted(self.instructions.items())}}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "CoreCounts":
        if not isinstance(d, dict) or d.get("format") != COUNTS_FORMAT:
            raise UserError(f"{where} is not a tinynas emulated-count table (format {COUNTS_FORMAT!r})")
        if int(d.get("version", 0)) > COUNTS_VERSION:
            raise UserError(f"{where} is version {d.get('version')}; this tinynas reads up to "
                            f"{COUNTS_VERSION}, upgrade tinynas")
        ins = d.get("instructions")
        if not isinstance(d.get("core"), str) or not isinstance(ins, dict):
            raise UserError(f"{where} lacks 'core' or 'instructions'")
        try:
            for sig, n in ins.items():
                parse_signature(sig)
                if not (isinstance(n, int) and n > 0):
                    raise ValueError(f"{sig}: {n!r} is not a positive instruction count")
        except ValueError as e:
            raise UserError(f"{where} is malformed ({e})") from None
        meta = {k: v for k, v in d.items() if k not in ("format", "version", "core", "instructions")}
        return cls(d["core"], dict(ins), meta)


def counts_path(core: str) -> Path:
    """Where `core`'s committed instruction table lives: profiles/emulated/<core>.json."""
    return profiles_dir() / "emulated" / f"{core}.json"


def load_core_counts(core: str) -> CoreCounts | None:
    """`core`'s instruction table, or None when none was counted for it."""
    p = counts_path(core)
    if not p.is_file():
        return None
    counts = CoreCounts.from_dict(read_json(p, "emulated-count table"), f"emulated-count table {p}")
    if counts.core != core:
        raise UserError(f"emulated-count table {p} is for {counts.core}, not {core}")
    return counts


def save_core_counts(path: str | Path, counts: CoreCounts) -> None:
    """Write a table atomically, stamped with the time it was written."""
    stamp = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    counts.meta = {**counts.meta, "created": stamp}
    write_json(path, counts.to_dict())


def emulated_counts_for(board: Any) -> CoreCounts | None:
    """The instruction table that holds for `board`, or None.

    Only a board that runs what was counted: its core's CMSIS-NN build with the DSP
    extension (a core without it takes other kernel paths).
    """
    if getattr(board, "kernels", None) != "cmsis-nn" or not getattr(board, "dsp", False):
        return None
    try:
        cpi_for_core(board.core)
    except ValueError:
        return None
    return load_core_counts(board.core)
