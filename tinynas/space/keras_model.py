"""The Keras mirror of an arch, the torch -> Keras weight copy, and the int8 conversion.

Export goes PyTorch -> Keras -> TFLite rather than through ONNX because the
TFLite converter turns Keras Conv2D/DepthwiseConv2D('same') + BatchNormalization
+ ReLU(6) into exactly one fused int8 op each, with no PAD, TRANSPOSE, QUANTIZE or
DEQUANTIZE, which is what `graph_builder` models and what TFLM runs fastest.
Layer names equal the torch module paths (`stages.1.blocks.0.dw.conv`), so the
weight copy is a lookup, not a guess. TensorFlow is imported only inside these
functions: importing tinynas.space must stay cheap.
"""

from __future__ import annotations

import contextlib
import io as _io
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import UserError, import_tensorflow
from ..tflite_reader import parse_tflite
from .arch import ConvLayer, LayerPlan, layer_plan
from .graph_builder import OP_VERSIONS

BN_EPS = 1e-5
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # Keras order: gamma, beta, mean, var
_IO_TYPES = ("int8", "uint8", "float32")


def _tf():
    return import_tensorflow()  # heavy: only when a Keras model is really needed


def _conv_bn(x: Any, layer: ConvLayer, keras: Any) -> Any:
    L = keras.layers
    if layer.kind == "dw":
        x = L.DepthwiseConv2D(layer.kernel, strides=layer.stride, padding="same", use_bias=False,
                              name=f"{layer.name}.conv")(x)
    else:
        x = L.Conv2D(layer.out_channels, layer.kernel, strides=layer.stride, padding="same",
                     use_bias=False, name=f"{layer.name}.conv")(x)
    x = L.BatchNormalization(epsilon=BN_EPS, name=f"{layer.name}.bn")(x)
    return L.ReLU(6.0, name=f"{layer.name}.act")(x) if layer.relu6 else x


def _forward(plan: LayerPlan, x: Any, keras: Any) -> Any:
    x = _conv_bn(x, plan.stem, keras)
    for block in plan.blocks:
        y = x
        for conv in block.convs:
            y = _conv_bn(y, conv, keras)
        if block.shortcut is not None:
            x = keras.layers.Add(name=f"{block.name}.add")([_conv_bn(x, block.shortcut, keras), y])
        else:
            x = keras.layers.Add(name=f"{block.name}.add")([x, y]) if block.residual else y
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.layers.Dense(plan.num_classes, name="classifier")(x)


def build_keras(arch: Mapping) -> Any:
    """The arch as a tf.keras Model on NHWC input (H, W, C); logits out, no softmax."""
    keras = _tf().keras
    plan = layer_plan(arch)
    c, h, w = plan.input
    inp = keras.Input((h, w, c), name="input")
    return keras.Model(inp, _forward(plan, inp, keras), name="tinynas")


def _np(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float32)


def _get(sd: Mapping, key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key not in sd:
        raise UserError(f"state_dict has no tensor {key!r}; it does not belong to this arch")
    v = _np(sd[key])
    if tuple(v.shape) != tuple(shape):
        raise UserError(f"state_dict tensor {key!r} has shape {list(v.shape)}, "
                        f"expected {list(shape)} for this arch")
    return v


def _conv_weights(sd: Mapping, layer: ConvLayer) -> list[np.ndarray]:
    """OIHW -> HWIO for convs, (C,1,kh,kw) -> (kh,kw,C,1) for depthwise."""
    k, key = layer.kernel, f"{layer.name}.conv.weight"
    if layer.kind == "dw":
        w = _get(sd, key, (layer.out_channels, 1, k, k))
        return [w.transpose(2, 3, 0, 1)]
    return [_get(sd, key, (layer.out_channels, layer.in_channels, k, k)).transpose(2, 3, 1, 0)]


def _bn_weights(sd: Mapping, layer: ConvLayer) -> list[np.ndarray]:
    return [_get(sd, f"{layer.name}.bn.{k}", (layer.out_channels,)) for k in _BN_KEYS]


def _set(keras_model: Any, name: str, weights: list[np.ndarray]) -> None:
    """set_weights on one layer; a Keras model of another arch is a UserError, not a traceback."""
    try:
        keras_model.get_layer(name).set_weights(weights)
    except ValueError as e:
        raise UserError(f"Keras layer {name!r}: {' '.join(str(e).split())[:200]}; "
                        "build the Keras model from the same arch as the weights") from None


def copy_torch_weights(keras_model: Any, state_dict: Mapping, arch: Mapping) -> None:
    """Load a torch state_dict of `build_model(arch)` into `build_keras(arch)`, in place.

    Raises UserError naming the first missing or mis-shaped tensor, so a
    checkpoint of another arch fails loudly instead of exporting garbage.
    """
    plan = layer_plan(arch)
    for layer in plan.convs():
        _set(keras_model, f"{layer.name}.conv", _conv_weights(state_dict, layer))
        _set(keras_model, f"{layer.name}.bn", _bn_weights(state_dict, layer))
    w = _get(state_dict, "classifier.weight", (plan.num_classes, plan.feature_channels))
    b = _get(state_dict, "classifier.bias", (plan.num_classes,))
    _set(keras_model, "classifier", [w.T, b])


def _rep_dataset(rep_data: np.ndarray) -> Callable[[], Any]:
    def gen():
        for x in rep_data:
            yield [x[None].astype(np.float32)]
    return gen


def _check_rep(keras_model: Any, rep_data: Any) -> np.ndarray:
    want = tuple(int(d) for d in keras_model.inputs[0].shape[1:])
    rep = np.asarray(rep_data, dtype=np.float32)
    if rep.ndim != len(want) + 1 or tuple(rep.shape[1:]) != want or len(rep) == 0:
        raise UserError(f"rep_data: shape {list(rep.shape)} is not (N, H, W, C) = "
                        f"(N, {', '.join(map(str, want))}) with N >= 1; pass NHWC float samples")
    return rep


def _frozen_function(tf: Any, keras_model: Any) -> Any:
    """The model's inference function with its variables folded to constants.

    Converting this is ~4x faster than `from_keras_model`, whose Keras 3 path
    first writes a SavedModel (4-6 s per model), and gives the same op graph.
    The batch stays dynamic (the file says 1, signature -1) as from_keras_model
    leaves it: with a static batch of 1 the converter rewrites a residual ADD on
    a 1x1 map into RESHAPE + broadcast ADD, which graph_builder does not model.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    shape = (None, *(int(d) for d in keras_model.inputs[0].shape[1:]))
    fn = tf.function(lambda x: keras_model(x, training=False))
    return convert_variables_to_constants_v2(fn.get_concrete_function(tf.TensorSpec(shape, tf.float32)))


def convert_int8(keras_model: Any, rep_data: np.ndarray, io: str = "int8") -> bytes:
    """Full-integer TFLite bytes: per-channel int8 weights, int32 biases, int8 activations.

    `rep_data` is (N, H, W, C) float: calibration samples, preprocessed as in
    training. io='int8' also makes input and output int8 (what TFLM wants);
    io='uint8' adds a QUANTIZE (uint8 <-> int8) at each end, for uint8 sensor
    pipelines; io='float32' keeps float I/O (adds QUANTIZE/DEQUANTIZE at the ends).
    Raises RuntimeError if an int8-io result holds an op `graph_builder` does
    not model: the converter changed and the cost model must follow.
    """
    if io not in _IO_TYPES:
        raise UserError(f"io: {io!r} is not one of [{','.join(_IO_TYPES)}]")
    tf = _tf()
    rep = _check_rep(keras_model, rep_data)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([_frozen_function(tf, keras_model)])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _rep_dataset(rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io != "float32":
        conv.inference_input_type = getattr(tf, io)
        conv.inference_output_type = getattr(tf, io)
    with warnings.catch_warnings(), contextlib.redirect_stdout(_io.StringIO()):
        warnings.simplefilter("ignore")  # "statistics for quantized inputs" and friends
        buf = conv.convert()
    if io == "int8":
        _check_ops(buf)
    return bytes(buf)


def _check_ops(buf: bytes) -> None:
    """Every op must be one graph_builder models (so no PAD, QUANTIZE, RESHAPE, ...)."""
    found = sorted({op.type for op in parse_tflite(buf).ops} - set(OP_VERSIONS))
    if found:
        raise RuntimeError(f"the TFLite converter emitted {', '.join(found)}; "
                           "tinynas.space.graph_builder no longer matches it")


def float_outputs(keras_model: Any, x_nhwc: np.ndarray) -> np.ndarray:
    """Float logits of the Keras mirror (inference mode), for equivalence checks."""
    return np.asarray(keras_model(np.asarray(x_nhwc, dtype=np.float32), training=False))
