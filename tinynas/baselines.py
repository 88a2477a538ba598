"""Hand-designed models as tinynas archs, so they train, export and profile like a run's winner.

A user's alternative to a search is a textbook model trained for the same
time; `tinynas baseline` and `bench/bench_equal_time.py` run that alternative
through the very same chain (arch -> PyTorch -> Keras -> int8 TFLite -> TFLM ->
profile). Each topology is written in the arch format (see `space.arch` for
the block types):

* resnet8: MLPerf Tiny's image-classification ResNet-8 (conv 3x3 16, then
  basic blocks of 16, 32, 64 channels at strides 1, 2, 2, the last two with
  1x1 projection shortcuts, average pool, dense). As every tinynas block, a
  block's output is linear (ReLU6 inside the block, none after the ADD).
* dscnn: MLPerf Tiny's keyword-spotting DS-CNN (conv 64 at stride 2, four
  depthwise-separable blocks of 64 channels, average pool, dense), with a
  3x3 stem instead of 10x4 so it applies to images too; its stride-1 blocks
  add their input back, as tinynas blocks of equal width do.
* mobilenetv2: MobileNetV2's inverted-residual stages (t, c, n, s) =
  (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2)
  (6,320,1,1) without the final 1x1 conv to 1280 channels, scaled to the
  largest width multiplier whose int8 model fits the board. The stem keeps
  full resolution for inputs up to 32 px, as the search space does.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from .boards import Board
from .errors import UserError
from .flash import tflite_bytes_estimate
from .latency import lut_for_board
from .profile import profile_graph
from .space.graph_builder import build_graph
from .space.arch import ARCH_VERSION, HEAD, validate_arch
from .space.spec import AUTO_STEM_MAX_SIDE, make_divisible

MBV2_STAGES = ((6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
MBV2_WIDTHS = tuple(round(1.0 - 0.05 * i, 2) for i in range(19))  # 1.0 down to 0.1


def _arch(input_shape: Sequence[int], num_classes: int, stem: tuple[int, int], first: int | None,
          stages: list[dict[str, Any]], width_mult: float = 1.0) -> dict[str, Any]:
    return validate_arch({"version": ARCH_VERSION, "input": list(input_shape), "num_classes": num_classes,
                          "width_mult": width_mult, "stem": {"channels": stem[0], "stride": stem[1]},
                          "first_block": None if first is None else {"channels": first},
                          "stages": stages, "head": HEAD})


def _stage(kind: str, channels: int, stride: int, blocks: int, kernel: int = 3, expand: int = 1) -> dict:
    return {"channels": channels, "stride": stride, "block": kind,
            "blocks": [{"kernel": kernel, "expand": expand}] * blocks}


def resnet8(input_shape: Sequence[int], num_classes: int) -> dict[str, Any]:
    return _arch(input_shape, num_classes, (16, 1), None,
                 [_stage("res", 16, 1, 1), _stage("res", 32, 2, 1), _stage("res", 64, 2, 1)])


def dscnn(input_shape: Sequence[int], num_classes: int) -> dict[str, Any]:
    return _arch(input_shape, num_classes, (64, 2), None, [_stage("ds", 64, 1, 4)])


def mobilenetv2(input_shape: Sequence[int], num_classes: int, width_mult: float = 1.0) -> dict[str, Any]:
    """MobileNetV2 at one width multiplier (channels rounded to multiples of 8, as the space does)."""
    def w(c: int) -> int:
        return make_divisible(c * width_mult, 8)

    stem_stride = 1 if max(input_shape[1:]) <= AUTO_STEM_MAX_SIDE else 2
    stages = [{"channels": w(c), "stride": s, "blocks": [{"kernel": 3, "expand": t}] * n}
              for t, c, n, s in MBV2_STAGES]
    return _arch(input_shape, num_classes, (w(32), stem_stride), w(16), stages, width_mult)


def fits(arch: Mapping, board: Board) -> tuple[bool, dict[str, Any]]:
    """Whether the int8 export of `arch` fits `board`, from the op graph and memory planner.

    The same figures `tinynas profile` prints for the exported file (the graph
    builder reproduces the converter's graph), without converting anything.
    """
    g = build_graph(arch)
    g.model_bytes = tflite_bytes_estimate(g)  # a built graph has no file yet: estimate its size
    prof = profile_graph(g, board, lut=lut_for_board(board))
    return bool(prof["fits"]), prof


def widest_fitting(build: Callable[[float], dict[str, Any]], board: Board,
                   widths: Sequence[float] = MBV2_WIDTHS) -> tuple[dict[str, Any], float]:
    """The arch at the largest width multiplier that fits the board (widths tried widest first)."""
    for wm in sorted(widths, reverse=True):
        arch = build(wm)
        if fits(arch, board)[0]:
            return arch, wm
    raise UserError(f"no width multiplier in {min(widths)}..{max(widths)} fits {board.id}; "
                    "choose a larger board")


NAMES = ("resnet8", "dscnn", "mobilenetv2")


def baseline_arch(name: str, input_shape: Sequence[int], num_classes: int, board: Board) -> dict[str, Any]:
    """The named baseline for this data shape (MobileNetV2 at the widest width that fits)."""
    if name == "resnet8":
        return resnet8(input_shape, num_classes)
    if name == "dscnn":
        return dscnn(input_shape, num_classes)
    if name == "mobilenetv2":
        return widest_fitting(lambda wm: mobilenetv2(input_shape, num_classes, wm), board)[0]
    raise UserError(f"baseline {name!r} is not one of {', '.join(NAMES)}")
