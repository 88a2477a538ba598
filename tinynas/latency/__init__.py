"""Latency of int8 TFLite Micro graphs on microcontroller boards.

One interface for everyone who needs latency (`profile`, `space`, the search):
`graph_latency(graph, board, lut=None)`. It sums per-op entries of the
board's lookup table (measured where a measurement exists, interpolated from
a measured neighbour, else the calibrated cycle model) plus the per-invoke
overhead. `cycles_vectorized` is the same model over numpy arrays, for cost
models that score whole populations of candidates.

Boards are duck-typed: anything with id, core, clock_hz, kernels (and
optionally dsp, simd, fpu) works, so tests can pass a small stand-in.
"""

from .cycle_model import (
    COST_KINDS,
    FAMILIES,
    KERNEL_LIBS,
    Calibration,
    LatencyReport,
    OpLatency,
    cycles_vectorized,
    invoke_overhead_cycles,
    load_calibration,
    op_cycles,
    signature_cycles,
)
from .lut import Lut, LutEntry, default_lut, graph_latency, load_lut, lut_for_board, lut_path, save_lut
from .signature import (
    OpFeatures,
    format_signature,
    op_signature,
    parse_signature,
    signature_class,
    signature_features,
)

__all__ = [
    "COST_KINDS", "FAMILIES", "KERNEL_LIBS", "Calibration", "LatencyReport", "OpLatency",
    "cycles_vectorized", "graph_latency", "invoke_overhead_cycles", "load_calibration",
    "op_cycles", "signature_cycles", "Lut", "LutEntry", "default_lut", "load_lut",
    "lut_for_board", "lut_path", "save_lut", "OpFeatures", "format_signature", "op_signature",
    "parse_signature", "signature_class", "signature_features",
]
