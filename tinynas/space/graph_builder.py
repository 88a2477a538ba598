"""The op graph of an arch's int8 export, built without TensorFlow.

The search scores thousands of subnets for memory, flash and latency; converting
each to TFLite would take seconds apiece. Instead this reproduces what
`keras_model.convert_int8` yields for the Keras mirror (checked against the real
converter in tests/test_graph_builder.py, TF 2.21):

    CONV_2D(stem, RELU6)
    DEPTHWISE_CONV_2D(RELU6), CONV_2D(linear)              first block
    per stage block: CONV_2D(RELU6), DEPTHWISE_CONV_2D(RELU6), CONV_2D(linear)[, ADD]
        (other block types: their main path's convs, then a projection
        shortcut's CONV_2D if any, then ADD; see `arch` for the types)
    MEAN(axis=[1,2], keep_dims=False)                       global average pool
    FULLY_CONNECTED                                         logits

with BN folded into int32 biases, ReLU6 fused, 'same' padding inside the conv
(no PAD), int8 input and output (no QUANTIZE/DEQUANTIZE), and no RESHAPE (even a
1x1 map keeps its MEAN). Tensor indices follow the converter too: the input,
then MEAN's axis constant, then each weighted op's (bias, weights) from the last
op back to the first, then the activations in execution order.

Quantization values (scales, zero points) are unknown before calibration; only
their counts are real (per-channel for weights and biases, per-tensor for
activations), and the values are placeholders (scale 1.0, zero point 0).

`model_bytes` stays 0: a file is its constant buffers plus a large overhead,
measured in tests/test_graph_builder.py as quantization parameters (4 B per
scale + 8 B per zero point, exact from this graph) + tensor names (what the
converter derives from Keras layer paths) + about 727 + 98 * tensors + 65 * ops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..graph import Graph, Op, Tensor
from ..op_costs import annotate_costs
from ..ops import op_spec
from .arch import ConvLayer, LayerPlan, arch_hash, layer_plan

# The ops this builder emits; the version the converter writes for each (TF 2.21,
# TFLM ignores it) is the registry's OpSpec.converter_version.
OP_VERSIONS = {t: op_spec(t).converter_version
               for t in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED")}


def _schema():
    from ai_edge_litert import schema_py_generated as schema  # light import, no runtime

    return schema


def _options(cls_name: str, **fields: Any) -> dict[str, Any]:
    """Op options keyed as tflite_reader reports them: the schema's fields in snake_case.

    Starting from the schema's own options object keeps the key set right for
    whatever schema version is installed; only the values we set are ours.
    """
    obj = getattr(_schema(), cls_name)()
    for k, v in fields.items():
        if not hasattr(obj, k):
            raise AttributeError(f"{cls_name} has no field {k}; the TFLite schema changed")
        setattr(obj, k, v)
    return {_snake(k): v for k, v in vars(obj).items()}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _conv_options(layer: ConvLayer) -> dict[str, Any]:
    s = _schema()
    act = s.ActivationFunctionType.RELU6 if layer.relu6 else s.ActivationFunctionType.NONE
    common = dict(padding=s.Padding.SAME, strideW=layer.stride, strideH=layer.stride,
                  fusedActivationFunction=act, dilationWFactor=1, dilationHFactor=1)
    if layer.kind == "dw":
        return _options("DepthwiseConv2DOptionsT", depthMultiplier=1, **common)
    return _options("Conv2DOptionsT", **common)


@dataclass
class _Builder:
    """Accumulates tensors and ops in execution order; file indices are fixed at the end."""

    weights: list[list[Tensor]] = field(default_factory=list)  # per weighted op: [bias, weights]
    acts: list[Tensor] = field(default_factory=list)
    ops: list[tuple[str, list[Tensor], Tensor, dict[str, Any]]] = field(default_factory=list)

    def act(self, name: str, shape: tuple[int, ...]) -> Tensor:
        t = Tensor(index=-1, name=name, shape=shape, dtype="int8", scale=(1.0,), zero_point=(0,))
        self.acts.append(t)
        return t

    def weighted(self, op: str, x: Tensor, w: Tensor, bias: Tensor, y: Tensor,
                 options: dict[str, Any]) -> None:
        self.ops.append((op, [x, w, bias], y, options))
        self.weights.append([bias, w])


def _const(name: str, shape: tuple[int, ...], dtype: str, channels: int = 0, qdim: int = 0) -> Tensor:
    """A constant; `channels` > 0 makes it per-channel quantized along `qdim`.

    Its values are unknown before training, so `data` stays None; `is_const`
    and `buffer_bytes` carry what the planners and the flash model need.
    """
    t = Tensor(index=-1, name=name, shape=shape, dtype=dtype, is_const=True,
               scale=(1.0,) * channels, zero_point=(0,) * channels, quantized_dimension=qdim)
    t.buffer_bytes = t.nbytes
    return t


def _conv(b: _Builder, layer: ConvLayer, x: Tensor) -> Tensor:
    k, cout = layer.kernel, layer.out_channels
    if layer.kind == "dw":
        w = _const(f"{layer.name}/weights", (1, k, k, cout), "int8", cout, qdim=3)
        op = "DEPTHWISE_CONV_2D"
    else:
        w = _const(f"{layer.name}/weights", (cout, k, k, layer.in_channels), "int8", cout)
        op = "CONV_2D"
    bias = _const(f"{layer.name}/bias", (cout,), "int32", cout)
    y = b.act(f"{layer.name}/out", (1, *layer.out_hw, cout))
    b.weighted(op, x, w, bias, y, _conv_options(layer))
    return y


def _body(b: _Builder, plan: LayerPlan, x: Tensor) -> Tensor:
    x = _conv(b, plan.stem, x)
    for block in plan.blocks:
        y = x
        for layer in block.convs:
            y = _conv(b, layer, y)
        if block.adds:
            skip = x if block.shortcut is None else _conv(b, block.shortcut, x)
            out = b.act(f"{block.name}/add", y.shape)
            b.ops.append(("ADD", [skip, y], out, _options("AddOptionsT")))
            y = out
        x = y
    return x


def _head(b: _Builder, plan: LayerPlan, x: Tensor, axis: Tensor) -> Tensor:
    pooled = b.act("pool/out", (1, plan.feature_channels))
    b.ops.append(("MEAN", [x, axis], pooled, _options("ReducerOptionsT", keepDims=False)))
    n, c = plan.num_classes, plan.feature_channels
    w = _const("classifier/weights", (n, c), "int8", n)
    bias = _const("classifier/bias", (n,), "int32", n)
    logits = b.act("classifier/out", (1, n))
    b.weighted("FULLY_CONNECTED", pooled, w, bias, logits,
               _options("FullyConnectedOptionsT", keepNumDims=False))
    return logits


def build_graph(arch: Mapping) -> Graph:
    """The Graph `parse_tflite(convert_int8(build_keras(arch), ...))` would give, with costs.

    Assumes a trained classifier: the converter drops an all-zero Dense bias
    (FULLY_CONNECTED then has input -1), which only freshly initialized models have.
    """
    plan = layer_plan(arch)
    b = _Builder()
    c, h, w = plan.input
    inp = Tensor(index=-1, name="input", shape=(1, h, w, c), dtype="int8", scale=(1.0,), zero_point=(0,))
    axis = _const("pool/axis", (2,), "int32")
    out = _head(b, plan, _body(b, plan, inp), axis)
    tensors = [inp, axis] + [t for group in reversed(b.weights) for t in group] + b.acts
    for i, t in enumerate(tensors):
        t.index = i
    ops = [Op(index=i, type=t, inputs=tuple(x.index for x in ins), outputs=(y.index,), options=o,
              version=OP_VERSIONS[t]) for i, (t, ins, y, o) in enumerate(b.ops)]
    g = Graph(tensors=tensors, ops=ops, inputs=(inp.index,), outputs=(out.index,),
              source=f"arch:{arch_hash(arch)}", description="tinynas.space.graph_builder")
    annotate_costs(g)
    return g
