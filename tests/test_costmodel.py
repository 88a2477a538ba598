"""The vectorized cost model against the graph path it replaces, exactly.

For every genome: peak SRAM equals planner.plan_arena on graph_builder.build_graph
(the board's pointer width and kernel scratch, and the x86-64 reference variant),
flash equals flash.tflite_bytes_estimate plus the board's reserve, MACs and
parameters equal the graph's, and latency equals latency.graph_latency.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinynas.boards import load_board
from tinynas.cgen import arena_for_firmware
from tinynas.costmodel import CostModel, Costs
from tinynas.errors import UserError
from tinynas.flash import tflite_bytes_estimate
from tinynas.latency import default_lut, graph_latency
from tinynas.latency.signature import op_signature
from tinynas.planner import plan_arena
from tinynas.space import decode, default_space, load_space, sample_genomes, unpack_genomes
from tinynas.space.graph_builder import build_graph


def _board(board_id: str, **changes):
    b = load_board(board_id)
    return dataclasses.replace(b, **changes) if changes else b


SMALL_DEPTHS = dict(depths=[1, 2], kernels=[3, 5, 7], expand_ratios=[1, 3, 6],
                    stages=[{"channels": 16, "stride": 2}, {"channels": 24, "stride": 1},
                            {"channels": 24, "stride": 2}, {"channels": 40, "stride": 1}])

# (space overrides, board id, board changes, genomes): ~220 genomes over inputs, widths and kernels
CASES = {
    "cifar-m7": (dict(width_mult=0.5), "stm32f746g-disco", {}, 50),
    "mfcc-m4": (dict(input_channels=1, resolution=[49, 10], width_mult=0.3, num_classes=12),
                "arduino-nano-33-ble-sense", {}, 40),
    "vww-esp32": (dict(input_channels=1, resolution=[96, 96], width_mult=0.2, num_classes=2),
                  "esp32-s3-devkitc", {}, 30),
    "m0plus-64": (dict(width_mult=0.35, resolution=[64, 64]), "rpi-pico", {}, 25),
    "m55-helium": (dict(width_mult=0.75, resolution=[40, 40]), "ek-ra6m4",
                   {"core": "cortex-m55"}, 25),
    "no-dsp-m4": (dict(width_mult=1.0, resolution=[24, 24]), "nucleo-f446re", {"dsp": False}, 20),
    "depth1-residuals": (dict(width_mult=0.4, resolution=[20, 20], **SMALL_DEPTHS), "nrf5340-dk", {}, 20),
    "tiny-1class": (dict(width_mult=0.2, input_channels=1, resolution=[2, 2], num_classes=1),
                    "stm32f412g-disco", {}, 10),
}


def _expected(g, board) -> dict:
    dev = plan_arena(g, board.pointer_bytes, board.kernels, board.core, board.dsp).arena_bytes
    params = sum(t.num_elements for t in g.tensors if t.is_const) - 2  # MEAN's axis is no parameter
    return {"macs": g.total_macs, "params": params,
            "flash_bytes": tflite_bytes_estimate(g) + board.flash_reserved_bytes,
            "arena_bytes": dev, "sram_bytes": arena_for_firmware(dev) + board.sram_reserved_bytes,  # kArenaBytes
            "arena_ref_bytes": plan_arena(g, 8, "reference").arena_bytes}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_planner_flash_and_latency_exactly(case):
    overrides, board_id, changes, n = CASES[case]
    spec = load_space(None, **overrides)
    board = _board(board_id, **changes)
    cm = CostModel(spec, board)
    genomes = sample_genomes(spec, n, np.random.default_rng(len(case)))
    c = cm.evaluate(genomes)
    assert len(c) == n
    for i, genome in enumerate(genomes):
        g = build_graph(decode(spec, genome))
        got = c.row(i)
        for key, want in _expected(g, board).items():
            assert got[key] == want, (case, i, key, got[key], want)
        assert got["latency_ms"] == pytest.approx(graph_latency(g, board).total_ms, rel=1e-12)


def test_measured_lut_entries_are_used():
    """With measured entries the model asks the LUT per op, as graph_latency does."""
    spec = default_space(width_mult=0.3, resolution=[24, 24])
    board = load_board("stm32f746g-disco")
    genomes = sample_genomes(spec, 8, np.random.default_rng(3))
    lut = default_lut(board)
    g0 = build_graph(decode(spec, genomes[0]))
    for op in g0.ops[::3]:  # measure every third op of the first subnet: others interpolate
        lut.set(op_signature(g0, op), 1000.0 + op.index, "measured")
    c = CostModel(spec, board, lut).evaluate(genomes)
    for i, genome in enumerate(genomes):
        want = graph_latency(build_graph(decode(spec, genome)), board, lut).total_ms
        assert c.latency_ms[i] == pytest.approx(want, rel=1e-12)
    assert c.latency_ms[0] != pytest.approx(CostModel(spec, board).evaluate(genomes[:1]).latency_ms[0])


def test_resolution_per_row_and_grid_agree_with_single_calls():
    spec = default_space(width_mult=0.3)
    cm = CostModel(spec, load_board("nucleo-f767zi"))
    genomes = sample_genomes(spec, 30, np.random.default_rng(5))
    res = np.array([24, 32, 48] * 10)
    mixed = cm.evaluate(genomes, res)
    grid = cm.evaluate_grid(genomes, [24, 32, (48, 40)])
    for r in (24, 32, 48):
        idx = np.flatnonzero(res == r)
        single = cm.evaluate(genomes[idx], r)
        for f in dataclasses.fields(Costs):
            np.testing.assert_array_equal(getattr(mixed, f.name)[idx], getattr(single, f.name))
    np.testing.assert_array_equal(grid[1].sram_bytes, cm.evaluate(genomes, 32).sram_bytes)
    g = build_graph(decode(spec.with_config(resolution=[48, 40]), genomes[7]))
    assert grid[2].row(7)["arena_ref_bytes"] == plan_arena(g, 8, "reference").arena_bytes


def test_evaluate_arch_and_row():
    spec = default_space(width_mult=0.5)
    cm = CostModel(spec, load_board("stm32f746g-disco"))
    genome = sample_genomes(spec, 1, np.random.default_rng(9))
    arch = decode(spec, genome[0])
    row = cm.evaluate_arch(arch)
    assert row == cm.evaluate(genome).row(0)
    assert set(row) == {"macs", "params", "flash_bytes", "arena_bytes", "sram_bytes", "latency_ms",
                        "arena_ref_bytes"}
    assert all(isinstance(v, (int, float)) for v in row.values())
    other = decode(spec.with_config(resolution=[40, 40]), genome[0])  # its own resolution
    g = build_graph(other)
    assert cm.evaluate_arch(other)["macs"] == g.total_macs


def test_constraints_follow_the_board():
    spec = default_space(width_mult=0.5)
    board = load_board("arduino-nano-33-ble-sense")
    cm = CostModel(spec, board)
    c = cm.evaluate(sample_genomes(spec, 200, np.random.default_rng(1)), reference=False)
    assert c.arena_ref_bytes is None and "arena_ref_bytes" not in c.row(0)
    m = cm.constraint_masks(c)
    np.testing.assert_array_equal(m["sram"], c.sram_bytes > board.sram_bytes)
    np.testing.assert_array_equal(m["flash"], c.flash_bytes > board.flash_bytes)
    assert not m["latency"].any()
    limit = float(np.median(c.latency_ms))
    ok = cm.feasible(c, latency_ms=limit)
    np.testing.assert_array_equal(ok, ~(m["sram"] | m["flash"] | (c.latency_ms > limit)))
    assert 0 < ok.sum() < len(c)
    np.testing.assert_array_equal(cm.latency_ms(sample_genomes(spec, 200, np.random.default_rng(1))),
                                  c.latency_ms)


def test_bad_genomes_and_resolutions_are_user_errors():
    spec = default_space()
    cm = CostModel(spec, load_board("stm32f746g-disco"))
    with pytest.raises(UserError, match="genome"):
        cm.evaluate(np.zeros((2, 5), dtype=np.int8))
    bad = sample_genomes(spec, 1, np.random.default_rng(0))
    bad[0, 0] = 7
    with pytest.raises(UserError, match=r"genome\[0\]"):
        cm.evaluate(bad)
    with pytest.raises(UserError, match="resolution"):
        cm.evaluate(sample_genomes(spec, 1, np.random.default_rng(0)), (32, 32, 3))
    assert len(cm.evaluate(np.zeros((0, bad.shape[1]), dtype=np.int8))) == 0


def test_inactive_slots_do_not_change_costs():
    spec = default_space(width_mult=0.4)
    cm = CostModel(spec, load_board("stm32f746g-disco"))
    genomes = sample_genomes(spec, 20, np.random.default_rng(2))
    lay, rng = cm.layout, np.random.default_rng(3)
    inactive = ~unpack_genomes(spec, genomes).active.reshape(len(genomes), -1)
    noisy = genomes.copy()
    for sl, n in ((lay.kernel_slice, len(spec.kernels)), (lay.expand_slice, len(spec.expand_ratios))):
        part = noisy[:, sl]
        part[inactive] = rng.integers(0, n, int(inactive.sum()))
    assert (noisy != genomes).any()
    a, b = cm.evaluate(genomes), cm.evaluate(noisy)
    for f in dataclasses.fields(Costs):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))


FUSED_RES = dict(depths=[1, 2], kernels=[3, 5], expand_ratios=[1, 2],
                 stages=[{"channels": 16, "stride": 2}, {"channels": 24, "stride": 1},
                         {"channels": 24, "stride": 2}, {"channels": 40, "stride": 1}])


@pytest.mark.parametrize("block, board_id, res", [("fused", "stm32f746g-disco", [32, 32]),
                                                  ("res", "stm32f746g-disco", [32, 32]),
                                                  ("res", "arduino-nano-33-ble-sense", [20, 20]),
                                                  ("fused", "rpi-pico", [24, 24]),
                                                  ("res", "esp32-s3-devkitc", [9, 9]),
                                                  ("res,fused,mb", "stm32f746g-disco", [32, 32]),
                                                  ("fused,mb", "arduino-nano-33-ble-sense", [20, 20])])
def test_fused_and_res_spaces_match_the_planner_exactly(block, board_id, res):
    """Other block types, projection shortcuts included, through the same vectorized tables."""
    spec = load_space(None, block=block, width_mult=0.5, resolution=res, **FUSED_RES)
    board = load_board(board_id)
    genomes = sample_genomes(spec, 25, np.random.default_rng(3))
    c = CostModel(spec, board).evaluate(genomes)
    for i, genome in enumerate(genomes):
        g = build_graph(decode(spec, genome))
        got = c.row(i)
        for key, want in _expected(g, board).items():
            assert got[key] == want, (block, board_id, i, key, got[key], want)
        assert got["latency_ms"] == pytest.approx(graph_latency(g, board).total_ms, rel=1e-12)
