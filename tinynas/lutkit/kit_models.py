"""One small int8 .tflite per LUT entry: the op a signature names, and nothing else.

Why single-op models: the LUT is keyed by op signature and `graph_latency`
sums per-op entries, so the cleanest measurement is one op alone under TFLM's
MicroProfiler (its only event is that op). Each model is built in tf.keras
from the parsed signature and converted by the same int8 path as exports
(`keras_model.convert_int8`), then read back: its one op must have exactly the
requested signature, or the entry is refused (a kit never measures something
other than what its manifest says).

Activations are left out (a fused ReLU6 only changes the clamp bounds of the
requantization, not its cost); weights are random from the caller's seeded
generator, so the same kit is generated twice byte for byte.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import import_tensorflow
from ..latency.signature import op_signature, parse_signature
from ..space.keras_model import convert_int8
from ..tflite_reader import parse_tflite

REP_SAMPLES = 8


class KitModelError(Exception):
    """A signature the kit cannot turn into a faithful single-op model."""


def _conv(p: dict[str, Any], keras: Any) -> tuple[tuple[int, ...], Callable]:
    if p.get("d") or p.get("g") or p["k"][0] != p["k"][1] or p["s"][0] != p["s"][1]:
        raise KitModelError("only square, undilated, ungrouped convolutions are built")
    return p["in"], lambda x: keras.layers.Conv2D(
        p["out"][-1], p["k"][0], strides=p["s"][0], padding="same")(x)


def _dwconv(p: dict[str, Any], keras: Any) -> tuple[tuple[int, ...], Callable]:
    if p.get("d") or p["k"][0] != p["k"][1] or p["s"][0] != p["s"][1]:
        raise KitModelError("only square, undilated depthwise convolutions are built")
    mult, rem = divmod(p["out"][-1], p["in"][-1])
    if rem or mult < 1:
        raise KitModelError("output channels are not a multiple of input channels")
    return p["in"], lambda x: keras.layers.DepthwiseConv2D(
        p["k"][0], strides=p["s"][0], padding="same", depth_multiplier=mult)(x)


def _add(p: dict[str, Any], keras: Any) -> tuple[tuple[int, ...], Callable]:
    # x + x: the int8 ADD kernel rescales both operands whatever they are, so
    # one input costs the same as two and keeps convert_int8's one-input path.
    return p["in"], lambda x: keras.layers.Add()([x, x])


def _mean(p: dict[str, Any], keras: Any) -> tuple[tuple[int, ...], Callable]:
    if len(p["in"]) != 3 or p["out"] != (p["in"][-1],):
        raise KitModelError("only a spatial mean to a channel vector (global average pool) is built")
    return p["in"], lambda x: keras.layers.GlobalAveragePooling2D()(x)


def _fc(p: dict[str, Any], keras: Any) -> tuple[tuple[int, ...], Callable]:
    if p.get("b", 1) != 1:
        raise KitModelError("only single-row fully connected layers are built")
    return p["in"], lambda x: keras.layers.Dense(p["out"][0])(x)


BUILDERS: dict[str, Callable[[dict[str, Any], Any], tuple[tuple[int, ...], Callable]]] = {
    "conv2d": _conv, "dwconv2d": _dwconv, "add": _add, "mean": _mean, "fc": _fc,
}


def buildable(sig: str) -> str | None:
    """None when the kit can build this signature, else why not (no TensorFlow needed)."""
    p = parse_signature(sig)
    if p["kind"] not in BUILDERS:
        return f"no single-op builder for {p['kind']} (kit kinds: {', '.join(BUILDERS)})"
    if p.get("dt", "int8") != "int8":
        return "only int8 ops are built"
    return None


def randomize_weights(model: Any, rng: np.random.Generator) -> None:
    """Seeded weights that quantize like trained ones: kernels at 1/sqrt(fan-in), BN near identity.

    Shared by the single-op kit models and the emulated subnets, so both quantize alike.
    """
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if len(ws) == 4 and all(w.ndim == 1 for w in ws):  # gamma, beta, moving mean, moving variance
            n = ws[0].shape
            layer.set_weights([(1 + 0.1 * rng.standard_normal(n)).astype(np.float32),
                               (0.1 * rng.standard_normal(n)).astype(np.float32),
                               (0.1 * rng.standard_normal(n)).astype(np.float32),
                               rng.uniform(0.5, 1.5, n).astype(np.float32)])
            continue
        fan_in = max(int(np.prod(ws[0].shape[:-1])), 1)
        layer.set_weights([rng.normal(0.0, 1.0 / np.sqrt(fan_in), w.shape).astype(np.float32)
                           if w.ndim > 1 else (0.1 * rng.standard_normal(w.shape)).astype(np.float32)
                           for w in ws])


def single_op_tflite(sig: str, rng: np.random.Generator) -> bytes:
    """Int8 TFLite bytes of the one op `sig` names; KitModelError if it cannot be made exactly."""
    tf = import_tensorflow()  # heavy: only when a kit is really generated


    why = buildable(sig)
    if why:
        raise KitModelError(why)
    p = parse_signature(sig)
    keras = tf.keras
    shape, layer = BUILDERS[p["kind"]](p, keras)
    inp = keras.Input(tuple(int(d) for d in shape))
    model = keras.Model(inp, layer(inp))
    randomize_weights(model, rng)
    rep = rng.standard_normal((REP_SAMPLES, *shape)).astype(np.float32)
    try:
        buf = convert_int8(model, rep)
    except RuntimeError as e:  # the converter emitted extra ops
        raise KitModelError(str(e)) from None
    g = parse_tflite(buf, source=sig)
    got = [op_signature(g, op) for op in g.ops]
    if got != [sig]:
        raise KitModelError(f"the converter produced {got}, not [{sig}]")
    return buf
