"""REINFORCE with an LSTM controller (NAS-RL), rewarded by inherited-weight accuracy (ENAS).

The controller emits the architecture one decision at a time, each conditioned
on all previous ones through the LSTM state: for every stage its depth, then a
kernel and an expand ratio for each block slot. Slots past the chosen depth are
*skipped*: they feed a fixed "skip" token to the next step and contribute no
log-probability or entropy, so an architecture has one probability whatever
values its unused slots would have had.

Each step samples `batch` architectures and rewards each with:

- its fitness (accuracy after BN recalibration with inherited supernet weights,
  or MnasNet's soft-latency ACC * (LAT/T)^w with --latency-weight w) when it
  satisfies SRAM, flash and the optional latency limit: new ones are evaluated
  and consume budget, ones seen before reuse their stored fitness for free;
- `infeasible_reward` (default 0.0, the worth of a network that cannot be
  deployed) when it violates a constraint. Infeasible samples are never
  evaluated and never consume budget, but they do train the controller away
  from the infeasible region.

The update is REINFORCE: loss = -mean((R - b) * log p) - entropy_weight *
mean(H), with b an exponential moving average of the batch-mean reward, then
Adam. The search ends when the budget is spent, or after `max_idle` steps in a
row without a new candidate (the controller has converged onto known ones).

The controller state (weights, optimizer, generator, baseline, trace and the
archive) is checkpointed after every step to `state_path`; `resume=True`
continues from it and reaches the same result as an uninterrupted run. The
trace records per step the actions and rewards, so the probability the
controller gave the final best architecture can be replayed step by step for
the plot without storing weight snapshots.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import write_bytes
from ..errors import UserError
from ..space.arch import genome_layout
from ..space.spec import SpaceSpec
from .budget import DUPLICATE, INFEASIBLE, NEW, Archive


@dataclass(frozen=True)
class RLConfig:
    batch: int = 8
    hidden: int = 64
    lr: float = 0.01
    entropy_weight: float = 0.01
    baseline_decay: float = 0.9
    infeasible_reward: float = 0.0
    max_idle: int = 50


@dataclass(frozen=True)
class Decisions:
    """The controller's decision order mapped onto genome positions."""

    genome_index: np.ndarray  # (P,) genome position of decision p
    sizes: np.ndarray  # (P,) number of choices
    depth_of: np.ndarray  # (P,) index of the decision holding this slot's stage depth, -1 for depths
    slot: np.ndarray  # (P,) block slot (0 for depth decisions)
    depth_values: np.ndarray  # depth choice index -> depth

    @classmethod
    def for_space(cls, spec: SpaceSpec) -> "Decisions":
        lay = genome_layout(spec)
        gi, depth_of, slot = [], [], []
        for s in range(lay.n_stages):
            dpos = len(gi)
            gi.append(s)
            depth_of.append(-1)
            slot.append(0)
            for j in range(lay.max_depth):
                for base in (lay.kernel_slice.start, lay.expand_slice.start):
                    gi.append(base + s * lay.max_depth + j)
                    depth_of.append(dpos)
                    slot.append(j)
        gi_a = np.array(gi)
        return cls(gi_a, lay.bounds[gi_a], np.array(depth_of), np.array(slot), np.array(spec.depths))

    def active(self, actions: np.ndarray, p: int) -> np.ndarray:
        """(B,) whether decision p is taken, given the actions so far."""
        if self.depth_of[p] < 0:
            return np.ones(len(actions), bool)
        return self.depth_values[actions[:, self.depth_of[p]]] > self.slot[p]

    def active_all(self, actions: np.ndarray) -> np.ndarray:
        """(B, P) which decisions are taken (depth decisions come before their slots)."""
        return np.stack([self.active(actions, p) for p in range(len(self.sizes))], axis=1)

    def to_genomes(self, actions: np.ndarray, active: np.ndarray) -> np.ndarray:
        g = np.zeros((len(actions), len(self.genome_index)), np.int8)
        g[:, self.genome_index] = np.where(active, actions, 0)
        return g

    def from_genomes(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        actions = np.asarray(genomes, np.int64)[:, self.genome_index]
        return actions, self.active_all(actions)


class Controller(nn.Module):
    """LSTM policy over a fixed sequence of categorical decisions (NAS-RL).

    Decision p reads the LSTM output after the token of decision p-1 (a start
    token for p = 0, the skip token after an untaken decision) and picks from
    its own slice of one shared output layer. Sampling steps the LSTM one
    decision at a time; scoring known decisions (teacher forcing) runs the
    whole sequence through the LSTM in one call, which keeps updates cheap.
    """

    def __init__(self, sizes: np.ndarray, hidden: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.sizes = [int(s) for s in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        total = int(sum(self.sizes))
        self.start, self.skip = total, total + 1
        self.embed = nn.Embedding(total + 2, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, total)
        cols = torch.arange(total)[None, :]
        off = torch.as_tensor(self.offsets)[:, None]
        self.register_buffer("valid", (cols >= off) & (cols < off + torch.as_tensor(self.sizes)[:, None]),
                             persistent=False)  # (P, total): decision p's slice
        gen = torch.Generator().manual_seed(seed)
        for p in self.parameters():  # uniform(-0.1, 0.1) as in ENAS, from our generator
            nn.init.uniform_(p, -0.1, 0.1, generator=gen)

    def _tokens(self, actions: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """The input token after each decision: its global choice id, or skip when not taken."""
        ids = actions + torch.as_tensor(self.offsets)[None, :]
        return torch.where(active, ids, torch.full_like(ids, self.skip))

    def sample(self, n: int, dec: Decisions, gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        actions = np.zeros((n, len(self.sizes)), np.int64)
        active = np.zeros((n, len(self.sizes)), bool)
        tok = torch.full((n,), self.start, dtype=torch.long)
        state = None
        with torch.no_grad():
            for p, (o, k) in enumerate(zip(self.offsets, self.sizes)):
                out, state = self.lstm(self.embed(tok)[:, None], state)
                probs = torch.softmax(self.head(out[:, 0])[:, o:o + k], dim=1)
                actions[:, p] = torch.multinomial(probs, 1, generator=gen)[:, 0].numpy()
                active[:, p] = dec.active(actions, p)
                tok = torch.full((n,), self.skip, dtype=torch.long)
                tok[torch.from_numpy(active[:, p].copy())] = int(o) + torch.from_numpy(actions[active[:, p], p])
        return actions, active

    def log_prob(self, actions: np.ndarray, active: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced log-probability and entropy, summed over the decisions taken."""
        a_t, m_t = torch.from_numpy(np.asarray(actions, np.int64)), torch.from_numpy(np.asarray(active, bool))
        toks = self._tokens(a_t, m_t)
        inp = torch.cat([torch.full((len(a_t), 1), self.start, dtype=torch.long), toks[:, :-1]], dim=1)
        out, _ = self.lstm(self.embed(inp))
        logits = self.head(out).masked_fill(~self.valid, float("-inf"))  # (B, P, total)
        lp = torch.log_softmax(logits, dim=2)
        chosen = lp.gather(2, (a_t + torch.as_tensor(self.offsets)[None, :])[:, :, None])[:, :, 0]
        ent = -(lp.exp() * lp.masked_fill(~self.valid, 0.0)).sum(2)  # no 0 * -inf in forward or backward
        m = m_t.float()
        return (chosen * m).sum(1), (ent * m).sum(1)


def reinforce_step(ctrl: Controller, opt: torch.optim.Optimizer, actions: np.ndarray, active: np.ndarray,
                   rewards: np.ndarray, baseline: float, entropy_weight: float) -> float:
    """One REINFORCE update; returns the mean entropy of the batch before the update."""
    logp, ent = ctrl.log_prob(actions, active)
    adv = torch.as_tensor(rewards - baseline, dtype=torch.float32)
    loss = -(adv * logp).mean() - entropy_weight * ent.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(ent.detach().mean())


class RLSearch:
    """The controller, its optimizer and bookkeeping; `run` drives the search."""

    def __init__(self, archive: Archive, seed: int = 0, config: RLConfig | None = None,
                 state_path: str | os.PathLike | None = None, save_state: bool = True) -> None:
        self.archive = archive
        self.save_state = save_state
        self.cfg = config or RLConfig()
        self.seed = seed
        self.state_path = state_path
        self.dec = Decisions.for_space(archive.problem.spec)
        self.ctrl = Controller(self.dec.sizes, self.cfg.hidden, seed)
        self.opt = torch.optim.Adam(self.ctrl.parameters(), lr=self.cfg.lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.step = 0
        self.idle = 0
        self.trace: list[dict[str, Any]] = []

    # ------------------------------------------------------------ one step

    def rewards(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reward per sample (NaN where the budget ran out) and its status."""
        b, status = self.archive.classify(genomes)
        r = np.full(len(b), np.nan)
        r[status == INFEASIBLE] = self.cfg.infeasible_reward
        new = np.flatnonzero(status == NEW)
        r[new] = self.archive.evaluate(b.take(new), self.step)
        keys = self.archive.keys(b.genomes, b.res)
        for i in np.flatnonzero(status == DUPLICATE):
            if self.archive.seen(keys[i]):
                r[i] = self.archive.fitness_of(keys[i])
        return r, status

    def one_step(self) -> None:
        self.step += 1
        actions, active = self.ctrl.sample(self.cfg.batch, self.dec, self.gen)
        r, status = self.rewards(self.dec.to_genomes(actions, active))
        ok = ~np.isnan(r)
        mean_r = float(r[ok].mean()) if ok.any() else float("nan")
        if self.baseline is None and ok.any():
            self.baseline = mean_r
        ent, used = float("nan"), self.baseline
        if ok.any():
            ent = reinforce_step(self.ctrl, self.opt, actions[ok], active[ok], r[ok], self.baseline,
                                 self.cfg.entropy_weight)
            self.baseline = self.cfg.baseline_decay * self.baseline + (1 - self.cfg.baseline_decay) * mean_r
        n_new = int((status == NEW).sum())
        self.idle = 0 if n_new else self.idle + 1
        self.trace.append({"step": self.step, "entropy": ent, "mean_reward": mean_r, "baseline": self.baseline,
                           "baseline_used": used, "new": n_new, "duplicates": int((status == DUPLICATE).sum()),
                           "infeasible": int((status == INFEASIBLE).sum()), "budget_used": self.archive.used,
                           "actions": actions[ok].tolist(), "rewards": r[ok].tolist()})

    def run(self) -> dict[str, Any]:
        while not self.archive.exhausted and self.idle < self.cfg.max_idle:
            self.one_step()
            if self.state_path is not None and self.save_state:
                self.save(self.state_path)
        return self.report()

    # ------------------------------------------------------------ checkpoint

    def _identity(self) -> dict[str, Any]:
        return {"config": asdict(self.cfg), "seed": self.seed, "budget": self.archive.budget,
                "genome_length": self.archive.problem.length, "latency_ms": self.archive.problem.latency_ms,
                "latency_weight": self.archive.problem.latency_weight}

    def save(self, path: str | os.PathLike) -> None:
        buf = io.BytesIO()
        torch.save({"identity": self._identity(), "controller": self.ctrl.state_dict(),
                    "optimizer": self.opt.state_dict(), "generator": self.gen.get_state(),
                    "baseline": self.baseline, "step": self.step, "idle": self.idle, "trace": self.trace,
                    "archive": self.archive.state()}, buf)
        write_bytes(path, buf.getvalue())

    def load(self, path: str | os.PathLike) -> None:
        try:
            st = torch.load(path, weights_only=True)
        except Exception as e:  # a truncated or foreign file
            raise UserError(f"{path}: cannot read the RL controller state ({e}); delete it to start over") from None
        if st.get("identity") != self._identity():
            raise UserError(f"{path}: written by a search with other settings {st.get('identity')}; "
                            "resume with the same --budget, --seed and limits, or delete it")
        self.ctrl.load_state_dict(st["controller"])
        self.opt.load_state_dict(st["optimizer"])
        self.gen.set_state(st["generator"])
        self.baseline, self.step, self.idle = st["baseline"], st["step"], st["idle"]
        self.trace = st["trace"]
        self.archive.restore(st["archive"])
        if self.archive.on_eval is not None and self.archive.used:
            self.archive.on_eval(self.archive.used, self.archive.best_fitness())

    # ------------------------------------------------------------ report

    def best_arch_curve(self, genome: np.ndarray) -> list[float]:
        """Mean per-decision probability of `genome` under the controller before each step (replayed)."""
        actions, active = self.dec.from_genomes(np.asarray(genome)[None])
        ctrl = Controller(self.dec.sizes, self.cfg.hidden, self.seed)
        opt = torch.optim.Adam(ctrl.parameters(), lr=self.cfg.lr)
        out = []
        for t in self.trace:
            with torch.no_grad():
                lp = float(ctrl.log_prob(actions, active)[0][0])
            out.append(math.exp(lp / active.sum()))
            if t["rewards"]:
                a = np.array(t["actions"], np.int64)
                reinforce_step(ctrl, opt, a, self.dec.active_all(a), np.array(t["rewards"]),
                               t["baseline_used"], self.cfg.entropy_weight)
        return out

    def report(self) -> dict[str, Any]:
        steps = [{k: v for k, v in t.items() if k not in ("actions", "rewards", "baseline_used")}
                 for t in self.trace]
        out = {"config": asdict(self.cfg), "steps": steps, "stopped": self._why_stopped()}
        ranked = self.archive.ranked()
        if ranked:
            out["best_arch_decision_prob"] = self.best_arch_curve(np.array(ranked[0]["genome"]))
        return out

    def _why_stopped(self) -> str:
        if self.archive.exhausted:
            return "budget spent"
        return f"no new candidate in {self.cfg.max_idle} steps (controller converged)"


def run_rl(archive: Archive, rng: np.random.Generator | None = None, seed: int = 0,
           state_path: str | os.PathLike | None = None, resume: bool = False, save_state: bool = True,
           **overrides: Any) -> dict[str, Any]:
    """Run (or resume) the RL search; `overrides` set RLConfig fields.

    Only one process should write the checkpoint (save_state; rank 0 under
    torchrun), but every rank resumes from it so all stay in lockstep.
    """
    s = RLSearch(archive, seed, RLConfig(**overrides), state_path, save_state)
    if resume and state_path is not None and os.path.exists(state_path):
        s.load(state_path)
    return s.run()
