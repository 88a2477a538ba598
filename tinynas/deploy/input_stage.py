"""The firmware's input stage: the training preprocessing of raw pixels, as C data.

A user who feeds raw camera pixels to a model trained on `(x / 255 - mean) / std`
gets wrong answers silently unless the firmware normalises exactly as training
did. For uint8 pixels the whole chain (normalise, then quantise with the input
tensor's scale and zero point) is a function of one byte per channel, so it is
tabulated here by running the very code the export verifies with
(`data.dataset.preprocess` then `verify.quantize_input`) on all 256 values: the
C lookup is then bit-exact with the Python path by construction, and
tests/test_input_stage.py checks it through g++.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..cgen import InputStage
from ..data.dataset import preprocess
from ..graph import Graph
from .verify import quantize_input


def raw_table(prep: Mapping[str, Any], input_tensor: Any) -> np.ndarray | None:
    """(channels, 256): the input tensor's value for each raw byte of each channel; None for float inputs."""
    if input_tensor.dtype not in ("int8", "uint8"):
        return None
    c = int(prep["input_shape"][0])
    raw = np.repeat(np.arange(256, dtype=np.uint8)[None, None, :, None], c, axis=3)  # 1 x 1 x 256 x C, HWC
    x = preprocess(raw, dict(prep)).transpose(0, 2, 3, 1)  # NCHW -> NHWC, as the export feeds TFLM
    return quantize_input(x, input_tensor).reshape(256, c).T.copy()


def input_stage(prep: Mapping[str, Any] | None, graph: Graph) -> InputStage | None:
    """The input stage for a model trained with `prep` (None when the preprocessing is unknown)."""
    if not prep or not graph.inputs:
        return None
    t = graph.tensor(graph.inputs[0])
    shape = [int(d) for d in t.shape]
    if len(shape) != 4:  # not an image: nothing to tabulate per pixel
        return None
    _, h, w, c = shape
    if c != int(prep["input_shape"][0]):
        return None
    resize = prep.get("resize") or {}
    how = f"{resize.get('mode', 'bilinear')}" + (", antialiased" if resize.get("antialias") else "")
    return InputStage(height=h, width=w, channels=c, color=str(prep.get("color", "")),
                      value_scale=float(prep["value_scale"]), mean=tuple(float(m) for m in prep["mean"]),
                      std=tuple(float(s) for s in prep["std"]), resize=how, table=raw_table(prep, t))
