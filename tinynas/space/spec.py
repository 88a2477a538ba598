"""The search space as data: what an MBConv (or fused-MBConv, or residual conv) supernet may contain.

A `SpaceSpec` fixes everything that is *not* searched per subnet: the input
(channels, resolution), the class count, the width multiplier, the stem, the
stages' base widths and strides, and the choice lists (depth per stage, kernel
and expand ratio per block). MCUNet's search-space optimization picks one
(width_mult, resolution) pair from the `widths` / `resolutions` grids; the
evolutionary search then picks depths, kernels and expands inside it. Keeping
this in a JSON/TOML file, not in code, lets a user shrink or grow the space for
a board without touching the package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import UserError

DEFAULT_SPACE_PATH = Path(__file__).with_name("default_space.json")
BLOCK_TYPES = ("mb", "fused", "res", "ds")  # every type an arch may hold (see arch's module doc)
SPACE_BLOCK_TYPES = ("mb", "fused", "res")  # types a search space may be made of
AUTO_STEM_MAX_SIDE = 32  # inputs no larger than this keep full resolution in the stem


def make_divisible(value: float, divisor: int = 8, min_value: int = 8) -> int:
    """Round a scaled width to a multiple of `divisor` (ProxylessNAS/MCUNet rule).

    Multiples of 8 keep int8 kernels on their fast paths; the 0.9 guard stops
    rounding down by more than 10%, as in the reference implementation.
    """
    v = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if v < 0.9 * value:
        v += divisor
    return v


def same_out(size: int, stride: int) -> int:
    """Output length of a TF 'same' conv: never below 1 for any input >= 1."""
    return -(-size // stride)


def clamp_stride(stride: int, hw: tuple[int, int], min_side: int = 1) -> int:
    """The stride a stage really uses on an incoming map of size `hw`.

    With 'same' padding a stride never takes a map below 1x1 (ceil(1/2) = 1),
    so tiny inputs such as 1x49x10 MFCCs stay valid; on a map that is already
    1x1 a stride of 2 would change nothing but the bookkeeping, so it becomes 1.
    Non-square maps keep the stride while either side is > 1. With `min_side`
    (the space's `min_feature_side`) a stride that would take the shorter side
    below it becomes 1 too: the input size decides how many stages downsample,
    so a 32x32 input can stop at 8x8 as ResNet-8 does instead of 2x2.
    """
    if hw == (1, 1) or (stride > 1 and min_side > 1 and same_out(min(hw), stride) < min_side):
        return 1
    return stride


# ---------------------------------------------------------------- field checks


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_int(v: Any, path: str, minimum: int = 1) -> int:
    """An integer >= minimum, or a UserError naming `path`."""
    if not is_int(v) or v < minimum:
        raise UserError(f"{path}: {v!r} is not an integer >= {minimum}")
    return int(v)


def check_odd(v: Any, path: str) -> int:
    if not is_int(v) or v < 1 or v % 2 == 0:
        raise UserError(f"{path}: {v!r} is not an odd integer >= 1")
    return int(v)


def check_stride(v: Any, path: str) -> int:
    if not is_int(v) or v not in (1, 2):
        raise UserError(f"{path}: {v!r} is not one of [1,2]")
    return int(v)


def check_positive(v: Any, path: str) -> float:
    if not is_number(v) or v <= 0:
        raise UserError(f"{path}: {v!r} is not a number > 0")
    return float(round(v, 6))


def check_list(v: Any, path: str, allow_empty: bool = False) -> list:
    if not isinstance(v, (list, tuple)):
        raise UserError(f"{path}: expected a list, got {type(v).__name__}")
    if not v and not allow_empty:
        raise UserError(f"{path}: must not be empty")
    return list(v)


def check_mapping(v: Any, path: str, allowed: set[str]) -> Mapping:
    """A JSON object whose keys are all known; typos are errors, not silently ignored."""
    if not isinstance(v, Mapping):
        raise UserError(f"{path}: expected an object, got {type(v).__name__}")
    unknown = sorted(set(v) - allowed)
    if unknown:
        raise UserError(f"{path}: unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    return v


def check_hw(v: Any, path: str) -> tuple[int, int]:
    """A resolution: one side for a square input, or [H, W]."""
    if is_int(v):
        side = check_int(v, path)
        return side, side
    items = check_list(v, path)
    if len(items) != 2:
        raise UserError(f"{path}: expected [H, W] or a single side, got {len(items)} values")
    return check_int(items[0], f"{path}[0]"), check_int(items[1], f"{path}[1]")


def fmt_choices(values: tuple | list) -> str:
    """A choice list as error messages print it: [3,5,7]."""
    return "[" + ",".join(str(x) for x in values) + "]"


def _unique(values: list, path: str) -> None:
    if len(set(values)) != len(values):
        raise UserError(f"{path}: values must be unique, got {fmt_choices(values)}")


# ---------------------------------------------------------------- the spec


@dataclass(frozen=True)
class StageSpec:
    """One stage before the width multiplier: its base width and its stride."""

    channels: int
    stride: int


@dataclass(frozen=True)
class SpaceSpec:
    """One MBConv search space at one (width_mult, resolution); see module doc."""

    stages: tuple[StageSpec, ...]
    name: str = "mcunet-mbconv"
    block: str = "mb"  # mb, fused or res in every stage, or one per stage: "fused,mb" (parse_blocks)
    min_feature_side: int = 1  # no stride below this map side (1: downsample while the map allows)
    input_channels: int = 3
    resolution: tuple[int, int] = (32, 32)
    num_classes: int = 10
    width_mult: float = 1.0
    stem_channels: int = 32
    stem_stride: int | None = None  # None: 1 if max(H, W) <= 32, else 2
    first_block_channels: int = 16
    depths: tuple[int, ...] = (2, 3, 4)
    kernels: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[int, ...] = (3, 4, 6)
    widths: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    resolutions: tuple[tuple[int, int], ...] = field(default=())

    @property
    def stage_blocks(self) -> tuple[str, ...]:
        """The block type of each stage (`block` lists them from the first; its last one repeats)."""
        types = self.block.split(",")
        return tuple(types[min(i, len(types) - 1)] for i in range(len(self.stages)))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W), the layout of the PyTorch model and of arch["input"]."""
        return (self.input_channels, *self.resolution)

    @property
    def effective_stem_stride(self) -> int:
        if self.stem_stride is not None:
            return self.stem_stride
        return 1 if max(self.resolution) <= AUTO_STEM_MAX_SIDE else 2

    @property
    def max_depth(self) -> int:
        """Block slots per stage: the genome reserves this many per stage."""
        return max(self.depths)

    @property
    def resolution_grid(self) -> tuple[tuple[int, int], ...]:
        """Candidate resolutions for space optimization; just `resolution` if none listed."""
        return self.resolutions or (self.resolution,)

    def scaled(self, base: int) -> int:
        """A base width under this space's width multiplier."""
        return make_divisible(base * self.width_mult, 8)

    def stage_channels(self) -> list[int]:
        return [self.scaled(s.channels) for s in self.stages]

    def with_config(self, width_mult: float | None = None,
                    resolution: int | tuple[int, int] | None = None) -> "SpaceSpec":
        """The same space at another (width_mult, resolution), as space optimization needs."""
        changes: dict[str, Any] = {}
        if width_mult is not None:
            changes["width_mult"] = width_mult
        if resolution is not None:
            changes["resolution"] = resolution
        return replace_spec(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that `load_space` reads back to an equal spec."""
        d = asdict(self)
        d["stages"] = [asdict(s) for s in self.stages]
        for k in ("resolution", "depths", "kernels", "expand_ratios", "widths"):
            d[k] = list(d[k])
        d["resolutions"] = [list(r) for r in self.resolutions]
        return d


_FIELDS = set(SpaceSpec.__dataclass_fields__)


def _default_dict() -> dict[str, Any]:
    return json.loads(DEFAULT_SPACE_PATH.read_text(encoding="utf-8"))


def _choices(d: Mapping, key: str, src: str, check) -> tuple:
    items = check_list(d[key], f"{src}: {key}")
    values = [check(v, f"{src}: {key}[{i}]") for i, v in enumerate(items)]
    _unique(values, f"{src}: {key}")
    return tuple(values)


def _stages(v: Any, src: str) -> tuple[StageSpec, ...]:
    out = []
    for i, s in enumerate(check_list(v, f"{src}: stages")):
        p = f"{src}: stages[{i}]"
        check_mapping(s, p, {"channels", "stride"})
        if "channels" not in s or "stride" not in s:
            raise UserError(f"{p}: needs both 'channels' and 'stride'")
        out.append(StageSpec(check_int(s["channels"], f"{p}.channels"),
                             check_stride(s["stride"], f"{p}.stride")))
    return tuple(out)


def spec_from_dict(d: Mapping, source: str = "space") -> SpaceSpec:
    """Validate a mapping (missing fields take the default space's values)."""
    check_mapping(d, source, _FIELDS)
    m = {**_default_dict(), **d}
    src = source
    stem_stride = m["stem_stride"]
    if stem_stride is not None:
        stem_stride = check_stride(stem_stride, f"{src}: stem_stride")
    if not isinstance(m["name"], str) or not m["name"]:
        raise UserError(f"{src}: name: expected a non-empty string")
    stages, blocks = _stages(m["stages"], src), parse_blocks(m["block"], f"{src}: block")
    check_block_count(blocks, len(stages), f"{src}: block", "the space")
    resolutions = tuple(check_hw(r, f"{src}: resolutions[{i}]")
                        for i, r in enumerate(check_list(m["resolutions"], f"{src}: resolutions", True)))
    return SpaceSpec(
        stages=stages,
        name=m["name"],
        block=",".join(blocks),
        min_feature_side=check_int(m["min_feature_side"], f"{src}: min_feature_side"),
        input_channels=check_int(m["input_channels"], f"{src}: input_channels"),
        resolution=check_hw(m["resolution"], f"{src}: resolution"),
        num_classes=check_int(m["num_classes"], f"{src}: num_classes"),
        width_mult=check_positive(m["width_mult"], f"{src}: width_mult"),
        stem_channels=check_int(m["stem_channels"], f"{src}: stem_channels"),
        stem_stride=stem_stride,
        first_block_channels=check_int(m["first_block_channels"], f"{src}: first_block_channels"),
        depths=_choices(m, "depths", src, check_int),
        kernels=_choices(m, "kernels", src, check_odd),
        expand_ratios=_choices(m, "expand_ratios", src, check_int),
        widths=_choices(m, "widths", src, check_positive),
        resolutions=resolutions,
    )


def _read_file(p: Path) -> Any:
    if not p.exists():
        raise UserError(f"space file {p} does not exist; check the path")
    if p.is_dir():
        raise UserError(f"{p} is a directory; pass a .json or .toml space file")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        if p.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{p} is not valid {p.suffix.lstrip('.').upper() or 'JSON'}: {e}") from None


def load_space(src: str | os.PathLike | Mapping | None = None, **overrides: Any) -> SpaceSpec:
    """Load a space from a .json/.toml file or a dict; None gives the default MCUNet-like space.

    A file written by `tinynas space` (its chosen space under "space") works too.

    `overrides` (e.g. num_classes=2, resolution=[49, 10], input_channels=1)
    replace fields after loading, so a dataset can adapt a stored space
    without writing a new file.
    """
    if src is None:
        d, name = _default_dict(), str(DEFAULT_SPACE_PATH.name)
    elif isinstance(src, Mapping):
        d, name = dict(src), "space"
    else:
        p = Path(src)
        d, name = _read_file(p), str(p)
    if not isinstance(d, Mapping):
        raise UserError(f"{name}: expected a JSON/TOML object at the top level")
    if isinstance(d.get("space"), Mapping):  # the space.json `tinynas space` writes
        d = d["space"]
    return spec_from_dict({**d, **overrides}, source=name)


def default_space(**overrides: Any) -> SpaceSpec:
    return load_space(None, **overrides)


# What each block type's default space changes in default_space.json. Dense
# kxk convs cost kernel^2 x more than a depthwise conv per channel, so fused and
# res spaces offer kernels 3 and 5 and small expansions; and since they are the
# types that train fast on a CPU (see bench/bench_throughput.py), their spaces
# stop downsampling at 4x4 and res starts at full resolution with ResNet-8's
# widths (16, 32, 64) and one more stage, so that ResNet-8 itself is close to
# a point of the space.
BLOCK_PRESETS: dict[str, dict[str, Any]] = {
    "mb": {},
    "fused": {"kernels": [3, 5], "expand_ratios": [1, 2, 4], "min_feature_side": 4},
    "res": {"stem_channels": 16, "first_block_channels": 16, "kernels": [3, 5], "expand_ratios": [1, 2],
            "depths": [1, 2, 3], "min_feature_side": 4,
            "stages": [{"channels": 16, "stride": 1}, {"channels": 32, "stride": 2},
                       {"channels": 64, "stride": 2}, {"channels": 128, "stride": 2}],
            "widths": [0.25, 0.35, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]},
}


def parse_blocks(block: Any, where: str = "block") -> tuple[str, ...]:
    """The block types a space's `block` names: one type for every stage, or a comma list.

    "fused,fused,mb" gives stages 1 and 2 fused-MBConv and every later stage
    MBConv (the last type repeats), the EfficientNetV2 pattern: dense convs
    where maps are large and channels few, depthwise ones deeper in.
    """
    if isinstance(block, (list, tuple)) and all(isinstance(t, str) for t in block):
        block = ",".join(block)  # a TOML/JSON list reads like the comma form
    types = tuple(t.strip() for t in block.split(",")) if isinstance(block, str) else ()
    bad = [t for t in types if t not in SPACE_BLOCK_TYPES]
    if not types or bad:
        raise UserError(f"{where}: {block!r} is not a block type ({', '.join(SPACE_BLOCK_TYPES)}) "
                        "or a comma list of them, one per stage from the first (e.g. fused,mb)")
    return types


def check_block_count(blocks: Sequence[str], n_stages: int, where: str, space: str) -> None:
    """One type per stage at most: a longer list names stages the space does not have."""
    if len(blocks) > n_stages:
        raise UserError(f"{where}: {','.join(blocks)!r} names {len(blocks)} block types, but {space} has "
                        f"{n_stages} stages")


def block_arg(text: str) -> str:
    """argparse `type` of --block: the normalized list, checked before any work starts."""
    try:
        return ",".join(parse_blocks(text, "--block"))
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--block: ")) from None


def space_for_block(block: str | Sequence[str], where: str = "block", **overrides: Any) -> SpaceSpec:
    """The default space of a block type (BLOCK_PRESETS), then `overrides`.

    A per-stage list ("res,mb") takes the preset of its first type (stage
    layout, kernels, expand ratios) and puts each stage's own type in it;
    errors name `where` (e.g. "space.block") as the user wrote it.
    """
    types = parse_blocks(block, where)
    d = {**_default_dict(), **BLOCK_PRESETS[types[0]], "block": ",".join(types),
         "name": "tinynas-" + "-".join(types), **overrides}
    check_block_count(types, len(d["stages"]), where, f"the {types[0]} space")  # before spec_from_dict's own
    return spec_from_dict(d, source=DEFAULT_SPACE_PATH.name)  # as load_space(None, ...) names it


def replace_spec(spec: SpaceSpec, **changes: Any) -> SpaceSpec:
    """dataclasses.replace, but re-validated, so a derived spec is as checked as a loaded one."""
    return spec_from_dict({**spec.to_dict(), **changes}, source="space")
