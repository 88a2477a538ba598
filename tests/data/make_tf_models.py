"""Regenerate the TensorFlow-made fixtures of tests/test_ops_models.py.

Run with `nice -n 15 .venv/bin/python tests/data/make_tf_models.py`: converting
with TensorFlow takes tens of seconds, far too slow for every test run, so the
small .tflite files it writes are committed next to it. Each is a model family
whose arena rule lives in tinynas/ops: a Keras LSTM (which TF 2.21 turns into a WHILE
loop over two more subgraphs) and a streaming model that keeps its state in
resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE and an
init subgraph), and small int8 CNNs with float I/O (QUANTIZE/DEQUANTIZE).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

HERE = Path(__file__).parent


def lstm_while(steps: int, feats: int, units: int) -> bytes:
    """Keras 3's LSTM converts to a WHILE loop (cond and body subgraphs), not the fused op.

    Float, because the int8 calibrator crashes on this loop (TF 2.21); TFLM runs it as is.
    """
    inp = tf.keras.Input(shape=(steps, feats), batch_size=1)
    x = tf.keras.layers.LSTM(units)(inp)
    out = tf.keras.layers.Dense(4)(x)
    return tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out)).convert()


def quant_cnn(hw: int, channels: int) -> bytes:
    """int8 CNN with float input and output: QUANTIZE, CONV_2D, MAX_POOL_2D, RESHAPE,
    FULLY_CONNECTED, DEQUANTIZE (the op mix issue 16 found 4.3% under)."""
    inp = tf.keras.Input((hw, hw, 1), batch_size=1)
    x = tf.keras.layers.Conv2D(channels, 3, activation="relu")(inp)
    x = tf.keras.layers.Flatten()(tf.keras.layers.MaxPooling2D()(x))
    conv = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, tf.keras.layers.Dense(10)(x)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.standard_normal((1, hw, hw, 1)).astype(np.float32)]
                                           for _ in range(16))
    return conv.convert()


class _Streaming(tf.Module):
    """A ring buffer of the last `frames` inputs kept in a resource variable, then a dense layer."""

    def __init__(self, frames: int, feats: int) -> None:
        super().__init__()
        self.state = tf.Variable(tf.zeros((1, frames, feats)), trainable=False)
        self.w = tf.constant(np.random.default_rng(1).standard_normal((frames * feats, 6)), tf.float32)
        self.frames, self.feats = frames, feats

    @tf.function(input_signature=[tf.TensorSpec((1, 1, 8), tf.float32)])
    def __call__(self, x):
        new = tf.concat([self.state[:, 1:, :], x], axis=1)
        self.state.assign(new)
        return tf.nn.relu(tf.matmul(tf.reshape(new, (1, -1)), self.w))


def streaming(frames: int = 5, feats: int = 8) -> bytes:
    m = _Streaming(frames, feats)
    fn = m.__call__.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], m)
    conv.experimental_enable_resource_variables = True
    return conv.convert()


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    out = {
        "lstm_while_float.tflite": lstm_while(6, 8, 16),
        "quant_cnn_16x8.tflite": quant_cnn(16, 8),
        "quant_cnn_28x4.tflite": quant_cnn(28, 4),
        "streaming_resvar.tflite": streaming(),
    }
    for name, data in out.items():
        (HERE / name).write_bytes(data)
        print(name, len(data))


if __name__ == "__main__":
    main()
