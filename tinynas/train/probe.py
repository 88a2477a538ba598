"""How fast this machine trains a space's subnets: seconds per image as a function of MACs.

A time budget only buys accuracy if the network can be trained in it. Before
the space stage picks a (width, resolution), it times a few supernet training
steps (forward, backward, no update) of the largest and the smallest subnet
of one space, fits seconds per image = a + b * MACs through the two points,
and turns the supernet's seconds into the most MACs that still allow
`min_epochs` passes over the training set (`max_trainable_macs`).

One probe is a few seconds, and a neighbour's burst in those seconds once
moved the cap five-fold (88 to 492 ms per GMAC per image on this machine).
So the two subnets are timed in alternation, `PROBE_ROUNDS` times, and each
point is the median of its rounds: a burst then lands on both points alike
instead of bending the slope. The search later rescales this model by the
supernet's own measured speed (`TrainCost.rescaled`), minutes of evidence
instead of seconds.

Known bias, kept on purpose for now: the space stage probes one supernet, at
the middle of the width grid, and a supernet's step cost grows with its whole
size (every sliced weight gets a full-size gradient), not only with the sampled
subnet's MACs. So it reads narrow spaces 25-35% slower than their supernets
then train, and picks narrower spaces. Probing each width's own supernet
removed the bias (within 1% of the supernet's real speed at width 0.5), but on
CIFAR-10 at 20 min it chose width 0.5: int8 0.736 at 24.3 M MACs and 249 ms,
against 0.740 at 10.6 M MACs and 118 ms with this probe's width 0.25, on the
same machine back to back. Same accuracy at twice the latency is worse, so the
unbiased probe waits for a space choice that weighs latency, not MACs alone.
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

PROBE_STEPS = 2   # timed steps per subnet and round, after one untimed warm-up step
PROBE_ROUNDS = 3  # alternating rounds of (smallest, largest)
LARGE_BATCH_MIN = 8


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

    def rescaled(self, macs: float, measured_images_per_s: float) -> "TrainCost":
        """This model scaled so that `macs` costs what training really took per image.

        The supernet stage measures its throughput over minutes, at the
        space's mean MACs; the ratio to the probe's prediction there carries
        over to every subnet (load and cache effects scale the whole line).
        """
        factor = (1.0 / max(measured_images_per_s, 1e-9)) * self.images_per_s(macs)
        return TrainCost(self.intercept_s * factor, self.per_mac_s * factor, self.points, self.probe_s)

    @classmethod
    def from_json(cls, d: dict) -> "TrainCost":
        return cls(float(d["intercept_s"]), float(d["per_mac_s"]),
                   tuple((int(m), float(s)) for m, s in d.get("points", [])), float(d.get("probe_s", 0.0)))

    def to_json(self) -> dict:
        return {"intercept_s": self.intercept_s, "per_mac_s": self.per_mac_s,
                "points": [list(p) for p in self.points], "probe_s": round(self.probe_s, 2)}


def _step_seconds(sn: Supernet, arch: dict, batch: tuple[torch.Tensor, torch.Tensor], steps: int) -> list[float]:
    x, y = batch
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        F.cross_entropy(sn(x, arch), y).backward()
        sn.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times


def _batch(arch: dict, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch_size, *arch["input"], generator=gen).contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, arch["num_classes"], (batch_size,), generator=gen)


def probe_train_cost(spec: SpaceSpec, batch_size: int, seed: int = 0) -> TrainCost:
    """Time the largest and smallest subnets of `spec` (see module doc)."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sn = Supernet(spec).to(memory_format=torch.channels_last).train()
    archs = (smallest_arch(spec), largest_arch(spec))
    # The largest subnet is timed on a quarter batch: its steps are long enough to time
    # well, and at full batch it alone took 15 of a 2 min budget's 17 probe seconds (digits).
    batches = [_batch(archs[0], batch_size, gen), _batch(archs[1], max(LARGE_BATCH_MIN, batch_size // 4), gen)]
    times: list[list[float]] = [[], []]
    for a, b in zip(archs, batches):
        _step_seconds(sn, a, b, 1)  # warm-up: allocator and kernel selection
    for _ in range(PROBE_ROUNDS):
        for i, (a, b) in enumerate(zip(archs, batches)):
            times[i] += _step_seconds(sn, a, b, PROBE_STEPS)
    points = [(build_graph(a).total_macs, sorted(t)[len(t) // 2] / len(b[1])) for a, t, b in zip(archs, times, batches)]
    (m0, s0), (m1, s1) = points
    slope = max((s1 - s0) / max(m1 - m0, 1), 1e-18)
    return TrainCost(intercept_s=max(s0 - slope * m0, 0.0), per_mac_s=slope, points=tuple(points),
                     probe_s=time.perf_counter() - t0)
