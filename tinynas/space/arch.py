"""A concrete subnet of the space: a small canonical JSON dict, its geometry, its genome.

An `Arch` is plain JSON so it can be stored next to checkpoints, hashed to name
runs, and read by people:

    {"version": 1, "input": [3, 32, 32], "num_classes": 10, "width_mult": 0.5,
     "stem": {"channels": 16, "stride": 1}, "first_block": {"channels": 8},
     "stages": [{"channels": 16, "stride": 2,
                 "blocks": [{"kernel": 3, "expand": 4}, {"kernel": 7, "expand": 6}]}, ...],
     "head": "avgpool-linear"}

The arch stores the strides a stage really uses (after `spec.clamp_stride`), so
it describes the network fully without its space. `layer_plan` derives every
conv's channels, stride, spatial sizes and TF-'same' padding from it; the
PyTorch model, the Keras mirror and the cost graph are all built from that
plan, so they cannot disagree.

Block layout, fixed by the space: the first block has expand ratio 1 (depthwise
3x3 + linear 1x1, no expand conv); every stage block has a 1x1 expand conv,
even at expand ratio 1, so that a weight-sharing supernet can slice any subnet
out of one set of tensors.

Block types. A stage may name its block type with `"block"` (omitted means
"mb", so archs written before block types keep their hash):

    mb     1x1 expand (ReLU6), kxk depthwise (ReLU6), 1x1 linear project
    fused  kxk conv to cin * expand (ReLU6), 1x1 linear project (fused-MBConv)
    res    kxk conv to cout * expand (ReLU6), kxk linear conv; a stride or width
           change adds a 1x1 linear projection shortcut (ResNet basic block)
    ds     kxk depthwise (ReLU6), 1x1 pointwise (ReLU6); expand must be 1 (DS-CNN)

Every type adds its input back (identity shortcut) when stride is 1 and the
width is unchanged. `"first_block": null` drops the first block, as ResNet-8
and DS-CNN have none. A search space (`SpaceSpec.block`) holds "mb", "fused" or
"res" blocks, one type per stage (the same in every stage, or a list such as
"fused,mb"), always after a first block; "ds" blocks and
a missing first block describe hand-designed baselines (`tinynas.baselines`)
that export and profile through the same chain.

The genome is the search's view: a fixed-length int vector
`[depth index per stage | kernel index per (stage, slot) | expand index per (stage, slot)]`
with `spec.max_depth` slots per stage; slots past a stage's depth are inactive
and kept at 0 so equal subnets have equal genomes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..atomic import write_json
from ..errors import UserError
from .spec import (BLOCK_TYPES, SpaceSpec, check_int, check_list, check_mapping, check_odd, check_positive,
                   check_stride, clamp_stride, fmt_choices, is_int, same_out)

Arch = dict[str, Any]

ARCH_VERSION = 1
HEAD = "avgpool-linear"
DEFAULT_BLOCK = "mb"
FIRST_BLOCK_KERNEL = 3
GENOME_DTYPE = np.int8  # a million 54-slot genomes fit in 54 MB

_TOP_FIELDS = {"version", "input", "num_classes", "width_mult", "stem", "first_block", "stages", "head"}


# ---------------------------------------------------------------- validation


def _check_choice(v: Any, path: str, choices: tuple[int, ...]) -> None:
    if not is_int(v) or v not in choices:
        raise UserError(f"{path}: {v!r} is not one of {fmt_choices(choices)}")


def _check_block(b: Any, p: str, spec: SpaceSpec | None, kind: str = DEFAULT_BLOCK) -> dict[str, int]:
    check_mapping(b, p, {"kernel", "expand"})
    for k in ("kernel", "expand"):
        if k not in b:
            raise UserError(f"{p}.{k}: missing")
    if spec is not None:  # the space's own lists make the clearest message
        _check_choice(b["kernel"], f"{p}.kernel", spec.kernels)
        _check_choice(b["expand"], f"{p}.expand", spec.expand_ratios)
    out = {"kernel": check_odd(b["kernel"], f"{p}.kernel"),
           "expand": check_int(b["expand"], f"{p}.expand")}
    if kind == "ds" and out["expand"] != 1:
        raise UserError(f"{p}.expand: {out['expand']!r} is not 1 (a \"ds\" block has no expansion)")
    return out


def _check_stage(s: Any, p: str, spec: SpaceSpec | None) -> dict[str, Any]:
    check_mapping(s, p, {"channels", "stride", "blocks", "block"})
    for k in ("channels", "stride", "blocks"):
        if k not in s:
            raise UserError(f"{p}.{k}: missing")
    kind = s.get("block", DEFAULT_BLOCK)
    if kind not in BLOCK_TYPES:
        raise UserError(f"{p}.block: {kind!r} is not one of [{','.join(BLOCK_TYPES)}]")
    blocks = check_list(s["blocks"], f"{p}.blocks")
    out = {"channels": check_int(s["channels"], f"{p}.channels"),
           "stride": check_stride(s["stride"], f"{p}.stride"),
           "blocks": [_check_block(b, f"{p}.blocks[{j}]", spec, kind) for j, b in enumerate(blocks)]}
    if kind != DEFAULT_BLOCK:  # omitted for "mb": archs from before block types keep their hash
        out["block"] = kind
    return out


def block_type(stage: Mapping) -> str:
    """A normalized stage's block type ("mb" when the field is omitted)."""
    return stage.get("block", DEFAULT_BLOCK)


def _check_structure(d: Any, spec: SpaceSpec | None = None) -> Arch:
    """Types and ranges that any arch must satisfy, space or not; returns a normalized copy."""
    check_mapping(d, "arch", _TOP_FIELDS)
    missing = sorted(_TOP_FIELDS - set(d))
    if missing:
        raise UserError(f"{missing[0]}: missing from arch")
    if d["version"] != ARCH_VERSION or not is_int(d["version"]):
        raise UserError(f"version: {d['version']!r} is not supported (expected {ARCH_VERSION})")
    if d["head"] != HEAD:
        raise UserError(f"head: {d['head']!r} is not one of [{HEAD}]")
    inp = check_list(d["input"], "input")
    if len(inp) != 3:
        raise UserError(f"input: expected [C, H, W], got {len(inp)} values")
    check_mapping(d["stem"], "stem", {"channels", "stride"})
    first = d["first_block"]
    if first is not None:
        check_mapping(first, "first_block", {"channels"})
    for p, m, k in (("stem", d["stem"], "channels"), ("stem", d["stem"], "stride"),
                    ("first_block", first or {"channels": 0}, "channels")):
        if k not in m:
            raise UserError(f"{p}.{k}: missing")
    return {
        "version": ARCH_VERSION,
        "input": [check_int(v, f"input[{i}]") for i, v in enumerate(inp)],
        "num_classes": check_int(d["num_classes"], "num_classes"),
        "width_mult": check_positive(d["width_mult"], "width_mult"),
        "stem": {"channels": check_int(d["stem"]["channels"], "stem.channels"),
                 "stride": check_stride(d["stem"]["stride"], "stem.stride")},
        "first_block": None if first is None else
        {"channels": check_int(first["channels"], "first_block.channels")},
        "stages": [_check_stage(s, f"stages[{i}]", spec)
                   for i, s in enumerate(check_list(d["stages"], "stages"))],
        "head": HEAD,
    }


@dataclass(frozen=True)
class Skeleton:
    """What a space fixes for every subnet: widths and the strides really used."""

    input: tuple[int, int, int]
    stem_channels: int
    stem_stride: int
    first_block_channels: int
    stage_channels: tuple[int, ...]
    stage_strides: tuple[int, ...]


def skeleton(spec: SpaceSpec) -> Skeleton:
    """Widths after the multiplier and strides after clamping, from the spec alone."""
    hw = spec.resolution
    stem_stride = clamp_stride(spec.effective_stem_stride, hw, spec.min_feature_side)
    hw = (same_out(hw[0], stem_stride), same_out(hw[1], stem_stride))
    strides = []
    for st in spec.stages:
        s = clamp_stride(st.stride, hw, spec.min_feature_side)
        strides.append(s)
        hw = (same_out(hw[0], s), same_out(hw[1], s))
    return Skeleton(input=spec.input_shape, stem_channels=spec.scaled(spec.stem_channels),
                    stem_stride=stem_stride,
                    first_block_channels=spec.scaled(spec.first_block_channels),
                    stage_channels=tuple(spec.stage_channels()), stage_strides=tuple(strides))


def _mismatch(path: str, got: Any, want: Any, why: str) -> UserError:
    return UserError(f"{path}: {got!r} does not match the space (expected {want!r} {why})")


def _check_against(a: Arch, spec: SpaceSpec) -> None:
    """Raise on the first field of a normalized arch that the space does not allow."""
    sk = skeleton(spec)
    at = f"at width_mult {spec.width_mult}"
    if tuple(a["input"]) != sk.input:
        raise _mismatch("input", a["input"], list(sk.input), "from the space's input and resolution")
    if a["num_classes"] != spec.num_classes:
        raise _mismatch("num_classes", a["num_classes"], spec.num_classes, "from the space")
    if a["width_mult"] != spec.width_mult:
        raise _mismatch("width_mult", a["width_mult"], spec.width_mult, "from the space")
    if a["first_block"] is None:
        raise UserError("first_block: null does not match the space (its subnets all have a first block)")
    for i, (st, want) in enumerate(zip(a["stages"], spec.stage_blocks)):
        if block_type(st) != want:
            raise UserError(f"stages[{i}].block: {block_type(st)!r} does not match the space "
                            f"(its stage {i} holds {want!r} blocks)")
    for path, got, want, why in (
            ("stem.channels", a["stem"]["channels"], sk.stem_channels, at),
            ("stem.stride", a["stem"]["stride"], sk.stem_stride, "for this input size"),
            ("first_block.channels", a["first_block"]["channels"], sk.first_block_channels, at)):
        if got != want:
            raise _mismatch(path, got, want, why)
    if len(a["stages"]) != len(spec.stages):
        raise _mismatch("stages", f"{len(a['stages'])} stages", f"{len(spec.stages)} stages", "")
    for i, st in enumerate(a["stages"]):
        _check_stage_against(st, i, sk, spec, at)


def _check_stage_against(st: dict, i: int, sk: Skeleton, spec: SpaceSpec, at: str) -> None:
    p = f"stages[{i}]"
    if st["channels"] != sk.stage_channels[i]:
        raise _mismatch(f"{p}.channels", st["channels"], sk.stage_channels[i], at)
    if st["stride"] != sk.stage_strides[i]:
        raise _mismatch(f"{p}.stride", st["stride"], sk.stage_strides[i], "for this input size")
    if len(st["blocks"]) not in spec.depths:
        raise UserError(f"{p}.blocks: depth {len(st['blocks'])} is not one of {fmt_choices(spec.depths)}")


def validate_arch(d: Any, spec: SpaceSpec | None = None) -> Arch:
    """Check an arch (and, given a spec, that it belongs to that space); return a normalized copy.

    Errors name the field path, e.g. `stages[2].blocks[1].kernel: 4 is not one of [3,5,7]`.
    """
    a = _check_structure(d, spec)
    if spec is not None:
        _check_against(a, spec)
    return a


# ---------------------------------------------------------------- construction


def arch_from_choices(spec: SpaceSpec, depths: Sequence[int], kernels: Sequence[Sequence[int]],
                      expands: Sequence[Sequence[int]]) -> Arch:
    """The subnet with these per-stage depths and per-block kernels / expand ratios.

    `kernels[i]` and `expands[i]` list stage i's blocks (at least depths[i]
    values; extra trailing values are ignored, so fixed-length slot lists work).
    """
    sk = skeleton(spec)
    n = len(spec.stages)
    for name, v in (("depths", depths), ("kernels", kernels), ("expands", expands)):
        if len(v) != n:
            raise UserError(f"{name}: expected {n} values (one per stage), got {len(v)}")
    stages = []
    for i in range(n):
        d = check_int(depths[i], f"depths[{i}]")
        if len(kernels[i]) < d or len(expands[i]) < d:
            raise UserError(f"kernels[{i}]/expands[{i}]: need {d} values for depth {d}")
        blocks = [{"kernel": int(kernels[i][j]), "expand": int(expands[i][j])} for j in range(d)]
        stages.append({"channels": sk.stage_channels[i], "stride": sk.stage_strides[i], "blocks": blocks,
                       "block": spec.stage_blocks[i]})
    arch = {"version": ARCH_VERSION, "input": list(sk.input), "num_classes": spec.num_classes,
            "width_mult": spec.width_mult,
            "stem": {"channels": sk.stem_channels, "stride": sk.stem_stride},
            "first_block": {"channels": sk.first_block_channels},
            "stages": stages, "head": HEAD}
    return validate_arch(arch, spec)


def largest_arch(spec: SpaceSpec) -> Arch:
    """Max depth, kernel and expand everywhere: the supernet's full shape."""
    n, d = len(spec.stages), spec.max_depth
    return arch_from_choices(spec, [d] * n, [[max(spec.kernels)] * d] * n,
                             [[max(spec.expand_ratios)] * d] * n)


def smallest_arch(spec: SpaceSpec) -> Arch:
    n, d = len(spec.stages), min(spec.depths)
    return arch_from_choices(spec, [d] * n, [[min(spec.kernels)] * d] * n,
                             [[min(spec.expand_ratios)] * d] * n)


def sample_arch(spec: SpaceSpec, rng: np.random.Generator) -> Arch:
    """One subnet, each depth/kernel/expand choice uniform and independent (SPOS sampling)."""
    return decode(spec, sample_genomes(spec, 1, rng)[0])


# ---------------------------------------------------------------- identity and files


def canonical_json(arch: Mapping) -> str:
    """Sorted keys, no whitespace, normalized numbers: equal archs give equal strings."""
    return json.dumps(validate_arch(arch), sort_keys=True, separators=(",", ":"))


def arch_hash(arch: Mapping) -> str:
    """First 12 hex chars of sha256(canonical_json): a short stable id for runs and files."""
    return hashlib.sha256(canonical_json(arch).encode("utf-8")).hexdigest()[:12]


def load_arch(path: str | os.PathLike, spec: SpaceSpec | None = None) -> Arch:
    """Read and validate an arch JSON file; errors name the file and the field."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"arch file {p} does not exist; check the path")
    if p.is_dir():
        raise UserError(f"{p} is a directory; pass an arch .json file")
    try:
        d = json.loads(p.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as e:
        raise UserError(f"{p} is not valid JSON: {e}") from None
    try:
        return validate_arch(d, spec)
    except UserError as e:
        raise UserError(f"{p}: {e.args[0]}") from None


def save_arch(path: str | os.PathLike, arch: Mapping) -> None:
    """Validate, then write atomically (a crash never leaves half an arch behind)."""
    write_json(path, validate_arch(arch))


# ---------------------------------------------------------------- geometry


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding (before, after): the extra pixel goes after, as TFLite does."""
    total = max((same_out(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class ConvLayer:
    """One conv + BN (+ ReLU6) as all three builders make it."""

    name: str  # module path, e.g. "stages.1.blocks.0.dw"
    kind: str  # "conv" or "dw"
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    pad: tuple[int, int, int, int]  # (left, right, top, bottom), nn.ZeroPad2d's order
    relu6: bool

    @property
    def symmetric(self) -> bool:
        l, r, t, b = self.pad
        return l == r and t == b


@dataclass(frozen=True)
class BlockLayers:
    name: str  # "first_block" or "stages.i.blocks.j"
    convs: tuple[ConvLayer, ...]  # the main path in order, e.g. (expand,) dw, project
    residual: bool  # identity shortcut: output = input + main path
    kind: str = DEFAULT_BLOCK
    shortcut: ConvLayer | None = None  # projection shortcut: output = shortcut(input) + main path

    @property
    def adds(self) -> bool:
        """Whether the block ends with an ADD (identity or projection shortcut)."""
        return self.residual or self.shortcut is not None


@dataclass(frozen=True)
class LayerPlan:
    input: tuple[int, int, int]  # (C, H, W)
    stem: ConvLayer
    blocks: tuple[BlockLayers, ...]
    feature_channels: int
    feature_hw: tuple[int, int]
    num_classes: int

    def convs(self) -> Iterator[ConvLayer]:
        """Every conv in execution order (a projection shortcut after its block's main path)."""
        yield self.stem
        for b in self.blocks:
            yield from b.convs
            if b.shortcut is not None:
                yield b.shortcut


def _conv(name: str, kind: str, cin: int, cout: int, k: int, s: int,
          hw: tuple[int, int], relu6: bool) -> ConvLayer:
    (t, b), (l, r) = same_pad(hw[0], k, s), same_pad(hw[1], k, s)
    return ConvLayer(name=name, kind=kind, in_channels=cin, out_channels=cout, kernel=k, stride=s,
                     in_hw=hw, out_hw=(same_out(hw[0], s), same_out(hw[1], s)),
                     pad=(l, r, t, b), relu6=relu6)


def _block(name: str, cin: int, cout: int, k: int, expand: int | None, s: int,
           hw: tuple[int, int], kind: str = DEFAULT_BLOCK) -> BlockLayers:
    """One block's convs; `expand` None is the first block (no expand conv)."""
    if kind == "fused":
        ex = _conv(f"{name}.expand", "conv", cin, cin * expand, k, s, hw, True)
        convs = [ex, _conv(f"{name}.project", "conv", ex.out_channels, cout, 1, 1, ex.out_hw, False)]
    elif kind == "res":
        c1 = _conv(f"{name}.conv1", "conv", cin, cout * expand, k, s, hw, True)
        convs = [c1, _conv(f"{name}.conv2", "conv", c1.out_channels, cout, k, 1, c1.out_hw, False)]
    elif kind == "ds":
        dw = _conv(f"{name}.dw", "dw", cin, cin, k, s, hw, True)
        convs = [dw, _conv(f"{name}.project", "conv", cin, cout, 1, 1, dw.out_hw, True)]
    else:
        convs = []
        mid = cin
        if expand is not None:
            mid = cin * expand
            convs.append(_conv(f"{name}.expand", "conv", cin, mid, 1, 1, hw, True))
        dw = _conv(f"{name}.dw", "dw", mid, mid, k, s, hw, True)
        convs += [dw, _conv(f"{name}.project", "conv", mid, cout, 1, 1, dw.out_hw, False)]
    residual = s == 1 and cin == cout
    shortcut = None
    if kind == "res" and not residual:
        shortcut = _conv(f"{name}.shortcut", "conv", cin, cout, 1, s, hw, False)
    return BlockLayers(name=name, convs=tuple(convs), residual=residual, kind=kind, shortcut=shortcut)


def layer_plan(arch: Mapping) -> LayerPlan:
    """Every layer's shapes and padding, derived once for torch, Keras and the cost graph."""
    a = validate_arch(arch)
    c, h, w = a["input"]
    stem = _conv("stem", "conv", c, a["stem"]["channels"], 3, a["stem"]["stride"], (h, w), True)
    blocks = []
    hw, cin = stem.out_hw, stem.out_channels
    if a["first_block"] is not None:
        cout = a["first_block"]["channels"]
        blocks.append(_block("first_block", cin, cout, FIRST_BLOCK_KERNEL, None, 1, hw))
        hw, cin = blocks[0].convs[-1].out_hw, cout
    for i, st in enumerate(a["stages"]):
        for j, b in enumerate(st["blocks"]):
            blk = _block(f"stages.{i}.blocks.{j}", cin, st["channels"], b["kernel"], b["expand"],
                         st["stride"] if j == 0 else 1, hw, block_type(st))
            blocks.append(blk)
            hw, cin = blk.convs[-1].out_hw, st["channels"]
    return LayerPlan(input=(c, h, w), stem=stem, blocks=tuple(blocks), feature_channels=cin,
                     feature_hw=hw, num_classes=a["num_classes"])


# ---------------------------------------------------------------- genomes


@dataclass(frozen=True)
class GenomeLayout:
    """Where each choice lives in a genome, and how many values each position takes."""

    n_stages: int
    max_depth: int
    n_depths: int
    n_kernels: int
    n_expands: int

    @property
    def length(self) -> int:
        return self.n_stages * (1 + 2 * self.max_depth)

    @property
    def depth_slice(self) -> slice:
        return slice(0, self.n_stages)

    @property
    def kernel_slice(self) -> slice:
        return slice(self.n_stages, self.n_stages * (1 + self.max_depth))

    @property
    def expand_slice(self) -> slice:
        return slice(self.n_stages * (1 + self.max_depth), self.length)

    @property
    def bounds(self) -> np.ndarray:
        """Number of choices per position: a mutation draws rng.integers(0, bounds)."""
        sd = self.n_stages * self.max_depth
        return np.array([self.n_depths] * self.n_stages + [self.n_kernels] * sd
                        + [self.n_expands] * sd, dtype=np.int64)


def genome_layout(spec: SpaceSpec) -> GenomeLayout:
    return GenomeLayout(n_stages=len(spec.stages), max_depth=spec.max_depth, n_depths=len(spec.depths),
                        n_kernels=len(spec.kernels), n_expands=len(spec.expand_ratios))


@dataclass(frozen=True)
class GenomeChoices:
    """Genomes unpacked to choice *values*, for vectorized cost models.

    depth: (n, S); kernel, expand: (n, S, D) with 0 in inactive slots; active: (n, S, D) bool.
    """

    depth: np.ndarray
    kernel: np.ndarray
    expand: np.ndarray
    active: np.ndarray


def _as_genomes(spec: SpaceSpec, genomes: np.ndarray) -> tuple[np.ndarray, GenomeLayout]:
    lay = genome_layout(spec)
    g = np.asarray(genomes)
    if g.ndim == 1:
        g = g[None]
    if g.ndim != 2 or g.shape[1] != lay.length:
        raise UserError(f"genome: expected length {lay.length} for this space, got shape {list(g.shape)}")
    if not np.issubdtype(g.dtype, np.integer):
        raise UserError(f"genome: expected integers, got dtype {g.dtype}")
    bad = np.argwhere((g < 0) | (g >= lay.bounds))
    if bad.size:
        r, c = (int(x) for x in bad[0])
        raise UserError(f"genome[{c}]: {int(g[r, c])} is out of range 0..{int(lay.bounds[c]) - 1}")
    return g, lay


def _active(spec: SpaceSpec, depth_idx: np.ndarray) -> np.ndarray:
    depth = np.asarray(spec.depths)[depth_idx]
    return np.arange(spec.max_depth)[None, None, :] < depth[:, :, None]


def canonicalize_genomes(spec: SpaceSpec, genomes: np.ndarray) -> np.ndarray:
    """Zero the inactive slots (copy), so one subnet has exactly one genome."""
    g, lay = _as_genomes(spec, genomes)
    g = g.astype(GENOME_DTYPE, copy=True)
    act = _active(spec, g[:, lay.depth_slice]).reshape(len(g), -1)
    g[:, lay.kernel_slice] *= act
    g[:, lay.expand_slice] *= act
    return g


def unpack_genomes(spec: SpaceSpec, genomes: np.ndarray) -> GenomeChoices:
    g, lay = _as_genomes(spec, genomes)
    shape = (len(g), lay.n_stages, lay.max_depth)
    act = _active(spec, g[:, lay.depth_slice])
    k = np.asarray(spec.kernels)[g[:, lay.kernel_slice].reshape(shape)] * act
    e = np.asarray(spec.expand_ratios)[g[:, lay.expand_slice].reshape(shape)] * act
    return GenomeChoices(depth=np.asarray(spec.depths)[g[:, lay.depth_slice]], kernel=k, expand=e,
                         active=act)


def sample_genomes(spec: SpaceSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """n canonical genomes, every choice uniform and independent; shape (n, layout.length)."""
    lay = genome_layout(spec)
    g = rng.integers(0, lay.bounds, size=(check_int(n, "n", 0), lay.length))
    return canonicalize_genomes(spec, g.astype(GENOME_DTYPE))


def encode(spec: SpaceSpec, arch: Mapping) -> np.ndarray:
    """The canonical genome of an arch of this space."""
    a = validate_arch(arch, spec)
    lay = genome_layout(spec)
    g = np.zeros(lay.length, dtype=GENOME_DTYPE)
    k0, e0 = lay.kernel_slice.start, lay.expand_slice.start
    for i, st in enumerate(a["stages"]):
        g[i] = spec.depths.index(len(st["blocks"]))
        for j, b in enumerate(st["blocks"]):
            g[k0 + i * lay.max_depth + j] = spec.kernels.index(b["kernel"])
            g[e0 + i * lay.max_depth + j] = spec.expand_ratios.index(b["expand"])
    return g


def decode(spec: SpaceSpec, genome: np.ndarray) -> Arch:
    """The arch a genome stands for; inactive slots are ignored."""
    g, lay = _as_genomes(spec, genome)
    if len(g) != 1:
        raise UserError(f"genome: decode takes one genome, got {len(g)}")
    c = unpack_genomes(spec, g)
    depths = [int(x) for x in c.depth[0]]
    return arch_from_choices(spec, depths, c.kernel[0].tolist(), c.expand[0].tolist())
