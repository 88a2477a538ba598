"""Measure what the exported model really does, in the runtimes that will run it.

- float top-1 of the PyTorch model and int8 top-1 in TFLM on the same held-out
  images, so the quantization loss is a measurement, not a hope;
- TFLM against LiteRT's reference kernels (BUILTIN_REF: the optimized kernels
  round differently on purpose) per input: the fraction of inputs with
  bit-identical outputs and the largest difference in output LSBs;
- the arena: TFLM's measured minimum (tinynas.tflm_measure), the planner's
  estimate (what `tinynas profile` reports as arena_bytes_estimated) and its
  error, and the CMSIS-NN scratch the host runtime cannot see.

TFLM runs at exactly the measured arena, so every verified inference also
proves that arena is enough.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import UserError
from ..graph import Graph, Tensor
from ..planner import cmsis_scratch_bytes, plan_arena
from ..tflite_reader import parse_tflite
from ..tflm_measure import measure_arena
from .tflite_export import nhwc, preprocess_for

LITERT_BATCH = 256


def held_out(bundle: Any, arch: Mapping, limit: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed (N, C, H, W) validation images and labels; a random subset when limited."""
    n = len(bundle.val.y)
    if n == 0:
        raise UserError("the data has no held-out split to verify on; load it with a validation split "
                        "(val_fraction > 0 or val_count > 0)")
    idx = np.arange(n) if limit is None or limit >= n else np.sort(rng.choice(n, size=limit, replace=False))
    return preprocess_for(bundle, bundle.val.x[idx], arch), np.asarray(bundle.val.y[idx])


def torch_logits(model: Any, x_nchw: np.ndarray, batch: int = 512) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x_nchw[i:i + batch])).numpy()
                               for i in range(0, len(x_nchw), batch)])


def top1(outputs: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose argmax is the label (a positive output scale keeps argmax)."""
    return float(np.mean(np.argmax(outputs.reshape(len(y), -1), axis=1) == y)) if len(y) else 0.0


def quantize_input(x_nhwc: np.ndarray, t: Tensor) -> np.ndarray:
    """Float input -> what the model's input tensor takes (int8/uint8 by its scale, or float)."""
    if t.dtype == "float32":
        return x_nhwc.astype(np.float32)
    info = np.iinfo(np.dtype(t.dtype))
    q = np.round(x_nhwc / t.scale[0]) + t.zero_point[0]
    return np.clip(q, info.min, info.max).astype(t.dtype)


def _progress(items: range, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="img", leave=False)


def tflm_outputs(tflite: bytes, x_q: np.ndarray, arena_bytes: int, progress: bool = False) -> np.ndarray:
    """Output 0 for each input, one invoke per image (TFLM models are batch 1)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(tflite, arena_size=int(arena_bytes))
    outs = []
    for i in _progress(range(len(x_q)), progress, "TFLM"):
        it.set_input(x_q[i:i + 1], 0)
        it.invoke()
        outs.append(np.array(it.get_output(0)).reshape(-1))
    return np.stack(outs)


def litert_outputs(tflite: bytes, x_q: np.ndarray) -> np.ndarray:
    """Output 0 for each input from LiteRT's reference kernels, in batches (the batch axis is dynamic)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     num_threads=1)
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    outs = []
    for s in range(0, len(x_q), LITERT_BATCH):
        xb = x_q[s:s + LITERT_BATCH]
        it.resize_tensor_input(i_in, list(xb.shape))
        it.allocate_tensors()
        it.set_tensor(i_in, xb)
        it.invoke()
        outs.append(np.array(it.get_tensor(i_out)).reshape(len(xb), -1))
    return np.concatenate(outs)


def tflm_top1(tflite: bytes, arch: Mapping, bundle: Any, limit: int | None = None, seed: int = 0,
              arena_bytes: int = 4 << 20) -> float:
    """Int8 top-1 in TFLM on (a seeded random `limit` of) the held-out split."""

    graph = parse_tflite(tflite)
    x, y = held_out(bundle, arch, limit, np.random.default_rng(seed))
    x_q = quantize_input(nhwc(x), graph.tensor(graph.inputs[0]))
    return top1(tflm_outputs(tflite, x_q, arena_bytes), y)


def output_lsb(graph: Graph) -> float:
    """Size of one output LSB in the units get_output returns.

    Quantized outputs compare as integers (1). A float output is a DEQUANTIZE of
    an int8 tensor, whose scale is the LSB.
    """
    out = graph.outputs[0]
    if graph.tensor(out).is_quantized:
        return 1.0
    for op in graph.ops:
        if out in op.outputs and op.type == "DEQUANTIZE":
            src = graph.tensor(op.inputs[0])
            if src.is_quantized:
                return float(src.scale[0])
    return float("nan")


def agreement(a: np.ndarray, b: np.ndarray, lsb: float) -> tuple[float, int]:
    """(fraction of rows that are identical, max difference in LSBs)."""
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    identical = float(np.mean(np.all(diff == 0, axis=1))) if len(diff) else 1.0
    return identical, int(np.rint(diff.max() / lsb)) if diff.size else 0


def arena_figures(tflite: bytes, graph: Graph, timeout_s: float = 300.0) -> dict[str, Any]:
    """TFLM-measured arena, the planner's estimate of it and its error, and CMSIS-NN scratch."""

    m = measure_arena(tflite, timeout_s=timeout_s)
    if m.arena_bytes is None:
        raise UserError(f"TFLM cannot run the exported model: {m.error or 'no reason given'}")
    est = plan_arena(graph, pointer_bytes=8, kernels="reference").arena_bytes
    return {"arena_bytes_measured": int(m.arena_bytes), "arena_bytes_estimated": int(est),
            "arena_estimate_error_pct": round(100.0 * (est - m.arena_bytes) / m.arena_bytes, 3),
            "cmsis_scratch_bytes": int(cmsis_scratch_bytes(graph))}


def verify_tflite(tflite: bytes, graph: Graph, model: Any, x_nchw: np.ndarray, y: np.ndarray,
                  arena_bytes: int, progress: bool = False) -> dict[str, Any]:
    """Float vs int8 top-1 and TFLM vs LiteRT agreement on the held-out images."""
    acc_float = top1(torch_logits(model, x_nchw), y)
    x_q = quantize_input(nhwc(x_nchw), graph.tensor(graph.inputs[0]))
    micro = tflm_outputs(tflite, x_q, arena_bytes, progress)
    ref = litert_outputs(tflite, x_q)
    identical, max_lsb = agreement(micro, ref, output_lsb(graph))
    acc_int8 = top1(micro, y)
    return {"accuracy_float": round(acc_float, 5), "accuracy_int8": round(acc_int8, 5),
            "accuracy_drop_pts": round(100.0 * (acc_float - acc_int8), 3),
            "tflm_litert_identical_fraction": round(identical, 5), "max_lsb_diff": max_lsb,
            "verify_samples": int(len(y))}
