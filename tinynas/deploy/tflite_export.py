"""Arch + PyTorch weights -> int8 TFLite that TFLM runs, with every check on the way.

The conversion itself is the Keras-mirror recipe of `tinynas.space.keras_model`;
this module wraps it with what an export of a *user's* checkpoint needs:
weights checked against the arch tensor by tensor (so another arch's checkpoint
fails naming the first bad tensor instead of exporting garbage), a
representative dataset drawn at random from the training split through the
training preprocessing, a float-equivalence check of the Keras mirror before
quantizing, and an op-list check afterwards (TFLM kernels only; no TRANSPOSE or
PAD; QUANTIZE/DEQUANTIZE only at the model's ends and only when the I/O type
asks for them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..cgen import check_tflm_ops
from ..errors import UserError, option, quiet_native_logs
from ..graph import Graph
from ..space.arch import validate_arch
from ..space.keras_model import build_keras, convert_int8, copy_torch_weights, float_outputs
from ..space.torch_model import build_model

IO_TYPES = ("int8", "uint8", "float32")
REP_MIN_SAMPLES = 200
REP_MAX_SAMPLES = 500
FLOAT_TOLERANCE = 1e-4      # max abs logit difference torch vs Keras mirror
EQUIVALENCE_SAMPLES = 16
# Ops that mean the converter did not fuse what the mirror was built to fuse.
FORBIDDEN_OPS = ("TRANSPOSE", "PAD", "PADV2", "MIRROR_PAD")
# Type-cast ops: a stray one mid-graph costs a requantization and an extra buffer.
CAST_OPS = ("QUANTIZE", "DEQUANTIZE")

# ------------------------------------------------------------------ weights


def load_weights(path: str | os.PathLike) -> dict[str, Any]:
    """A state_dict from a .pt file: a plain one, or a checkpoint dict holding "state_dict"."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise UserError(f"weights file {p} does not exist; pass the model.pt that finetune wrote ({option('weights')})")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors all mean "not a state_dict file"
        raise UserError(f"cannot read weights {p}: {' '.join(str(e).split())[:160]}; "
                        "pass a torch.save'd state_dict") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(hasattr(v, "shape") for v in obj.values()):
        raise UserError(f"weights {p} hold no state_dict (a mapping of tensor names to tensors)")
    return dict(obj)


def _first_mismatch(want: Mapping[str, Any], got: Mapping[str, Any]) -> str | None:
    """Message for the first tensor (in the arch's module order) that does not fit."""
    for key, t in want.items():
        if key not in got:
            if key.endswith("num_batches_tracked"):
                continue  # a counter, not a weight; filled in when absent
            return f"weights have no tensor {key!r}, which the arch needs (shape {list(t.shape)})"
        if tuple(got[key].shape) != tuple(t.shape):
            return (f"weights tensor {key!r} has shape {list(got[key].shape)}, "
                    f"the arch needs {list(t.shape)}")
    extra = [k for k in got if k not in want]
    if extra:
        return f"weights have tensor {extra[0]!r}, which the arch does not have"
    return None


def torch_subnet(arch: Mapping, state_dict: Mapping[str, Any]) -> Any:
    """`build_model(arch)` in eval mode with `state_dict` loaded; UserError naming a mismatch."""
    import torch

    model = build_model(arch)
    want = model.state_dict()
    bad = _first_mismatch(want, state_dict)
    if bad:
        raise UserError(f"{bad}; the weights do not belong to this arch (pass the arch.json saved with them)")
    sd = {k: torch.as_tensor(state_dict[k]) if k in state_dict else want[k] for k in want}
    model.load_state_dict(sd, strict=True)
    return model.eval()


# ------------------------------------------------------------------ data

def arch_input(arch: Mapping) -> tuple[int, int, int]:
    """(C, H, W) the arch takes."""

    c, h, w = validate_arch(arch)["input"]
    return int(c), int(h), int(w)


def check_samples(x: np.ndarray, arch: Mapping, min_samples: int, what: str) -> np.ndarray:
    """x must be float (N, C, H, W) of the arch's input with N >= min_samples."""
    want = arch_input(arch)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise UserError(f"{what}: shape {list(x.shape)} is not (N, {', '.join(map(str, want))}) "
                        "as the arch's input (C, H, W); use the data the model was trained on")
    if len(x) < min_samples:
        raise UserError(f"{what}: {len(x)} samples, at least {min_samples} needed; "
                        "give more training data or lower the sample count")
    return x


def _check_channels(bundle: Any, arch: Mapping) -> tuple[int, int, int]:
    c, h, w = arch_input(arch)
    if bundle.input_shape[0] != c:
        raise UserError(f"data has {bundle.input_shape[0]} channel(s), the arch takes {c}; "
                        "use the data the model was trained on")
    return c, h, w


def check_calibration_data(bundle: Any, arch: Mapping, n: int) -> None:
    """Fail before any work when the data cannot give n calibration samples for this arch."""
    if not REP_MIN_SAMPLES <= n <= REP_MAX_SAMPLES:
        raise UserError(f"representative samples: {n} is outside {REP_MIN_SAMPLES}..{REP_MAX_SAMPLES} "
                        "(enough to calibrate every activation range, few enough to convert fast)")
    _check_channels(bundle, arch)
    total = len(bundle.train.y)
    if total < n:
        raise UserError(f"representative data: the training split has {total} samples, {n} needed; "
                        f"add data or pass {option('rep_samples')} {max(REP_MIN_SAMPLES, total)} "
                        f"(at least {REP_MIN_SAMPLES})")


def preprocess_for(bundle: Any, x_uint8: np.ndarray, arch: Mapping) -> np.ndarray:
    """The training preprocessing, resized to the arch's resolution (as training batches are)."""
    _, h, w = _check_channels(bundle, arch)
    return np.asarray(bundle.preprocess(x_uint8, resolution=(h, w)), dtype=np.float32)


def representative_nchw(bundle: Any, arch: Mapping, n: int, rng: np.random.Generator) -> np.ndarray:
    """n training samples, drawn at random (splits are sorted by source order, often by class)."""
    check_calibration_data(bundle, arch, n)
    idx = np.sort(rng.choice(len(bundle.train.y), size=n, replace=False))
    x = preprocess_for(bundle, bundle.train.x[idx], arch)
    return check_samples(x, arch, REP_MIN_SAMPLES, "representative data")


def nhwc(x_nchw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x_nchw, (0, 2, 3, 1)))


# ------------------------------------------------------------------ conversion

def keras_mirror(arch: Mapping, model: Any, x_nchw: np.ndarray, tol: float = FLOAT_TOLERANCE) -> tuple[Any, float]:
    """The Keras twin of `model` and its max abs logit difference on x; UserError above tol.

    A difference means the mirror and the torch model disagree on structure
    (padding, BN epsilon, layout): quantizing such a mirror would ship a model
    that was never trained, so it stops here.
    """
    import torch

    km = build_keras(arch)
    copy_torch_weights(km, model.state_dict(), arch)
    with torch.no_grad():
        want = model(torch.from_numpy(x_nchw)).numpy()
    diff = float(np.abs(want - float_outputs(km, nhwc(x_nchw))).max())
    if not diff <= tol:
        raise UserError(f"float equivalence failed: PyTorch and its Keras mirror differ by max abs {diff:.3g} "
                        f"> {tol:g} on {len(x_nchw)} samples; the export would not be the trained model")
    return km, diff


def convert(km: Any, rep_nchw: np.ndarray, io: str = "int8") -> bytes:
    """Full-integer TFLite bytes (per-channel int8 weights) with `io` input/output type."""

    if io not in IO_TYPES:
        raise UserError(f"io: {io!r} is not one of {', '.join(IO_TYPES)}")
    try:
        with quiet_native_logs():  # the converter prints `fully_quantize: 0, ...` to fd 2 whatever the log level
            return convert_int8(km, nhwc(rep_nchw), io=io)
    except RuntimeError as e:  # convert_int8's "converter emitted an op the cost graph lacks"
        raise UserError(f"int8 conversion: {e}") from None


def check_ops(graph: Graph, io: str) -> list[str]:
    """Distinct op types in execution order, after refusing what TFLM or this export must not run.

    With int8 I/O the graph holds no cast at all. With uint8 or float32 I/O the
    converter adds one QUANTIZE (or DEQUANTIZE) at the input and one at the
    output; those are expected, any other cast is not.
    """

    ops = graph.op_types
    check_tflm_ops(ops)
    bad = [t for t in ops if t in FORBIDDEN_OPS]
    if bad:
        raise UserError(f"the converted model holds {', '.join(bad)}, which this export forbids "
                        "(the Keras mirror should fuse it away); report this with the arch")
    ends_in, ends_out = set(graph.inputs), set(graph.outputs)
    for op in graph.ops:
        if op.type not in CAST_OPS:
            continue
        at_end = bool(ends_in & set(op.inputs)) or bool(ends_out & set(op.outputs))
        if io == "int8" or not at_end:
            where = "at the model's ends" if at_end else f"mid-graph (op {op.index})"
            raise UserError(f"the converted model holds {op.type} {where} with {option('io')} {io}; "
                            "int8 I/O must need no cast and other I/O types only one per end")
    return ops


def convert_subnet(arch: Mapping, model: Any, bundle: Any, io: str = "int8",
                   rep_samples: int = REP_MIN_SAMPLES, seed: int = 0) -> bytes:
    """The whole conversion in one call (for `tinynas run`): calibrate, mirror, check, convert."""
    rep = representative_nchw(bundle, arch, rep_samples, np.random.default_rng(seed))
    km, _ = keras_mirror(arch, model.eval(), rep[:EQUIVALENCE_SAMPLES])
    return convert(km, rep, io)
