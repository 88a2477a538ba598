"""Fine-tune one found subnet, starting from its supernet weights (optionally distilled).

`finetune` slices the arch out of the supernet (`get_subnet`), recalibrates its
BN statistics (its score now equals the search's fitness), and trains it with
the supernet's recipe: SGD, cosine schedule, label smoothing, no weight decay on
BN or biases. With `distill=True` the supernet's largest path at the same
resolution, BN-recalibrated, is the teacher (Once-for-All's KD: loss = CE +
kd_ratio * soft cross-entropy to the teacher's probabilities).

`train_arch` is the same loop from any initial weights (random when none are
given), used for hand-designed baselines trained with the same recipe.

Both take `time_budget_s`: instead of epochs, a few probe steps measure the
throughput and the step count is planned so that training, the per-epoch
selection scoring and the final validation end at the deadline; the cosine
schedule spans exactly those steps and a hard stop checked every step ends
training at the deadline if the machine slows down.

Writes DIR/{arch.json, model.pt (plain state_dict of build_model(arch)),
data.json, finetune.json} all at once (staged directory).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .. import rundir as rd
from ..atomic import staged_dir, write_json
from ..checkpoint import save_torch
from ..data.meta import load_from_meta
from ..distributed import DistContext, pick_device, rank_and_world
from ..errors import UserError, option
from ..space.arch import arch_hash, save_arch, validate_arch
from ..space.graph_builder import build_graph
from ..space.torch_model import build_model, zero_init_residual
from ..stats import clearly_better
from ..supernet import DEFAULT_CALIB_IMAGES, accuracy, calibration_batches, load_supernet, recalibrate_bn
from ..timebudget import Deadline, Spend, TimePlan, plan_line, plan_steps
from .loop import LoopConfig, NonFiniteLoss, StepResult, Trainer, check_step_count, replanner, smoothed_ce, soft_ce
from .optim import WEIGHT_DECAY, MaskedSGD


def check_arch_data(arch: Mapping, bundle) -> None:
    """The arch's input channels and classes must be the data's (its resolution may differ: resized)."""
    c = bundle.input_shape[0]
    if arch["input"][0] != c:
        raise UserError(f"arch input has {arch['input'][0]} channel(s) but the data has {c}; pass the {option('data')} "
                        "the supernet was trained on")
    if arch["num_classes"] != bundle.num_classes:
        raise UserError(f"arch has num_classes={arch['num_classes']} but the data has {bundle.num_classes} classes")


class PlainStep:
    """Forward/backward of one model, with optional soft-target distillation from a frozen teacher."""

    def __init__(self, model: torch.nn.Module, resolution: tuple[int, int], bundle, label_smoothing: float,
                 teacher: torch.nn.Module | None = None, kd_ratio: float = 1.0) -> None:
        self.model, self.teacher, self.kd_ratio, self.ls = model, teacher, kd_ratio, label_smoothing
        self.res, self.native = resolution, tuple(bundle.input_shape[1:])
        self.resize = bundle.preprocessing["resize"]

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> StepResult:
        if self.res != self.native:
            x = F.interpolate(x, size=self.res, **self.resize)
        logits = self.model(x)
        loss = smoothed_ce(logits, y, self.ls)
        if self.teacher is not None:
            with torch.no_grad():
                soft = F.softmax(self.teacher(x), dim=1)
            loss = loss + self.kd_ratio * soft_ce(logits, soft)
        loss.backward()
        return StepResult(loss.detach(), (logits.detach().argmax(1) == y).sum(), None)


def check_out_dir(out_dir: str | Path, force: bool) -> None:
    """Refuse a non-empty --out before training, not after it."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"output {out} exists and is not an empty directory; pass {option('force')} to replace it "
                        f"or choose another {option('out')}")


def val_batches(bundle, resolution: tuple[int, int], device: torch.device, batch_size: int = 250,
                split: str = "val") -> list:
    return [(x.contiguous(memory_format=torch.channels_last), y)
            for x, y in bundle.iter_batches(split, batch_size, resolution=resolution, device=device)]


class BestKeeper:
    """After every epoch, score on the selection split and keep a copy of the best weights.

    The fine-tune hands back the best of its epochs (epoch 0 = the starting
    weights when they were inherited), so it can never end below where it
    started on the data it chooses on.
    """

    def __init__(self, model: torch.nn.Module, batches: list, start_score: float | None) -> None:
        self.model, self.batches = model, batches
        self.scores: list[float] = []
        self.best_epoch, self.best_score, self.best_state = 0, -1.0, None
        if start_score is not None:
            self._offer(0, start_score)

    def _offer(self, epoch: int, score: float) -> None:
        self.scores.append(round(score, 5))
        if score > self.best_score:
            self.best_epoch, self.best_score = epoch, score
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def __call__(self, history: list[dict]) -> None:
        score = accuracy(self.model, self.batches)
        history[-1]["selection_acc"] = round(score, 5)
        self._offer(history[-1]["epoch"], score)

    def restore(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


def train_arch(arch: Mapping, bundle, out_dir: str | Path, epochs: int | None, *, data_meta: Mapping[str, Any],
               init_state: Mapping[str, torch.Tensor] | None = None, teacher: torch.nn.Module | None = None,
               kd_ratio: float = 1.0, batch_size: int = 128, lr: float = 0.05, seed: int = 0,
               momentum: float = 0.9, weight_decay: float = WEIGHT_DECAY, label_smoothing: float = 0.1,
               steps_per_epoch: int | None = None, augment: bool = True, progress: bool = True,
               force: bool = False, device: str | torch.device | None = None,
               info: Mapping[str, Any] | None = None, warmup_epochs: float = 0.0, nesterov: bool = False,
               keep_best: bool = True, time_budget_s: float | None = None,
               total_steps: int | None = None) -> dict:
    """Train build_model(arch) from `init_state` (random init when None); write the finetune DIR.

    `total_steps` ends the schedule at exactly that many steps (the last epoch
    partial) instead of `epochs` whole ones: an equal-steps comparison must
    not hand one side the rest of an epoch.

    With `time_budget_s` (seconds, counted from this call) `epochs` is ignored
    and may be None: the step count is planned from the measured throughput
    (see the module doc). The result always has `planned_s` (None without a
    budget), `spent_s` (this call, writing included), `planned_steps` and
    `steps` (steps actually trained), and with a budget `time` (the plan).

    With keep_best the weights of the epoch that scores best on the selection
    split (the holdout, else validation) are kept; `accuracy_float` is always
    measured on validation. A teacher that is not clearly better than the
    starting weights on the selection split is dropped (distillation from a
    worse model can only pull the student down).
    """
    spend = Spend.starting_now()
    deadline = Deadline.after(time_budget_s) if time_budget_s is not None else None
    arch = validate_arch(arch)
    check_arch_data(arch, bundle)
    if time_budget_s is not None and not time_budget_s > 0:
        raise UserError(f"time budget must be positive, got {time_budget_s} s")
    check_step_count(total_steps, time_budget_s)
    if total_steps is not None:
        epochs = 1  # replaced by the step count once the loop knows its steps per epoch
    if time_budget_s is None and (epochs is None or epochs < 0) or batch_size < 1 or lr <= 0:
        raise UserError(f"{option('epochs')} must be >= 0, {option('batch_size')} >= 1 and {option('lr')} > 0")
    epochs = 1 if time_budget_s is not None else int(epochs)
    check_out_dir(out_dir, force)
    rank, world = rank_and_world()
    ctx = DistContext(rank, world, pick_device(device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch)
    if init_state is not None:
        model.load_state_dict(init_state, strict=True)
    else:
        zero_init_residual(model)
    model.to(ctx.device, memory_format=torch.channels_last)  # see tinynas.train.loop
    res = tuple(arch["input"][1:])
    val = val_batches(bundle, res, ctx.device)
    sel_split = bundle.selection_split
    sel = val if sel_split == "val" else val_batches(bundle, res, ctx.device, split=sel_split)
    t_val = time.perf_counter()
    acc0 = accuracy(model, val) if init_state is not None else None
    t_sel = time.perf_counter()
    sel0 = accuracy(model, sel) if init_state is not None else None
    cost = ({"val_s": t_sel - t_val, "sel_s": time.perf_counter() - t_sel} if init_state is not None
            else {"val_s": None, "sel_s": None})  # what scoring costs, for a time plan
    kd = _teacher_check(teacher, sel, sel0, len(bundle.split(sel_split)))
    if not kd["used"]:
        teacher = None
    cfg = LoopConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                     label_smoothing=label_smoothing, seed=seed, steps_per_epoch=steps_per_epoch, augment=augment,
                     warmup_epochs=warmup_epochs, nesterov=nesterov)
    opt = MaskedSGD(model.named_parameters(), momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    step = PlainStep(model, res, bundle, label_smoothing, teacher, kd_ratio)
    keeper = BestKeeper(model, sel, sel0) if keep_best else None
    history: list[dict] = []
    trainer = Trainer(model, opt, bundle, cfg, ctx, step, progress=progress, desc="finetune")
    budget, stop = None, None
    if total_steps is not None:
        trainer.set_total_steps(total_steps)
    if deadline is not None:
        budget = TimePlan(budget_s=float(time_budget_s), spend=spend)
        stop = _plan_finetune(trainer, budget, deadline, cost, model, val, sel, keep_best, progress and ctx.is_main)
    on_end = keeper if budget is None else replanner(trainer, budget, stop, cost["sel_s"] if keeper else 0.0, keeper)
    if trainer.total_steps:
        try:
            trainer.fit(0, history, on_end, deadline=stop)
        except NonFiniteLoss as e:
            raise NonFiniteLoss(f"{e}; nothing was written; lower {option('lr')}") from None
    if keeper is not None:
        keeper.restore()
    result = {"arch_hash": arch_hash(arch), "accuracy_float": round(accuracy(model, val), 5),
              "accuracy_inherited": None if acc0 is None else round(acc0, 5), "history": history,
              "selection": {"split": sel_split, "n": len(bundle.split(sel_split)),
                            "inherited": None if sel0 is None else round(sel0, 5),
                            "per_epoch": keeper.scores if keeper else None,
                            "best_epoch": keeper.best_epoch if keeper else len(history),
                            "best": round(keeper.best_score, 5) if keeper else None},
              "config": {**trainer.cfg.to_dict(), "kd_ratio": kd_ratio if teacher is not None else None},
              "distill": teacher is not None, "teacher": kd, "n_val": len(bundle.val),
              "wall_s": round(sum(h["wall_s"] for h in history), 3), **(info or {}),
              "planned_s": None if budget is None else round(budget.budget_s, 2),
              "planned_steps": trainer.total_steps, "steps": int(sum(h["steps"] for h in history))}
    if budget is not None:
        result["time"] = budget.record(history)
    result["spent_s"] = round(spend.spent(), 2)  # up to writing; the write itself is kept in the plan's margin
    if ctx.is_main:
        _write(out_dir, force, arch, model, data_meta, result)
    result["spent_s"] = round(spend.spent(), 2)
    if budget is not None:
        result["time"]["spent_s"] = result["spent_s"]
    return result


WRITE_S = 1.0  # staging arch.json, model.pt, finetune.json: well under a second for an MCU-sized model


def _plan_finetune(trainer: Trainer, budget: TimePlan, deadline: Deadline, cost: dict, model: torch.nn.Module,
                   val: list, sel: list, keep_best: bool, say: bool) -> Deadline:
    """Fix the step count from the measured throughput; returns the training's hard deadline.

    Every epoch pays one selection scoring (keep_best) and the end pays one
    validation and the write, all measured (or, from random init, timed now:
    the seconds count either way), so training stops early enough for them.
    """
    if cost["val_s"] is None:
        t0 = time.perf_counter()
        accuracy(model, val)
        cost["val_s"] = time.perf_counter() - t0
        cost["sel_s"] = cost["val_s"] * len(sel) / max(len(val), 1) if sel is not val else cost["val_s"]
    budget.step_s = trainer.measure_step_s()
    budget.images_per_s = trainer.images_per_s(budget.step_s)
    per_epoch = cost["sel_s"] if keep_best else 0.0
    train_until = deadline.sooner(cost["val_s"] + per_epoch + WRITE_S)
    budget.planned_steps = plan_steps(train_until.remaining(), budget.step_s, trainer.plan.steps,
                                      per_epoch_s=per_epoch)
    trainer.set_total_steps(budget.planned_steps)
    if say:
        print(plan_line("finetune", budget.planned_steps, budget.images_per_s, deadline.remaining()),
              file=sys.stderr, flush=True)
    return train_until


def _teacher_check(teacher: torch.nn.Module | None, sel: list, student: float | None, n: int) -> dict:
    """Use the teacher only where it is clearly (one standard error) better than the starting student."""
    if teacher is None:
        return {"used": False, "reason": "no teacher"}
    t = accuracy(teacher, sel)
    if student is not None and not clearly_better(t, student, n):
        return {"used": False, "teacher_acc": round(t, 5), "student_acc": round(student, 5),
                "reason": "the teacher is not clearly better than the student on the selection split"}
    return {"used": True, "teacher_acc": round(t, 5), "student_acc": None if student is None else round(student, 5)}


def _write(out_dir: str | Path, force: bool, arch: Mapping, model: torch.nn.Module, meta: Mapping,
           result: dict) -> None:
    with staged_dir(out_dir, force=force) as tmp:
        save_arch(tmp / rd.ARCH_JSON, arch)
        save_torch(tmp / rd.MODEL_WEIGHTS, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        write_json(tmp / "data.json", dict(meta))
        write_json(tmp / rd.FINETUNE_JSON, result)


def _teacher(sn, spec, arch: Mapping, calib: list[torch.Tensor]) -> torch.nn.Module:
    """The supernet's largest path at the arch's resolution, BN recalibrated, frozen."""
    t = sn.get_subnet(sn.largest(tuple(arch["input"][1:])))
    recalibrate_bn(t, calib)
    t.eval().to(memory_format=torch.channels_last)
    for p in t.parameters():
        p.requires_grad_(False)
    return t


TEACHER_MAX_EXTRA = 0.5  # a teacher may add at most this share to a student's training step under a clock


def _teacher_too_dear(sn, arch: Mapping) -> dict | None:
    """Why not to distil under a time budget, or None when the teacher is affordable.

    The teacher's forward pass runs on every step. A training step costs about
    three forward passes of the student, so a teacher of k times the student's
    MACs adds about k/3 to each step, and under a clock that many fewer steps
    are trained. CIFAR-10 at 20 min on stm32f746g-disco: a 12.9 M MACs winner
    distilling from its supernet's largest path fine-tuned at 91 images/s and
    managed 0.6 of an epoch; the teacher only helps if it is cheap.
    """
    student = build_graph(arch).total_macs
    teacher = build_graph(sn.largest(tuple(arch["input"][1:]))).total_macs
    extra = teacher / max(3 * student, 1)
    if extra <= TEACHER_MAX_EXTRA:
        return None
    return {"used": False, "teacher_macs": int(teacher), "student_macs": int(student),
            "extra_step_cost": round(extra, 3),
            "reason": f"under a time budget the teacher ({teacher / 1e6:.1f} M MACs) would make every step "
                      f"{extra:.0%} dearer (limit {TEACHER_MAX_EXTRA:.0%})"}


def finetune(arch: Mapping, supernet_dir: str | Path, bundle, out_dir: str | Path, epochs: int | None, *,
             distill: bool = False, kd_ratio: float = 1.0, data_meta: Mapping[str, Any] | None = None,
             calib_images: int = DEFAULT_CALIB_IMAGES, device: str | torch.device | None = None,
             **train_kw: Any) -> dict:
    """Fine-tune `arch` from supernet DIR's weights; `bundle` None reloads the supernet's data.

    Extra keyword arguments go to `train_arch` (batch_size, lr, seed, steps_per_epoch, progress,
    force, time_budget_s, ...); a time budget counts from this call, preparation included.
    Returns the finetune.json content.
    """
    budget_s = train_kw.pop("time_budget_s", None)
    deadline = Deadline.after(budget_s) if budget_s is not None else None
    check_out_dir(out_dir, bool(train_kw.get("force", False)))
    sn, spec, meta = load_supernet(supernet_dir)
    if bundle is None:
        bundle = load_from_meta(meta)
    a = validate_arch(arch)
    try:
        sn.check_arch(a)
    except UserError as e:
        raise UserError(f"the arch is not a subnet of the supernet's space: {e.args[0]}") from None
    check_arch_data(a, bundle)
    dev = pick_device(device)
    sn.to(dev)
    t0 = time.perf_counter()
    calib = calibration_batches(bundle, tuple(a["input"][1:]), calib_images, device=dev)
    init = sn.get_subnet(a)
    recalibrate_bn(init, calib)
    dear = _teacher_too_dear(sn, a) if distill and deadline is not None else None
    teacher = _teacher(sn, spec, a, calib) if distill and dear is None else None
    info = {"supernet": str(Path(supernet_dir).resolve()), "calib_images": calib_images,
            "prepare_s": round(time.perf_counter() - t0, 3), **({"teacher": dear} if dear else {})}
    if deadline is not None:  # preparing (slicing, BN recalibration, the teacher) came out of the budget
        train_kw["time_budget_s"] = max(deadline.remaining(), 1e-3)
        info["budget_s"] = round(budget_s, 2)
    return train_arch(a, bundle, out_dir, epochs, data_meta=data_meta or meta, init_state=init.state_dict(),
                      teacher=teacher, kd_ratio=kd_ratio, device=dev, info=info, **train_kw)
