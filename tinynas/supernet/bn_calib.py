"""Batch-norm recalibration: exact statistics for one subnet before it is scored.

During SPOS training every BN layer sees a different path each step, so its
running statistics describe no subnet in particular. Scoring a subnet with them
ranks archs by noise (Once-for-All and SPOS both recalibrate). Here the running
mean and variance are recomputed over a fixed set of K training images
(default 500), *exactly*: the K images go through the model as one batch in
training mode with BN momentum 1, so every BN layer stores the mean and the
unbiased variance over all K images' activations, and every layer sees its
input normalised with the statistics of the whole set (as one large training
batch would). One pass with no hooks is 1.6x faster than accumulating pooled
per-batch moments (bench/bench_eval_cost.py), which was the largest share of a
search candidate's cost.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

DEFAULT_CALIB_IMAGES = 500


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def one_batch(batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """The calibration images as one tensor, in the layout of the first batch."""
    xs = list(batches)
    if len(xs) == 1:
        return xs[0]
    fmt = torch.channels_last if xs[0].dim() == 4 and xs[0].is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format
    return torch.cat(xs).contiguous(memory_format=fmt)


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor],
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """Set every BN's running stats to the exact moments over all images of `batches` (one pass).

    `model` is a plain module whose BN layers run as modules (a subnet from
    `Supernet.get_subnet`, not the supernet itself, whose BN is functional).
    `forward` defaults to `model`. Returns the number of images used. The
    model's train/eval mode and the layers' momentum are restored afterwards.
    """
    layers = _bn_layers(model)
    x = one_batch(batches)
    if len(x) < 2:
        raise ValueError("BN recalibration needs at least 2 images")
    saved = [m.momentum for m in layers]
    was_training = model.training
    try:
        for m in layers:
            m.momentum = 1.0  # running stats := this batch's mean and unbiased variance
        model.train()
        with torch.inference_mode():
            (forward or model)(x)
    finally:
        for m, mom in zip(layers, saved):
            m.momentum = mom
        model.train(was_training)
    for m in layers:
        m.num_batches_tracked.fill_(1)
    return len(x)


def calibration_indices(n_train: int, n_images: int = DEFAULT_CALIB_IMAGES, seed: int = 0) -> np.ndarray:
    """A fixed, seeded subset of training positions (sorted), the same for every candidate."""
    n = min(int(n_images), n_train)
    return np.sort(np.random.default_rng(seed).permutation(n_train)[:n])


def calibration_batches(bundle, resolution: tuple[int, int] | None = None,
                        n_images: int = DEFAULT_CALIB_IMAGES, batch_size: int = 250,
                        seed: int = 0, device: torch.device | str | None = None) -> list[torch.Tensor]:
    """K preprocessed, un-augmented training images in batches, ready to reuse per candidate."""
    idx = calibration_indices(len(bundle.train), n_images, seed)
    return [x for x, _ in bundle.iter_batches("train", balanced_batch_size(len(idx), batch_size), indices=idx,
                                               resolution=resolution, device=device)]


def balanced_batch_size(n: int, batch_size: int) -> int:
    """The largest size <= batch_size that splits n into equal-as-possible batches.

    Avoids a last batch of one image, on which training-mode BN has no variance.
    """
    batches = -(-n // max(1, batch_size))
    return max(1, -(-n // max(1, batches)))
