"""Does the supernet rank? Inherited accuracy against standalone training, for K random subnets that fit a board.

Prints one JSON object (and writes --out/ranking.json + ranking.png when --out is given).

1. K distinct random subnets of the supernet's space (uniform choices, as the
   search's random sampling draws them) that fit --board's SRAM and flash;
2. each scored with the supernet's own weights (BN recalibrated exactly on
   --calib training images) on the validation split: the inherited accuracy,
   what a search ranks by;
3. each trained alone from random init (residual BN zero-initialised) for
   --epochs on the training split (or a fixed seeded subset of --train-images
   of it), the last epoch's weights scored on the same validation split;
4. Kendall tau and Spearman rho between the two, and, as a naive baseline
   predictor, Kendall tau between MACs ("bigger is better") and standalone.

    .venv/bin/python bench/bench_ranking.py --supernet runs/digits/supernet --k 10 --epochs 3 --out runs/ranking_digits
    .venv/bin/python bench/bench_ranking.py --supernet runs/cifar/supernet --k 10 --epochs 3 \\
        --train-images 10000 --out runs/ranking_cifar
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tinynas.atomic import write_json, write_png
from tinynas.boards import load_board
from tinynas.costmodel import CostModel
from tinynas.data.dataset import Split
from tinynas.data.meta import load_from_meta
from tinynas.search.predictor import kendall_tau
from tinynas.space.arch import arch_hash, decode, sample_genomes
from tinynas.supernet import SupernetEvaluator, load_supernet
from tinynas.distributed import pick_device
from tinynas.train.finetune import train_arch


def sample_fitting(spec, board: str, k: int, rng: np.random.Generator, max_rounds: int = 50) -> list[dict]:
    """K distinct random subnets within the board's SRAM and flash: {arch, hash, macs, sram, flash} each."""
    cm = CostModel(spec, load_board(board))
    picked: dict[str, dict] = {}
    for _ in range(max_rounds):
        g = sample_genomes(spec, max(4 * k, 64), rng)
        costs = cm.evaluate(g)
        m = cm.constraint_masks(costs, None)
        for i in np.flatnonzero(~(m["sram"] | m["flash"])):
            arch = decode(spec, g[i])
            h = arch_hash(arch)
            if h not in picked and len(picked) < k:
                picked[h] = {"arch": arch, "hash": h, "macs": int(costs.macs[i]),
                             "sram_bytes": int(costs.sram_bytes[i]), "flash_bytes": int(costs.flash_bytes[i])}
        if len(picked) == k:
            return list(picked.values())
    sys.exit(f"bench_ranking: only {len(picked)} distinct subnets fit {board} after {max_rounds} rounds")


def train_subset(bundle, n: int, rng: np.random.Generator):
    """The bundle with its training split cut to a fixed random subset of n images (0 = all)."""
    if n <= 0 or n >= len(bundle.train):
        return bundle
    t = bundle.train
    idx = np.sort(rng.choice(len(t), size=n, replace=False))
    return dataclasses.replace(bundle, train=Split(t.x[idx], t.y[idx], t.indices[idx]))


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (Pearson on tie-averaged ranks); NaN when fewer than 3 points or a constant side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")

    def ranks(x: np.ndarray) -> np.ndarray:
        r = np.empty(len(x))
        r[np.argsort(x, kind="stable")] = np.arange(len(x))
        _, inv = np.unique(x, return_inverse=True)
        return (np.bincount(inv, r) / np.bincount(inv))[inv]

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def _r(x: float, nd: int = 4) -> float | None:
    return None if not np.isfinite(x) else round(float(x), nd)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Scatter inherited (x) vs standalone (y) accuracy, coloured by MACs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    macs = np.array([r["macs"] for r in rows]) / 1e6
    sc = ax.scatter([r["inherited"] for r in rows], [r["standalone"] for r in rows], c=macs, cmap="viridis",
                    s=48, edgecolors="black", linewidths=0.5)
    fig.colorbar(sc, ax=ax).set_label("MMACs", fontsize=11)
    ax.set_xlabel("inherited accuracy (supernet weights)", fontsize=11)
    ax.set_ylabel("standalone accuracy (trained alone)", fontsize=11)
    ax.set_title(title, fontsize=11)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_png(path, fig, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet", required=True, help="train-supernet DIR (or DIR/supernet of a tinynas run)")
    ap.add_argument("--board", default="stm32f746g-disco")
    ap.add_argument("--k", type=int, default=10, help="subnets")
    ap.add_argument("--epochs", type=int, default=3, help="standalone training epochs")
    ap.add_argument("--train-images", type=int, default=0, help="standalone training subset (0 = all)")
    ap.add_argument("--calib", type=int, default=500, help="BN recalibration images for inherited accuracy")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda ...")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sample_rng, subset_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(2))
    sn, spec, meta = load_supernet(args.supernet)
    dm = meta["data"] if isinstance(meta.get("data"), dict) else meta
    bundle = load_from_meta(dm)
    subs = sample_fitting(spec, args.board, args.k, sample_rng)
    t1 = time.perf_counter()
    ev = SupernetEvaluator(sn.to(pick_device(args.device)), bundle, calib_images=args.calib, split="val")
    inherited = ev([s["arch"] for s in subs])
    t2 = time.perf_counter()
    tb = train_subset(bundle, args.train_images, subset_rng)
    bs = min(args.batch, len(tb.train))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(subs):
            ts = time.perf_counter()
            r = train_arch(s["arch"], tb, Path(tmp) / f"s{i}", args.epochs, data_meta=dm, batch_size=bs, lr=args.lr,
                           seed=args.seed, warmup_epochs=1.0 if args.epochs > 1 else 0.0, progress=False,
                           keep_best=False, force=True, device=args.device)
            rows.append({"arch_hash": s["hash"], "macs": s["macs"], "sram_bytes": s["sram_bytes"],
                         "flash_bytes": s["flash_bytes"], "inherited": round(float(inherited[i]), 5),
                         "standalone": round(float(r["accuracy_float"]), 5),
                         "train_wall_s": round(time.perf_counter() - ts, 1)})
            print(f"[{i + 1}/{len(subs)}] {s['hash']} {s['macs'] / 1e6:.2f} MMACs inherited {inherited[i]:.4f} "
                  f"standalone {r['accuracy_float']:.4f} ({rows[-1]['train_wall_s']} s)", file=sys.stderr, flush=True)
    t3 = time.perf_counter()
    inh, sa = np.array([r["inherited"] for r in rows]), np.array([r["standalone"] for r in rows])
    macs = np.array([r["macs"] for r in rows], float)
    tau, tau_macs = kendall_tau(inh, sa), kendall_tau(macs, sa)
    beats = None if not (np.isfinite(tau) and np.isfinite(tau_macs)) else bool(tau > tau_macs)
    out = {"supernet": str(args.supernet), "data": dm.get("data"), "board": args.board, "k": len(rows),
           "n_train_standalone": len(tb.train), "n_train_full": len(bundle.train), "n_val": len(bundle.val),
           "epochs": args.epochs, "batch": bs, "lr": args.lr, "calib": args.calib, "seed": args.seed,
           "kendall_tau": _r(tau), "spearman_rho": _r(spearman_rho(inh, sa)),
           "kendall_tau_macs_baseline": _r(tau_macs), "supernet_beats_macs_baseline": beats,
           "verdict": ("too few / constant points to tell" if beats is None else
                       "supernet ranks better than 'bigger is better'" if beats else
                       "supernet does NOT beat 'bigger is better' (MACs rank standalone accuracy as well or better)"),
           "wall_s": {"load_and_sample": round(t1 - t0, 1), "inherited": round(t2 - t1, 1),
                      "standalone": round(t3 - t2, 1), "total": round(t3 - t0, 1)},
           "rows": rows}
    print(json.dumps(out, indent=1))
    if args.out:
        d = Path(args.out)
        write_json(d / "ranking.json", out)
        tau_s, base_s = (_fmt(out[f]) for f in ("kendall_tau", "kendall_tau_macs_baseline"))
        plot(rows, d / "ranking.png", f"supernet ranking on {args.board}: Kendall τ = {tau_s}\n"
             f"(MACs baseline τ = {base_s}, K = {len(rows)}, {args.epochs} standalone epoch(s))")


if __name__ == "__main__":
    main()
