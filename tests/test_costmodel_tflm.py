"""The cost model against real exports: .tflite size and the arena TFLM really needs.

20 random subnets of two small spaces (16x16 RGB and a 20x10 MFCC-like input)
are built in torch with random BN statistics (a freshly initialized net has
all-zero biases, which the converter folds into shared buffers), mirrored in
Keras, converted to int8 and run in the TFLM runtime. The analytic flash must be
within 2% of the file size and the analytic x86-64 reference arena within 2% of
the smallest arena TFLM runs in (observed: flash +0.1..0.7%, arena -0.2..-0.1%).

Measurements run in a background thread (each in its own child process), so
they overlap with the next conversion; Keras sessions are cleared between
models so tensor names, and with them file sizes, do not depend on how many
models came before.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tinynas.boards import load_board
from tinynas.costmodel import CostModel
from tinynas.space import decode, load_space, sample_genomes

STAGES = [{"channels": 24, "stride": 2}, {"channels": 40, "stride": 2},
          {"channels": 80, "stride": 2}, {"channels": 96, "stride": 1}]
SPACES = {  # name: (space overrides, subnets)
    "rgb16": (dict(width_mult=0.5, resolution=[16, 16], num_classes=10), 10),
    "mfcc20x10": (dict(width_mult=0.5, input_channels=1, resolution=[20, 10], num_classes=12), 10),
}


@pytest.fixture(scope="module")
def exported():
    km = pytest.importorskip("tinynas.space.keras_model")
    pytest.importorskip("tflite_micro")
    import tensorflow as tf
    import torch

    from test_graph_builder import _randomized_torch  # random BN statistics, as there

    from tinynas.tflm_measure import measure_arena

    torch.set_num_threads(1)
    board = load_board("stm32f746g-disco")
    rows, rng = [], np.random.default_rng(2024)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for name, (overrides, n) in SPACES.items():
            spec = load_space(None, stages=STAGES, depths=[1, 2], **overrides)
            genomes = sample_genomes(spec, n, rng)
            costs = CostModel(spec, board).evaluate(genomes)
            c, (h, w) = spec.input_channels, spec.resolution
            for i, genome in enumerate(genomes):
                arch = decode(spec, genome)
                tf.keras.backend.clear_session(free_memory=False)  # names restart; no gc pass
                keras_model = km.build_keras(arch)
                km.copy_torch_weights(keras_model, _randomized_torch(arch, rng).state_dict(), arch)
                tfl = km.convert_int8(keras_model, rng.random((4, h, w, c)).astype(np.float32))
                rows.append({"space": name, "i": i, "file": len(tfl),
                             "flash": int(costs.flash_bytes[i]) - board.flash_reserved_bytes,
                             "arena_ref": int(costs.arena_ref_bytes[i]),
                             "measured": pool.submit(measure_arena, tfl, 60)})
        for r in rows:
            m = r["measured"].result()
            assert m.arena_bytes is not None, (r["space"], r["i"], m.error)
            r["measured"] = m.arena_bytes
    return rows


def _errors(rows, got: str, want: str) -> list[float]:
    return [(r[got] - r[want]) / r[want] for r in rows]


@pytest.mark.slow
def test_enough_subnets(exported):
    assert len(exported) >= 20


@pytest.mark.slow
def test_flash_within_2_percent_of_tflite(exported):
    err = _errors(exported, "flash", "file")
    print(f"flash error vs .tflite: min {100 * min(err):+.2f}% max {100 * max(err):+.2f}%")
    assert max(abs(e) for e in err) <= 0.02, [(r["space"], r["i"], r["flash"], r["file"]) for r in exported]


@pytest.mark.slow
def test_reference_arena_within_2_percent_of_tflm(exported):
    err = _errors(exported, "arena_ref", "measured")
    print(f"arena error vs TFLM: min {100 * min(err):+.2f}% max {100 * max(err):+.2f}%")
    assert max(abs(e) for e in err) <= 0.02, [(r["space"], r["i"], r["arena_ref"], r["measured"])
                                              for r in exported]
