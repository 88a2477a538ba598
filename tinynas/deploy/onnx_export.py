"""Float ONNX export of the trained subnet, checked against onnxruntime.

The ONNX file serves runtimes other than TFLM (onnxruntime, vendor converters
such as STM32Cube.AI or TVM). It uses torch's TorchScript exporter
(`dynamo=False`): the torch.export-based default needs the `onnxscript`
package, which is not a dependency, and this plain conv net needs nothing the
old exporter lacks. The batch axis stays dynamic.
"""

from __future__ import annotations

import contextlib
import io as _io
import warnings
from typing import Any

import numpy as np

from ..errors import UserError

OPSET = 17
ONNX_TOLERANCE = 1e-4
PARITY_SAMPLES = 32
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def export_onnx(model: Any, input_chw: tuple[int, int, int]) -> bytes:
    """The float model as ONNX bytes (NCHW input 'input', output 'logits')."""
    import onnx
    import torch

    buf = _io.BytesIO()
    dummy = torch.zeros((1, *input_chw), dtype=torch.float32)
    with warnings.catch_warnings(), contextlib.redirect_stderr(_io.StringIO()):
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and constant-folding notes
        torch.onnx.export(model.eval(), (dummy,), buf, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def onnx_parity(onnx_bytes: bytes, model: Any, x_nchw: np.ndarray, tol: float = ONNX_TOLERANCE) -> float:
    """Max abs logit difference onnxruntime vs PyTorch on x; UserError above tol."""
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a 32-image check gains nothing from threads on a shared box
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(x_nchw, dtype=np.float32)
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= tol:
        raise UserError(f"ONNX parity failed: onnxruntime and PyTorch differ by max abs {diff:.3g} > {tol:g} "
                        f"on {len(x)} inputs")
    return diff
