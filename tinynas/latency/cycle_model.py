"""Analytical cycle model of TFLite Micro ops on microcontroller cores.

Why a model and not only a table: the search scores architectures nobody has
run, on boards nobody has measured. The model has to rank them the way a real
TFLM build would, so it keeps the effects that change rankings, not only MACs:

* kernel kind: 1x1 conv, kxk conv (im2col), depthwise, FC, pooling, add,
  softmax, reshape (a memcpy) and a generic per-element cost for the rest;
* the optimized kernels' fast path: CMSIS-NN wants channel counts that are
  multiples of 4 (MicroNets, 3.2: one conv ran 37.5 ms with 138 channels and
  21.5 ms with 140); ESP-NN on the ESP32-S3 pads channels to 8;
* the kernel library: TFLM's reference kernels are several times slower than
  CMSIS-NN (3-6x reported, tensorflow/tensorflow#37361);
* per-op dispatch and per-invoke overhead, and memory-bound ops charged per byte.

Cost of one op, in cycles:

    overhead_op + fast_path_penalty * (c_mac * macs + c_col * macs / out_ch
                                       + c_out * out_bytes + c_byte * (in_bytes + out_bytes))

`c_col * macs / out_ch` is the im2col copy of a kxk conv (one element per
filter tap per output pixel); `c_out` is the per-output requantization. Every
coefficient is a prior for a Cortex-M4 running CMSIS-NN from zero-wait-state
memory (M4_BASE), times a per-family ratio (FAMILIES), times a calibration
scale fitted to published whole-model latencies (calibration.json, written by
tools/calibrate_latency.py). docs/latency.md gives the reasoning per number.

The same arithmetic serves one op (`op_cycles`) and 100k candidate layers at
once (`cycles_vectorized`): both go through `_evaluate`, so they agree exactly.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..boards import Board
from ..errors import UserError
from ..graph import Graph, Op
from .signature import OpFeatures, op_signature, signature_features

if TYPE_CHECKING:  # pragma: no cover
    from .lut import Lut

COST_KINDS: tuple[str, ...] = (
    "conv1x1", "conv", "dwconv", "fc", "pool", "add", "softmax", "reshape", "other")
CONV_KINDS: frozenset[str] = frozenset({"conv1x1", "conv", "dwconv"})
KERNEL_LIBS: tuple[str, ...] = ("cmsis-nn", "esp-nn", "reference")
CALIBRATION_PATH = Path(__file__).with_name("calibration.json")

# Cortex-M4 + CMSIS-NN, zero-wait-state memory: cycles per MAC ("mac"), per
# im2col element ("col"), per output element ("out"), per byte moved ("byte").
#   conv1x1/conv mac 1.1: SMLAD does 2 MACs/cycle, but both operands need
#     SXTB16 widening and the 2x2 output blocking reloads; ~1 cycle/MAC.
#   conv col 2.0: im2col widens each int8 tap to q15 with the input offset.
#   dwconv mac 2.0: no reuse of the input across output channels.
#   fc mac 1.5: each weight is used once; load + widen dominate.
#   out 10: per-channel requantize (SMULL-based doubling high multiply,
#     rounding shift, offset, clamp, store).
#   pool: 1 cycle per accumulated element, 15 per output (division).
#   add 12/element: two input rescales and one output requantize.
#   softmax 60/element: three passes with a fixed-point exp.
#   reshape 0.25/byte of in+out: word-wise memcpy, 2 cycles per 4 bytes copied.
M4_BASE: dict[str, dict[str, float]] = {
    "conv1x1": {"mac": 1.1, "out": 10.0},
    "conv": {"mac": 1.1, "col": 2.0, "out": 10.0},
    "dwconv": {"mac": 2.0, "out": 10.0},
    "fc": {"mac": 1.5, "out": 10.0},
    "pool": {"mac": 1.0, "out": 15.0},
    "add": {"out": 12.0},
    "softmax": {"out": 60.0},
    "reshape": {"byte": 0.25},
    "other": {"out": 10.0, "byte": 0.25},
}
M4_OP_OVERHEAD = 1500.0      # TFLM node dispatch + kernel prologue (eval tensors, quant params)
M4_INVOKE_OVERHEAD = 5000.0  # MicroInterpreter::Invoke bookkeeping, input/output handling

# TFLM reference kernels vs CMSIS-NN on the same core (3-6x reported for conv).
REF_FACTOR: dict[str, float] = {
    "conv1x1": 5.0, "conv": 4.5, "dwconv": 4.0, "fc": 2.5, "pool": 2.0,
    "add": 2.0, "softmax": 1.5, "reshape": 1.0, "other": 1.0,
}
# Input dtype other than int8: int16 uses CMSIS-NN's s16 kernels (wider
# accumulators, half the SIMD lanes); float32 and anything else run reference
# kernels, in software floating point when the core has no FPU.
INT16_FACTOR = 1.8
FLOAT_FPU_FACTOR = 1.2
FLOAT_SOFT_FACTOR = 12.0


@dataclass(frozen=True)
class FamilyPrior:
    """One core family: ratios to the M4 prior, and how its fast path works.

    mac/col/out/byte scale the optimized-kernel coefficients; `scalar` scales
    plain C code (reference kernels and per-op/per-invoke overhead); `align`
    is the channel multiple of the fast path (0: none) and `slow` the cost
    multiplier off it. `needs` names the board flag the optimized ratios rely
    on ("dsp" or "simd"). `anchored` families have priors taken from measured
    cycle counts, so the calibration's transferred scale does not apply.
    """

    core: str
    native: str
    mac: float
    col: float
    out: float
    byte: float
    scalar: float
    align: int
    slow: float
    needs: str = ""
    anchored: bool = False
    kind_mac: tuple[tuple[str, float], ...] = ()
    ref_scalar: float | None = None  # reference kernels' ratio when not `scalar`


FAMILIES: dict[str, FamilyPrior] = {
    # Armv6-M: no DSP/SIMD, no MLA, no 32x32->64 multiply: ~5 cycles/MAC in
    # CMSIS-NN's C path (LDRSB 2 + LDRSB 2 + MULS 1 + ADDS 1, unrolled);
    # requantize needs a software 64-bit multiply. No fast path to fall off.
    "cortex-m0plus": FamilyPrior("cortex-m0plus", "cmsis-nn", mac=4.5, col=1.5, out=3.0,
                                 byte=1.5, scalar=1.6, align=0, slow=1.0),
    # The reference family: DSP extension, SMLAD, 3-stage pipeline.
    "cortex-m4": FamilyPrior("cortex-m4", "cmsis-nn", mac=1.0, col=1.0, out=1.0, byte=1.0,
                             scalar=1.0, align=4, slow=1.8, needs="dsp"),
    # Dual-issue 6-stage superscalar, 64-bit bus and TCM: ~2x M4 per clock on
    # the SIMD MAC loop, somewhat less on scalar code.
    "cortex-m7": FamilyPrior("cortex-m7", "cmsis-nn", mac=0.55, col=0.6, out=0.6, byte=0.6,
                             scalar=0.65, align=4, slow=1.8, needs="dsp"),
    # Armv8-M mainline with the same DSP extension as the M4: same kernels,
    # slightly better scalar IPC (CoreMark/MHz 4.02 vs 3.42).
    "cortex-m33": FamilyPrior("cortex-m33", "cmsis-nn", mac=1.0, col=1.0, out=1.0, byte=1.0,
                              scalar=0.9, align=4, slow=1.8, needs="dsp"),
    # Helium (MVE): 128-bit vectors, ~4x the M4 on int8 MACs; tail
    # predication makes odd channel counts cheap (small penalty).
    "cortex-m55": FamilyPrior("cortex-m55", "cmsis-nn", mac=0.25, col=0.5, out=0.4,
                              byte=0.5, scalar=0.9, align=4, slow=1.2, needs="simd"),
    # M85: Helium plus an M7-class superscalar scalar pipeline (~1.25x M55 on ML).
    "cortex-m85": FamilyPrior("cortex-m85", "cmsis-nn", mac=0.2, col=0.4, out=0.35,
                              byte=0.4, scalar=0.65, align=4, slow=1.2, needs="simd"),
    # ESP32-S3 LX7 with PIE SIMD and ESP-NN. Anchored on measured cycles
    # (espressif/esp-nn README, 240 MHz): 1x1 conv 461,398 cycles for 409,600
    # MACs / 6,400 outputs and 43,578 for 16,384 / 1,024, i.e. ~0.6 cycles/MAC
    # and ~30 per output (external RAM); a 3-channel 3x3 conv (off the mult-8
    # path) 5.8 cycles/MAC. Reference kernels: esp-tflite-micro README gives
    # person_detection 2300 ms without ESP-NN vs 54 ms with, so plain TFLM C
    # is slow on this core (ref_scalar).
    "xtensa-lx7": FamilyPrior("xtensa-lx7", "esp-nn", mac=0.55, col=1.0, out=2.0, byte=1.0,
                              scalar=1.2, align=8, slow=3.0, needs="simd", anchored=True,
                              kind_mac=(("dwconv", 1.0), ("pool", 2.0)), ref_scalar=10.5),
    # ESP32-C3/-C6: single-issue RV32IMC(A), no DSP, no vector unit, no FPU. ESP-NN
    # has no kernels for it (its generic C path), so "esp-nn" and "reference" are
    # both plain C: ~4-5 cycles per int8 MAC (2 LB + MUL + ADD, no multiply-
    # accumulate), scalar code ~1.5x the M4 per clock (CoreMark/MHz 2.3 vs 3.4).
    # Not anchored: no published per-kernel cycle counts.
    "riscv32-imc": FamilyPrior("riscv32-imc", "esp-nn", mac=4.0, col=2.0, out=1.5, byte=1.5,
                               scalar=1.5, align=0, slow=1.0, ref_scalar=1.5),
}
# Extra cost of losing the family's SIMD path (board says dsp/simd = False).
NO_DSP_MAC = 2.5
NO_DSP_COL = 1.5


@dataclass(frozen=True)
class Calibration:
    """Fitted multipliers on top of the priors (see tools/calibrate_latency.py).

    `scale` is the per-core "deployment" factor: what a real TFLM build on a
    real board adds to ideal kernel cycles (flash wait states on weights,
    cache misses, compiler). Cores without measurements get `default_scale`,
    except anchored families (their priors already are measurements).
    `kind_scale` and `out_scale` are shared across cores: they correct the
    relative cost of kernel kinds and of per-output work.
    """

    scale: tuple[tuple[str, float], ...] = ()
    default_scale: float = 1.0
    kind_scale: tuple[tuple[str, float], ...] = ()
    out_scale: float = 1.0
    source: str = "priors"

    def core_scale(self, core: str) -> float:
        fam = FAMILIES[core]
        got = dict(self.scale).get(core)
        if got is not None:
            return got
        return 1.0 if fam.anchored else self.default_scale

    def kind_multiplier(self, kind: str) -> float:
        return dict(self.kind_scale).get(kind, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"scale": dict(self.scale), "default_scale": self.default_scale,
                "kind_scale": dict(self.kind_scale), "out_scale": self.out_scale,
                "source": self.source}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "") -> "Calibration":
        def pairs(m: Any) -> tuple[tuple[str, float], ...]:
            return tuple(sorted((str(k), float(v)) for k, v in (m or {}).items()))
        cal = cls(scale=pairs(d.get("scale")), default_scale=float(d.get("default_scale", 1.0)),
                  kind_scale=pairs(d.get("kind_scale")), out_scale=float(d.get("out_scale", 1.0)),
                  source=source or str(d.get("source", "")))
        for name, v in list(cal.scale) + list(cal.kind_scale) + [
                ("default_scale", cal.default_scale), ("out_scale", cal.out_scale)]:
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"calibration value {name}={v} must be a positive number")
        unknown = [c for c, _ in cal.scale if c not in FAMILIES]
        if unknown:
            raise ValueError(f"calibration names unknown cores {unknown}")
        return cal


PRIOR_CALIBRATION = Calibration()


@lru_cache(maxsize=8)
def _load_calibration_cached(path: str, mtime_ns: int) -> Calibration:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return Calibration.from_dict(data.get("coefficients", data), source=path)


def load_calibration(path: str | os.PathLike | None = None) -> Calibration:
    """The fitted calibration; priors alone when the default file is absent.

    Cached per (path, mtime) so re-running the calibration tool is picked up
    without restarting, and a profile of many graphs reads the file once.
    """
    p = Path(path) if path is not None else CALIBRATION_PATH
    if not p.exists():
        if path is None:
            return PRIOR_CALIBRATION
        raise UserError(f"calibration file {p} does not exist")
    try:
        return _load_calibration_cached(str(p), p.stat().st_mtime_ns)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"calibration file {p} is unreadable ({e}); re-run "
                        "tools/calibrate_latency.py") from None


@dataclass(frozen=True)
class KindCoeffs:
    """Resolved coefficients of one kernel kind on one configuration."""

    mac: float
    col: float
    out: float
    byte: float
    overhead: float
    align: int
    slow: float


@dataclass(frozen=True)
class Coeffs:
    kinds: tuple[tuple[str, KindCoeffs], ...] = field(default=())
    invoke_overhead: float = 0.0

    def kind(self, kind: str) -> KindCoeffs:
        for k, c in self.kinds:
            if k == kind:
                return c
        raise ValueError(f"unknown kernel kind {kind!r}; expected one of {', '.join(COST_KINDS)}")


def _no_fpu(fpu: Any) -> bool:
    return fpu is None or fpu is False or str(fpu).strip().lower() in ("", "none", "no", "false")


def coefficients(core: str, kernels: str, dsp: bool | None = None, simd: bool | None = None,
                 fpu: Any = "sp", dtype: str = "int8",
                 calibration: Calibration | None = None) -> Coeffs:
    """Resolve priors x family ratios x calibration for one configuration.

    `dsp`/`simd` None mean the family's usual value. An optimized library that
    is not native to the core (ESP-NN on a Cortex-M, CMSIS-NN on Xtensa) is
    costed as portable C, i.e. like the reference kernels. `calibration` None
    means calibration.json (priors alone when it is absent).
    """
    if core not in FAMILIES:
        raise UserError(f"no latency model for core {core!r}; known cores: {', '.join(FAMILIES)}")
    if kernels not in KERNEL_LIBS:
        raise UserError(f"unknown kernel library {kernels!r}; expected one of {', '.join(KERNEL_LIBS)}")
    cal = calibration if calibration is not None else load_calibration()
    fpu_key = "none" if _no_fpu(fpu) else "fpu"
    return _coefficients(core, kernels, dsp, simd, fpu_key, str(dtype), cal)


@lru_cache(maxsize=512)
def _coefficients(core: str, kernels: str, dsp: bool | None, simd: bool | None, fpu: str,
                  dtype: str, cal: Calibration) -> Coeffs:
    fam = FAMILIES[core]
    lost_simd = (fam.needs == "dsp" and dsp is False) or (fam.needs == "simd" and simd is False)
    if lost_simd and fam.needs == "simd" and core.startswith("cortex-"):
        # Helium absent: a v8.1-M core with the DSP extension, i.e. M33-like.
        base = FAMILIES["cortex-m33"]
        fam = FamilyPrior(core, fam.native, base.mac, base.col, base.out, base.byte,
                          fam.scalar, base.align, base.slow, needs="dsp")
        lost_simd = dsp is False
    reference = kernels != fam.native or dtype not in ("int8", "int16")
    dfactor = 1.0
    if dtype == "int16":
        dfactor = INT16_FACTOR
    elif dtype == "float32":
        dfactor = FLOAT_SOFT_FACTOR if fpu == "none" else FLOAT_FPU_FACTOR
    scale = cal.core_scale(core)
    adjust = not fam.anchored  # shared kind corrections were fitted on Arm priors
    ref_scalar = fam.ref_scalar if fam.ref_scalar is not None else fam.scalar
    kinds = []
    for kind in COST_KINDS:
        b = M4_BASE[kind]
        if reference:
            r = REF_FACTOR[kind] * ref_scalar
            mac = col = out = byte = r
            align, slow = 0, 1.0
        else:
            mac, col, out, byte = fam.mac, fam.col, fam.out, fam.byte
            mac *= dict(fam.kind_mac).get(kind, 1.0)
            align, slow = fam.align, fam.slow
            if lost_simd:
                mac, col, align, slow = mac * NO_DSP_MAC, col * NO_DSP_COL, 0, 1.0
        km = cal.kind_multiplier(kind) if adjust else 1.0
        om = cal.out_scale if adjust else 1.0
        s = scale * dfactor
        kinds.append((kind, KindCoeffs(
            mac=b.get("mac", 0.0) * mac * km * s,
            col=b.get("col", 0.0) * col * km * s,
            out=b.get("out", 0.0) * out * km * om * s,
            byte=b.get("byte", 0.0) * byte * km * s,
            overhead=M4_OP_OVERHEAD * fam.scalar,
            align=align, slow=slow)))
    return Coeffs(kinds=tuple(kinds), invoke_overhead=M4_INVOKE_OVERHEAD * fam.scalar)


def _evaluate(c: KindCoeffs, kind: str, macs, in_bytes, out_bytes, in_ch, out_ch):
    """The one formula; numpy broadcasting makes it serve scalars and arrays alike."""
    macs = np.asarray(macs, dtype=np.float64)
    in_b = np.asarray(in_bytes, dtype=np.float64)
    out_b = np.asarray(out_bytes, dtype=np.float64)
    ic = np.asarray(in_ch, dtype=np.int64)
    oc = np.asarray(out_ch, dtype=np.int64)
    compute = c.mac * macs
    if c.col:
        compute = compute + c.col * (macs / np.maximum(oc, 1))
    compute = compute + c.out * out_b + c.byte * (in_b + out_b)
    if kind in CONV_KINDS and c.align > 0:
        off = (ic % c.align != 0) | (oc % c.align != 0)
        if kind == "dwconv":
            off = off | (oc != ic)  # depth multiplier > 1 leaves the optimized kernel
        compute = compute * np.where(off, c.slow, 1.0)
    return c.overhead + compute


def cycles_vectorized(kind: str, macs, in_bytes, out_bytes, in_ch, out_ch, core: str,
                      kernels: str, *, dsp: bool | None = None, simd: bool | None = None,
                      fpu: Any = "sp", dtype: str = "int8",
                      calibration: Calibration | None = None) -> np.ndarray:
    """Cycles of many ops of one kernel kind at once (arrays of equal shape).

    For the cost model that scores whole populations: `macs` is MACs for
    conv/fc and accumulations for pooling (output elements x window), 0 for
    the rest; bytes are activation bytes read and written; channels are the
    last dims (FC: features and units). Same arithmetic as op_cycles.
    """
    if kind not in COST_KINDS:
        raise ValueError(f"unknown kernel kind {kind!r}; expected one of {', '.join(COST_KINDS)}")
    c = coefficients(core, kernels, dsp, simd, fpu, dtype, calibration).kind(kind)
    return np.asarray(_evaluate(c, kind, macs, in_bytes, out_bytes, in_ch, out_ch),
                      dtype=np.float64)


def _board_args(board: Board) -> dict[str, Any]:
    return {"core": board.core, "kernels": board.kernels, "dsp": getattr(board, "dsp", None),
            "simd": getattr(board, "simd", None), "fpu": getattr(board, "fpu", "sp")}


def features_cycles(f: OpFeatures, board: Board, calibration: Calibration | None = None) -> float:
    """Model cycles of one op given its features."""
    a = _board_args(board)
    out = cycles_vectorized(f.kind, f.macs, f.in_bytes, f.out_bytes, f.in_ch, f.out_ch,
                            a["core"], a["kernels"], dsp=a["dsp"], simd=a["simd"],
                            fpu=a["fpu"], dtype=f.dtype, calibration=calibration)
    return float(out)


def signature_cycles(sig: str, board: Board, calibration: Calibration | None = None) -> float:
    """Model cycles of the op a signature describes (what a default LUT holds)."""
    return features_cycles(signature_features(sig), board, calibration)


def op_cycles(graph: Graph, op: Op, board: Board, calibration: Calibration | None = None) -> float:
    """Model cycles of one graph op on a board, including its dispatch overhead.

    Goes through the op's signature, so a LUT entry and the model always cost
    the same thing.
    """
    return signature_cycles(op_signature(graph, op), board, calibration)


def invoke_overhead_cycles(board: Board) -> float:
    """Per-invoke overhead of the interpreter on this board's core."""
    return coefficients(**_board_args(board)).invoke_overhead


class OpLatency(NamedTuple):
    index: int
    cycles: float
    ms: float
    source: str  # "model" | "measured" | "interpolated"


@dataclass
class LatencyReport:
    """Latency of one graph on one board: the per-op entries and their sum."""

    board: str
    clock_hz: float
    total_cycles: float
    total_ms: float
    invoke_overhead_cycles: float
    per_op: list[OpLatency]
    signatures: list[str]

    @property
    def sources(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self.per_op:
            counts[e.source] = counts.get(e.source, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "board": self.board, "clock_hz": self.clock_hz, "total_cycles": self.total_cycles,
            "total_ms": self.total_ms, "invoke_overhead_cycles": self.invoke_overhead_cycles,
            "sources": self.sources,
            "per_op": [{"index": e.index, "signature": s, "cycles": e.cycles, "ms": e.ms,
                        "source": e.source} for e, s in zip(self.per_op, self.signatures)],
        }
