"""What one search candidate costs to score, and how few images keep the ranking.

Prints one JSON object (also OUT/eval_cost.json).

A candidate's score is: slice it out of the supernet, recalibrate BN on K
training images, measure top-1 on P images of the selection split. That is
the unit cost of every search strategy. For --n random subnets that fit the
board, this script times the setting before issue 12 (K = 2,000 images
calibrated in batches of 250 with forward hooks pooling per-batch moments,
the whole selection split: row "before") and the current one-pass
calibration at K = 2,000 with the whole split (row "reference", the ranking
every cheaper row is compared with), then cheaper (K, P) settings: Kendall tau
of each setting's ranking against the reference, with the time split into
slicing, calibration and validation.

    .venv/bin/python bench/bench_eval_cost.py --supernet runs/x/supernet --board stm32f746g-disco --n 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tinynas.search.api import _load, proxy_indices
from tinynas.search.predictor import kendall_tau
from tinynas.supernet import SupernetEvaluator
from tinynas.supernet.bn_calib import recalibrate_bn
from tinynas.supernet.evaluate import CL, accuracy

from bench_ranking import sample_fitting  # same folder: the benchmarks sample fitting subnets alike


def pooled_hook_recalibration(model: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """The calibration before issue 12, for the "before" timing: per-batch moments pooled by hooks."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    acc = {id(m): [0, 0.0, 0.0] for m in layers}  # n, sum, sum of squares (float64)

    def hook(mod, inp):
        x = inp[0].double()
        a = acc[id(mod)]
        a[0] += x.numel() // x.shape[1]
        a[1] = a[1] + x.sum((0, 2, 3))
        a[2] = a[2] + (x * x).sum((0, 2, 3))

    hooks = [m.register_forward_pre_hook(hook) for m in layers]
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for h in hooks:
        h.remove()
    for m in layers:
        n, s1, s2 = acc[id(m)]
        m.running_mean.copy_(s1 / n)
        m.running_var.copy_((s2 - s1 * s1 / n) / (n - 1))


def timed_scores(ev: SupernetEvaluator, archs: list[dict], legacy: bool = False) -> tuple[np.ndarray, dict]:
    """Scores plus the seconds spent slicing, calibrating and validating, per candidate."""
    t = {"slice": 0.0, "calibrate": 0.0, "validate": 0.0}
    out = []
    calib, val = ev._batches(tuple(archs[0]["input"][1:]))
    chunks = list(calib[0].split(250))
    for a in archs:
        t0 = time.perf_counter()
        m = ev.supernet.get_subnet(a).to(memory_format=CL)
        t1 = time.perf_counter()
        if legacy:
            pooled_hook_recalibration(m, chunks)
        else:
            recalibrate_bn(m, calib)
        t2 = time.perf_counter()
        out.append(accuracy(m, val))
        t3 = time.perf_counter()
        t["slice"] += t1 - t0
        t["calibrate"] += t2 - t1
        t["validate"] += t3 - t2
    n = len(archs)
    per = {k: round(v / n, 4) for k, v in t.items()}
    per["total"] = round(sum(t.values()) / n, 4)
    return np.array(out), per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", required=True)
    ap.add_argument("--board", default="stm32f746g-disco")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--calib", default="64,128,256,500", help="K values to try")
    ap.add_argument("--proxy", default="250,500,1000", help="P values to try (0 = whole selection split)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sn, spec, bundle, _ = _load(args.supernet, None, None, "cpu")
    archs = [s["arch"] for s in sample_fitting(spec, args.board, args.n, np.random.default_rng(args.seed))]
    split = bundle.selection_split
    y = bundle.split(split).y
    ref_ev = SupernetEvaluator(sn, bundle, calib_images=2000, seed=args.seed)
    old, old_t = timed_scores(ref_ev, archs, legacy=True)
    ref, ref_t = timed_scores(ref_ev, archs)
    k_all = min(2000, len(bundle.train))
    rows = [{"row": "before", "calib": k_all, "proxy": len(y), "s_per_candidate": old_t,
             "kendall_tau_vs_reference": round(float(kendall_tau(ref, old)), 4),
             "mean_acc": round(float(old.mean()), 4)},
            {"row": "reference", "calib": k_all, "proxy": len(y), "s_per_candidate": ref_t,
             "speedup": round(old_t["total"] / ref_t["total"], 2), "mean_acc": round(float(ref.mean()), 4)}]
    for r in rows:
        print(json.dumps(r), file=sys.stderr, flush=True)
    for k in [int(v) for v in args.calib.split(",")]:
        for p in [int(v) for v in args.proxy.split(",")]:
            idx = proxy_indices(y, p, args.seed) if 0 < p < len(y) else None
            ev = SupernetEvaluator(sn, bundle, calib_images=k, seed=args.seed, val_indices=idx)
            s, t = timed_scores(ev, archs)
            rows.append({"calib": k, "proxy": len(y) if idx is None else len(idx), "s_per_candidate": t,
                         "speedup": round(old_t["total"] / t["total"], 2),
                         "kendall_tau_vs_reference": round(float(kendall_tau(ref, s)), 4),
                         "mean_acc": round(float(s.mean()), 4)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {"supernet": args.supernet, "board": args.board, "n_candidates": len(archs), "split": split,
              "n_train": len(bundle.train), "resolution": list(spec.resolution), "rows": rows}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "eval_cost.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
