"""An MLP accuracy predictor that screens candidates, as in PNASNet and Once-for-All.

The predictor is an MLP over the one-hot genome encoding (inactive slots
encode as zeros), trained on every candidate evaluated so far (targets
standardized, MSE, full-batch Adam). `Screen` plugs it into evolution and
aging: they breed `factor` times more feasible children than the generation can
afford, and only the predicted best are truly evaluated, so budget goes where
the predictor expects accuracy.

Quality is reported as Kendall's tau, always on candidates the predictor has
not been trained on: (a) "online": every screened candidate, predicted before
it was evaluated, pooled over the search (range-restricted, since only the
predicted best are evaluated, so it understates global quality), and (b)
"held-out": a final 80/20 split of the whole history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from ..space.spec import SpaceSpec
from .budget import Archive
from .genomes import onehot
from .problem import CostBatch


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b; NaN when fewer than 3 points or a constant side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


@dataclass
class MLPPredictor:
    """Accuracy (fitness) from architecture, for one space at its own resolution."""

    spec: SpaceSpec
    seed: int = 0
    hidden: int = 64
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-4
    net: nn.Module | None = field(default=None, init=False, repr=False)
    _mean: float = field(default=0.0, init=False)
    _std: float = field(default=1.0, init=False)

    def _build(self, dim: int) -> nn.Module:
        gen = torch.Generator().manual_seed(self.seed)
        net = nn.Sequential(nn.Linear(dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden),
                            nn.ReLU(), nn.Linear(self.hidden, 1))
        for m in net:
            if isinstance(m, nn.Linear):  # torch's default init, but from our generator
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                bound = 1 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)
        return net

    def fit(self, genomes: np.ndarray, y: np.ndarray) -> "MLPPredictor":
        x = torch.from_numpy(onehot(self.spec, genomes))
        y = np.asarray(y, np.float64)
        self._mean, self._std = float(y.mean()), float(y.std()) or 1.0
        t = torch.from_numpy(((y - self._mean) / self._std).astype(np.float32))[:, None]
        self.net = self._build(x.shape[1])
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = nn.functional.mse_loss(self.net(x), t)
            loss.backward()
            opt.step()
        return self

    def predict(self, genomes: np.ndarray) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("MLPPredictor.predict before fit")
        with torch.no_grad():
            out = self.net(torch.from_numpy(onehot(self.spec, genomes)))[:, 0].numpy()
        return out.astype(np.float64) * self._std + self._mean


def heldout_tau(spec: SpaceSpec, genomes: np.ndarray, y: np.ndarray, seed: int = 0,
                frac: float = 0.2, **kw: Any) -> float:
    """Kendall tau of a predictor trained on (1 - frac) of the data, on the rest."""
    n = len(y)
    if n < 10:
        return float("nan")
    idx = np.random.default_rng(seed).permutation(n)
    cut = max(3, int(round(n * frac)))
    test, train = idx[:cut], idx[cut:]
    p = MLPPredictor(spec, seed=seed, **kw).fit(genomes[train], y[train])
    return kendall_tau(p.predict(genomes[test]), y[test])


@dataclass
class Screen:
    """Predictor-assisted selection for evolution and aging (see module doc)."""

    spec: SpaceSpec
    seed: int = 0
    factor: int = 5
    min_train: int = 20
    refit_growth: float = 0.1
    predictor_kw: dict[str, Any] = field(default_factory=dict)
    model: MLPPredictor | None = field(default=None, init=False)
    trained_on: int = field(default=0, init=False)
    last: np.ndarray | None = field(default=None, init=False)
    online: list[dict[str, float]] = field(default_factory=list, init=False)
    _pairs: list[tuple[float, float]] = field(default_factory=list, init=False)

    def ready(self, archive: Archive) -> bool:
        return archive.used >= self.min_train

    def _refit(self, archive: Archive) -> None:
        """Retrain when the history grew by `refit_growth` (aging adds one child at a time)."""
        if self.model is not None and archive.used < self.trained_on * (1 + self.refit_growth) + 1:
            return
        g, _, y = archive.arrays()
        self.model = MLPPredictor(self.spec, seed=self.seed, **self.predictor_kw).fit(g, y)
        self.trained_on = archive.used

    def select(self, archive: Archive, batch: CostBatch, n: int) -> CostBatch:
        """The n candidates with the highest predicted fitness."""
        self._refit(archive)
        pred = self.model.predict(batch.genomes)
        order = np.argsort(-pred, kind="stable")[:n]
        self.last = pred[order]
        return batch.take(order)

    def observe(self, fitness: np.ndarray) -> None:
        """Record tau between the predictions of the last selection and the true values."""
        if self.last is None:
            return
        ok = ~np.isnan(fitness)
        self._pairs += list(zip(self.last[ok].tolist(), fitness[ok].tolist()))
        self.online.append({"n": int(ok.sum()), "trained_on": self.trained_on,
                            "kendall_tau": kendall_tau(self.last[ok], fitness[ok])})
        self.last = None

    def report(self, archive: Archive) -> dict[str, Any]:
        g, _, y = archive.arrays()
        pred, true = (np.array(v) for v in zip(*self._pairs)) if self._pairs else (np.zeros(0), np.zeros(0))
        return {"kind": "mlp", "factor": self.factor, "min_train": self.min_train,
                "kendall_tau_heldout": heldout_tau(self.spec, g, y, self.seed, **self.predictor_kw),
                "kendall_tau_online": kendall_tau(pred, true), "screened": len(self._pairs),
                "online": self.online}
