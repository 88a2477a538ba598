"""Run the pipeline's stages in order, each into DIR/<stage>/, skipping finished ones.

A stage is finished when DIR/<stage>/stage.json exists and records the hash of
the options it depends on (its own section, the run's identity and its
upstream stage's hash). Change an option and that stage and everything after
it run again; interrupt a run and the next one skips what finished and resumes
supernet training from its last checkpoint.

Under torchrun the training and search stages run on every rank (DDP and
sharded candidate evaluation); the other stages run on rank 0 while the rest
wait at a barrier.

Under a time budget (`RunClock`) the space, supernet, search and fine-tune
stages run on one clock: each timed stage gets its share of what is left when
it starts (tinynas.timebudget.allot), so the space stage's seconds and any
time a stage leaves unused roll over to the next. Stages finished in an
earlier invocation are charged their recorded seconds. Export and profile run
after the budget; their records say how long they took.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..boards import Board
from .. import rundir as rd
from ..costmodel import CostModel
from ..checkpoint import load_torch
from ..atomic import write_json, write_text
from ..data.resize_loss import resize_loss
from ..deploy.pipeline import export_subnet
from ..latency import lut_for_board
from ..deploy.footprint import predict_if_calibrated
from ..profile import format_report, plot_memory, profile_graph
from ..search import Problem, run_search
from ..space.arch import load_arch
from ..space.spec import load_space, replace_spec, space_for_block
from ..spaceopt import check_widths, default_resolutions, optimize_space, plot_flops_cdf, scaled_hw
from ..tflite_reader import read_tflite
from ..tflm_measure import measure_arena
from ..timebudget import Deadline, allot
from ..train import PathFilter, finetune, train_supernet
from ..train.probe import TrainCost, probe_train_cost
from .config import TIMED_STAGES, stage_hash
from .records import Records, StageRecord, result_value
from .report import plot_latency

ALL_RANKS = {"supernet", "search"}
# train.paths = "searchable": the supernet trains paths up to this many times the fine-tune's MACs limit
# as forecast before it starts; the search recomputes the limit from the supernet's measured speed,
# which may land above the forecast, and never goes past what the supernet trained.
PATHS_SLACK = 1.25
ON_THE_CLOCK = {"space", *TIMED_STAGES}  # export and profile run after the budget


@dataclass
class RunClock:
    """The run's time budget: its total, the shares, and the deadline everything timed must meet.

    `total_s` None means the run is sized by counts and nothing is timed.
    """

    total_s: float | None
    shares: dict[str, float]
    deadline: Deadline | None = None
    spent_s: float | None = None  # set when the last timed stage ends: the budget's true spend

    def close(self) -> None:
        """Stop counting: what the budget covered ends with the fine-tuned model."""
        if self.deadline is not None and self.spent_s is None:
            self.spent_s = round(self.total_s - (self.deadline.at - time.monotonic()), 2)

    @classmethod
    def start(cls, total_s: float | None, shares: dict[str, float]) -> "RunClock":
        return cls(total_s, dict(shares), Deadline.after(total_s) if total_s is not None else None)

    def allot(self, stage: str) -> float | None:
        """Seconds for `stage` now: its share of what is left (None without a budget)."""
        if self.deadline is None:
            return None
        return max(allot(self.deadline.remaining(), self.shares, stage, TIMED_STAGES), 1e-3)

    def forecast(self, stage: str, first: str) -> float | None:
        """Seconds `stage` will get if every timed stage from `first` on spends exactly its share."""
        if self.deadline is None:
            return None
        return allot(self.deadline.remaining(), self.shares, stage, TIMED_STAGES, first)

    def charge(self, seconds: float) -> None:
        """Take a stage finished in an earlier invocation off what is left."""
        if self.deadline is not None:
            self.deadline = self.deadline.sooner(seconds)


@dataclass
class Context:
    """What every stage gets: the effective config, the board, the data, where to write."""

    cfg: dict[str, dict[str, Any]]
    out: Path
    board: Board
    bundle: Any
    meta: dict[str, Any]
    rank: int = 0
    world: int = 1
    log: Callable[[str], None] = print
    results: Records = field(default_factory=dict)
    clock: RunClock = field(default_factory=lambda: RunClock(None, {}))
    allotted: dict[str, float] = field(default_factory=dict)  # seconds given to each timed stage

    def stage_dir(self, name: str) -> Path:
        return self.out / name


# ------------------------------------------------------------------ the stages


def stage_space(ctx: Context, d: Path) -> dict[str, Any]:
    c, h, w = ctx.bundle.input_shape
    sc = ctx.cfg["space"]
    base = space_for_block(sc["block"], input_channels=c, resolution=[h, w], num_classes=ctx.bundle.num_classes)
    cap = _trainable_macs(ctx, base)
    res = optimize_space(base, ctx.board, widths=sc["widths"] or None,
                         resolutions=_resolutions(sc, (h, w), ctx.bundle.train.x),
                         samples=sc["samples"], rng=np.random.default_rng(ctx.cfg["run"]["seed"]),
                         progress=ctx.rank == 0, max_macs=None if cap is None else cap["max_macs"])
    out = res.to_json()
    if cap is not None:
        out["train_cost"] = cap
    write_json(d / rd.SPACE_JSON, out)
    plot_flops_cdf(res, d / "flops_cdf.png")
    spec = res.chosen_spec
    ctx.log(f"space: {sc['block']} blocks, width {spec.width_mult} x resolution {spec.resolution[0]}x"
            f"{spec.resolution[1]}, {res.chosen_row['macs_mean'] / 1e6:.1f} M MACs on average")
    return {"space_json": str(d / rd.SPACE_JSON), "width_mult": spec.width_mult,
            "resolution": list(spec.resolution), "block": sc["block"]}


def _trainable_macs(ctx: Context, base) -> dict[str, Any] | None:
    """Under a time budget: the most MACs a space's subnets may average and still see
    max(space.min_epochs epochs, space.min_images) images in the supernet's share (None without a budget).

    The training cost per image is measured here on this machine (train.probe),
    at the middle of the width grid, so the cap follows the machine and the data size.
    """
    if ctx.clock.total_s is None:
        return None
    sc, t = ctx.cfg["space"], ctx.cfg["train"]
    widths = sorted(check_widths(sc["widths"] or list(base.widths)))
    cost = probe_train_cost(base.with_config(width_mult=widths[len(widths) // 2]), t["batch_size"],
                            seed=ctx.cfg["run"]["seed"])
    seconds = ctx.clock.allot("supernet") or 0.0  # its share of what is left, as it will get it
    n = len(ctx.bundle.train)
    epochs = _epochs_needed(sc["min_epochs"], sc["min_images"], n)
    cap = cost.max_trainable_macs(seconds, n, epochs)
    ctx.log(f"space: training costs {cost.intercept_s * 1e3:.2f} ms + {cost.per_mac_s * 1e12:.1f} ms per GMAC "
            f"per image here; {epochs:.3g} supernet epochs in {seconds:.0f} s allow "
            f"{cap / 1e6:.1f} M MACs on average")
    return {"max_macs": cap, "supernet_s": round(seconds, 1), "min_epochs": round(epochs, 3), **cost.to_json()}


def _epochs_needed(min_epochs: float, min_images: int, n_images: int) -> float:
    """Passes over the training set a stage must afford: min_epochs, or more on a small set
    (CIFAR-10 needs epochs, the 1,455 digits need images: space.min_images)."""
    return max(min_epochs, min_images / max(n_images, 1))


def _resolutions(sc: dict[str, Any], hw: tuple[int, int], train_x: Any = None) -> list[tuple[int, int]]:
    """The grid's resolutions: as configured, else the default grid up to max_upscale x the input.

    Upscaling buys MACs (and accuracy) at the price of training time, so the
    small budget keeps the input size as the ceiling. Below the input size only
    resolutions that lose at most space.max_resize_loss of the images' variance
    (data.resize_loss, measured on training images) are kept: the upscaled
    digits lose 1% at 16x16 and keep it, CIFAR-10 loses 10% and does not.
    """
    if sc["resolutions"]:
        return [scaled_hw(hw, int(r)) for r in sc["resolutions"]]
    grid = [r for r in default_resolutions(hw) if r[0] <= sc["max_upscale"] * hw[0]]
    if train_x is None:
        return grid
    loss = resize_loss(train_x, [r[0] for r in grid if r[0] < hw[0]])
    return [r for r in grid if r[0] >= hw[0] or loss[r[0]] <= sc["max_resize_loss"]]


def stage_supernet(ctx: Context, d: Path) -> dict[str, Any]:
    # Train at the chosen resolution only: the search scores subnets there, and
    # sampling the space stage's whole resolution grid spent 2 of 3 steps elsewhere.
    spec = replace_spec(load_space(rd.RunDir(ctx.out).space_json), resolutions=[])
    t = ctx.cfg["train"]
    paths = _searchable_paths(ctx, spec) if t["paths"] == "searchable" else None
    summary = train_supernet(spec, ctx.bundle, ctx.meta, d, epochs=t["epochs"], batch_size=t["batch_size"],
                             lr=t["lr"], weight_decay=t["weight_decay"], paths_per_step=t["paths_per_step"],
                             seed=ctx.cfg["run"]["seed"],
                             resume=True, progress=ctx.rank == 0, sampling=t["sampling"],
                             warmup_epochs=t["warmup_epochs"], nesterov=t["nesterov"], end_lr=t["end_lr"],
                             time_budget_s=ctx.allotted.get("supernet"), paths=paths)
    limit = None if paths is None else paths.record.get("max_macs")
    return {"supernet_dir": str(d), **_scalars(summary), **({} if limit is None else {"paths_max_macs": limit})}


def _searchable_paths(ctx: Context, spec) -> PathFilter:
    """Only paths the search may hand back: they fit the board (and run.latency_ms), and under a
    time budget stay within PATHS_SLACK x the MACs the fine-tune can train (forecast from the
    space stage's probe and the shares, before the supernet has measured its own speed)."""
    lat = ctx.cfg["run"]["latency_ms"] or None
    n = len(ctx.bundle.train)
    epochs = _epochs_needed(ctx.cfg["finetune"]["min_epochs"], ctx.cfg["space"]["min_images"], n)
    space = json.loads(rd.RunDir(ctx.out).space_json.read_text(encoding="utf-8"))
    forecast = search_macs_limit(space, None, ctx.clock.forecast("finetune", "supernet"), n, epochs)
    macs = _resumed_paths_macs(ctx, lat)
    if macs is None and forecast is not None:
        macs = PATHS_SLACK * forecast

    # the search's own feasibility test (Problem.cost), so "searchable" cannot drift from what it keeps
    problem = Problem(spec, CostModel(spec, ctx.board), accuracy=lambda archs: None, latency_ms=lat, max_macs=macs)
    record = {"board": ctx.board.id, "latency_ms": lat, "max_macs": None if macs is None else round(macs)}
    ctx.log("supernet: training only paths the search may hand back (fit the board"
            + ("" if lat is None else f", {lat:g} ms") + ("" if macs is None else f", <= {macs / 1e6:.1f} M MACs: "
            f"{PATHS_SLACK:g} x what the fine-tune can train for {epochs:.3g} epochs, as forecast") + ")")
    return PathFilter(lambda g: problem.cost(g).feasible, lambda g: problem.cost(g).values["macs"], record)


def _resumed_paths_macs(ctx: Context, lat: float | None) -> float | None:
    """The MACs limit an interrupted supernet trained under, so that it resumes under the same one.

    A fresh forecast from what is left of the clock would differ, and the
    checkpoint (rightly) refuses to resume under other limits.
    """
    d = ctx.stage_dir("supernet")
    if not (d / rd.CHECKPOINT).is_file():
        return None
    try:
        prev = json.loads((d / rd.TRAIN_JSON).read_text(encoding="utf-8")).get("paths") or {}
    except (OSError, ValueError):
        return None
    same = prev.get("board") == ctx.board.id and prev.get("latency_ms") == lat
    return float(prev["max_macs"]) if same and prev.get("max_macs") is not None else None


def stage_search(ctx: Context, d: Path) -> dict[str, Any]:
    s = ctx.cfg["search"]
    lat = ctx.cfg["run"]["latency_ms"] or None
    n = len(ctx.bundle.train)
    epochs = _epochs_needed(ctx.cfg["finetune"]["min_epochs"], ctx.cfg["space"]["min_images"], n)
    macs = search_macs_limit(json.loads(rd.RunDir(ctx.out).space_json.read_text(encoding="utf-8")),
                             result_value(ctx.results, "supernet", "images_per_s"), _finetune_seconds(ctx), n, epochs,
                             trained_macs_mean=result_value(ctx.results, "supernet", "paths_macs_mean"))
    if macs is not None:
        ctx.log(f"search: subnets over {macs / 1e6:.1f} M MACs are out (the fine-tune could not train them "
                f"for {epochs:.3g} epochs in its share: finetune.min_epochs, space.min_images)")
    trained = result_value(ctx.results, "supernet", "paths_max_macs")
    if trained is not None and (macs is None or trained < macs):
        macs = float(trained)
        ctx.log(f"search: subnets over {macs / 1e6:.1f} M MACs are out (the supernet trained no bigger paths)")
    res = run_search(ctx.out / "supernet", ctx.board, d, strategy=s["strategy"], budget=s["candidates"],
                     seed=ctx.cfg["run"]["seed"], latency_ms=lat, calib_images=s["calib_images"],
                     proxy_images=s["proxy_images"] or None, bundle=ctx.bundle, progress=ctx.rank == 0,
                     prefer=s["prefer"], tie_z=s["tie_z"], time_budget_s=ctx.allotted.get("search"),
                     max_macs=macs)
    best = res["best"]
    sel = res.get("selection") or {}
    ctx.log(f"search: winner {best['accuracy']:.4f} {sel.get('split', 'val')} accuracy (inherited weights; "
            f"cheapest of {sel.get('tied', 1)} within noise of the best), {best['macs']:,} MACs, "
            f"SRAM {best['sram_bytes']:,} B, flash {best['flash_bytes']:,} B, {best['latency_ms']:.1f} ms")
    return {"best_arch": str(d / rd.BEST_ARCH), "accuracy_supernet": best["accuracy"],
            "candidates": len(res["history"]), "max_macs": macs}


def _finetune_seconds(ctx: Context) -> float | None:
    """What the fine-tune will get under the clock: what is left once the search has its allotment."""
    if ctx.clock.deadline is None or "search" not in ctx.allotted:
        return None
    return max(ctx.clock.deadline.remaining() - ctx.allotted["search"], 0.0)


def search_macs_limit(space: dict[str, Any], measured_images_per_s: float | None = None,
                      finetune_s: float | None = None, n_images: int = 0,
                      min_epochs: float | None = None, trained_macs_mean: float | None = None) -> float | None:
    """The most MACs the winner may have under a time budget (None without one).

    The winner is trained alone in the fine-tune, so the limit is the most
    MACs that still see `min_epochs` (finetune.min_epochs; the space stage's
    epochs when None) epochs of the training set in the fine-tune's seconds:
    at the speed the supernet really trained when it is given (the space
    stage's few-second probe rescaled by minutes of supernet training: a probe
    taken during a neighbour's burst once moved the cap five-fold), else at
    the probe's (a forecast, before the supernet has run). The measured speed
    is that of paths averaging `trained_macs_mean` MACs when the supernet
    trained only some (train.paths = "searchable"), else the space's mean:
    taking the smaller paths' speed for the space's mean once doubled the
    limit (12.8 M MACs against 6.5 M). Without the
    fine-tune's seconds it is the space stage's cap. Without any limit the
    winner was the biggest subnet that fits the board (CIFAR-10 at 20 min on
    stm32f746g-disco: 25.4 M MACs against a cap of 8.9 M; it lost to
    ResNet-8). The limit never drops below the chosen space's 10th
    percentile, so part of the space stays searchable.
    """
    tc = space.get("train_cost")
    if tc is None:
        return None
    row = next((r for r in space["table"] if r["width_mult"] == space["chosen"]["width_mult"]
                and list(r["resolution"]) == list(space["chosen"]["resolution"])), None) or {}
    cap = tc["max_macs"]
    if finetune_s is not None and n_images:
        cost = TrainCost.from_json(tc)
        mean = trained_macs_mean or row.get("macs_mean")
        if measured_images_per_s and mean:
            cost = cost.rescaled(mean, measured_images_per_s)
        cap = cost.max_trainable_macs(finetune_s, n_images, tc["min_epochs"] if min_epochs is None else min_epochs)
    return float(max(cap, row.get("macs_p10") or 0.0))


def stage_finetune(ctx: Context, d: Path) -> dict[str, Any]:
    f = ctx.cfg["finetune"]
    arch = load_arch(rd.RunDir(ctx.out).best_arch)
    res = finetune(arch, ctx.out / "supernet", ctx.bundle, d, None if "finetune" in ctx.allotted else f["epochs"],
                   lr=f["lr"],
                   distill=f["distill"], seed=ctx.cfg["run"]["seed"], progress=ctx.rank == 0,
                   data_meta=ctx.meta, force=True, keep_best=f["keep_best"],
                   batch_size=ctx.cfg["train"]["batch_size"], weight_decay=ctx.cfg["train"]["weight_decay"],
                   calib_images=ctx.cfg["search"]["calib_images"],
                   time_budget_s=ctx.allotted.get("finetune"))
    sel = res["selection"]
    ctx.log(f"finetune: float top-1 {res['accuracy_float']:.4f} (inherited {res['accuracy_inherited']:.4f}); "
            f"kept epoch {sel['best_epoch']} by {sel['split']} accuracy {sel['best']}"
            f"{'' if res['distill'] else ' (no distillation: ' + res['teacher']['reason'] + ')'}")
    return {"accuracy_float": res["accuracy_float"], "accuracy_inherited": res["accuracy_inherited"],
            "best_epoch": sel["best_epoch"], "steps": res["steps"], "planned_steps": res["planned_steps"]}


def stage_export(ctx: Context, d: Path) -> dict[str, Any]:
    e = ctx.cfg["export"]
    ft = ctx.out / "finetune"
    arch = load_arch(ft / rd.ARCH_JSON)
    sd = load_torch(ft / rd.MODEL_WEIGHTS)
    res = export_subnet(arch, sd, ctx.bundle, d, io=e["io"], target=e["target"], name=e["name"],
                        rep_samples=e["rep_samples"], force=True, progress=ctx.rank == 0,
                        labels=ctx.bundle.class_names, data_record=ctx.meta, seed=ctx.cfg["run"]["seed"],
                        board=ctx.board)
    ctx.log(f"export: int8 top-1 {res['accuracy_int8']:.4f} (TFLM), float {res['accuracy_float']:.4f}")
    return {k: res[k] for k in ("accuracy_float", "accuracy_int8") if k in res}


def stage_profile(ctx: Context, d: Path) -> dict[str, Any]:
    tfl = rd.RunDir(ctx.out).tflite
    g = read_tflite(tfl)
    lat = ctx.cfg["run"]["latency_ms"] or None
    prof = profile_graph(g, ctx.board, measured_arena=_measured_arena(ctx.out, tfl), lut=lut_for_board(ctx.board),
                         image_for=predict_if_calibrated,
                         latency_limit_ms=lat)
    write_json(d / rd.PROFILE_JSON, prof)
    write_text(d / "profile.txt", format_report(prof) + "\n")
    plot_memory(prof, str(d / "memory.png"))
    plot_latency(prof, d / "latency.png", lat)
    ctx.log(f"profile: SRAM {prof['sram_bytes']:,} B (kArenaBytes {prof['arena_bytes_firmware']:,} + reserve), "
            f"flash {prof['flash_bytes']:,} B, {prof['latency_ms']:.1f} ms, fits={prof['fits']}")
    return {"fits": prof["fits"]}


def _measured_arena(out: Path, tfl: Path) -> int | None:
    """The export's TFLM arena measurement of this very file (measured once per run), else a new one."""
    try:
        exp = json.loads(rd.RunDir(out).export_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        exp = {}
    if exp.get("arena_bytes_measured") and exp.get("model_bytes") == tfl.stat().st_size:
        return int(exp["arena_bytes_measured"])
    return measure_arena(tfl.read_bytes()).arena_bytes


STAGES: list[tuple[str, Callable[[Context, Path], dict[str, Any]]]] = [
    ("space", stage_space), ("supernet", stage_supernet), ("search", stage_search),
    ("finetune", stage_finetune), ("export", stage_export), ("profile", stage_profile),
]
RESUMABLE = {"supernet"}


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool))}


def _finished(marker: Path, h: str) -> StageRecord | None:
    try:
        rec = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return StageRecord.from_json(rec) if rec.get("hash") == h else None


def _agreed(ctx: Context, seconds: float) -> float:
    """Rank 0's allotment on every rank: all ranks must plan the same steps and candidates."""
    if ctx.world == 1:
        return seconds
    import torch
    import torch.distributed as dist

    t = torch.tensor([seconds], dtype=torch.float64)
    dist.broadcast(t, 0)
    return float(t[0])


def _time_record(ctx: Context, name: str, spent: float) -> dict[str, Any]:
    """A stage's planned and spent seconds (planned only for the timed stages), for the report."""
    if ctx.clock.total_s is None:
        return {}
    if name not in ON_THE_CLOCK:
        ctx.log(f"{name}: {spent:.1f} s, outside the time budget")
        return {"spent_s": round(spent, 2), "in_budget": False}
    planned = ctx.allotted.get(name)
    if planned is not None:
        ctx.log(f"{name}: spent {spent:.1f} s of {planned:.1f} s planned")
    return {"planned_s": None if planned is None else round(planned, 2), "spent_s": round(spent, 2),
            "share": ctx.clock.shares.get(name), "in_budget": True}


def _barrier(ctx: Context) -> None:
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _prepare(d: Path, name: str, stale: bool) -> None:
    """Clear a stage's directory unless it holds a checkpoint to resume from."""
    if d.exists() and (stale or name not in RESUMABLE):
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)


def run_stages(ctx: Context) -> Records:
    """Run or skip every stage; returns each stage's record (also in DIR/<stage>/stage.json)."""
    up = ""
    for name, fn in STAGES:
        h = stage_hash(ctx.cfg, name, up)
        d = ctx.stage_dir(name)
        marker = d / rd.STAGE_JSON
        done = _finished(marker, h)
        if done is not None:
            ctx.log(f"{name}: finished earlier ({done.wall_s} s), skipped")
            ctx.results[name] = done
            if name in ON_THE_CLOCK:
                ctx.clock.charge(done.wall_s)
            up = h
            if name == TIMED_STAGES[-1]:
                ctx.clock.close()
            continue
        stale = marker.exists()  # finished with other options: start over
        if ctx.rank == 0:
            _prepare(d, name, stale)
        _barrier(ctx)
        if name in RESUMABLE and (d / rd.CHECKPOINT).exists():
            ctx.log(f"{name}: resuming from {d / 'checkpoint.pt'}")
        else:
            ctx.log(f"{name}: running")
        t0 = time.time()
        if name in TIMED_STAGES and ctx.clock.total_s is not None:
            ctx.allotted[name] = _agreed(ctx, ctx.clock.allot(name))
        result: dict[str, Any] = {}
        if ctx.rank == 0 or name in ALL_RANKS:
            result = fn(ctx, d)
        rec = StageRecord(stage=name, hash=h, wall_s=round(time.time() - t0, 1), result=result,
                          **_time_record(ctx, name, time.time() - t0))
        if ctx.rank == 0:
            write_json(marker, rec.to_json())
        _barrier(ctx)
        ctx.results[name] = rec
        up = h
        if name == TIMED_STAGES[-1]:
            ctx.clock.close()
    return ctx.results
