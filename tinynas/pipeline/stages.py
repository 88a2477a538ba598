"""Run the pipeline's stages in order, each into DIR/<stage>/, skipping finished ones.

A stage is finished when DIR/<stage>/stage.json exists and records the hash of
the options it depends on (its own section, the run's identity and its
upstream stage's hash). Change an option and that stage and everything after
it run again; interrupt a run and the next one skips what finished and resumes
supernet training from its last checkpoint.

Under torchrun the training and search stages run on every rank (DDP and
sharded candidate evaluation); the other stages run on rank 0 while the rest
wait at a barrier.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..atomic import write_json
from .config import stage_hash

ALL_RANKS = {"supernet", "search"}


@dataclass
class Context:
    """What every stage gets: the effective config, the board, the data, where to write."""

    cfg: dict[str, dict[str, Any]]
    out: Path
    board: Any
    bundle: Any
    meta: dict[str, Any]
    rank: int = 0
    world: int = 1
    log: Callable[[str], None] = print
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def stage_dir(self, name: str) -> Path:
        return self.out / name


# ------------------------------------------------------------------ the stages


def stage_space(ctx: Context, d: Path) -> dict[str, Any]:
    from ..space.optimize import optimize_space, plot_flops_cdf
    from ..space.spec import load_space

    c, h, w = ctx.bundle.input_shape
    base = load_space(None, input_channels=c, resolution=[h, w], num_classes=ctx.bundle.num_classes)
    sc = ctx.cfg["space"]
    res = optimize_space(base, ctx.board, widths=sc["widths"] or None,
                         resolutions=_resolutions(sc, (h, w)),
                         samples=sc["samples"], rng=np.random.default_rng(ctx.cfg["run"]["seed"]),
                         progress=ctx.rank == 0)
    write_json(d / "space.json", res.to_json())
    plot_flops_cdf(res, d / "flops_cdf.png")
    spec = res.chosen_spec
    ctx.log(f"space: width {spec.width_mult} x resolution {spec.resolution[0]}x{spec.resolution[1]}")
    return {"space_json": str(d / "space.json"), "width_mult": spec.width_mult,
            "resolution": list(spec.resolution)}


def _resolutions(sc: dict[str, Any], hw: tuple[int, int]) -> list[tuple[int, int]]:
    """The grid's resolutions: as configured, else the default grid up to max_upscale x the input.

    Upscaling buys MACs (and accuracy) at the price of training time, so the
    small budget keeps the input size as the ceiling.
    """
    from ..space.optimize import default_resolutions, scaled_hw

    if sc["resolutions"]:
        return [scaled_hw(hw, int(r)) for r in sc["resolutions"]]
    return [r for r in default_resolutions(hw) if r[0] <= sc["max_upscale"] * hw[0]]


def stage_supernet(ctx: Context, d: Path) -> dict[str, Any]:
    from ..space.spec import load_space, replace_spec
    from ..train import train_supernet

    # Train at the chosen resolution only: the search scores subnets there, and
    # sampling the space stage's whole resolution grid spent 2 of 3 steps elsewhere.
    spec = replace_spec(load_space(ctx.out / "space" / "space.json"), resolutions=[])
    t = ctx.cfg["train"]
    summary = train_supernet(spec, ctx.bundle, ctx.meta, d, epochs=t["epochs"], batch_size=t["batch_size"],
                             lr=t["lr"], paths_per_step=t["paths_per_step"], seed=ctx.cfg["run"]["seed"],
                             resume=True, progress=ctx.rank == 0, sampling=t["sampling"],
                             warmup_epochs=t["warmup_epochs"], nesterov=t["nesterov"])
    return {"supernet_dir": str(d), **_scalars(summary)}


def stage_search(ctx: Context, d: Path) -> dict[str, Any]:
    from ..search import run_search

    s = ctx.cfg["search"]
    lat = ctx.cfg["run"]["latency_ms"] or None
    res = run_search(ctx.out / "supernet", ctx.board, d, strategy=s["strategy"], budget=s["candidates"],
                     seed=ctx.cfg["run"]["seed"], latency_ms=lat, calib_images=s["calib_images"],
                     proxy_images=s["proxy_images"] or None, bundle=ctx.bundle, progress=ctx.rank == 0,
                     prefer=s["prefer"], tie_z=s["tie_z"])
    best = res["best"]
    sel = res.get("selection") or {}
    ctx.log(f"search: winner {best['accuracy']:.4f} {sel.get('split', 'val')} accuracy (inherited weights; "
            f"cheapest of {sel.get('tied', 1)} within noise of the best), {best['macs']:,} MACs, "
            f"SRAM {best['sram_bytes']:,} B, flash {best['flash_bytes']:,} B, {best['latency_ms']:.1f} ms")
    return {"best_arch": str(d / "best_arch.json"), "accuracy_supernet": best["accuracy"]}


def stage_finetune(ctx: Context, d: Path) -> dict[str, Any]:
    from ..space.arch import load_arch
    from ..train import finetune

    f = ctx.cfg["finetune"]
    arch = load_arch(ctx.out / "search" / "best_arch.json")
    res = finetune(arch, ctx.out / "supernet", ctx.bundle, d, f["epochs"], lr=f["lr"],
                   distill=f["distill"], seed=ctx.cfg["run"]["seed"], progress=ctx.rank == 0,
                   data_meta=ctx.meta, force=True, keep_best=f["keep_best"],
                   batch_size=ctx.cfg["train"]["batch_size"],
                   calib_images=ctx.cfg["search"]["calib_images"])
    sel = res["selection"]
    ctx.log(f"finetune: float top-1 {res['accuracy_float']:.4f} (inherited {res['accuracy_inherited']:.4f}); "
            f"kept epoch {sel['best_epoch']} by {sel['split']} accuracy {sel['best']}"
            f"{'' if res['distill'] else ' (no distillation: ' + res['teacher']['reason'] + ')'}")
    return {"accuracy_float": res["accuracy_float"], "accuracy_inherited": res["accuracy_inherited"],
            "best_epoch": sel["best_epoch"]}


def stage_export(ctx: Context, d: Path) -> dict[str, Any]:
    import torch

    from ..deploy import export_subnet
    from ..space.arch import load_arch

    e = ctx.cfg["export"]
    ft = ctx.out / "finetune"
    arch = load_arch(ft / "arch.json")
    sd = torch.load(ft / "model.pt", map_location="cpu", weights_only=True)
    res = export_subnet(arch, sd, ctx.bundle, d, io=e["io"], target=e["target"], name=e["name"],
                        rep_samples=e["rep_samples"], force=True, progress=ctx.rank == 0,
                        labels=ctx.bundle.class_names, data_record=ctx.meta, seed=ctx.cfg["run"]["seed"])
    ctx.log(f"export: int8 top-1 {res['accuracy_int8']:.4f} (TFLM), float {res['accuracy_float']:.4f}")
    return {k: res[k] for k in ("accuracy_float", "accuracy_int8") if k in res}


def stage_profile(ctx: Context, d: Path) -> dict[str, Any]:
    from ..atomic import write_text
    from ..latency import lut_for_board
    from ..profile import format_report, plot_memory, profile_graph
    from ..tflite_reader import read_tflite
    from ..tflm_measure import measure_arena
    from .report import plot_latency

    tfl = ctx.out / "export" / "model.tflite"
    g = read_tflite(tfl)
    m = measure_arena(tfl.read_bytes())
    lat = ctx.cfg["run"]["latency_ms"] or None
    prof = profile_graph(g, ctx.board, measured_arena=m.arena_bytes, lut=lut_for_board(ctx.board),
                         latency_limit_ms=lat)
    write_json(d / "profile.json", prof)
    write_text(d / "profile.txt", format_report(prof) + "\n")
    plot_memory(prof, str(d / "memory.png"))
    plot_latency(prof, d / "latency.png", lat)
    ctx.log(f"profile: arena {prof['arena_bytes_device']:,} B (device), flash {prof['flash_bytes']:,} B, "
            f"{prof['latency_ms']:.1f} ms, fits={prof['fits']}")
    return {"fits": prof["fits"]}


STAGES: list[tuple[str, Callable[[Context, Path], dict[str, Any]]]] = [
    ("space", stage_space), ("supernet", stage_supernet), ("search", stage_search),
    ("finetune", stage_finetune), ("export", stage_export), ("profile", stage_profile),
]
RESUMABLE = {"supernet"}


def _scalars(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool))}


def _finished(marker: Path, h: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if rec.get("hash") == h else None


def _barrier(ctx: Context) -> None:
    if ctx.world > 1:
        import torch.distributed as dist

        dist.barrier()


def _prepare(d: Path, name: str, stale: bool) -> None:
    """Clear a stage's directory unless it holds a checkpoint to resume from."""
    if d.exists() and (stale or name not in RESUMABLE):
        shutil.rmtree(d)
    d.mkdir(parents=True, exist_ok=True)


def run_stages(ctx: Context) -> dict[str, dict[str, Any]]:
    """Run or skip every stage; returns each stage's record (also in DIR/<stage>/stage.json)."""
    up = ""
    for name, fn in STAGES:
        h = stage_hash(ctx.cfg, name, up)
        d = ctx.stage_dir(name)
        marker = d / "stage.json"
        done = _finished(marker, h)
        if done is not None:
            ctx.log(f"{name}: finished earlier ({done['wall_s']} s), skipped")
            ctx.results[name] = done
            up = h
            continue
        stale = marker.exists()  # finished with other options: start over
        if ctx.rank == 0:
            _prepare(d, name, stale)
        _barrier(ctx)
        if name in RESUMABLE and (d / "checkpoint.pt").exists():
            ctx.log(f"{name}: resuming from {d / 'checkpoint.pt'}")
        else:
            ctx.log(f"{name}: running")
        t0 = time.time()
        result: dict[str, Any] = {}
        if ctx.rank == 0 or name in ALL_RANKS:
            result = fn(ctx, d)
        rec = {"stage": name, "hash": h, "wall_s": round(time.time() - t0, 1), "result": result}
        if ctx.rank == 0:
            write_json(marker, rec)
        _barrier(ctx)
        ctx.results[name] = rec
        up = h
    return ctx.results
