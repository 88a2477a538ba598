"""The op registry (tinynas/ops) and the arena of stateful, multi-subgraph and broken models.

Models come from tests/seq_models.py (flatbuffers written in milliseconds) and
tests/data (TensorFlow-made, regenerate with tests/data/make_tf_models.py).
The TFLM figures below were measured with tinynas.tflm_measure (tflite-micro
0.dev20261023, reference kernels, x86-64); two are re-measured live here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from seq_models import lstm_model, resvar_model, signal_model, svdf_model
from tflite_build import O, Sub, T, build

from tinynas.errors import UserError
from tinynas.ops import REGISTRY, op_spec, resolver_name
from tinynas.planner import plan_arena
from tinynas.tflite_reader import parse_tflite

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent

MODELS = {
    "lstm_1x20": lambda: lstm_model(layers=1, steps=6, feats=5, units=(20,)),
    "lstm_2x16x12": lambda: lstm_model(),
    "lstm_b3": lambda: lstm_model(layers=1, steps=6, feats=5, units=(20,), batch=3),
    "svdf_1": lambda: svdf_model(layers=((32, 1, 10),)),
    "svdf_3": lambda: svdf_model(),
    "svdf_5_b2": lambda: svdf_model(feats=24, layers=((48, 1, 12), (48, 1, 12), (32, 2, 8), (32, 1, 8),
                                                      (16, 1, 4)), batch=2),
    "resvar_1x8": lambda: resvar_model(8, 1),
    "resvar_1x40": lambda: resvar_model(40, 1),
    "resvar_2x8": lambda: resvar_model(8, 2),
    "signal_64": lambda: signal_model(64, 64),
    "signal_256": lambda: signal_model(256, 256),
    "signal_400_512": lambda: signal_model(400, 512),
    "tf_streaming_resvar": lambda: (DATA / "streaming_resvar.tflite").read_bytes(),
    "tf_lstm_while_float": lambda: (DATA / "lstm_while_float.tflite").read_bytes(),
    "tf_quant_cnn_16x8": lambda: (DATA / "quant_cnn_16x8.tflite").read_bytes(),
    "tf_quant_cnn_28x4": lambda: (DATA / "quant_cnn_28x4.tflite").read_bytes(),
}
MEASURED = {"lstm_1x20": 3944, "lstm_2x16x12": 5840, "lstm_b3": 3944, "svdf_1": 2688, "svdf_3": 5240,
            "svdf_5_b2": 12528, "resvar_1x8": 1920, "resvar_1x40": 2160, "resvar_2x8": 2896,
            "tf_streaming_resvar": 3088, "tf_lstm_while_float": 9120, "signal_64": 2120,
            "signal_256": 4168, "signal_400_512": 6760, "tf_quant_cnn_16x8": 3816,
            "tf_quant_cnn_28x4": 5736}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_estimate_within_2_percent_of_tflm(name):
    est = plan_arena(parse_tflite(MODELS[name]())).arena_bytes
    assert abs(est - MEASURED[name]) <= 0.02 * MEASURED[name], (name, est, MEASURED[name])


@pytest.mark.parametrize("name", ["lstm_2x16x12", "svdf_3"])
def test_pinned_figures_still_match_tflm(name):
    from tinynas.tflm_measure import measure_arena

    assert measure_arena(MODELS[name]()).arena_bytes == MEASURED[name]


def test_state_and_subgraphs_are_counted():
    g = parse_tflite(MODELS["resvar_2x8"]())
    assert g.num_subgraphs == 2 and len(g.subgraphs) == 1
    g = parse_tflite(MODELS["tf_lstm_while_float"]())
    assert [sg.ops[0].type for sg in g.subgraphs] and g.num_subgraphs == 3
    small, big = (plan_arena(parse_tflite(resvar_model(n))).tail_bytes for n in (8, 40))
    assert big - small == 128  # the variable's buffer (32 more floats) is in the tail
    lstm = parse_tflite(MODELS["lstm_2x16x12"]())
    assert len(plan_arena(lstm).scratch) == 2 and lstm.ops[0].macs > 0


def _add(a: int, b: int, out: int) -> O:
    return O("ADD", (a, b), (out,), ("AddOptions", {}))


def test_cycle_is_a_user_error(tmp_path):
    cyc = build(Sub([T((1, 4))] * 3, [_add(0, 2, 1), _add(1, 0, 2)], (0,), (1,)))
    with pytest.raises(UserError, match="cycle: op 0"):
        parse_tflite(cyc)
    f = tmp_path / "cycle.tflite"
    f.write_bytes(cyc)
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "profile", str(f), "--no-measure"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cycle" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "FITS" not in r.stdout


def test_zero_dimension_is_a_user_error():
    z = build(Sub([T((1, 4)), T((1, 0, 4))],
                  [O("RESHAPE", (0,), (1,), ("ReshapeOptions", {"newShape": [1, 0, 4]}))], (0,), (1,)))
    with pytest.raises(UserError, match="zero dimension"):
        parse_tflite(z)


def test_acyclic_reuse_is_fine():
    g = parse_tflite(build(Sub([T((1, 4))] * 3, [_add(0, 0, 1), _add(1, 0, 2)], (0,), (2,))))
    assert [o.type for o in g.ops] == ["ADD", "ADD"]


def test_registry_knows_resolvers_and_defaults():
    assert resolver_name("SVDF") == "AddSvdf"
    assert resolver_name("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"
    assert resolver_name("CUSTOM:SignalRfft") == "AddRfft"
    assert resolver_name("NOT_AN_OP") is None
    assert op_spec("NOT_AN_OP").name == "NOT_AN_OP"
    assert op_spec("CONV_2D").opdata(4) == op_spec("CONV_2D").opdata(8) - 8


def test_no_op_rules_outside_the_registry():
    """Modules that used to switch on op names name none now (tinynas/ops holds the rules).

    costmodel/layers.py keeps the op types of a search space's rows (CONV, DW, ...):
    they name which op a row is, and tests/test_costmodel.py checks every figure
    derived from them against the planner byte for byte.
    """
    names = {n for n in REGISTRY if not n.startswith("CUSTOM:")}
    files = ["tinynas/planner.py", "tinynas/op_costs.py", "tinynas/latency/signature.py",
             "tinynas/latency/cycle_model.py", "tinynas/costmodel/arena.py",
             "tinynas/costmodel/latency.py", "tinynas/costmodel/model.py"]
    for f in files:
        text = (ROOT / f).read_text()
        found = {m for m in re.findall(r'"([A-Z][A-Z0-9_]+)"', text) if m in names}
        assert not found, (f, found)


@pytest.mark.parametrize("board", ["rpi-pico2", "b-u585i-iot02a", "ek-ra8d1", "alif-ensemble-e7-hp"])
def test_new_boards_profile(board):
    from tinynas.boards import load_board
    from tinynas.profile import profile_graph

    b = load_board(board)
    p = profile_graph(parse_tflite(MODELS["svdf_3"]()), b)
    assert p["fits"] and p["latency_ms"] > 0 and p["arena_bytes_device"] > 0
    assert b.sources and b.core in ("cortex-m33", "cortex-m55", "cortex-m85")
