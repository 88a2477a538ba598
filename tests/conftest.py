"""Shared fixtures: where ../shared lives, and a clear skip when it is absent.

Also starts the firmware tests' TFLM library builds in the background (tflm_prebuild.py)
and runs those tests last, so an empty cache costs the suite little wall time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
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


FIRMWARE_MODULE = "test_firmware_tflm.py"
PREBUILD_OFF_ENV = "TINYNAS_NO_PREBUILD"  # set to build the libraries only when a test asks


def pytest_collection_modifyitems(session, config, items) -> None:
    """Firmware builds last, with their libraries compiling meanwhile on the idle core."""
    firmware = [it for it in items if it.nodeid.split("::")[0].endswith(FIRMWARE_MODULE)]
    if not firmware:
        return
    ids = {id(it) for it in firmware}
    items[:] = [it for it in items if id(it) not in ids] + firmware
    shared = shared_dir()
    tools = ("cmake", "make", "g++", "arm-none-eabi-gcc")
    if (os.environ.get(PREBUILD_OFF_ENV) or not (shared / "tflm" / "tflm-host.tar.xz").is_file()
            or any(shutil.which(t) is None for t in tools)):
        return
    from tinynas.deploy.tflm_build import cache_root

    cache_root().mkdir(parents=True, exist_ok=True)
    log = open(cache_root() / "prebuild.log", "w")  # closed with the child, in pytest_sessionfinish
    config._tinynas_prebuild = (subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("tflm_prebuild.py")), str(shared)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        # its own process group, to kill it whole, but not its own session: the kernel's
        # autogroup scheduler shares the CPU between sessions equally whatever their nice
        # value, and a prebuild in a new session slowed a timed run's training 60-fold
        preexec_fn=os.setpgrp), log)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Stop a prebuild still running (a run cut short): no compiler outlives the suite."""
    started = getattr(session.config, "_tinynas_prebuild", None)
    if started is None:
        return
    proc, log = started
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log.close()
