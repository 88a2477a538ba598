"""Throughput of the vectorized cost model and wall time of search-space optimization.

Prints one JSON object. Targets (issue 3), on this 2-core machine:
- >= 100,000 subnet evaluations per second, an evaluation being MACs + params +
  flash + peak SRAM (the planner's greedy arena, board variant) + latency;
- the full grid of 9 widths x 12 resolutions x 1000 samples in < 3 s;
- and the latency query alone, in microseconds per arch.

Each figure is the best of a few repetitions, as wall time and as this
process's CPU time: other jobs on a shared machine inflate wall time, not CPU
time. The load average at the start is printed alongside.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinynas.boards import load_board  # noqa: E402
from tinynas.costmodel import CostModel  # noqa: E402
from tinynas.space import default_space, sample_genomes  # noqa: E402
from tinynas.spaceopt import default_resolutions, optimize_space  # noqa: E402

REPS = 3


def _best(fn, reps: int = REPS) -> tuple[float, float]:
    """(best wall s, best CPU s) over `reps` calls."""
    wall, cpu = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def throughput(n: int = 100_000) -> dict:
    spec = default_space(width_mult=0.5)
    board = load_board("stm32f746g-disco")
    cm = CostModel(spec, board)
    genomes = sample_genomes(spec, n, np.random.default_rng(0))
    cm.evaluate(genomes[:100])  # tables for this resolution
    sources = sorted({e.source for e in cm.lut.entries.values()})
    out = {"space": "default MBConv, width 0.5, 32x32x3", "board": board.id, "subnets": n,
           "latency_table": {"entries": len(cm.lut.entries), "sources": sources or ["model only"]}}
    for name, ref in (("evaluate", False), ("evaluate_with_reference_arena", True)):
        wall, cpu = _best(lambda: cm.evaluate(genomes, reference=ref))
        out[name] = {"evals_per_s_wall": round(n / wall), "evals_per_s_cpu": round(n / cpu),
                     "wall_s": round(wall, 3)}
    wall, cpu = _best(lambda: cm.latency_ms(genomes), reps=5)
    out["latency_query_us_per_arch"] = {"wall": round(1e6 * wall / n, 3), "cpu": round(1e6 * cpu / n, 3)}
    return out


def grid(board_id: str, resolutions, samples: int = 1000) -> dict:
    spec = default_space(num_classes=10)
    board = load_board(board_id)
    result = {}

    def run():
        result["r"] = optimize_space(spec, board, resolutions=resolutions, samples=samples,
                                     rng=np.random.default_rng(0), progress=False, raise_if_none=False)
    wall, cpu = _best(run)
    r = result["r"]
    row = r.chosen_row if r.chosen is not None else None
    return {"board": board.id, "spaces": len(r.table), "samples": samples,
            "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "chosen": None if row is None else {"width_mult": row["width_mult"],
                                                "resolution": row["resolution"],
                                                "fit_fraction": row["fit_fraction"],
                                                "macs_mean": round(row["macs_mean"])}}


def main() -> None:
    load = os.getloadavg()[0]
    twelve = [(r, r) for r in range(16, 112, 8)]  # 12 resolutions around a 32x32 input
    report = {
        "load_average_1min": round(load, 2), "cpus": os.cpu_count(),
        "throughput": throughput(),
        "grid_9x12x1000": grid("stm32f746g-disco", twelve),
        "default_grid": {b: grid(b, default_resolutions((32, 32)))
                         for b in ("stm32f746g-disco", "arduino-nano-33-ble-sense")},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
