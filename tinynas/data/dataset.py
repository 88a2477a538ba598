"""A loaded dataset: a fixed train/val split, its preprocessing, and fast batches.

The split is a permutation from `np.random.default_rng(seed)`, so it is the same
on every run and machine for the same data and seed; searches and fine-tunes
must never score on images the supernet trained on.

Normalisation statistics come from the training split only and travel as a
plain dict (`DatasetBundle.preprocessing`), and `preprocess` applies exactly
that dict, so training, export and firmware cannot drift apart.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .augment import NO_AUGMENT, Augment, augment_batch, default_augment
from .cache import load_image_folder
from .sources import Decoded, as_size, load_digits, load_npz, resolve_spec

PREPROCESSING_VERSION = 1
VALUE_SCALE = 255.0
RESIZE = {"mode": "bilinear", "align_corners": False, "antialias": True}
MIN_STD = 1.0 / VALUE_SCALE  # a constant channel would otherwise divide by zero


@dataclass
class Split:
    """Images (uint8 NHWC, C-contiguous, in memory) and their int64 labels."""

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray  # positions in the source, for tracing a sample back to its file

    def __len__(self) -> int:
        return len(self.y)


# ------------------------------------------------------------------- split


def _val_count(n: int, val_fraction: float, val_count: int | None) -> int:
    if val_count is not None:
        if not 0 <= val_count < n:
            raise UserError(f"val_count={val_count} must be between 0 and {n - 1} for {n} samples")
        return int(val_count)
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction={val_fraction} must be in [0, 1), e.g. 0.1")
    return max(1, int(n * val_fraction + 0.5)) if val_fraction > 0 else 0  # half rounds up


def _stratified(y: np.ndarray, n_val: int, rng: np.random.Generator) -> np.ndarray:
    """Validation indices with each class's share of n_val (largest remainders)."""
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * n_val / len(y)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: n_val - take.sum()]:
        take[i] += 1
    picks = [rng.permutation(np.flatnonzero(y == c))[:t] for c, t in zip(classes, take)]
    return np.concatenate(picks)


def split_indices(
    y: np.ndarray,
    val_fraction: float = 0.1,
    seed: int = 0,
    val_count: int | None = None,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices, each sorted; val is the last n_val of a seeded permutation."""
    n = len(y)
    n_val = _val_count(n, val_fraction, val_count)
    rng = np.random.default_rng(seed)
    val = _stratified(y, n_val, rng) if stratify else rng.permutation(n)[n - n_val :]
    mask = np.zeros(n, bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


# ---------------------------------------------------------- preprocessing


def channel_stats(x: np.ndarray, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 NHWC pixels, in the 0..1 scale.

    Counted with a 256-bin histogram per channel, so the result is exact and
    independent of summation order, chunking or machine.
    """
    c = x.shape[-1]
    hist = np.zeros((c, 256), np.int64)
    for s in range(0, len(x), chunk):
        part = np.asarray(x[s : s + chunk])
        for k in range(c):
            hist[k] += np.bincount(part[..., k].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / VALUE_SCALE
    total = hist.sum(axis=1)
    mean = (hist * values).sum(axis=1) / total
    var = (hist * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    std = np.maximum(np.sqrt(var), MIN_STD)
    return [float(v) for v in mean], [float(v) for v in std]


def make_preprocessing(
    train_x: np.ndarray, class_names: list[str], color: str, augment: Augment
) -> dict:
    """The JSON-able description of how uint8 NHWC pixels become network input."""
    mean, std = channel_stats(train_x)
    _, h, w, c = train_x.shape
    return {
        "version": PREPROCESSING_VERSION,
        "input_layout": "NHWC",
        "input_dtype": "uint8",
        "layout": "NCHW",
        "dtype": "float32",
        "input_shape": [c, h, w],
        "color": color,
        "value_scale": VALUE_SCALE,
        "mean": mean,
        "std": std,
        "formula": "out[n, c, h, w] = (x[n, h, w, c] / value_scale - mean[c]) / std[c]",
        "resize": dict(RESIZE),
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "train_augment": augment.to_dict(),
    }


def _resolution(resolution: int | Sequence[int] | None) -> tuple[int, int] | None:
    if resolution is None:
        return None
    if isinstance(resolution, int):
        return resolution, resolution
    return int(resolution[0]), int(resolution[1])


def _normalize(x: torch.Tensor, prep: dict, resolution: tuple[int, int] | None) -> torch.Tensor:
    """uint8 NHWC tensor -> float32 NCHW, by the formula in `prep`, resized if asked.

    The layout change is done on uint8 before converting, and the arithmetic in
    place: 8x faster than converting first, and bitwise the same result.
    """
    c = x.shape[-1]
    mean = torch.tensor(prep["mean"], dtype=torch.float32, device=x.device).view(1, c, 1, 1)
    std = torch.tensor(prep["std"], dtype=torch.float32, device=x.device).view(1, c, 1, 1)
    out = x.permute(0, 3, 1, 2).contiguous().to(torch.float32)
    out.div_(prep["value_scale"]).sub_(mean).div_(std)
    if resolution is not None and tuple(out.shape[2:]) != resolution:
        out = F.interpolate(out, size=resolution, **prep["resize"])
    return out


def preprocess(
    x: np.ndarray | torch.Tensor, prep: dict, resolution: int | Sequence[int] | None = None
) -> np.ndarray | torch.Tensor:
    """Apply a bundle's `preprocessing` dict: uint8 NHWC (or one HWC image) -> float32 NCHW.

    Returns the same kind it was given (numpy array or torch tensor). Use this in
    export and evaluation so that inputs are prepared exactly as in training.
    """
    as_numpy = isinstance(x, np.ndarray)
    t = torch.from_numpy(np.ascontiguousarray(x)) if as_numpy else x
    single = t.ndim == 3
    t = t[None] if single else t
    c = prep["input_shape"][0]
    if t.ndim != 4 or t.shape[-1] != c or t.dtype != torch.uint8:
        raise ValueError(f"preprocess wants uint8 NHWC with C={c}, got {t.dtype} {tuple(t.shape)}")
    out = _normalize(t, prep, _resolution(resolution))
    out = out[0] if single else out
    return out.numpy() if as_numpy else out


# ------------------------------------------------------------------ bundle


class SplitDataset(torch.utils.data.Dataset):
    """Map-style view of one split, for DataLoader + DistributedSampler under torchrun.

    Items are (float32 CHW, int64 label), preprocessed and not augmented. For
    augmented training prefer `DatasetBundle.iter_batches(..., indices=...)` fed
    with the sampler's indices: it works on whole batches and is much faster.
    """

    def __init__(self, split: Split, prep: dict, resolution: int | Sequence[int] | None = None):
        self.x = torch.from_numpy(split.x)
        self.y = torch.from_numpy(split.y)
        self.prep, self.resolution = prep, _resolution(resolution)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _normalize(self.x[i : i + 1], self.prep, self.resolution)[0], self.y[i]


@dataclass
class DatasetBundle:
    """Everything training, search and export need to know about the data."""

    train: Split
    val: Split
    class_names: list[str]
    input_shape: tuple[int, int, int]  # (C, H, W)
    augment: Augment  # the per-source default, used by iter_batches(augment=True)
    source: dict = field(default_factory=dict)  # kind, path, cache and timing details
    _prep: dict = field(default_factory=dict, repr=False)
    holdout: Split | None = None  # carved from training data: what search and checkpoint choice score on

    @property
    def selection_split(self) -> str:
        """The split that choices (search, best checkpoint) are made on: 'holdout', else 'val'.

        Reported accuracy is measured on 'val'; choosing on it too would report
        a number tuned on the split it is reported on.
        """
        return "holdout" if self.holdout is not None and len(self.holdout) else "val"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def preprocessing(self) -> dict:
        """JSON-able preprocessing (a copy): mean/std, shapes, layout, scale, class names."""
        return copy.deepcopy(self._prep)

    def preprocess(
        self, x: np.ndarray | torch.Tensor, resolution: int | Sequence[int] | None = None
    ) -> np.ndarray | torch.Tensor:
        """`preprocess` with this bundle's preprocessing."""
        return preprocess(x, self._prep, resolution)

    def split(self, name: str) -> Split:
        if name == "holdout" and self.holdout is not None:
            return self.holdout
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train', 'val' or (when held out) 'holdout', not {name!r}")
        return self.train if name == "train" else self.val

    def as_torch_dataset(self, split: str, resolution: int | Sequence[int] | None = None) -> SplitDataset:
        return SplitDataset(self.split(split), self._prep, resolution)

    def iter_batches(
        self,
        split: str,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool | Augment = False,
        resolution: int | Sequence[int] | None = None,
        *,
        indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
        drop_last: bool = False,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float32 NCHW, int64) batches of a split.

        augment=True applies `self.augment` (the source's default), an Augment
        applies that one. `indices` restricts and orders the samples (e.g. a
        DistributedSampler's share under torchrun); shuffle permutes them again.
        With `device`, uint8 pixels are moved there before augmentation and
        normalisation, which is 4x less traffic than moving float batches.
        """
        aug = self.augment if augment is True else (augment or NO_AUGMENT)
        if (shuffle or aug.enabled) and generator is None:
            raise ValueError("shuffle and augment need a torch.Generator (pass generator=...)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        s = self.split(split)
        x, y = torch.from_numpy(s.x), torch.from_numpy(s.y)
        order = torch.arange(len(s)) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if shuffle:
            order = order[torch.randperm(len(order), generator=generator, device=generator.device).cpu()]
        res = _resolution(resolution)
        stop = len(order) - len(order) % batch_size if drop_last else len(order)
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            if device is not None:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if aug.enabled:
                xb = augment_batch(xb, aug, generator)
            yield _normalize(xb, self._prep, res), yb


# -------------------------------------------------------------------- load


def _decode_source(
    spec: str,
    image_size: int | tuple[int, int] | None,
    cache_dir: str | os.PathLike | None,
    cache: bool,
) -> Decoded:
    kind, path = resolve_spec(spec)
    size = as_size(image_size)
    if kind == "digits":
        return load_digits(size)
    if kind == "npz":
        return load_npz(path, size)
    return load_image_folder(path, size, cache_dir, use_cache=cache)


def _color(d: Decoded) -> str:
    return {1: "L", 3: "RGB", 4: "RGBA"}.get(d.x.shape[-1], f"C{d.x.shape[-1]}")


def _check_enough(d: Decoded, spec: str) -> None:
    if len(d.y) == 0:
        raise UserError(f"data {spec!r} holds no samples; give at least a few images per class")
    present = np.unique(d.y)
    if len(present) < 2:
        raise UserError(
            f"data {spec!r} has labels of only one class ({d.class_names[int(present[0])]!r}); "
            "a classifier needs at least 2"
        )


def _take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
    return Split(np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx]), idx)


def load_dataset(
    spec: str | os.PathLike,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | tuple[int, int] | None = None,
    val_count: int | None = None,
    stratify: bool = False,
    flip: bool | None = None,
    cache: bool = True,
    holdout_fraction: float = 0.0,
) -> DatasetBundle:
    """Load `--data` and split it into fixed train and validation sets.

    `spec` is one of:

    * ``digits``: scikit-learn's bundled 8x8 digits (1797 images, 10 classes),
      values 0..16 scaled to 0..255 and upscaled bilinearly to 32x32 (or
      `image_size`), 1 channel. The literal name wins: use ``./digits`` for a
      folder of that name.
    * ``file.npz`` with arrays ``x`` and ``y`` (and optionally ``classes``).
      x layouts: NHWC or NCHW with C in {1, 3, 4}, or NHW (C=1 is added); the
      last axis is C when its size is 1, 3 or 4, else axis 1 (so NCHW data with
      W in {1, 3, 4} must be stored NHWC). x values: uint8; float with max <= 1
      (read as 0..1, scaled by 255); float or int in 0..255. Normalised data
      (negative or > 255) is refused. y: integer class ids, or any ints or
      strings (renumbered in sorted order, the values become class names), or
      one-hot rows; with ``classes``, y must index into it.
    * an ImageFolder directory ``root/<class>/<image>`` or a ``.zip`` of one
      (a single wrapping folder such as ``train/<class>/<image>`` is skipped).
      Decoded with Pillow (EXIF rotation applied, alpha dropped); the dataset
      is 1-channel if every image is grey, else RGB; images of other sizes are
      stretched bilinearly to `image_size`, default the most common size. Up to
      1% unreadable files are skipped with a warning naming them; more fail.
      The decoded array is cached (see `tinynas.data.cache`) under `cache_dir`,
      default $TINYNAS_CACHE/data or ~/.cache/tinynas/data.

    The split holds out val_count samples if given (e.g. 5000 for CIFAR's fixed
    45,000/5,000), else round(val_fraction * N), as the last samples of
    ``np.random.default_rng(seed).permutation(N)``; stratify=True takes each
    class's share instead. Mean/std come from the training split only.

    Augmentation default (`bundle.augment`, used by iter_batches(augment=True)):
    random crop after zero-padding 1/8 of each side (4 px at 32) for every
    source; horizontal flip only for 3/4-channel images other than digits
    (flipping changes a digit, and grey data may be a spectrogram). `flip`
    overrides the flip default. cache=False skips the decoded-image cache.

    holdout_fraction > 0 moves that share of the training split (stratified,
    seeded) into `bundle.holdout`: nothing trains on it, and the search and
    the fine-tune's checkpoint choice score on it, so that validation accuracy
    stays an unbiased report.
    """
    spec = str(spec)
    d = _decode_source(spec, image_size, cache_dir, cache)
    _check_enough(d, spec)
    train_idx, val_idx = split_indices(d.y, val_fraction, seed, val_count, stratify)
    n_classes = len(d.class_names)
    if len(train_idx) < n_classes:
        raise UserError(
            f"data {spec!r} has {len(d.y)} samples; holding out {len(val_idx)} for validation leaves "
            f"{len(train_idx)} to train {n_classes} classes; add data or lower val_fraction"
        )
    train_idx, hold_idx = _hold_out(d.y, train_idx, holdout_fraction, seed)
    _, h, w, c = d.x.shape
    aug = default_augment(d.kind, c, h, w)
    if flip is not None:
        aug = Augment(aug.pad, flip)
    train, val = _take(d.x, d.y, train_idx), _take(d.x, d.y, val_idx)
    prep = make_preprocessing(train.x, d.class_names, _color(d), aug)
    source = {"kind": d.kind, "spec": spec, "seed": seed, "n_train": len(train), "n_val": len(val),
              "n_holdout": len(hold_idx), **d.info}
    holdout = _take(d.x, d.y, hold_idx) if len(hold_idx) else None
    return DatasetBundle(train, val, list(d.class_names), (c, h, w), aug, source, prep, holdout)


def _hold_out(y: np.ndarray, train_idx: np.ndarray, fraction: float,
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) source positions: a stratified `fraction` of the training split held out."""
    if fraction == 0:
        return train_idx, train_idx[:0]
    if not 0.0 < fraction < 0.5:
        raise UserError(f"holdout_fraction={fraction} must be in [0, 0.5), e.g. 0.1")
    keep, hold = split_indices(y[train_idx], fraction, seed, stratify=True)
    return train_idx[keep], train_idx[hold]
