"""SGD for weight sharing: momentum and weight decay only where a step's path reached.

A sliced supernet weight gets a gradient of zero outside its slice, and torch's
SGD would still move those elements: momentum keeps pushing them and weight
decay keeps shrinking them, so weights of paths that were not sampled drift.
`MaskedSGD` updates only the elements the step's path(s) used (the slices from
`Supernet.path_indices`), keeping one momentum buffer per element; everything
else, its momentum included, is left bit-for-bit as it was. With `touched=None`
it is plain SGD over every parameter that has a gradient (fine-tuning).

No weight decay on BN parameters or biases (every 0-/1-D tensor), the usual
recipe for small nets: decaying BN's scale fights the normalisation.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import torch

Index = tuple[slice, ...]

# The one weight-decay default: the supernet, the fine-tune, the baselines and every library call that
# does not say otherwise (`tinynas.pipeline.config.DEFAULTS` reads it; the measurements behind 1e-3 are
# in the comment there). Before, the training functions defaulted to 5e-5 while the run used 1e-3.
WEIGHT_DECAY = 1e-3


def cosine_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, end_lr: float = 0.0) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to `end_lr` at total_steps.

    Warm-up keeps the first steps of a freshly initialised net (and of a supernet
    whose path changes every step) from overshooting. The decay ends at zero
    unless a later phase goes on from where this one stops (see cosine_between).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    return cosine_between(min(max(step - warmup_steps, 0), span) / span, base_lr, end_lr)


def cosine_between(progress: float, base_lr: float, end_lr: float = 0.0) -> float:
    """The cosine from `base_lr` (progress 0) to `end_lr` (progress 1)."""
    return end_lr + (base_lr - end_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _unique(indices: list[Index]) -> list[Index]:
    """Distinct slices in order (slices are unhashable before Python 3.12)."""
    out: list[Index] = []
    for i in indices:
        if i not in out:
            out.append(i)
    return out


def decays(name: str, p: torch.Tensor) -> bool:
    """Weight decay applies to conv and linear weights only, not to BN parameters or biases."""
    return p.ndim > 1


class MaskedSGD:
    """SGD with momentum over named parameters, updating only touched elements."""

    def __init__(self, named_params: Iterable[tuple[str, torch.nn.Parameter]], momentum: float = 0.9,
                 weight_decay: float = WEIGHT_DECAY, nesterov: bool = False) -> None:
        self.params = dict(named_params)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov
        self.buffers = {n: torch.zeros_like(p) for n, p in self.params.items()}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float, touched: Sequence[Mapping[str, Index]] | None = None) -> None:
        """Apply one update; `touched` lists each path's name -> slice (None: every param with a grad)."""
        for name, p in self.params.items():
            if p.grad is None:
                continue
            if touched is None:
                self._update(name, p, (), lr)
                continue
            idx = _unique([t[name] for t in touched if name in t])
            if len(idx) == 1:
                self._update(name, p, idx[0], lr)
            elif idx:
                self._update_masked(name, p, idx, lr)

    def _grad(self, name: str, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        wd = self.weight_decay if decays(name, p) else 0.0
        return g.add(p, alpha=wd) if wd else g

    def _direction(self, g: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
        return g.add(buf, alpha=self.momentum) if self.nesterov else buf

    def _update(self, name: str, p: torch.Tensor, idx: Index, lr: float) -> None:
        """In place on the views p[idx], buf[idx]: elements outside the slice are never written."""
        pv, buf = p[idx], self.buffers[name][idx]
        g = self._grad(name, pv, p.grad[idx])
        buf.mul_(self.momentum).add_(g)
        pv.add_(self._direction(g, buf), alpha=-lr)

    def _update_masked(self, name: str, p: torch.Tensor, idx: list[Index], lr: float) -> None:
        """Several paths in one step: the union of their slices is not a box, so use a mask."""
        mask = torch.zeros_like(p, dtype=torch.bool)
        for i in idx:
            mask[i] = True
        buf = self.buffers[name]
        g = self._grad(name, p, p.grad)
        buf.copy_(torch.where(mask, buf * self.momentum + g, buf))
        p.copy_(torch.where(mask, p - lr * self._direction(g, buf), p))

    def state_dict(self) -> dict:
        return {"momentum": self.momentum, "weight_decay": self.weight_decay, "nesterov": self.nesterov,
                "buffers": {n: b.detach().clone() for n, b in self.buffers.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        bufs = state["buffers"]
        missing = sorted(set(self.buffers) - set(bufs))
        if missing:
            raise KeyError(f"optimizer state lacks momentum for {missing[0]}")
        for n, b in self.buffers.items():
            b.copy_(bufs[n])
