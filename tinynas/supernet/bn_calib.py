"""Batch-norm recalibration: exact statistics for one subnet before it is scored.

During SPOS training every BN layer sees a different path each step, so its
running statistics describe no subnet in particular. Scoring a subnet with them
ranks archs by noise (Once-for-All and SPOS both recalibrate). Here the running
mean and variance are reset and recomputed over a fixed set of K training images
(default 2,000), *exactly*: each batch's per-channel mean and variance are
combined with the pooled-moments formula (weighted by the number of values), so
the result is the mean and variance over all K images' activations, not a
moving average and not an unweighted mean of batches of unequal size.

As in training, each BN normalises a batch with that batch's own statistics
while the calibration pass runs, so the accumulated values are those the layer
sees in training mode.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

DEFAULT_CALIB_IMAGES = 2000


class _Moments:
    """Pooled per-channel mean and variance over batches, combined in float64."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None  # sum of squared deviations from the mean

    def add(self, x: torch.Tensor) -> None:
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        nb = x.numel() // x.shape[1]
        mean, m2 = mean.double(), var.double() * nb
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mean, m2
            return
        n = self.n + nb
        delta = mean - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * nb / n)
        self.n = n


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor],
                   forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """Reset every BN's running stats and set them to the exact moments over `batches`.

    `model` is a plain module whose BN layers run as modules (a subnet from
    `Supernet.get_subnet`, not the supernet itself, whose BN is functional).
    `forward` defaults to `model`. Returns the number of images used. The
    model's train/eval mode is restored afterwards.
    """
    layers = _bn_layers(model)
    moments = {id(m): _Moments() for m in layers}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: moments[id(mod)].add(inp[0])) for m in layers]
    was_training = model.training
    images = steps = 0
    try:
        model.train()
        with torch.no_grad():
            for x in batches:
                (forward or model)(x)
                images += len(x)
                steps += 1
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    for m in layers:
        mo = moments[id(m)]
        if mo.mean is None:
            continue
        m.running_mean.copy_(mo.mean.to(m.running_mean.dtype))
        m.running_var.copy_((mo.m2 / max(mo.n - 1, 1)).to(m.running_var.dtype))  # unbiased, as torch keeps it
        m.num_batches_tracked.fill_(steps)
    return images


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
