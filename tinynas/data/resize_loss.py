"""How much of an image set a smaller input resolution throws away.

The space stage may train below the input size (fewer MACs, faster
training), which costs nothing for data that was upscaled on the way in
(the embedded digits are 8x8 shown at 32x32) and costs real accuracy for
data that is native at its size (CIFAR-10 at 16x16 loses a tenth of its
pixel variance). Measuring it beats guessing from the size alone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE = 256  # images measured; the figure is a mean over them


def resize_loss(x_nhwc: np.ndarray, sides: Sequence[int]) -> dict[int, float]:
    """For each first side r: mean squared error of down-to-r-then-back-up over the per-image variance.

    0 means nothing is lost; the aspect ratio is kept (W scales like H).
    Uses the first SAMPLE images (splits are shuffled, so they are a fair sample).
    """
    x = torch.from_numpy(np.asarray(x_nhwc[:SAMPLE])).float().permute(0, 3, 1, 2)
    h, w = x.shape[2:]
    var = ((x - x.mean(dim=(2, 3), keepdim=True)) ** 2).mean().clamp_min(1e-12)
    out = {}
    for r in sides:
        size = (int(r), max(1, round(r * w / h)))
        down = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        up = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)
        out[int(r)] = round(float(((up - x) ** 2).mean() / var), 5)
    return out
