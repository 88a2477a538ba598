"""Batch augmentation on uint8 NHWC tensors: random crop with zero padding, optional flip.

Both are done as one gather of pixels from a zero-padded batch, so a batch costs
a few tensor ops whatever its size, on CPU or GPU (about 1 ms for 256 CIFAR
images on one CPU thread). Random numbers always come from the
caller's torch.Generator and are drawn on that generator's device, then moved,
so a seeded generator gives the same crops wherever the batch lives.

Which augmentations make sense depends on the data (`default_augment`): the
crop (a shift of up to 1/8 of the image) suits images and spectrograms alike,
but a horizontal flip turns a '2' into a mirror glyph and reverses time in a
spectrogram, so it is on only for colour images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """What to do to a training batch. pad=(0, 0) and flip=False is no augmentation."""

    pad: tuple[int, int] = (0, 0)  # zero padding (rows, cols) before a random crop back to size
    flip: bool = False  # random horizontal flip with probability 1/2

    @property
    def enabled(self) -> bool:
        return self.flip or any(self.pad)

    def to_dict(self) -> dict:
        return {"pad": list(self.pad), "flip": self.flip}


NO_AUGMENT = Augment()


def crop_pad(height: int, width: int) -> tuple[int, int]:
    """CIFAR's padding of 4 on 32 pixels, scaled to the image: 1/8 of each side."""
    return round(height / 8), round(width / 8)


def default_augment(kind: str, channels: int, height: int, width: int) -> Augment:
    """Crop for everything; flip only for colour images that are not the digits.

    Grey (1-channel) data may be a spectrogram or sensor map where left/right
    carries meaning, and the digits change identity when mirrored.
    """
    flip = channels in (3, 4) and kind != "digits"
    return Augment(crop_pad(height, width), flip)


def augment_batch(x: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """Randomly crop (after zero padding) and maybe flip each image of a uint8 NHWC batch."""
    if not aug.enabled or x.shape[0] == 0:
        return x
    n, h, w, _ = x.shape
    ph, pw = aug.pad
    gdev = generator.device
    dy = torch.randint(0, 2 * ph + 1, (n,), generator=generator, device=gdev).to(x.device)
    dx = torch.randint(0, 2 * pw + 1, (n,), generator=generator, device=gdev).to(x.device)
    flip = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device) & aug.flip
    hp, wp = h + 2 * ph, w + 2 * pw
    padded = F.pad(x, (0, 0, pw, pw, ph, ph)).reshape(n * hp * wp, -1)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h  # (n, h) in padded coordinates
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # (n, w)
    base = torch.arange(n, device=x.device)[:, None, None] * (hp * wp)
    pixels = base + rows[:, :, None] * wp + cols[:, None, :]  # (n, h, w) flat pixel index
    # One index_select of whole C-pixel rows: 4x faster on CPU than 3-D advanced indexing.
    return padded.index_select(0, pixels.reshape(-1)).reshape(n, h, w, -1)
