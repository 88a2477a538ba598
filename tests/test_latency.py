"""Latency model: signatures, cycle model, LUT precedence, calibration quality."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinynas.errors import UserError
from tinynas.graph import Graph, Op, Tensor
from tinynas.latency import (
    COST_KINDS,
    Calibration,
    cycles_vectorized,
    default_lut,
    format_signature,
    graph_latency,
    load_calibration,
    load_lut,
    lut_for_board,
    op_cycles,
    op_signature,
    parse_signature,
    save_lut,
    signature_cycles,
    signature_features,
)
from tinynas.latency.cycle_model import CALIBRATION_PATH
from tinynas.op_costs import annotate_costs
from tinynas.tflite_reader import read_tflite

ROOT = Path(__file__).resolve().parent.parent


def board(core: str = "cortex-m4", kernels: str = "cmsis-nn", clock_hz: float = 120e6,
          **kw) -> SimpleNamespace:
    """A stand-in for tinynas.boards.Board: the model only duck-types it."""
    spec = dict(id=f"test-{core}-{kernels}", name="test", core=core, clock_hz=clock_hz,
                sram_bytes=256 << 10, flash_bytes=1 << 20, dsp=core != "cortex-m0plus",
                simd=core != "cortex-m0plus", fpu="sp", kernels=kernels)
    spec.update(kw)
    return SimpleNamespace(**spec)


def conv_graph(h: int, w: int, cin: int, cout: int, k: int = 3, stride: int = 1,
               depthwise: bool = False) -> Graph:
    """One CONV_2D / DEPTHWISE_CONV_2D op with SAME padding."""
    oh, ow = -(-h // stride), -(-w // stride)
    wshape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
    n_w = int(np.prod(wshape))
    tensors = [
        Tensor(0, "x", (1, h, w, cin), "int8"),
        Tensor(1, "w", wshape, "int8", is_const=True, data=np.zeros(n_w, np.int8),
               buffer_bytes=n_w),
        Tensor(2, "b", (cout,), "int32", is_const=True, data=np.zeros(cout * 4, np.uint8),
               buffer_bytes=cout * 4),
        Tensor(3, "y", (1, oh, ow, cout), "int8"),
    ]
    opts = {"padding": 0, "stride_h": stride, "stride_w": stride,
            "dilation_h_factor": 1, "dilation_w_factor": 1}
    if depthwise:
        opts["depth_multiplier"] = cout // cin
    op = Op(0, "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", (0, 1, 2), (3,), options=opts)
    g = Graph(tensors=tensors, ops=[op], inputs=(0,), outputs=(3,))
    annotate_costs(g)
    return g


@pytest.fixture(scope="module")
def mlperf_graphs(shared_models) -> dict[str, Graph]:
    return {k: read_tflite(p) for k, p in shared_models.items()}


# --- signatures -------------------------------------------------------------

def test_signature_examples_and_round_trip():
    g = conv_graph(32, 32, 3, 16)
    assert op_signature(g, g.ops[0]) == "conv2d-in:32x32x3-out:32x32x16-k:3-s:1"
    g = conv_graph(48, 48, 16, 16, k=5, stride=2, depthwise=True)
    assert op_signature(g, g.ops[0]) == "dwconv2d-in:48x48x16-out:24x24x16-k:5-s:2"
    for sig in ["conv2d-in:32x32x3-out:32x32x16-k:3-s:1", "fc-in:64-out:10",
                "fc-in:64-out:10-b:4", "conv2d-in:49x10x1-out:25x5x64-k:10x4-s:2",
                "avgpool-in:8x8x64-out:1x1x64-k:8-s:8", "add-in:8x8x64-out:8x8x64",
                "softmax-in:10-out:10-dt:float32", "conv2d-in:8x8x8-out:8x8x8-k:3-s:1-d:2-g:2",
                "conv_3d-in:4x4x4x2-out:4x4x4x2-macs:4096"]:
        p = parse_signature(sig)
        assert format_signature(**p) == sig
        assert parse_signature(format_signature(**p)) == p
    p = parse_signature("conv2d-in:32x32x3-out:32x32x16-k:3-s:1")
    assert p == {"kind": "conv2d", "in": (32, 32, 3), "out": (32, 32, 16), "k": (3, 3), "s": (1, 1)}
    for bad in ["", "Conv-in:3", "conv2d-in:3x", "conv2d-in", "conv2d-zz:3", "fc-in:3-in:4"]:
        with pytest.raises(ValueError):
            parse_signature(bad)


def test_signatures_of_real_models(mlperf_graphs):
    for name, g in mlperf_graphs.items():
        sigs = [op_signature(g, op) for op in g.ops]
        for op, sig in zip(g.ops, sigs):
            assert format_signature(**parse_signature(sig)) == sig
            assert "--" not in sig and " " not in sig
            f = signature_features(sig)
            assert f.kind in COST_KINDS
            if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                assert f.macs == op.macs, (name, sig)
    ic = mlperf_graphs["pretrainedResnet_quant"]
    assert op_signature(ic, ic.ops[0]) == "conv2d-in:32x32x3-out:32x32x16-k:3-s:1"
    assert op_signature(ic, ic.ops[14]) == "fc-in:64-out:10"
    assert op_signature(ic, ic.ops[12]) == "avgpool-in:8x8x64-out:1x1x64-k:8-s:8"


# --- cycle model ------------------------------------------------------------

def test_fast_path_penalty_138_vs_140_channels():
    """MicroNets: 138 -> 140 channels took one conv from 37.5 ms to 21.5 ms."""
    b = board("cortex-m7", clock_hz=216e6)
    slow = conv_graph(20, 20, 138, 138, k=1)
    fast = conv_graph(20, 20, 140, 140, k=1)
    c_slow, c_fast = op_cycles(slow, slow.ops[0], b), op_cycles(fast, fast.ops[0], b)
    assert slow.ops[0].macs < fast.ops[0].macs
    assert 1.4 < c_slow / c_fast < 2.2  # published 37.5 / 21.5 = 1.74
    # Reference kernels have no fast path: more MACs simply cost more.
    r = board("cortex-m7", kernels="reference", clock_hz=216e6)
    assert op_cycles(slow, slow.ops[0], r) < op_cycles(fast, fast.ops[0], r)


def test_reference_kernels_several_times_slower():
    for g in (conv_graph(32, 32, 16, 32), conv_graph(24, 24, 32, 64, k=1),
              conv_graph(24, 24, 32, 32, depthwise=True)):
        fast = op_cycles(g, g.ops[0], board())
        ref = op_cycles(g, g.ops[0], board(kernels="reference"))
        assert 3.0 <= ref / fast <= 6.0


def test_core_ordering_and_board_flags():
    g = conv_graph(24, 24, 32, 64, k=1)
    cyc = {c: op_cycles(g, g.ops[0], board(c)) for c in
           ("cortex-m0plus", "cortex-m4", "cortex-m33", "cortex-m7", "cortex-m55", "cortex-m85")}
    assert cyc["cortex-m0plus"] > cyc["cortex-m4"] > cyc["cortex-m7"] > cyc["cortex-m55"]
    assert cyc["cortex-m85"] < cyc["cortex-m55"]
    assert op_cycles(g, g.ops[0], board(dsp=False)) > cyc["cortex-m4"]
    assert op_cycles(g, g.ops[0], board("cortex-m55", simd=False)) > cyc["cortex-m55"]
    lx7 = board("xtensa-lx7", kernels="esp-nn", clock_hz=240e6, dsp=False)
    assert op_cycles(g, g.ops[0], lx7) > 0
    with pytest.raises(UserError):
        op_cycles(g, g.ops[0], board("cortex-a53"))
    with pytest.raises(UserError):
        op_cycles(g, g.ops[0], board(kernels="tvm"))


def test_vectorized_equals_scalar(mlperf_graphs):
    configs = [board(), board("cortex-m7", kernels="reference"), board("cortex-m0plus"),
               board("cortex-m55"), board("xtensa-lx7", kernels="esp-nn", dsp=False)]
    for g in mlperf_graphs.values():
        feats = [signature_features(op_signature(g, op)) for op in g.ops]
        for b in configs:
            for kind in {f.kind for f in feats}:
                idx = [i for i, f in enumerate(feats) if f.kind == kind and f.dtype == "int8"]
                if not idx:
                    continue
                arr = {a: np.array([getattr(feats[i], a) for i in idx])
                       for a in ("macs", "in_bytes", "out_bytes", "in_ch", "out_ch")}
                vec = cycles_vectorized(kind, arr["macs"], arr["in_bytes"], arr["out_bytes"],
                                        arr["in_ch"], arr["out_ch"], b.core, b.kernels,
                                        dsp=b.dsp, simd=b.simd, fpu=b.fpu)
                scalar = [op_cycles(g, g.ops[i], b) for i in idx]
                assert vec.tolist() == scalar  # exactly, not approximately
    # A large random population, 2-D arrays included.
    rng = np.random.default_rng(0)
    shape = (100, 50)
    ch_in, ch_out = rng.integers(1, 300, shape), rng.integers(1, 300, shape)
    macs = rng.integers(0, 5_000_000, shape)
    vec = cycles_vectorized("conv", macs, ch_in * 100, ch_out * 100, ch_in, ch_out,
                            "cortex-m4", "cmsis-nn")
    assert vec.shape == shape
    i, j = 7, 3
    one = cycles_vectorized("conv", macs[i, j], ch_in[i, j] * 100, ch_out[i, j] * 100,
                            ch_in[i, j], ch_out[i, j], "cortex-m4", "cmsis-nn")
    assert float(one) == vec[i, j]


def test_graph_latency_sums_entries(mlperf_graphs):
    g = mlperf_graphs["vww_96_int8"]
    b = board(clock_hz=80e6, dsp=False)  # no DSP: no emulated table holds, the model alone
    r = graph_latency(g, b)
    assert len(r.per_op) == len(g.ops) and len(r.signatures) == len(g.ops)
    assert {e.source for e in r.per_op} == {"model"}
    idx, cycles, ms, source = r.per_op[0]
    assert idx == 0 and ms == pytest.approx(cycles / 80e6 * 1e3)
    assert r.total_cycles == pytest.approx(r.invoke_overhead_cycles + sum(e.cycles for e in r.per_op))
    assert r.total_ms == pytest.approx(r.total_cycles / 80e6 * 1e3)
    assert r.to_dict()["per_op"][0]["signature"] == r.signatures[0]
    # Twice the clock, half the time (cycles do not depend on the clock).
    assert graph_latency(g, board(clock_hz=160e6, dsp=False)).total_ms == pytest.approx(r.total_ms / 2)


# --- LUT --------------------------------------------------------------------

def test_lut_precedence_measured_interpolated_model():
    b = board()
    lut = default_lut(b)
    a = "conv2d-in:32x32x16-out:32x32x32-k:3-s:1"
    same_class = "conv2d-in:16x16x16-out:16x16x32-k:3-s:1"
    other = "conv2d-in:16x16x16-out:16x16x32-k:5-s:1"
    assert lut.lookup(a) == (signature_cycles(a, b), "model")
    lut.set(a, 2_000_000.0, "measured")
    assert lut.lookup(a) == (2_000_000.0, "measured")
    cyc, src = lut.lookup(same_class)
    assert src == "interpolated"
    assert cyc == pytest.approx(2e6 * signature_cycles(same_class, b) / signature_cycles(a, b))
    assert lut.lookup(other) == (signature_cycles(other, b), "model")
    # A nearer measured neighbour wins.
    near = "conv2d-in:20x20x16-out:20x20x32-k:3-s:1"
    lut.set(near, 500_000.0)
    cyc, src = lut.lookup(same_class)
    assert src == "interpolated"
    assert cyc == pytest.approx(5e5 * signature_cycles(same_class, b) / signature_cycles(near, b))
    # An exact stored entry beats interpolation, whatever its source.
    lut.set(same_class, 123.0, "model")
    assert lut.lookup(same_class) == (123.0, "model")


def test_lut_graph_latency_uses_measured_entries():
    g = conv_graph(32, 32, 16, 16)
    b = board()
    lut = default_lut(b)
    lut.set(op_signature(g, g.ops[0]), 1_000_000.0)
    lut.invoke_overhead_cycles = 0.0
    r = graph_latency(g, b, lut)
    assert r.per_op[0].source == "measured"
    assert r.total_cycles == 1_000_000.0
    assert r.total_ms == pytest.approx(1e6 / 120e6 * 1e3)


def test_lut_json_round_trip(tmp_path):
    b = board()
    sigs = ["conv2d-in:32x32x3-out:32x32x16-k:3-s:1", "fc-in:64-out:10"]
    lut = default_lut(b, sigs)
    lut.set("add-in:8x8x64-out:8x8x64", 4321.5, "measured")
    path = tmp_path / "test.lut.json"
    save_lut(path, lut)
    data = json.loads(path.read_text())
    for key in ("board", "clock_hz", "invoke_overhead_cycles", "created", "tool_version", "entries"):
        assert key in data
    assert data["entries"]["fc-in:64-out:10"]["source"] == "model"
    back = load_lut(path, b)
    assert back == lut  # entries, board, clock, overhead, created, tool_version
    assert back.lookup("add-in:8x8x64-out:8x8x64") == (4321.5, "measured")
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind
    with pytest.raises(UserError):
        load_lut(path, board(id="another-board"))
    for bad in ["{", "[]", '{"board": "x"}',
                '{"board": "x", "clock_hz": 1, "invoke_overhead_cycles": 0, '
                '"entries": {"not a sig": {"cycles": 1}}}',
                '{"board": "x", "clock_hz": 1, "invoke_overhead_cycles": 0, '
                '"entries": {"fc-in:4-out:4": {"cycles": -1}}}']:
        path.write_text(bad)
        with pytest.raises(UserError):
            load_lut(path)


def test_lut_for_board_reads_profiles_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path))  # no profiles/emulated/ there either
    b = board(id="my-board")
    g = conv_graph(16, 16, 8, 8)
    assert graph_latency(g, b).per_op[0].source == "model"
    lut = default_lut(b)
    lut.set(op_signature(g, g.ops[0]), 777.0)
    save_lut(tmp_path / "profiles" / "my-board.lut.json", lut)
    assert lut_for_board(b).lookup(op_signature(g, g.ops[0])) == (777.0, "measured")
    assert graph_latency(g, b).per_op[0][1:] == (777.0, 777.0 / 120e6 * 1e3, "measured")


def test_lut_for_board_uses_its_cores_emulated_counts(tmp_path, monkeypatch):
    """No file of its own: a DSP Cortex-M board takes CPI x its core's counts; other sizes interpolate."""
    from tinynas.latency.emulated import CoreCounts, cpi_for_core, save_core_counts

    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path))
    g, small = conv_graph(16, 16, 8, 8), conv_graph(8, 8, 8, 8)
    sig, other = op_signature(g, g.ops[0]), op_signature(small, small.ops[0])
    save_core_counts(tmp_path / "profiles" / "emulated" / "cortex-m4.json",
                     CoreCounts("cortex-m4", {sig: 10_000}, {"counted_on": "mps2-an386"}))
    b = board(id="my-m4")
    lut = lut_for_board(b)
    assert lut.lookup(sig) == (pytest.approx(10_000 * cpi_for_core("cortex-m4")), "emulated")
    assert lut.lookup(other)[1] == "interpolated"
    assert graph_latency(g, b).per_op[0].source == "emulated"
    assert lut_for_board(board(id="m4-no-dsp", dsp=False)).lookup(sig)[1] == "model"
    assert lut_for_board(board("cortex-m7", id="my-m7")).lookup(sig)[1] == "model"  # no M7 table here
    own = default_lut(b)
    own.set(sig, 5.0, "measured")
    save_lut(tmp_path / "profiles" / "my-m4.lut.json", own)
    assert lut_for_board(b).lookup(sig) == (5.0, "measured")  # the board's own file wins whole
    (tmp_path / "profiles" / "emulated" / "cortex-m4.json").write_text('{"format": "x"}')
    with pytest.raises(UserError, match="emulated-count table"):
        lut_for_board(board(id="another-m4"))


def test_committed_emulated_tables_cover_the_default_space():
    """Each shipped core's table holds every op of the default space, and every op class of the fused and
    residual spaces (their largest subnets do not fit QEMU at full width, so other sizes interpolate)."""
    from tinynas.latency.emulated import load_core_counts
    from tinynas.latency.signature import signature_class
    from tinynas.lutkit.kit import space_signatures
    from tinynas.space import default_space
    from tinynas.space.spec import space_for_block

    wanted = set(space_signatures(default_space()))
    classes = {signature_class(s) for b in ("fused", "res") for s in space_signatures(space_for_block(b))}
    for core in ("cortex-m4", "cortex-m7", "cortex-m33"):
        counts = load_core_counts(core)
        assert counts is not None, f"run tools/fill_emulated_tables.py --cores {core}"
        assert not wanted - set(counts.instructions), core
        assert not classes - {signature_class(s) for s in counts.instructions}, core
        assert counts.meta["counted_on"].startswith("mps2-")


# --- calibration ------------------------------------------------------------

def _calibration_tool():
    spec = importlib.util.spec_from_file_location("calibrate_latency",
                                                  ROOT / "tools" / "calibrate_latency.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("calibrate_latency", mod)  # dataclasses look their module up
    spec.loader.exec_module(sys.modules["calibrate_latency"])
    return sys.modules["calibrate_latency"]


def test_calibration_file_loads():
    assert CALIBRATION_PATH.exists(), "run tools/calibrate_latency.py"
    cal = load_calibration()
    assert cal.source == str(CALIBRATION_PATH)
    assert cal.core_scale("cortex-m4") > 0 and cal.core_scale("cortex-m33") > 0
    assert cal.core_scale("cortex-m7") == cal.default_scale
    assert cal.core_scale("xtensa-lx7") == 1.0  # anchored on measured cycles
    assert Calibration.from_dict(cal.to_dict()).to_dict()["scale"] == dict(cal.scale)
    with pytest.raises(ValueError):
        Calibration.from_dict({"scale": {"cortex-m4": -1}})
    with pytest.raises(ValueError):
        Calibration.from_dict({"scale": {"pentium": 2}})


def test_calibration_leave_one_out_meets_goals(shared):
    tool = _calibration_tool()
    res = tool.run(tool.load_cases(models_dir=shared / "models"))
    assert len(res["loo"]) == 6
    assert res["loo_median_ape"] <= 20.0
    assert res["loo_max_ape"] <= 40.0
    # The shipped calibration.json is what the fit gives (not stale).
    shipped = json.loads(CALIBRATION_PATH.read_text())
    fresh = res["calibration"].to_dict()
    for core, v in shipped["coefficients"]["scale"].items():
        assert fresh["scale"][core] == pytest.approx(v, rel=1e-3)
    assert fresh["default_scale"] == pytest.approx(shipped["coefficients"]["default_scale"], rel=1e-3)
    assert shipped["loo_max_ape"] == pytest.approx(res["loo_max_ape"], rel=1e-3)
    # And the model the package loads reproduces the fitted current-runtime rows.
    m33 = board("cortex-m33", clock_hz=200e6)
    ic = read_tflite(shared / "models" / "mlperf_tiny" / "pretrainedResnet_quant.tflite")
    pred = graph_latency(ic, m33, default_lut(m33)).total_ms  # the model, not the M33's emulated table
    assert math.isclose(pred, 246.2, rel_tol=0.25)


def test_emulated_cpi_fit_and_leave_one_out():
    """One cycles-per-instruction scale: the geometric mean; leave-one-out predicts each row from the others."""
    from tinynas.latency.emulated import Measured, fit_cpi, leave_one_out, median_max_ape

    rows = [Measured("a", 1_000_000, 100e6, 15.0), Measured("b", 2_000_000, 100e6, 40.0),
            Measured("c", 500_000, 50e6, 20.0)]  # CPIs 1.5, 2.0, 2.0
    fit = fit_cpi(rows)
    assert fit.cpi == pytest.approx((1.5 * 2.0 * 2.0) ** (1 / 3))
    assert fit.predict_ms(1_000_000, 100e6) == pytest.approx(10 * fit.cpi)
    loo = leave_one_out(rows)
    assert loo[0]["cpi_fitted"] == pytest.approx(2.0) and loo[0]["error_pct"] == pytest.approx(100 * (20 / 15 - 1), abs=0.01)
    assert loo[1]["cpi_fitted"] == pytest.approx(3 ** 0.5, abs=1e-4)
    assert median_max_ape([-5.0, 10.0, 2.0]) == (5.0, 10.0)
    assert median_max_ape([-5.0, 10.0]) == (7.5, 10.0)
    with pytest.raises(ValueError):
        fit_cpi([])


def test_emulated_counts_run_on_an_emulated_core_with_room_for_any_subnet():
    """Each board counts on its own core's emulator, with QEMU's memory; no scale for other cores."""
    from tinynas.boards import load_board
    from tinynas.errors import UserError
    from tinynas.latency.emulated import CPI_ARMV7EM_DSP, cpi_for_core
    from tinynas.lutkit.emulated_lut import QEMU_MEMORY, count_board

    m33 = count_board(load_board("ek-ra6m4"))
    assert m33.core == "cortex-m33" and m33.sram_bytes == m33.flash_bytes == QEMU_MEMORY
    assert count_board(load_board("stm32f746g-disco")).core == "cortex-m7"
    with pytest.raises(UserError, match="emulator counts"):
        count_board(load_board("rpi-pico"))
    assert cpi_for_core("cortex-m33") == cpi_for_core("cortex-m4") == CPI_ARMV7EM_DSP
    assert cpi_for_core("cortex-m7") < CPI_ARMV7EM_DSP
    with pytest.raises(ValueError):
        cpi_for_core("xtensa-lx7")


def test_emulated_entries_round_trip_with_their_source(tmp_path):
    from tinynas.boards import load_board
    from tinynas.latency import load_lut, save_lut
    from tinynas.latency.lut import Lut

    board = load_board("nucleo-l4r5zi")
    lut = Lut(board=board.id, clock_hz=float(board.clock_hz), invoke_overhead_cycles=5000.0, target=board)
    sig = "add-in:8x8x16-out:8x8x16"
    lut.set(sig, 1234.0, "emulated")
    save_lut(tmp_path / "t.lut.json", lut)
    assert load_lut(tmp_path / "t.lut.json", board).lookup(sig) == (1234.0, "emulated")
