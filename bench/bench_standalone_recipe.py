"""Training-recipe screen on one architecture at equal CPU time, variants side by side.

Why: the fine-tune, the baselines and `bench_vs_scratch` share one standalone
recipe (batch, peak lr, weight decay, warm-up, label smoothing, crop + flip),
and at a 20-minute budget it is the recipe, not the search, that sets most of
the accuracy. This trains the winner of a finished run (`--from-run`, its data
split and recipe) from random init under each variant for the same seconds
(`--time`), N at a time (`--side-by-side`, each at OMP_NUM_THREADS=1, so a pair
sees the same hour of a drifting machine), and reports:

- `selection`: the best epoch's accuracy on the holdout carved from the
  training split: what a choice of recipe may be made on;
- `accuracy_float`: that epoch's accuracy on the validation split, for
  information only (choosing a default by it and then reporting validation
  figures would tune on the reported split).

A variant is `NAME:key=value,key=value` with train_arch keywords (lr,
weight_decay, batch_size, label_smoothing, warmup_epochs, nesterov, momentum);
the run's own recipe is the row `base`.

    .venv/bin/python bench/bench_standalone_recipe.py --from-run runs/eq_cifar/run --time 8m \\
        --variants wd5e-4:weight_decay=5e-4 lr0.1:lr=0.1 --side-by-side 2 --out runs/recipe

Prints one JSON object (also OUT/standalone_recipe.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from tinynas.atomic import write_json
from tinynas.data.meta import load_from_meta
from tinynas.errors import UserError
from tinynas.pipeline.config import standalone_recipe
from tinynas.space.arch import load_arch
from tinynas.timebudget import parse_duration
from tinynas.train.finetune import train_arch

KEYS = {"lr": float, "weight_decay": float, "batch_size": int, "label_smoothing": float,
        "warmup_epochs": float, "nesterov": lambda s: s.lower() in ("1", "true", "yes"), "momentum": float}


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`NAME:k=v,k=v` -> (NAME, {k: v}); unknown keys are refused so a typo is not a silent `base`."""
    name, _, body = text.partition(":")
    if not name or name == "base":
        raise UserError(f"--variants: {text!r} needs a name other than 'base' before ':'")
    kw: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        k, _, v = item.partition("=")
        if k not in KEYS or not v:
            raise UserError(f"--variants: {item!r} in {text!r}: use key=value with a key from {', '.join(KEYS)}")
        kw[k] = KEYS[k](v)
    return name, kw


def base_recipe(run: Path) -> dict[str, Any]:
    """The standalone recipe the run's baselines and scratch use: its [train] table."""
    return standalone_recipe(tomllib.loads((run / "run.toml").read_text())["train"])


def train_one(run: Path, name: str, kw: dict[str, Any], budget_s: float, out: Path, seed: int) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    meta = json.loads((run / "finetune" / "data.json").read_text())
    bundle = load_from_meta(meta)
    arch = load_arch(run / "finetune" / "arch.json")
    recipe = {**base_recipe(run), **kw}
    res = train_arch(arch, bundle, out / name, None, data_meta=meta, seed=seed, force=True, progress=False,
                     keep_best=True, time_budget_s=budget_s, **recipe)
    sel = res["selection"]
    return {"variant": name, "recipe": recipe, "selection_split": sel["split"], "selection": sel["best"],
            "best_epoch": sel["best_epoch"], "accuracy_float": res["accuracy_float"], "steps": res["steps"],
            "images_per_s": round(res["steps"] * recipe["batch_size"] / max(res["spent_s"], 1e-9), 1),
            "spent_s": round(res["spent_s"], 1)}


def contest(name: str, argv: list[str], out: Path) -> dict:
    """One variant in its own process, so side-by-side variants each get a core."""
    done = out / f"{name}.json"
    subprocess.run([sys.executable, __file__, *argv, "--one", name], check=True)
    return json.loads(done.read_text())


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from-run", required=True, help="a finished `tinynas run` directory")
    p.add_argument("--time", default="8m", help="training time per variant, e.g. 8m")
    p.add_argument("--variants", nargs="*", default=[], metavar="NAME:k=v,...")
    p.add_argument("--side-by-side", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/standalone_recipe")
    p.add_argument("--no-base", action="store_true", help="leave out the run's own recipe (already measured)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    run = Path(args.from_run)
    if not (run / "finetune" / "arch.json").is_file() or not (run / "run.toml").is_file():
        raise UserError(f"--from-run: {run} is not a finished run (no finetune/arch.json or run.toml)")
    args.budget_s = parse_duration(args.time)
    args.parsed = dict(parse_variant(v) for v in args.variants)
    return args


def main(argv: list[str]) -> int:
    try:
        args = parse(argv)
    except UserError as e:
        print(f"bench_standalone_recipe: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        row = train_one(Path(args.from_run), args.one, args.parsed.get(args.one, {}), args.budget_s, out, args.seed)
        write_json(out / f"{args.one}.json", row)
        return 0
    names = [*([] if args.no_base else ["base"]), *args.parsed]
    with ThreadPoolExecutor(args.side_by_side) as pool:  # threads only wait on the variants' processes
        rows = list(pool.map(lambda n: contest(n, argv, out), names))
    result = {"from_run": args.from_run, "time": args.time, "side_by_side": args.side_by_side, "rows": rows,
              "best_by_selection": max(rows, key=lambda r: r["selection"])["variant"]}
    write_json(out / "standalone_recipe.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
