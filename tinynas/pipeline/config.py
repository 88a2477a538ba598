"""Every option of `tinynas run`, in one place.

Precedence, lowest first: the budget preset, the --config TOML, the command
line. The effective config is written to DIR/run.toml so a run can be repeated
exactly with `tinynas run --config DIR/run.toml`.

A run is sized either by a clock or by counts (see tinynas.timebudget). The
presets are time budgets (`run.time`: small 3m, medium 30m, large 2h) split
by `[time]` shares; then supernet steps, search candidates and fine-tune steps
are planned from measured throughput and `train.epochs`, `search.candidates`
and `finetune.epochs` are ignored. Setting any of those counts at a level
(config file or command line) above the one that set the time switches the
clock off (`run.time = ""`) and the counts rule, as before the budgets
existed; `--time` together with `--epochs`/`--candidates` on one command line
is refused, and a config file holding both (every run.toml does) keeps the
clock.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Mapping

from ..errors import UserError
from ..space.spec import space_for_block
from ..timebudget import parse_duration
from ..train.optim import WEIGHT_DECAY

# Sections and keys with their types; the values here are the "small" budget.
DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {"board": "stm32f746g-disco", "data": "digits", "out": "runs/latest", "seed": 0,
            "budget": "small", "latency_ms": 0.0, "val_fraction": 0.1, "val_count": 0,
            "holdout_fraction": 0.1, "time": "3m"},
    # Shares of the time budget; each stage gets its share of what is left when it starts. The winner is
    # trained alone only in the fine-tune: at 0.6/0.1/0.3 the CIFAR-10 20 min winner got 0.6 of an epoch
    # there and lost to ResNet-8 (README, equal time); at 0.45/0.1/0.45 its holdout accuracy was 0.741,
    # at 0.25/0.1/0.65 0.770 (back to back, 2026-12-01): inherited weights help little, training does.
    # 0.15/0.1/0.75 with train.paths = "searchable" against 0.25/0.1/0.65 with "all", CIFAR-10 20 min,
    # side by side (bench_equal_time --side-by-side 2, 2026-12-02): int8 0.765 / 0.758 (seed 0),
    # 0.770 / 0.755 (seed 1), at 48 ms against 66-101 ms.
    "time": {"supernet": 0.15, "search": 0.1, "finetune": 0.75},
    # block: the space's block type (mb, fused, res). Under a time budget a space whose fitting
    # subnets are too big to see max(min_epochs x the training set, min_images) images in the
    # supernet's share is not chosen (bench/bench_equal_time.py: CIFAR-10 needs epochs, digits images),
    # and the search keeps only winners the fine-tune trains for finetune.min_epochs in its share.
    # max_resize_loss: resolutions below the input's are kept only if they lose at most this share of
    # the training images' variance (tinynas.data.resize_loss).
    "space": {"samples": 500, "widths": [], "resolutions": [], "max_upscale": 1.0, "block": "res",
              "min_epochs": 4.0, "min_images": 12000, "max_resize_loss": 0.02},
    # end_lr: where the supernet's cosine stops; 0 anneals it fully, > 0 leaves the decay for the fine-tune
    # to continue (set finetune.lr to the same value for one unbroken schedule).
    # paths: "searchable" trains only paths the search may hand back (fit the board and run.latency_ms;
    # under a time budget within 1.25 x the MACs the fine-tune can train), "all" the whole space
    # (CIFAR-10 at 20 min: a quarter of the space's paths are searchable; same benchmark as [time]).
    # weight_decay (supernet, fine-tune, baselines, scratch: one recipe): the winner of a CIFAR-10 20 min
    # run trained from scratch for 12 min, variants side by side in pairs (bench_standalone_recipe.py,
    # 2026-12-02), holdout 0.760 -> 0.765 (5e-5 -> 5e-4), 0.758 -> 0.769 (same at lr 0.1), 0.759 -> 0.767
    # (5e-4 -> 1e-3); whole runs at 20 min side by side, 5e-5 against 1e-3: int8 0.743 / 0.782 (seed 0),
    # 0.773 / 0.766 (seed 1). Head-to-head at 1e-3 (bench_equal_time, 20 min, side by side, 2026-12-02):
    # run 0.785 / 0.788 (seeds 0/1), ResNet-8 0.756, MobileNetV2 0.758; at 5e-5 0.751 / 0.752, 0.717, 0.713.
    # 2e-3 won the 12 min screen (+1.2) but lost as whole 20 min runs side by side with 1e-3 (bench_equal_time
    # --run-configs, 2026-12-02): int8 0.756 / 0.779 (seed 0), 0.777 / 0.784 (seed 1).
    "train": {"epochs": 12, "batch_size": 64, "lr": 0.05, "weight_decay": WEIGHT_DECAY, "paths_per_step": 1,
              "sampling": "uniform", "warmup_epochs": 1.0, "nesterov": False, "end_lr": 0.0, "paths": "searchable"},
    "search": {"strategy": "evolution", "candidates": 40, "calib_images": 128, "proxy_images": 1000,
               "prefer": "efficient", "tie_z": 1.0},
    # finetune.lr: the winner's inherited weights still want the supernet's peak rate. On the CIFAR-10
    # 20 min run's winner at equal steps (3,461), holdout 0.715 / 0.736 / 0.746 at lr 0.015 / 0.03 / 0.05.
    # min_epochs: under a time budget the search keeps only winners the fine-tune can train for
    # max(this many epochs, space.min_images images) in its share (the space stage's floor is space.min_epochs).
    # CIFAR-10, stm32f746g-disco, 15 min, one invocation (bench_equal_time --run-configs, 2026-12-01):
    # at 4 the winner had 11.6 M MACs, 7 fine-tune epochs, int8 0.718; at 10 (and 16) 4.1 M, 12, 0.733
    # (0.733), at half the latency.
    "finetune": {"epochs": 6, "lr": 0.05, "distill": True, "keep_best": True, "min_epochs": 10.0},
    "export": {"io": "int8", "rep_samples": 300, "target": "cmake", "name": "tinynas"},
}

# What each budget changes relative to DEFAULTS ("small"). The times are what the presets mean; the
# counts are what they ran before time budgets, kept for a run that switches the clock off.
# small = 3m: the README's first command (digits) then ends within 4 minutes, export included, and
# bench_equal_time.py measured 0.994 int8 on digits at 2m already.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "small": {},
    "medium": {"run": {"time": "30m"}, "space": {"samples": 1000, "max_upscale": 2.0}, "train": {"epochs": 40},
               "search": {"candidates": 300, "calib_images": 500, "proxy_images": 1000},
               "finetune": {"epochs": 15}},
    "large": {"run": {"time": "2h"}, "space": {"samples": 1000, "max_upscale": 2.0}, "train": {"epochs": 150},
              "search": {"candidates": 1000, "calib_images": 500, "proxy_images": 2000},
              "finetune": {"epochs": 40}},
}

TIMED_STAGES = ("supernet", "search", "finetune")  # the stages the clock sizes; also the [time] keys
COUNTS: dict[str, tuple[str, str]] = {"supernet": ("train", "epochs"), "search": ("search", "candidates"),
                                      "finetune": ("finetune", "epochs")}
LEVELS = ("preset", "file", "command line")
PATH_SETS = ("searchable", "all")  # train.paths

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "space": ("space",), "supernet": ("train",), "search": ("search",),
    "finetune": ("finetune",), "export": ("export",), "profile": (),
}


def _merge(base: dict, over: Mapping, where: str) -> None:
    for sec, vals in over.items():
        if sec == "run" and isinstance(vals, Mapping) and isinstance(vals.get("time"), (int, float)) \
                and not isinstance(vals.get("time"), bool):
            vals = {**vals, "time": f"{vals['time']:g}s"}  # TOML `time = 90` means seconds
        if sec not in DEFAULTS:
            raise UserError(f"{where}: unknown section [{sec}]; known: {', '.join(DEFAULTS)}")
        if not isinstance(vals, Mapping):
            raise UserError(f"{where}: [{sec}] must be a table of options")
        for k, v in vals.items():
            if k not in DEFAULTS[sec]:
                raise UserError(f"{where}: unknown option {sec}.{k}; known: {', '.join(DEFAULTS[sec])}")
            base[sec][k] = _coerce(v, DEFAULTS[sec][k], f"{where}: {sec}.{k}")


def _coerce(v: Any, default: Any, where: str) -> Any:
    """Check a value against the default's type, so a typo fails before hours of training."""
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise UserError(f"{where} must be true or false, got {v!r}")
        return v
    if isinstance(default, int):
        if isinstance(v, bool) or not isinstance(v, int):
            raise UserError(f"{where} must be an integer, got {v!r}")
        return v
    if isinstance(default, float):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"{where} must be a number, got {v!r}")
        return float(v)
    if isinstance(default, list):
        if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise UserError(f"{where} must be a list of numbers, got {v!r}")
        return list(v)
    if not isinstance(v, str):
        raise UserError(f"{where} must be a string, got {v!r}")
    return v


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--config {p}: no such file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"--config {p}: not valid TOML ({e})") from None


def build_config(file_cfg: Mapping | None, cli: Mapping[str, Mapping[str, Any]],
                 config_path: str = "--config") -> dict[str, dict[str, Any]]:
    """Preset <- file <- command line; the budget may come from the file or the command line."""
    budget = (cli.get("run", {}).get("budget") or (file_cfg or {}).get("run", {}).get("budget")
              or DEFAULTS["run"]["budget"])
    if budget not in PRESETS:
        raise UserError(f"budget {budget!r} is not one of {', '.join(PRESETS)}")
    cfg = copy.deepcopy(DEFAULTS)
    _merge(cfg, PRESETS[budget], "preset")
    if file_cfg:
        _merge(cfg, file_cfg, config_path)
    given = {s: {k: v for k, v in vals.items() if v is not None} for s, vals in cli.items()}
    _merge(cfg, given, "command line")
    cfg["run"]["budget"] = budget
    if _counts_beat_clock(file_cfg or {}, given):
        cfg["run"]["time"] = ""
    validate(cfg)
    return cfg


def _level(layers: list[Mapping], keys: list[tuple[str, str]]) -> int:
    """The highest layer (0 preset, 1 file, 2 command line) that sets any of `keys`; -1 for none."""
    hits = [i for i, layer in enumerate(layers) for sec, key in keys
            if isinstance(layer.get(sec), Mapping) and key in layer[sec]]
    return max(hits, default=-1)


def _counts_beat_clock(file_cfg: Mapping, cli: Mapping) -> bool:
    """True when counts were set above the level that set the time: those counts rule, the clock is off."""
    layers = [{"run": {"time": None}}, file_cfg, cli]  # every preset sets a time (DEFAULTS included)
    counts, clock = _level(layers, list(COUNTS.values())), _level(layers, [("run", "time")])
    if counts == clock == 2:
        raise UserError("--time and --epochs/--candidates both given: a time budget plans epochs and "
                        "candidates itself; pass one or the other")
    return counts > clock


def validate(cfg: Mapping[str, Mapping[str, Any]]) -> None:
    checks = [("run", "latency_ms", 0), ("run", "val_count", 0), ("space", "samples", 1),
              ("train", "epochs", 1), ("train", "batch_size", 1), ("train", "paths_per_step", 1),
              ("search", "candidates", 1), ("search", "calib_images", 2), ("search", "proxy_images", 0),
              ("finetune", "epochs", 0), ("export", "rep_samples", 1)]
    for sec, key, lo in checks:
        if cfg[sec][key] < lo:
            raise UserError(f"{sec}.{key} must be at least {lo}, got {cfg[sec][key]}")
    for sec, key in (("train", "lr"), ("finetune", "lr"), ("space", "max_upscale")):
        if not cfg[sec][key] > 0:
            raise UserError(f"{sec}.{key} must be positive, got {cfg[sec][key]}")
    if not 0 <= cfg["run"]["holdout_fraction"] < 0.5:
        raise UserError(f"run.holdout_fraction must be in [0, 0.5), got {cfg['run']['holdout_fraction']}")
    space_for_block(cfg["space"]["block"], "space.block")  # a known type per stage, no more types than stages
    if not 0 <= cfg["space"]["max_resize_loss"] <= 1:
        raise UserError(f"space.max_resize_loss must be in [0, 1], got {cfg['space']['max_resize_loss']}")
    if not cfg["space"]["min_epochs"] > 0 or cfg["space"]["min_images"] < 0:
        raise UserError(f"space.min_epochs must be positive and space.min_images >= 0, got "
                        f"{cfg['space']['min_epochs']} and {cfg['space']['min_images']}")
    if not cfg["finetune"]["min_epochs"] > 0:
        raise UserError(f"finetune.min_epochs must be positive, got {cfg['finetune']['min_epochs']}")
    if cfg["train"]["sampling"] not in ("uniform", "sandwich"):
        raise UserError(f"train.sampling must be uniform or sandwich, got {cfg['train']['sampling']!r}")
    if cfg["train"]["sampling"] == "sandwich" and cfg["train"]["paths_per_step"] < 2:
        raise UserError("train.sampling = \"sandwich\" needs train.paths_per_step >= 2")
    if cfg["train"]["paths"] not in PATH_SETS:
        raise UserError(f"train.paths must be {' or '.join(PATH_SETS)}, got {cfg['train']['paths']!r}")
    if not 0 <= cfg["train"]["end_lr"] < cfg["train"]["lr"]:
        raise UserError(f"train.end_lr must be >= 0 and below train.lr ({cfg['train']['lr']:g}), "
                        f"got {cfg['train']['end_lr']}")
    if not 0 <= cfg["train"]["weight_decay"] < 0.1:
        raise UserError(f"train.weight_decay must be in [0, 0.1), got {cfg['train']['weight_decay']}")
    if cfg["train"]["warmup_epochs"] < 0:
        raise UserError(f"train.warmup_epochs must be >= 0, got {cfg['train']['warmup_epochs']}")
    if cfg["search"]["prefer"] not in ("efficient", "accuracy"):
        raise UserError(f"search.prefer must be efficient or accuracy, got {cfg['search']['prefer']!r}")
    if cfg["search"]["tie_z"] < 0:
        raise UserError(f"search.tie_z must be >= 0, got {cfg['search']['tie_z']}")
    if not 0 < cfg["run"]["val_fraction"] < 1:
        raise UserError(f"run.val_fraction must be between 0 and 1, got {cfg['run']['val_fraction']}")
    if cfg["export"]["io"] not in ("int8", "uint8", "float32"):
        raise UserError(f"export.io must be int8, uint8 or float32, got {cfg['export']['io']!r}")
    validate_time(cfg)


def validate_time(cfg: Mapping[str, Mapping[str, Any]]) -> None:
    """run.time is "" (off) or a duration; the shares are in (0, 1) and add up to 1."""
    if cfg["run"]["time"]:
        parse_duration(cfg["run"]["time"])
    shares = cfg["time"]
    for k in TIMED_STAGES:
        if not 0 < shares[k] < 1:
            raise UserError(f"time.{k} must be a share between 0 and 1 (exclusive), got {shares[k]}; "
                            "e.g. supernet = 0.15, search = 0.1, finetune = 0.75")
    total = sum(shares[k] for k in TIMED_STAGES)
    if abs(total - 1.0) > 1e-6:
        raise UserError(f"the [time] shares must add up to 1, got {total:g} "
                        f"({' + '.join(f'{shares[k]:g}' for k in TIMED_STAGES)})")


def time_budget_s(cfg: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The run's budget in seconds, or None when it runs on counts."""
    return parse_duration(cfg["run"]["time"]) if cfg["run"]["time"] else None


def standalone_recipe(train: Mapping[str, Any]) -> dict[str, Any]:
    """`train_arch` keywords for training one arch from random init: baselines, scratch, recipe screens.

    One place, so a baseline and the scratch comparison can never drift from the run's [train] table.
    A run.toml written before `train.weight_decay` existed trained with the old hard-wired 5e-5.
    """
    return {"lr": train["lr"], "batch_size": train["batch_size"], "warmup_epochs": train["warmup_epochs"],
            "nesterov": train["nesterov"], "weight_decay": train.get("weight_decay", 5e-5)}


def stage_hash(cfg: Mapping[str, Mapping[str, Any]], stage: str, upstream: str = "") -> str:
    """What a finished stage depends on: the run's identity, its own section, and its upstream's hash.

    A changed option re-runs that stage and everything after it; anything else is skipped.
    Under a time budget the timed stages depend on the budget (in seconds, so
    "4m" and "240s" are one budget) and the shares instead of their counts.
    """
    run = {k: v for k, v in cfg["run"].items() if k not in ("out", "budget", "time")}
    own: dict[str, Any] = {s: dict(cfg[s]) for s in STAGE_SECTIONS[stage]}
    total = time_budget_s(cfg)
    if stage in COUNTS and total is not None:  # planned from the clock: the budget is its identity, not a count
        sec, key = COUNTS[stage]
        own[sec].pop(key, None)
        own["time"] = {"total_s": total, **cfg["time"]}
    if stage == "space" and total is not None:  # the trainable-MACs cap follows the supernet's time
        own["time"] = {"total_s": total, "supernet": cfg["time"]["supernet"]}
    if stage == "supernet" and cfg["train"]["paths"] == "searchable":  # which paths it trains follows these
        own["searchable"] = {"finetune_min_epochs": cfg["finetune"]["min_epochs"],
                             "min_images": cfg["space"]["min_images"]}
    blob = json.dumps({"run": run, "own": own, "up": upstream}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def to_toml(cfg: Mapping[str, Mapping[str, Any]]) -> str:
    lines = ["# Effective configuration of this run; repeat it with: tinynas run --config run.toml", ""]
    for sec, vals in cfg.items():
        lines.append(f"[{sec}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in vals.items()]
        lines.append("")
    return "\n".join(lines)
