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
