"""The generated input stage: raw uint8 pixels through the C table equal the Python path's int8 inputs.

The Python path is what the export feeds TFLM when it verifies a model
(`data.dataset.preprocess`, then `deploy.verify.quantize_input`); the C path
is the settings header's `kInputFromRaw` table and the io header's
`SetInputRaw`, compiled with the host g++ against a stand-in for TFLM's
TfLiteTensor. Both must give identical bytes for every element of real-sized
RGB and grayscale images.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tinynas import cgen
from tinynas.data.augment import Augment
from tinynas.data.dataset import make_preprocessing, preprocess
from tinynas.deploy.input_stage import input_stage
from tinynas.deploy.verify import quantize_input
from tinynas.graph import Tensor

# Just what the io header touches of TFLM's TfLiteTensor.
STUB_COMMON = """#pragma once
#include <stdint.h>
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt16 = 7, kTfLiteInt8 = 9,
               kTfLiteUInt8 = 3 } TfLiteType;
typedef union { int8_t* int8; uint8_t* uint8; int16_t* i16; float* f; } TfLitePtrUnion;
typedef struct { TfLiteType type; TfLitePtrUnion data; } TfLiteTensor;
"""

DRIVER = """#include <stdio.h>
#include <stdlib.h>
#include "m_model_io.h"
// Reads raw HWC bytes from argv[1]; prints the model input each byte becomes, one per line.
int main(int argc, char** argv) {
  (void)argc;
  FILE* f = fopen(argv[1], "rb");
  static uint8_t raw[m_model::kInputElements];
  static uint8_t buf[m_model::kInputElements * 4];
  if (fread(raw, 1, sizeof raw, f) != sizeof raw) return 2;
  TfLiteTensor t;
  t.type = %(type)s;
  t.data.uint8 = buf;
  for (int i = 0; i < m_model::kInputElements; ++i) {
    if (!m_model::SetInputRaw(&t, i, raw[i])) return 3;
    printf("%%d\\n", static_cast<int>(%(read)s));
  }
  return 0;
}
"""


@dataclass
class FakeGraph:
    """The two tensors the headers read: input 0 and output 0."""

    tensors: list[Tensor]
    inputs: tuple[int, ...] = (0,)
    outputs: tuple[int, ...] = (1,)

    def tensor(self, i: int) -> Tensor:
        return self.tensors[i]


def _model(c: int, dtype: str, rng: np.random.Generator) -> tuple[dict, FakeGraph, np.ndarray]:
    train = rng.integers(0, 256, size=(64, 24, 20, c), dtype=np.uint8)
    prep = make_preprocessing(train, ["a", "b"], "RGB" if c == 3 else "L", Augment())
    x = preprocess(train, prep).transpose(0, 2, 3, 1)
    scale = float((x.max() - x.min()) / 255.0)  # as a calibrated converter would choose
    zero = int(np.round(-128 - x.min() / scale)) if dtype == "int8" else int(np.round(-x.min() / scale))
    t_in = Tensor(0, "input", (1, 24, 20, c), dtype, scale=(scale,), zero_point=(zero,))
    t_out = Tensor(1, "output", (1, 2), dtype, scale=(0.1,), zero_point=(0,))
    images = rng.integers(0, 256, size=(3, 24, 20, c), dtype=np.uint8)
    return prep, FakeGraph([t_in, t_out]), images


@pytest.mark.parametrize("c, dtype", [(3, "int8"), (1, "int8"), (3, "uint8")])
def test_raw_pixels_through_the_generated_c_equal_the_python_path(tmp_path: Path, c: int, dtype: str) -> None:
    if shutil.which("g++") is None:
        pytest.skip("host g++ is not on PATH")
    prep, graph, images = _model(c, dtype, np.random.default_rng(c))
    stage = input_stage(prep, graph)
    assert stage is not None and stage.table.shape == (c, 256)
    (tmp_path / "tensorflow/lite/c").mkdir(parents=True)
    (tmp_path / "tensorflow/lite/c/common.h").write_text(STUB_COMMON)
    (tmp_path / "m_model_settings.h").write_text(cgen.model_settings_header("m", graph, 4096, input_stage=stage))
    (tmp_path / "m_model_io.h").write_text(cgen.model_io_header("m", graph, stage))
    ctype, member = ("kTfLiteInt8", "t.data.int8[i]") if dtype == "int8" else ("kTfLiteUInt8", "t.data.uint8[i]")
    (tmp_path / "driver.cc").write_text(DRIVER % {"type": ctype, "read": member})
    r = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", ".", "-o", "driver", "driver.cc"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    t_in = graph.tensor(0)
    for img in images:
        (tmp_path / "raw.bin").write_bytes(img.tobytes())  # HWC, as a camera gives it
        out = subprocess.run(["./driver", "raw.bin"], cwd=tmp_path, capture_output=True, text=True, check=True)
        got = np.array(out.stdout.split(), dtype=np.int64)
        want = quantize_input(preprocess(img[None], prep).transpose(0, 2, 3, 1), t_in).ravel().astype(np.int64)
        assert got.shape == want.shape and np.array_equal(got, want)
        assert len(np.unique(want)) > 50  # the images span the input range, not one saturated value


def test_bare_tflite_has_no_input_stage_and_says_so() -> None:
    prep, graph, _ = _model(1, "int8", np.random.default_rng(0))
    h = cgen.model_settings_header("m", graph, 4096)
    assert "constexpr bool kHasInputStage = false;" in h and "bare .tflite" in h
    io = cgen.model_io_header("m", graph, None)
    assert "return false;  // exported from a bare .tflite" in io
    with_stage = cgen.model_settings_header("m", graph, 4096, input_stage=input_stage(prep, graph))
    assert "constexpr int kInputChannels = 1;" in with_stage and 'kInputColor = "L"' in with_stage
    assert "kInputFromRaw[1][256]" in with_stage
