"""Issue 15, item 7: TensorFlow's, absl's and oneDNN's lines stay out of tinynas's output unless --verbose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tinynas.errors import VERBOSE_ENV, quiet_native_logs

NOISE = ("fully_quantize", "absl::InitializeLog", "WARNING:absl", "cpu_feature_guard", "oneDNN")


def _native_write(text: str) -> None:
    os.write(2, text.encode())  # what C++ code does: straight to the descriptor, past sys.stderr


def test_native_lines_are_hidden(capfd, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with quiet_native_logs():
        _native_write("fully_quantize: 0, inference_type: 6\n")
        print("tinynas progress", file=sys.stderr)
    err = capfd.readouterr().err
    assert "fully_quantize" not in err and "tinynas progress" in err


def test_hidden_lines_come_back_when_the_block_fails(capfd, monkeypatch):
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    with pytest.raises(RuntimeError):
        with quiet_native_logs():
            _native_write("converter: the reason it failed\n")
            raise RuntimeError("conversion failed")
    assert "the reason it failed" in capfd.readouterr().err


def test_verbose_shows_them(capfd, monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, "1")
    with quiet_native_logs():
        _native_write("fully_quantize: 0\n")
    assert "fully_quantize" in capfd.readouterr().err


_CONVERT = """
import sys
from tinynas.cli import quiet_third_party
quiet_third_party(verbose=sys.argv[1] == "1")
import numpy as np
from tinynas.errors import import_tensorflow
tf = import_tensorflow()  # as tinynas's own modules import it
from tinynas.deploy.tflite_export import convert
inp = tf.keras.Input((8, 8, 3), batch_size=1)
x = tf.keras.layers.Conv2D(4, 3, padding="same")(inp)
x = tf.keras.layers.GlobalAveragePooling2D()(x)
m = tf.keras.Model(inp, tf.keras.layers.Dense(2)(x))
convert(m, np.random.default_rng(0).random((16, 3, 8, 8), dtype=np.float32))
print("converted", file=sys.stderr)
"""


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True])
def test_real_conversion_is_quiet_unless_verbose(verbose):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", VERBOSE_ENV)}
    r = subprocess.run([sys.executable, "-c", _CONVERT, "1" if verbose else "0"], capture_output=True,
                       text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    noise = [n for n in NOISE if n in r.stderr]
    if verbose:
        assert "fully_quantize" in r.stderr
    else:
        assert noise == [], r.stderr
        assert r.stderr.strip().splitlines() == ["converted"]


def test_a_log_handler_made_inside_the_block_survives_it(capfd, monkeypatch):
    """absl makes its handler on the sys.stderr of the moment; a second block must not hit a closed stream."""
    import logging

    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    log = logging.getLogger("tinynas-test-quiet")
    log.propagate = False
    try:
        with quiet_native_logs():
            handler = logging.StreamHandler()  # binds to the block's sys.stderr, as absl's does
            log.addHandler(handler)
        with quiet_native_logs():
            log.warning("second block")
        log.warning("after both")
        err = capfd.readouterr().err
        assert "Logging error" not in err and "after both" in err, err
        assert not handler.stream.closed
    finally:
        log.removeHandler(handler)
