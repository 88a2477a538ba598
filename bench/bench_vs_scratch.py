"""The pipeline's winner against the same architecture trained from scratch, at equal training compute.

Prints one JSON object (also OUT/vs_scratch.json).

In one invocation:
1. `tinynas run` (as a user runs it, a child process) on --data and --board
   with --config / --budget, into OUT/run;
2. the arch it hands back (OUT/run/finetune/arch.json) trained from random
   init (residual BN zero-initialised) by `train_arch`, with the supernet's
   recipe (batch, peak lr, warm-up, label smoothing, augmentation), the best
   epoch kept by holdout accuracy exactly as the fine-tune does, for as much
   training as the whole pipeline had, to the step (the cosine schedule ends
   exactly there, the last epoch partial; rounding up to whole epochs once
   gave scratch 6% more steps):
   --equal steps (default, the issue's definition): as many SGD steps as the
   supernet and the fine-tune took together; --equal images: as many images
   through forward + backward, where a supernet step with k paths counts k
   times (stricter for the pipeline when sampling = "sandwich");
3. that model exported to int8 exactly as the run's winner (`export_subnet`):
   int8 top-1 in TFLM on the same validation split.

Both are measured on the validation split, which neither chose anything on
(choices use the holdout carved from the training split).

    .venv/bin/python bench/bench_vs_scratch.py --data digits --out runs/vs_scratch_digits
    .venv/bin/python bench/bench_vs_scratch.py --data ../shared/data/cifar10-jpeg/train.zip --val-count 5000 \\
        --config t20m.toml --out runs/vs_scratch_cifar

where t20m.toml holds `[run] time = "20m"`. `--reuse-run` takes a finished run
already at OUT/run (for example one that `bench_equal_time.py` made: link or
copy its run folder there) and trains only the scratch side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import torch

from tinynas.data.meta import load_from_meta
from tinynas.deploy.pipeline import export_subnet
from tinynas.pipeline.config import standalone_recipe
from tinynas.space.arch import load_arch
from tinynas.train.finetune import train_arch


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def pipeline_work(run: Path) -> dict:
    """Steps and images (x paths per step) the run trained: supernet plus fine-tune."""
    tj = read(run / "supernet" / "train.json")
    ft = read(run / "finetune" / "finetune.json")
    sn_steps = sum(h["steps"] for h in tj["history"])
    ft_steps = sum(h["steps"] for h in ft["history"])
    ft_bs = min(ft["config"]["batch_size"], tj["n_train"])
    return {"supernet_steps": sn_steps, "finetune_steps": ft_steps, "total_steps": sn_steps + ft_steps,
            "supernet_images": sn_steps * tj["batch_size"] * tj["paths_per_step"],
            "finetune_images": ft_steps * ft_bs, "sampling": tj.get("sampling", "uniform"),
            "paths_per_step": tj["paths_per_step"], "supernet_wall_s": tj["wall_s"], "finetune_wall_s": ft["wall_s"],
            "total_images": sn_steps * tj["batch_size"] * tj["paths_per_step"] + ft_steps * ft_bs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--board", default="stm32f746g-disco")
    ap.add_argument("--val-count", type=int, default=None)
    ap.add_argument("--config", default=None, help="run.toml for `tinynas run`")
    ap.add_argument("--budget", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reuse-run", action="store_true", help="reuse a finished OUT/run instead of running again")
    ap.add_argument("--reuse-scratch", action="store_true",
                    help="reuse OUT/scratch when it was trained for the same number of steps")
    ap.add_argument("--equal", choices=["steps", "images"], default="steps",
                    help="what scratch gets as much of as the pipeline (default: %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    run = out / "run"
    cmd = [str(Path(sys.executable).with_name("tinynas")), "run", "--board", args.board, "--data", args.data,
           "--out", str(run), "--target", "none"]
    cmd += ["--config", args.config] if args.config else []
    cmd += ["--budget", args.budget] if args.budget else []
    cmd += ["--val-count", str(args.val_count)] if args.val_count else []
    t0 = time.perf_counter()
    if not (args.reuse_run and (run / "summary.json").exists()):
        subprocess.run(cmd, check=True)
    run_wall = time.perf_counter() - t0
    summary = read(run / "summary.json")
    meta = read(run / "finetune" / "data.json")
    cfg = tomllib.loads((run / "run.toml").read_text())
    bundle = load_from_meta(meta)
    arch = load_arch(run / "finetune" / "arch.json")
    imgs = pipeline_work(run)
    t = cfg["train"]
    bs = min(t["batch_size"], len(bundle.train))
    steps_per_epoch = len(bundle.train) // bs
    need = imgs["total_steps"] if args.equal == "steps" else round(imgs["total_images"] / bs)
    done = out / "scratch" / "finetune.json"
    if args.reuse_scratch and done.exists() and read(done)["steps"] == need:
        scratch = read(done)  # trained earlier by this script for the same steps
    else:
        scratch = train_arch(arch, bundle, out / "scratch", None, data_meta=meta, seed=cfg["run"]["seed"],
                             force=True, progress=True, total_steps=need, **{**standalone_recipe(t), "batch_size": bs})
    scratch_wall = scratch["wall_s"]
    sd = torch.load(out / "scratch" / "model.pt", map_location="cpu", weights_only=True)
    exp = export_subnet(arch, sd, bundle, out / "scratch_export", target="none", force=True, progress=False,
                        labels=bundle.class_names, data_record=meta, seed=cfg["run"]["seed"])
    ft = read(run / "finetune" / "finetune.json")
    result = {
        "data": args.data, "board": args.board, "n_train": len(bundle.train), "n_val": len(bundle.val),
        "n_holdout": 0 if bundle.holdout is None else len(bundle.holdout), "arch_macs": summary.get("macs"),
        "pipeline": {"accuracy_int8": summary["accuracy_int8"], "accuracy_float": summary["accuracy_float"],
                     "accuracy_inherited": ft.get("accuracy_inherited"), "wall_s": round(run_wall, 1),
                     "flash_bytes": summary["flash_bytes"], "sram_bytes": summary["sram_bytes"], **imgs},
        "scratch": {"accuracy_int8": exp["accuracy_int8"], "accuracy_float": scratch["accuracy_float"],
                    "equal": args.equal, "epochs": round(scratch["steps"] / steps_per_epoch, 2),
                    "steps": scratch["steps"], "images": scratch["steps"] * bs, "batch_size": bs,
                    "train_wall_s": round(scratch_wall, 1), "best_epoch": scratch["selection"]["best_epoch"]},
    }
    result["pipeline_wins_int8"] = result["pipeline"]["accuracy_int8"] > result["scratch"]["accuracy_int8"]
    result["margin_int8"] = round(result["pipeline"]["accuracy_int8"] - result["scratch"]["accuracy_int8"], 5)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vs_scratch.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
