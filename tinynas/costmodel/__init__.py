"""Vectorized cost model: what `tinynas profile` would say about many subnets, without graphs.

    cm = CostModel(spec, board)            # lut defaults to the board's LUT
    c = cm.evaluate(genomes)               # Costs: macs, params, flash, arena, sram, latency
    ok = cm.feasible(c, latency_ms=None)

Peak SRAM is `planner.plan_arena` on `graph_builder.build_graph(arch)` (the
board's pointer width and kernel scratch; also the x86-64 reference variant),
flash is `flash.tflite_bytes_estimate` of the same graph plus the board's
reserve, latency is `latency.graph_latency` - all reproduced exactly, as
tests/test_costmodel.py checks on random genomes of several spaces and boards.
"""

from .model import CostModel, Costs

__all__ = ["CostModel", "Costs"]
