"""Search strategies head to head: one supernet, one cost model, equal evaluation budgets.

For each board, strategy, budget and seed, run `tinynas.search.search` and
record the best fitness (validation accuracy with inherited weights after
exact BN recalibration), the wall time, the time spent in the accuracy
function, and the fraction of proposals the constraints rejected. Prints one
JSON object and writes DIR/strategies.json, DIR/strategies.md (mean ± std
table) and DIR/strategies.png (best accuracy against budget, one panel per board).

    # the real comparison (a trained supernet, e.g. on ../shared/data/cifar10-jpeg)
    .venv/bin/python bench/bench_strategies.py --supernet runs/cifar/supernet --out runs/bench_strategies
    # no supernet: the real cost model with a synthetic hidden accuracy (minutes)
    .venv/bin/python bench/bench_strategies.py --synthetic --out runs/bench_strategies_synth

Accuracies are memoized by arch hash across runs (the evaluator is
deterministic: fixed calibration images, fixed split), so a candidate found by
several strategies or seeds is scored once; `eval_s` is the time each run spent
in real evaluations, `overhead_s` the strategy's own time (wall - eval_s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from tinynas.atomic import write_json, write_text
from tinynas.boards import load_board
from tinynas.costmodel import CostModel
from tinynas.search import search
from tinynas.space import arch_hash, default_space

STRATEGIES = ("random", "evolution", "aging", "rl", "grid", "evolution+mlp", "aging+mlp")


class MemoAccuracy:
    """Wraps an accuracy function: scores each arch once, times the real evaluations."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.memo: dict[str, float] = {}
        self.eval_s = 0.0

    def __call__(self, archs):
        keys = [arch_hash(a) for a in archs]
        todo = [i for i, k in enumerate(keys) if k not in self.memo]
        if todo:
            t0 = time.perf_counter()
            vals = np.asarray(self.fn([archs[i] for i in todo]), dtype=np.float64)
            self.eval_s += time.perf_counter() - t0
            self.memo.update({keys[i]: float(v) for i, v in zip(todo, vals)})
        return np.array([self.memo[k] for k in keys])


def _accuracy(args):
    """(spec, memoized accuracy function, description) for --supernet or --synthetic."""
    if args.synthetic:
        import torch

        from tinynas.search.synthetic import SyntheticAccuracy

        torch.set_num_threads(1)  # only the RL controller and the MLP use torch: tiny ops, threads only hurt

        spec = default_space(width_mult=args.width)
        return spec, MemoAccuracy(SyntheticAccuracy(spec, 0)), {"mode": "synthetic", "width_mult": args.width}
    from tinynas.data.meta import load_from_meta
    from tinynas.search import proxy_indices
    from tinynas.supernet import SupernetEvaluator, load_supernet
    from tinynas.distributed import pick_device

    sn, spec, meta = load_supernet(args.supernet)
    sn = sn.to(pick_device(args.device))
    bundle = load_from_meta(meta, args.data)
    idx = proxy_indices(bundle.val.y, args.proxy_images, 0) if args.proxy_images else None
    ev = SupernetEvaluator(sn, bundle, calib_images=args.calib_images, val_indices=idx)
    return spec, MemoAccuracy(ev), {"mode": "supernet", "supernet": str(args.supernet), "data": meta.get("data"),
                                    "val_images": len(bundle.val.y) if idx is None else len(idx),
                                    "calib_images": args.calib_images}


def _run(spec, cm, acc: MemoAccuracy, strategy: str, budget: int, seed: int) -> dict:
    name, _, pred = strategy.partition("+")
    e0, t0 = acc.eval_s, time.perf_counter()
    r = search(spec, cm, acc, strategy=name, budget=budget, seed=seed, predictor=pred or None)
    wall = time.perf_counter() - t0
    out = {"best": r["best"]["fitness"], "budget_used": r["budget_used"], "wall_s": round(wall, 2),
           "eval_s": round(acc.eval_s - e0, 2), "overhead_s": round(wall - (acc.eval_s - e0), 2),
           "constraint_hit_fraction": round(r["constraint_hit_fraction"], 4),
           "best_sram_bytes": r["best"]["sram_bytes"], "best_flash_bytes": r["best"]["flash_bytes"]}
    if pred:
        out["kendall_tau_heldout"] = r["info"]["predictor"]["kendall_tau_heldout"]
    if name == "rl":
        st = r["info"]["rl"]["steps"]
        out["rl_entropy_first_last"] = [st[0]["entropy"], st[-1]["entropy"]]
    return out


def _aggregate(runs: list[dict]) -> dict:
    b = np.array([r["best"] for r in runs])
    agg = {"mean": round(float(b.mean()), 4), "std": round(float(b.std()), 4), "seeds": len(runs),
           "bests": [round(float(x), 4) for x in b]}
    for k in ("wall_s", "eval_s", "overhead_s", "constraint_hit_fraction", "budget_used", "kendall_tau_heldout"):
        vals = [r[k] for r in runs if k in r and r[k] is not None]
        if vals:
            agg[k] = round(float(np.mean(vals)), 4)
    return agg


def _table(results: dict, budgets: list[int]) -> str:
    lines = []
    for board, rows in results.items():
        lines += [f"### {board}", "", "| strategy | " + " | ".join(f"budget {b}" for b in budgets)
                  + " | evaluated | constraint hits | wall s (at max budget) |",
                  "|---" * (len(budgets) + 4) + "|"]
        for strat, per in rows.items():
            cells = [f"{per[str(b)]['mean']:.4f} ± {per[str(b)]['std']:.4f}" for b in budgets]
            last = per[str(budgets[-1])]
            lines.append(f"| {strat} | " + " | ".join(cells) + f" | {last.get('budget_used', 0):.0f}"
                         f" | {last.get('constraint_hit_fraction', 0):.0%} | {last.get('wall_s', 0):.1f} |")
        lines.append("")
    return "\n".join(lines)


def _plot(results: dict, budgets: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, (board, rows) in zip(axes[0], results.items()):
        for strat, per in rows.items():
            m = [per[str(b)]["mean"] for b in budgets]
            s = [per[str(b)]["std"] for b in budgets]
            ax.errorbar(budgets, m, yerr=s, marker="o", capsize=3, label=strat)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.set_xlabel("evaluation budget (candidates)")
        ax.set_ylabel("best accuracy (mean ± std over seeds)")
        ax.set_title(board)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--supernet", type=Path, help="a train-supernet --out directory")
    src.add_argument("--synthetic", action="store_true", help="synthetic hidden accuracy, real cost model")
    ap.add_argument("--boards", default="stm32f746g-disco,arduino-nano-33-ble-sense")
    ap.add_argument("--budgets", default="100,300,1000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--calib-images", type=int, default=2000)
    ap.add_argument("--proxy-images", type=int, default=None)
    ap.add_argument("--data", default=None, help="the supernet's data, if it moved")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=float, default=0.4, help="--synthetic: width multiplier of the space")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_strategies"))
    args = ap.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    spec, acc, desc = _accuracy(args)
    results: dict = {}
    t0 = time.perf_counter()
    for board_id in args.boards.split(","):
        cm = CostModel(spec, load_board(board_id))
        results[board_id] = {}
        for strat in args.strategies.split(","):
            results[board_id][strat] = {}
            for budget in budgets:
                runs = [_run(spec, cm, acc, strat, budget, s) for s in range(args.seeds)]
                results[board_id][strat][str(budget)] = _aggregate(runs)
                print(f"{board_id} {strat} {budget}: {results[board_id][strat][str(budget)]}", file=sys.stderr)
    out = {"source": desc, "space": spec.to_dict(), "budgets": budgets, "seeds": args.seeds,
           "unique_archs_evaluated": len(acc.memo), "eval_s_total": round(acc.eval_s, 1),
           "wall_s_total": round(time.perf_counter() - t0, 1), "results": results}
    write_json(args.out / "strategies.json", out)
    write_text(args.out / "strategies.md", _table(results, budgets))
    _plot(results, budgets, args.out / "strategies.png")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
