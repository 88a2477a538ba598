"""The one training loop that supernet training and fine-tuning share.

Per epoch: a `DistributedSampler` (also with one process) shuffles the training
split and gives this rank its equal share; batches come from
`DatasetBundle.iter_batches` with augmentation. Per step: the caller's
`step_fn` runs forward and backward (one or more supernet paths, or one plain
model) and reports what it touched; gradients are averaged over ranks together
with the loss, a non-finite loss stops the run on every rank at once, and the
masked SGD applies a cosine-scheduled step.

All randomness is derived from (seed, epoch): the sampler's shuffle, the
augmentation generator (per rank) and the path generator (the same on every
rank, so all ranks train the same path each step). Resuming at an epoch
boundary therefore replays exactly what an uninterrupted run would do.

Batches and 4-D weights are kept channels-last: PyTorch's CPU depthwise
convolutions (most of an MBConv net's time) run 2-3x faster in that layout.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from ..errors import UserError
from ..timebudget import Deadline, TimePlan, plan_steps
from ..distributed import DistContext, average_buffers, average_gradients
from .optim import WEIGHT_DECAY, Index, MaskedSGD, cosine_between, cosine_lr

CURVE_POINTS_PER_EPOCH = 20  # loss samples kept per epoch for the training curve


@dataclass(frozen=True)
class LoopConfig:
    """Recipe settings that a resumed run must share with the run it continues (except epochs)."""

    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = WEIGHT_DECAY
    label_smoothing: float = 0.1
    seed: int = 0
    steps_per_epoch: int | None = None  # cap per epoch, for quick runs and benchmarks
    augment: bool = True
    warmup_epochs: float = 0.0  # linear warm-up before the cosine decay
    nesterov: bool = False
    total_steps: int | None = None  # planned from a time budget: the schedule ends here, not at epochs x steps
    end_lr: float = 0.0  # where the cosine ends; > 0 when a later phase (the fine-tune) continues the decay

    def to_dict(self) -> dict:
        return asdict(self)


class StepResult(NamedTuple):
    """What one step's forward/backward produced (grads are left on the parameters)."""

    loss: torch.Tensor  # scalar, detached: the mean loss of the step
    correct: torch.Tensor  # scalar: correctly classified images (mean over paths)
    touched: Sequence[Mapping[str, Index]] | None  # per path name -> slice; None = all params


StepFn = Callable[[torch.Tensor, torch.Tensor, np.random.Generator], StepResult]


class NonFiniteLoss(UserError):
    """The loss became NaN or inf; the run stops and the last checkpoint stays as it was."""


def check_step_count(total_steps: int | None, time_budget_s: float | None) -> None:
    """A step count and a time budget both fix where the schedule ends: one or the other."""
    if total_steps is not None and (total_steps < 0 or time_budget_s is not None):
        raise UserError(f"a step count must be >= 0 and cannot be combined with a time budget, got {total_steps}")


def seed_int(*parts: int) -> int:
    """A 63-bit seed derived from integers, for torch.Generator.manual_seed."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def path_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator that picks paths and resolutions: identical on every rank."""
    return np.random.default_rng([seed, epoch, 2])


def smoothed_ce(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)


def soft_ce(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to a teacher's probabilities (knowledge distillation at temperature 1)."""
    return torch.sum(-soft_targets * F.log_softmax(logits, dim=1), dim=1).mean()


@dataclass(frozen=True)
class EpochPlan:
    """How many images each rank takes per step and how many steps an epoch has."""

    batch_size: int
    steps: int

    @classmethod
    def make(cls, n_train: int, cfg: LoopConfig, world: int) -> "EpochPlan":
        share = n_train // world
        if share < 2:
            raise UserError(f"{n_train} training images cannot be shared by {world} processes; add data")
        bs = min(cfg.batch_size, share)
        steps = share // bs
        if cfg.steps_per_epoch is not None:
            steps = min(steps, cfg.steps_per_epoch)
        return cls(bs, steps)


class Trainer:
    """Runs epochs of `step_fn` with `opt`, calling `on_epoch_end(history)` after each one."""

    def __init__(self, model: torch.nn.Module, opt: MaskedSGD, bundle, cfg: LoopConfig, ctx: DistContext,
                 step_fn: StepFn, progress: bool = True, desc: str = "train") -> None:
        self.model, self.opt, self.bundle, self.cfg, self.ctx = model, opt, bundle, cfg, ctx
        self.step_fn, self.progress, self.desc = step_fn, progress, desc
        self.plan = EpochPlan.make(len(bundle.train), cfg, ctx.world_size)
        self.params = list(opt.params.values())
        self._anchor: tuple[int, float] | None = None  # (step, cosine progress) where `replan` moved the end

    @property
    def total_steps(self) -> int:
        """The step the cosine schedule ends at: planned from a time budget, else epochs x steps."""
        if self.cfg.total_steps is not None:
            return self.cfg.total_steps
        return self.cfg.epochs * self.plan.steps

    @property
    def epochs(self) -> int:
        """Epochs the loop runs; the last one is partial when a time plan ends mid-epoch."""
        return -(-self.total_steps // self.plan.steps)

    def steps_in(self, epoch: int) -> int:
        return max(0, min(self.plan.steps, self.total_steps - epoch * self.plan.steps))

    def measure_step_s(self, steps: int = 4, warmup: int = 1) -> float:
        """Seconds per step, timed on `steps` forward/backward passes after `warmup` untimed ones.

        Nothing is applied (gradients are dropped), so the weights and the
        optimizer are unchanged and the real schedule starts at step 0; the
        seconds are spent all the same, so callers take them from the budget.
        Under torchrun the slowest rank's figure is used, so every rank plans
        the same number of steps.
        """
        self.model.train()
        rng = np.random.default_rng([self.cfg.seed, 0, 3])
        batches = self._batches(0)
        t0 = time.perf_counter()
        for i, (x, y) in zip(range(warmup + steps), batches):
            if i == warmup:
                t0 = time.perf_counter()
            res = self.step_fn(x.contiguous(memory_format=torch.channels_last), y, rng)
            average_gradients(self.params, torch.stack([res.loss.detach().float().cpu()]))
            self.opt.zero_grad()
        return agree_max((time.perf_counter() - t0) / max(steps, 1))

    @property
    def warmup_steps(self) -> int:
        return min(int(round(self.cfg.warmup_epochs * self.plan.steps)), self.total_steps // 2)

    def lr_at(self, global_step: int) -> float:
        if self._anchor is not None and global_step >= self._anchor[0]:
            return cosine_between(self._progress(global_step), self.cfg.lr, self.cfg.end_lr)
        return cosine_lr(global_step, self.total_steps, self.cfg.lr, self.warmup_steps, self.cfg.end_lr)

    def _progress(self, step: int) -> float:
        """Where `step` is on the cosine (0 = end of warm-up, 1 = the schedule's end)."""
        if self._anchor is not None and step >= self._anchor[0]:
            s0, p0 = self._anchor
            return min(1.0, p0 + (1.0 - p0) * (step - s0) / max(self.total_steps - s0, 1))
        span = max(self.total_steps - self.warmup_steps, 1)
        return min(max(step - self.warmup_steps, 0), span) / span

    def replan(self, done: int, total: int) -> bool:
        """Move the schedule's end to `total` steps after `done` were trained; False if not moved.

        A time budget plans its steps from a few probe steps; on a shared
        machine the throughput then drifts, and a fixed plan either ends early
        (time left unused) or meets the hard deadline before the learning rate
        has decayed. Re-planned at an epoch's end, the cosine goes on from
        where it is (no jump in the learning rate) and reaches 0 at the new end.
        Warm-up is never re-planned.
        """
        total = max(int(total), done)
        if done < self.warmup_steps or total == self.total_steps:
            return False
        self._anchor = (done, self._progress(done))
        self.set_total_steps(total)
        return True

    def set_total_steps(self, total: int) -> None:
        """End the schedule at `total` steps (a time plan's count); cfg.epochs follows, for the records."""
        self.cfg = dataclasses.replace(self.cfg, total_steps=int(total),
                                       epochs=max(1, -(-int(total) // self.plan.steps)))

    def images_per_s(self, step_s: float) -> float:
        """Images all ranks train per second at `step_s` seconds per step."""
        return self.plan.batch_size * self.ctx.world_size / max(step_s, 1e-9)

    def _batches(self, epoch: int):
        sampler = DistributedSampler(range(len(self.bundle.train)), num_replicas=self.ctx.world_size,
                                     rank=self.ctx.rank, shuffle=True, seed=self.cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(seed_int(self.cfg.seed, epoch, self.ctx.rank, 1))
        return self.bundle.iter_batches("train", self.plan.batch_size, generator=gen, augment=self.cfg.augment,
                                        indices=np.fromiter(iter(sampler), np.int64), drop_last=True,
                                        device=self.ctx.device)

    def _step(self, epoch: int, step: int, x: torch.Tensor, y: torch.Tensor,
              rng: np.random.Generator, deadline: Deadline | None = None) -> tuple[float, float, bool]:
        """One step; the third value says the deadline passed (on any rank: the flag rides the all-reduce)."""
        res = self.step_fn(x.contiguous(memory_format=torch.channels_last), y, rng)
        late = float(deadline is not None and deadline.expired())
        stats = average_gradients(self.params, torch.stack([res.loss.detach().float().cpu(),
                                                            res.correct.detach().float().cpu(),
                                                            torch.tensor(late)]))
        loss, correct, stop = float(stats[0]), float(stats[1]), float(stats[2]) > 0
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"loss became {loss} at epoch {epoch + 1}, step {step + 1}; stopped without "
                                "applying that step")
        self.opt.step(self.lr_at(epoch * self.plan.steps + step), res.touched)
        self.opt.zero_grad()
        return loss, correct, stop

    def run_epoch(self, epoch: int, deadline: Deadline | None = None) -> dict:
        """One epoch (or what of it fits before `deadline`); returns its history record.

        The record has loss, acc, images_per_s, wall_s, steps and curve, and
        `stopped_at_deadline` when the hard deadline cut the epoch short.
        """
        from tqdm import tqdm

        self.model.train()
        rng = path_rng(self.cfg.seed, epoch)
        n_steps = self.steps_in(epoch)
        bar = tqdm(total=n_steps, desc=f"{self.desc} epoch {epoch + 1}/{self.epochs}",
                   file=sys.stderr, disable=not (self.progress and self.ctx.is_main), leave=False,
                   dynamic_ncols=True)
        every = max(1, n_steps // CURVE_POINTS_PER_EPOCH)
        loss_sum = correct_sum = 0.0
        curve, chunk = [], []
        done, stopped = 0, False
        t0 = time.perf_counter()
        for step, (x, y) in zip(range(n_steps), self._batches(epoch)):
            loss, correct, stopped = self._step(epoch, step, x, y, rng, deadline)
            done = step + 1
            loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
            chunk.append(loss)
            if len(chunk) == every:
                curve.append([epoch * self.plan.steps + step + 1, round(sum(chunk) / len(chunk), 5)])
                chunk = []
            seen = (step + 1) * self.plan.batch_size
            bar.set_postfix(loss=f"{loss_sum / (step + 1):.3f}", acc=f"{correct_sum / seen:.3f}",
                            img_s=f"{seen * self.ctx.world_size / (time.perf_counter() - t0):.0f}", refresh=False)
            bar.update(1)
            if stopped:
                break
        bar.close()
        average_buffers(self.model)
        wall = time.perf_counter() - t0
        images = done * self.plan.batch_size
        rec = {"epoch": epoch + 1, "loss": round(loss_sum / max(done, 1), 5),
               "acc": round(correct_sum / max(images, 1), 5),
               "images_per_s": round(images * self.ctx.world_size / max(wall, 1e-9), 1),
               "wall_s": round(wall, 3), "steps": done, "curve": curve}
        if stopped:
            rec["stopped_at_deadline"] = True
        if self.progress and self.ctx.is_main:
            tqdm.write(f"{self.desc} epoch {epoch + 1}/{self.epochs}: loss {rec['loss']:.4f}, "
                       f"acc {rec['acc']:.4f}, {rec['images_per_s']:.0f} images/s, {wall:.1f} s", file=sys.stderr)
        return rec

    def fit(self, start_epoch: int, history: list[dict],
            on_epoch_end: Callable[[list[dict]], None] | None = None,
            deadline: Deadline | None = None) -> list[dict]:
        """Epochs from `start_epoch` to the plan's end, or until `deadline` (then `on_epoch_end` still runs).

        The end is read after every epoch, so an `on_epoch_end` that re-plans (`replan`) moves it.
        """
        epoch = start_epoch
        while epoch < self.epochs:
            history.append(self.run_epoch(epoch, deadline))
            if on_epoch_end is not None:
                on_epoch_end(history)
            if history[-1].get("stopped_at_deadline"):
                break
            epoch += 1
        return history


def agree_max(value: float) -> float:
    """The largest `value` over ranks (itself without torch.distributed), so plans agree everywhere."""
    import torch.distributed as dist  # a submodule of torch, already loaded with it

    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t[0])


def replanner(trainer: Trainer, budget: TimePlan, train_until: Deadline, per_epoch_s: float,
              first: Callable[[list[dict]], None] | None = None,
              after: Callable[[list[dict]], None] | None = None) -> Callable[[list[dict]], None]:
    """An epoch-end hook: run `first` (keep the best weights), re-plan the remaining steps from the
    epoch's own speed, then run `after` (write a checkpoint that records the new plan).

    The first plan rests on a few probe steps; when a neighbour's load comes or
    goes the speed changes by tens of percent, and a fixed plan then leaves time
    unused or hits the hard stop before the learning rate has decayed (the
    CIFAR-10 supernet at 20 min: planned from 386 img/s, ran at about 310, and
    stopped at 86% of its schedule). Used by the supernet and the fine-tune alike.
    """
    def on_end(history: list[dict]) -> None:
        if first is not None:
            first(history)
        last = history[-1]
        if not last.get("stopped_at_deadline") and last["steps"]:
            step_s = agree_max(last["wall_s"] / last["steps"])
            done = int(sum(h["steps"] for h in history))
            left = plan_steps(train_until.remaining(), step_s, trainer.plan.steps, per_epoch_s=per_epoch_s,
                              min_steps=0)
            if trainer.replan(done, done + left):
                budget.planned_steps = trainer.total_steps
                budget.replans += 1
        if after is not None:
            after(history)
    return on_end

