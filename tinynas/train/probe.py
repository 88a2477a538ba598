"""How fast this machine trains a space's subnets: seconds per image as a function of MACs.

A time budget only buys accuracy if the network can be trained in it. Before
the space stage picks a (width, resolution), it times a few supernet training
steps (forward, backward, no update) of the largest and the smallest subnet
of one space, fits seconds per image = a + b * MACs through the two points,
and turns the supernet's seconds into the most MACs that still allow
`min_epochs` passes over the training set (`max_trainable_macs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..space.arch import largest_arch, smallest_arch
from ..space.graph_builder import build_graph
from ..space.spec import SpaceSpec
from ..supernet import Supernet

PROBE_STEPS = 3   # timed steps per subnet, after one untimed warm-up step


@dataclass(frozen=True)
class TrainCost:
    """Seconds per training image = intercept_s + per_mac_s * MACs (forward MACs of the subnet)."""

    intercept_s: float
    per_mac_s: float
    points: tuple[tuple[int, float], ...]  # (MACs, measured seconds per image)
    probe_s: float  # what the probe itself took

    def images_per_s(self, macs: float) -> float:
        return 1.0 / max(self.intercept_s + self.per_mac_s * macs, 1e-9)

    def max_trainable_macs(self, seconds: float, n_images: int, min_epochs: float) -> float:
        """Largest MACs whose subnets see `min_epochs` epochs of `n_images` in `seconds`."""
        per_image = seconds / max(min_epochs * n_images, 1)
        return max(0.0, (per_image - self.intercept_s) / max(self.per_mac_s, 1e-18))

    def to_json(self) -> dict:
        return {"intercept_s": self.intercept_s, "per_mac_s": self.per_mac_s,
                "points": [list(p) for p in self.points], "probe_s": round(self.probe_s, 2)}


def _seconds_per_image(sn: Supernet, arch: dict, batch_size: int, gen: torch.Generator) -> float:
    x = torch.randn(batch_size, *arch["input"], generator=gen).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, arch["num_classes"], (batch_size,), generator=gen)
    times = []
    for i in range(PROBE_STEPS + 1):
        t0 = time.perf_counter()
        F.cross_entropy(sn(x, arch), y).backward()
        sn.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] / batch_size  # median: robust to a neighbour's burst


def probe_train_cost(spec: SpaceSpec, batch_size: int, seed: int = 0) -> TrainCost:
    """Time the largest and smallest subnets of `spec` (see module doc)."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sn = Supernet(spec).to(memory_format=torch.channels_last).train()
    points = []
    for arch in (smallest_arch(spec), largest_arch(spec)):
        points.append((build_graph(arch).total_macs, _seconds_per_image(sn, arch, batch_size, gen)))
    (m0, s0), (m1, s1) = points
    slope = max((s1 - s0) / max(m1 - m0, 1), 1e-18)
    return TrainCost(intercept_s=max(s0 - slope * m0, 0.0), per_mac_s=slope, points=tuple(points),
                     probe_s=time.perf_counter() - t0)
