"""Supernet training cost: per-step overhead against standalone subnets, and 2-process scaling.

Prints one JSON object.

overhead: for the same archs (the largest, the smallest and --archs random
ones) and the same batch, one SPOS step on the supernet (sample a genome,
decode it, slice the weights, forward, backward, masked SGD update of the
touched slices) against one step of the standalone build_model(arch) with
torch's SGD. Steps alternate between the two so that load from other
processes hits both alike; medians per arch. `ratio` is the mean supernet step
over the mean standalone step (uniform sampling weights every arch alike);
the target is <= 1.25.

scaling: `tinynas train-supernet` on the same data and global batch as one
process with one thread, as one process with all threads, and under
`torchrun --nproc_per_node=2` with one thread each; images/s from train.json.
On a machine shared with other work, multi-threaded runs can collapse (OpenMP
threads spin at barriers while their cores run something else); the
one-thread figures are the robust ones there.

    .venv/bin/python bench/bench_supernet.py [--width 0.35] [--batch 128] [--archs 6] [--reps 5]
        [--threads 1] [--skip-overhead] [--skip-scaling] [--scaling-steps 30] [--data digits]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tinynas.space import decode, default_space, encode, largest_arch, sample_genomes, smallest_arch
from tinynas.space.torch_model import build_model
from tinynas.supernet import Supernet
from tinynas.train.optim import MaskedSGD

CL = torch.channels_last


def _supernet_step(sn, opt, spec, genome, x, y) -> float:
    t0 = time.perf_counter()
    arch = decode(spec, genome)  # sampling's share: the genome -> arch dict
    loss = F.cross_entropy(sn(x, arch), y, label_smoothing=0.1)
    loss.backward()
    opt.step(0.01, [sn.path_indices(arch)])
    opt.zero_grad()
    return time.perf_counter() - t0


def _standalone_step(model, opt, x, y) -> float:
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def overhead(width: float, batch: int, n_archs: int, reps: int, seed: int = 0) -> dict:
    spec = default_space(width_mult=width)
    rng = np.random.default_rng(seed)
    genomes = [encode(spec, largest_arch(spec)), encode(spec, smallest_arch(spec))]
    genomes += list(sample_genomes(spec, n_archs, rng))
    torch.manual_seed(seed)
    sn = Supernet(spec).to(memory_format=CL)
    sn_opt = MaskedSGD(sn.named_parameters(), momentum=0.9, weight_decay=5e-5)
    x = torch.randn(batch, *spec.input_shape).contiguous(memory_format=CL)
    y = torch.randint(0, spec.num_classes, (batch,))
    rows = []
    for g in genomes:
        model = build_model(decode(spec, g)).to(memory_format=CL)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-5)
        _supernet_step(sn, sn_opt, spec, g, x, y), _standalone_step(model, opt, x, y)  # warm-up
        s, a = [], []
        for _ in range(reps):
            s.append(_supernet_step(sn, sn_opt, spec, g, x, y))
            a.append(_standalone_step(model, opt, x, y))
        rows.append({"supernet_ms": round(1e3 * float(np.median(s)), 2),
                     "standalone_ms": round(1e3 * float(np.median(a)), 2)})
    t0 = time.perf_counter()
    for g in genomes:
        sn.path_indices(decode(spec, g))
    py = (time.perf_counter() - t0) / len(genomes)
    sn_ms = sum(r["supernet_ms"] for r in rows)
    sa_ms = sum(r["standalone_ms"] for r in rows)
    return {"width_mult": width, "batch": batch, "archs": len(rows), "reps": reps,
            "supernet_step_ms_mean": round(sn_ms / len(rows), 2),
            "standalone_step_ms_mean": round(sa_ms / len(rows), 2),
            "ratio": round(sn_ms / sa_ms, 3), "ratio_per_arch": [round(r["supernet_ms"] / r["standalone_ms"], 3)
                                                                 for r in rows],
            "sampling_ms": round(1e3 * py, 3), "per_arch": rows, "threads": torch.get_num_threads()}


def _train_run(cmd: list[str], env: dict, out: Path) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"rc {r.returncode}"}
    s = json.loads((out / "train.json").read_text())
    return {"images_per_s": s["images_per_s"], "train_wall_s": s["wall_s"],
            "process_wall_s": round(time.perf_counter() - t0, 1), "world_size": s["world_size"],
            "batch_per_process": s["batch_size"], "steps": s["steps_per_epoch"]}


def scaling(data: str, width: float, batch: int, steps: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="tinynas-bench-sn-"))
    common = ["train-supernet", "--data", data, "--epochs", "1", "--width-mult", str(width),
              "--no-progress", "--steps-per-epoch", str(steps)]
    tinynas = [sys.executable, "-m", "tinynas.cli"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "WORLD_SIZE")}
    one_env = {**env, "OMP_NUM_THREADS": "1"}
    res = {"data": data, "global_batch": batch}
    res["one_process_1_thread"] = _train_run(tinynas + common + ["--out", str(tmp / "p1"), "--batch-size",
                                                                 str(batch)], one_env, tmp / "p1")
    res["one_process_all_threads"] = _train_run(tinynas + common + ["--out", str(tmp / "p1t"), "--batch-size",
                                                                    str(batch)], env, tmp / "p1t")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                "tinynas.cli"]
    res["two_processes_1_thread"] = _train_run(torchrun + common + ["--out", str(tmp / "p2"), "--batch-size",
                                                                    str(batch // 2)], one_env, tmp / "p2")
    two = res["two_processes_1_thread"].get("images_per_s")
    for key in ("one_process_1_thread", "one_process_all_threads"):
        one = res[key].get("images_per_s")
        if one and two:
            res[f"two_vs_{key}"] = round(two / one, 3)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=0.35)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--archs", type=int, default=6, help="random archs besides the largest and smallest")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the overhead part (1: immune to OpenMP spinning on a busy machine)")
    ap.add_argument("--data", default="digits", help="data for the scaling runs (default: %(default)s)")
    ap.add_argument("--scaling-steps", type=int, default=30)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    if not args.skip_overhead:
        result["overhead"] = overhead(args.width, args.batch, args.archs, args.reps)
    if not args.skip_scaling:
        result["scaling"] = scaling(args.data, args.width, args.batch, args.scaling_steps)
    result["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
