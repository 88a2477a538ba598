"""SPOS supernet training: one uniformly sampled path (or k) per step, over a space.

Single Path One-Shot (Guo et al., 2020): every step draws a resolution from the
space's grid and a path (depth per stage, kernel and expand ratio per block)
uniformly at random, and trains only that path's slice of the shared weights.
With k paths per step the gradients of k paths on the same batch are averaged
(Once-for-All's "several subnets per batch"). The masked optimizer leaves the
weights no path touched exactly as they were.

Writes DIR/{supernet.pt, checkpoint.pt, space.json, data.json, train.json,
train_curve.png} (see tinynas/supernet/io.py and the project contracts); only
rank 0 writes under torchrun.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .. import rundir as rd
from ..atomic import write_json
from ..errors import UserError, option
from ..space.arch import decode, largest_arch, sample_genomes, smallest_arch
from ..space.spec import SpaceSpec
from ..space.torch_model import zero_init_residual
from ..supernet import Supernet, SupernetEvaluator, save_supernet
from ..timebudget import Deadline, Spend, TimePlan, plan_line, plan_steps
from ..checkpoint import check_resumable, load_torch, save_torch
from ..distributed import DistContext, barrier, pick_device, rank_and_world
from .loop import LoopConfig, NonFiniteLoss, StepResult, Trainer, check_step_count, replanner, smoothed_ce, soft_ce
from .optim import WEIGHT_DECAY, MaskedSGD
from .report import plot_curve

CHECKPOINT_FORMAT = "tinynas-supernet-checkpoint"
EVAL_COST = 0.5  # a scored image (BN recalibration or validation) costs at most half a trained one
EPOCH_WRITE_S = 1.5  # checkpoint + supernet.pt + train.json + curve, per epoch (measured ~1 s on 2 CPUs)


def check_data_fits(spec: SpaceSpec, bundle) -> None:
    """The space's input channels and classes must be the data's; resolution may differ (resized)."""
    c = bundle.input_shape[0]
    if spec.input_channels != c:
        raise UserError(f"space has input_channels={spec.input_channels} but the data has {c} channel(s); "
                        f"set input_channels to {c} in the space file (or use {option('space')} default)")
    if spec.num_classes != bundle.num_classes:
        raise UserError(f"space has num_classes={spec.num_classes} but the data has {bundle.num_classes} "
                        f"classes; set num_classes to {bundle.num_classes} in the space file (or use {option('space')} default)")


SAMPLINGS = ("uniform", "sandwich")
FILTER_PROBE = 4096  # genomes drawn once to measure the accepted share and find the largest accepted path
FILTER_ROUNDS = 200  # draws of a batch before a step gives up on the filter (never hangs)


@dataclass
class PathFilter:
    """Which randomly drawn paths the supernet trains; the rest are drawn again.

    `accept` maps canonical genomes (n, L) to a bool mask, `macs` to their
    MACs (the largest accepted path is the health check's, and the accepted
    paths' mean MACs say what the measured speed was the speed of); `record` says what the limits are, for train.json
    and for refusing a resume under other limits. The pipeline passes the
    search's own constraints (board fit, and under a time budget the MACs the
    fine-tune can train): uniform SPOS otherwise spends most steps on paths the
    search may never hand back.
    """

    accept: Callable[[np.ndarray], np.ndarray]
    macs: Callable[[np.ndarray], np.ndarray]
    record: dict[str, Any] = field(default_factory=dict)

    def draw(self, spec: SpaceSpec, n: int, rng: np.random.Generator) -> np.ndarray:
        """n accepted genomes, each uniform over the accepted set (rejection sampling)."""
        kept: list[np.ndarray] = []
        got = 0
        for _ in range(FILTER_ROUNDS):
            g = sample_genomes(spec, max(32, 4 * n), rng)
            g = g[np.asarray(self.accept(g), bool)]
            kept.append(g)
            got += len(g)
            if got >= n:
                return np.concatenate(kept)[:n]
        raise UserError(f"supernet: no path within {self.record} in {FILTER_ROUNDS} draws; "
                        "set train.paths = \"all\" to train the whole space")

    def probe(self, spec: SpaceSpec, rng: np.random.Generator) -> tuple[dict[str, float], np.ndarray | None]:
        """The accepted share of uniform draws and their mean MACs, and the largest accepted genome
        (None when none is)."""
        g = sample_genomes(spec, FILTER_PROBE, rng)
        ok = np.asarray(self.accept(g), bool)
        if not ok.any():
            return {"paths_accepted": 0.0}, None
        macs = np.asarray(self.macs(g[ok]), np.float64)
        return ({"paths_accepted": round(float(ok.mean()), 4), "paths_macs_mean": round(float(macs.mean()))},
                g[ok][int(np.argmax(macs))])


class SposStep:
    """One supernet step: a resolution and k paths from the shared generator, forward and backward each.

    sampling="uniform" is SPOS: k uniformly random paths, each trained on the
    labels. sampling="sandwich" is BigNAS / Once-for-All's sandwich rule: the
    largest path learns from the labels, then the smallest and k-2 random paths
    learn from the largest path's (detached) soft predictions (in-place
    distillation), so the small paths chase a target that improves every step.
    """

    def __init__(self, sn: Supernet, spec: SpaceSpec, bundle, paths_per_step: int, label_smoothing: float,
                 sampling: str = "uniform", paths: PathFilter | None = None) -> None:
        if sampling not in SAMPLINGS:
            raise UserError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
        if sampling == "sandwich" and paths_per_step < 2:
            raise UserError(f"sampling 'sandwich' needs {option('paths_per_step')} >= 2 (largest + smallest, then random)")
        self.sn, self.k, self.ls, self.sampling, self.paths = sn, paths_per_step, label_smoothing, sampling, paths
        self.native = tuple(bundle.input_shape[1:])
        self.resize = bundle.preprocessing["resize"]
        self.grid = [tuple(r) for r in spec.resolution_grid]
        self.specs = {r: spec.with_config(resolution=r) for r in self.grid}

    def sample(self, rng: np.random.Generator) -> tuple[tuple[int, int], list[dict]]:
        res = self.grid[int(rng.integers(len(self.grid)))] if len(self.grid) > 1 else self.grid[0]
        spec = self.specs[res]
        if self.sampling == "sandwich":
            rand = [decode(spec, g) for g in self._draw(spec, self.k - 2, rng)] if self.k > 2 else []
            return res, [largest_arch(spec), smallest_arch(spec), *rand]
        return res, [decode(spec, g) for g in self._draw(spec, self.k, rng)]

    def _draw(self, spec: SpaceSpec, n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_genomes(spec, n, rng) if self.paths is None else self.paths.draw(spec, n, rng)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> StepResult:
        res, archs = self.sample(rng)
        if res != self.native:
            x = F.interpolate(x, size=res, **self.resize)
        loss_sum = x.new_zeros(())
        correct = x.new_zeros(())
        soft = None
        for arch in archs:
            logits = self.sn(x, arch)
            if soft is None:
                loss = smoothed_ce(logits, y, self.ls)
                if self.sampling == "sandwich":
                    soft = F.softmax(logits.detach(), dim=1)
            else:
                loss = soft_ce(logits, soft)
            (loss / self.k).backward()
            loss_sum += loss.detach() / self.k
            correct += (logits.detach().argmax(1) == y).sum() / self.k
        return StepResult(loss_sum, correct, [self.sn.path_indices(a) for a in archs])


def _prepare_out(out: Path, resume: bool, force: bool) -> bool:
    """Check --out; True when training resumes from its checkpoint.

    --resume on a missing or empty directory starts afresh, so a pipeline can
    always pass it; on a non-empty directory without a checkpoint it refuses.
    """
    empty = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    if resume:
        if (out / rd.CHECKPOINT).is_file():
            return True
        if not empty:
            raise UserError(f"{option('resume')}: {out / 'checkpoint.pt'} does not exist and {out} is not empty; "
                            f"choose another {option('out')} or pass {option('force')} to start over")
    if out.exists() and not out.is_dir():
        raise UserError(f"output path {out} exists and is not a directory; choose another {option('out')}")
    if not empty:
        if not force:
            raise UserError(f"output directory {out} is not empty; pass {option('resume')} to continue it, "
                            f"{option('force')} to replace it, or choose another {option('out')}")
        if rank_and_world()[0] == 0:
            shutil.rmtree(out)
    barrier()
    return False


def _final_eval(sn: Supernet, spec: SpaceSpec, bundle, calib_images: int, say: bool,
                largest: dict | None = None) -> dict:
    """Validation top-1 of the largest (trained) and smallest paths, BN recalibrated: a supernet health check."""
    if say:
        print(f"supernet: scoring the largest and smallest paths on {len(bundle.val)} validation images",
              file=sys.stderr, flush=True)
    ev = SupernetEvaluator(sn, bundle, calib_images=calib_images, split="val")
    t0 = time.perf_counter()
    acc = ev([sn.largest() if largest is None else largest, smallest_arch(spec)])
    return {"largest_acc": round(float(acc[0]), 5), "smallest_acc": round(float(acc[1]), 5),
            "calib_images": calib_images, "wall_s": round(time.perf_counter() - t0, 2)}


class _Writer:
    """Rank 0's per-epoch outputs: checkpoint first, then supernet.pt, train.json and the curve."""

    def __init__(self, out: Path, sn: Supernet, opt: MaskedSGD, trainer: Trainer, meta: Mapping, run: dict,
                 budget: TimePlan | None = None):
        self.out, self.sn, self.opt, self.trainer, self.meta, self.run = out, sn, opt, trainer, meta, run
        self.budget = budget

    @property
    def cfg(self) -> LoopConfig:
        """The trainer's config as it is now: a re-plan moves its step count."""
        return self.trainer.cfg

    def __call__(self, history: list[dict]) -> None:
        if rank_and_world()[0] != 0:
            return
        done = history[-1]["epoch"]
        save_torch(self.out / rd.CHECKPOINT, {
            "format": CHECKPOINT_FORMAT, "epoch": done, "model": self.sn.state_dict(),
            "optimizer": self.opt.state_dict(), "history": history, "config": self.cfg.to_dict(),
            "run": self.run, "space": self.sn.spec.to_dict(), "data": dict(self.meta),
            "time": self.budget.record(history) if self.budget is not None else None})
        save_supernet(self.out / rd.SUPERNET_WEIGHTS, self.sn, self.meta, epochs=done, epochs_planned=self.cfg.epochs,
                      config=self.cfg.to_dict())
        self.write_summary(history)

    def write_summary(self, history: list[dict], final: dict | None = None) -> dict:
        summary = {"history": history, "epochs": history[-1]["epoch"] if history else 0, "config": self.cfg.to_dict(),
                   **self.run, "wall_s": round(sum(h["wall_s"] for h in history), 3),
                   "images_per_s": round(float(np.mean([h["images_per_s"] for h in history])), 1) if history else 0.0}
        if final is not None:
            summary["final_eval"] = final
        if self.budget is not None:
            summary["time"] = self.budget.record(history)
        write_json(self.out / rd.TRAIN_JSON, summary)
        plot_curve(history, self.out / "train_curve.png", title=f"SPOS supernet: {self.sn.spec.name}")
        return summary


def _load_checkpoint(out: Path) -> dict:
    ck = load_torch(out / rd.CHECKPOINT)
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{out / 'checkpoint.pt'} is not a train-supernet checkpoint")
    return ck


def _resume(ck: dict, out: Path, sn: Supernet, opt: MaskedSGD, cfg: LoopConfig, spec: SpaceSpec,
            run_keys: Mapping[str, Any], data_meta: Mapping[str, Any]) -> tuple[int, list]:
    check_resumable({**ck["config"], **{k: ck["run"].get(k) for k in run_keys}}, {**cfg.to_dict(), **run_keys})
    for key in ("load", "preprocessing"):
        if ck["data"].get(key) != dict(data_meta).get(key):
            raise UserError(f"{option('resume')}: the data ({key}) differs from the run in {out}; pass the same {option('data')} "
                            "and split options")
    if ck["space"] != spec.to_dict():
        raise UserError(f"{option('resume')}: the space differs from the one in {out / 'checkpoint.pt'}; "
                        f"pass {option('space')} {out / 'space.json'}")
    sn.load_state_dict(ck["model"], strict=True)
    opt.load_state_dict(ck["optimizer"])
    return int(ck["epoch"]), list(ck["history"])


def train_supernet(spec: SpaceSpec, bundle, data_meta: Mapping[str, Any], out_dir: str | Path, epochs: int,
                   batch_size: int = 128, lr: float = 0.1, seed: int = 0, resume: bool = False,
                   progress: bool = True, *, paths_per_step: int = 1, steps_per_epoch: int | None = None,
                   momentum: float = 0.9, weight_decay: float = WEIGHT_DECAY, label_smoothing: float = 0.1,
                   augment: bool = True, force: bool = False, device: str | torch.device | None = None,
                   final_eval: bool = True, calib_images: int = 500, warmup_epochs: float = 0.0,
                   nesterov: bool = False, sampling: str = "uniform", zero_init: bool = True,
                   time_budget_s: float | None = None, end_lr: float = 0.0,
                   total_steps: int | None = None, paths: PathFilter | None = None) -> dict:
    """Train a SPOS supernet over `spec` on `bundle`, writing DIR as described in the module doc.

    `end_lr` > 0 stops the cosine there instead of at zero, for a fine-tune
    that continues the same decay from that learning rate. `total_steps`
    (without a time budget) ends the schedule at exactly that step, the last
    epoch partial, for comparisons at equal steps. `paths` restricts the
    sampled paths (see PathFilter); the final check then scores the largest
    accepted path instead of the space's largest, which it never trained.

    With `time_budget_s` the step count is planned (`epochs` is ignored): a few
    probe steps measure throughput, the cosine schedule spans the steps that
    fit before the deadline (less the final evaluation), and a hard stop
    checked every step ends training at the deadline whatever happens. A
    resumed run keeps its plan (same schedule) and gets what is left of its
    budget: the checkpoint records the seconds spent up to it (time lost
    after the last checkpoint is not charged).

    Works alone or under torchrun (torch.distributed already initialised).
    Returns the train.json summary. Raises UserError on bad settings and
    NonFiniteLoss (a UserError) when the loss diverges.
    """
    entry = Deadline.after(time_budget_s) if time_budget_s is not None else None
    check_data_fits(spec, bundle)
    if epochs < 1 or batch_size < 1 or lr <= 0 or paths_per_step < 1:
        raise UserError(f"{option('epochs')}, {option('batch_size')} and {option('paths_per_step')} must be >= 1 and {option('lr')} > 0")
    if not 0.0 <= end_lr < lr:
        raise UserError(f"{option('end_lr')} must be >= 0 and below {option('lr')} ({lr:g}), got {end_lr:g}")
    check_step_count(total_steps, time_budget_s)
    out = Path(out_dir)
    resume = _prepare_out(out, resume, force)
    rank, world = rank_and_world()
    ctx = DistContext(rank, world, pick_device(device))
    cfg = LoopConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                     label_smoothing=label_smoothing, seed=seed, steps_per_epoch=steps_per_epoch, augment=augment,
                     warmup_epochs=warmup_epochs, nesterov=nesterov, end_lr=end_lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # identical initial weights on every rank and every run
        sn = Supernet(spec)
    if zero_init:
        zero_init_residual(sn)
    sn.to(ctx.device, memory_format=torch.channels_last)  # see tinynas.train.loop
    opt = MaskedSGD(sn.named_parameters(), momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    run_keys = {"paths_per_step": paths_per_step, "sampling": sampling, "zero_init": zero_init,
                "paths": None if paths is None else paths.record}
    accepted, top = paths.probe(spec, np.random.default_rng([seed, 7])) if paths is not None else ({}, None)
    if paths is not None and top is None:
        raise UserError(f"supernet: none of {FILTER_PROBE} random paths is within {paths.record}; "
                        "set train.paths = \"all\" to train the whole space")
    ck = _load_checkpoint(out) if resume else None
    budget = _budget(time_budget_s, ck)
    if budget is not None and ck is not None and budget.planned_steps:
        cfg = dataclasses.replace(cfg, epochs=ck["config"]["epochs"], total_steps=budget.planned_steps)
    start, history = _resume(ck, out, sn, opt, cfg, spec, run_keys, data_meta) if ck is not None else (0, [])
    run_info = {**run_keys, "world_size": world, "n_train": len(bundle.train),
                "n_val": len(bundle.val), **accepted}
    if ctx.is_main:
        write_json(out / rd.SPACE_JSON, spec.to_dict())
        write_json(out / "data.json", dict(data_meta))
    trainer = Trainer(sn, opt, bundle, cfg, ctx, SposStep(sn, spec, bundle, paths_per_step, label_smoothing, sampling,
                                                                   paths),
                      progress=progress, desc="supernet")
    run_info.update(batch_size=trainer.plan.batch_size, steps_per_epoch=trainer.plan.steps)
    stop = None
    if total_steps is not None and budget is None:
        trainer.set_total_steps(total_steps)
    if budget is not None:
        stop = _plan_supernet(trainer, budget, entry, final_eval and len(bundle.val) > 0,
                              2 * (calib_images + len(bundle.val)), progress and ctx.is_main)
    writer = _Writer(out, sn, opt, trainer, data_meta, run_info, budget)
    on_end = writer if budget is None else replanner(trainer, budget, stop, EPOCH_WRITE_S, after=writer)
    try:
        trainer.fit(start, history, on_end, deadline=stop)
    except NonFiniteLoss as e:
        kept = f"{out / 'checkpoint.pt'} (epoch {history[-1]['epoch']}) is kept" if history else "no epoch finished"
        raise NonFiniteLoss(f"{e}; {kept}; lower {option('lr')} and start over with {option('force')}") from None
    final = None
    if final_eval and len(bundle.val):
        final = _final_eval(sn, spec, bundle, calib_images, progress and ctx.is_main,
                            None if top is None else decode(spec, top))
    summary = writer.write_summary(history, final) if ctx.is_main else {"history": history, "final_eval": final}
    barrier()
    return summary


def _budget(time_budget_s: float | None, ck: Mapping | None) -> TimePlan | None:
    """The stage's time plan: fresh, or the checkpoint's (same steps, its spent seconds carried over)."""
    if time_budget_s is None:
        return None
    saved = (ck or {}).get("time") or {}
    if saved.get("planned_steps"):
        return TimePlan(budget_s=float(saved["budget_s"]), spend=Spend.starting_now(saved["spent_s"]),
                        planned_steps=int(saved["planned_steps"]), step_s=float(saved["step_s"]),
                        images_per_s=float(saved["images_per_s"]))
    return TimePlan(budget_s=float(time_budget_s), spend=Spend.starting_now())


def _plan_supernet(trainer: Trainer, budget: TimePlan, entry: Deadline, scored: bool, eval_images: int,
                   say: bool) -> Deadline:
    """Fix the step count from measured throughput (fresh runs) and return the training's hard deadline.

    The deadline is the stage's (what is left of its budget, and never after
    the caller's) less the time the final evaluation needs.
    """
    left = budget.budget_s - budget.spend.spent()
    deadline = Deadline(min(entry.at, Deadline.after(left).at))
    fresh = not budget.planned_steps
    if fresh:
        budget.step_s = trainer.measure_step_s()
        budget.images_per_s = trainer.images_per_s(budget.step_s)
    per_image = budget.step_s / trainer.plan.batch_size
    eval_s = EVAL_COST * per_image * eval_images if scored else 0.0
    train_until = deadline.sooner(eval_s + 2 * EPOCH_WRITE_S)  # the last checkpoint and the final summary
    if fresh:
        budget.planned_steps = plan_steps(train_until.remaining() + EPOCH_WRITE_S, budget.step_s,
                                          trainer.plan.steps, per_epoch_s=EPOCH_WRITE_S)
        trainer.set_total_steps(budget.planned_steps)
    if say:
        print(plan_line("supernet", budget.planned_steps, budget.images_per_s, deadline.remaining())
              + ("" if fresh else f" (resumed: {budget.spend.before:.0f} s spent before)"),
              file=sys.stderr, flush=True)
    return train_until
