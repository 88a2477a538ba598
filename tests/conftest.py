"""Shared fixtures: where ../shared lives, and a clear skip when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinynas.paths import shared_dir

SHARED_MODELS = {
    "pretrainedResnet_quant": "mlperf_tiny/pretrainedResnet_quant.tflite",
    "kws_ref_model": "mlperf_tiny/kws_ref_model.tflite",
    "vww_96_int8": "mlperf_tiny/vww_96_int8.tflite",
    "ad01_int8": "mlperf_tiny/ad01_int8.tflite",
    "hello_world_int8": "tflite_micro/hello_world_int8.tflite",
    "micro_speech_quantized": "tflite_micro/micro_speech_quantized.tflite",
    "person_detect": "tflite_micro/person_detect.tflite",
}

# Min arena from ../shared/models/README.md (TFLM python runtime, x86-64, reference kernels).
SHARED_MIN_ARENA = {
    "pretrainedResnet_quant": 55_998,
    "kws_ref_model": 24_275,
    "vww_96_int8": 103_681,
    "ad01_int8": 4_636,
    "hello_world_int8": 1_937,
    "micro_speech_quantized": 7_597,
    "person_detect": 85_269,
}


@pytest.fixture(scope="session")
def shared() -> Path:
    d = shared_dir()
    if not (d / "models").is_dir():
        pytest.skip(f"../shared is absent ({d}); third-party models and data live there")
    return d


@pytest.fixture(scope="session")
def shared_models(shared: Path) -> dict[str, Path]:
    return {k: shared / "models" / v for k, v in SHARED_MODELS.items()}


@pytest.fixture(scope="session")
def shared_min_arena(shared: Path) -> dict[str, int]:
    return dict(SHARED_MIN_ARENA)


def tiny_rgb_data(root: Path):
    """160 separable 12x12 RGB images of 4 classes in root/d.npz: (bundle, space, path).

    Fast tests of training code (fine-tune, time budgets) share this set.
    """
    import numpy as np

    from tinynas.data import load_dataset
    from tinynas.space import load_space

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 40)
    x = np.clip(rng.normal(40 + 50 * y[:, None, None, None], 30, (160, 12, 12, 3)), 0, 255).astype(np.uint8)
    np.savez(root / "d.npz", x=x, y=y)
    bundle = load_dataset(root / "d.npz", val_fraction=0.25)
    spec = load_space(None, input_channels=3, resolution=[12, 12], num_classes=4, width_mult=0.2)
    return bundle, spec, root / "d.npz"
