"""search.json, best_arch.json and the plots: what every strategy hands back.

One summary shape for all strategies, so `finetune`, the pipeline and the
strategy benchmark read any search the same way: `best` and `top` carry the
arch with its accuracy and costs, `history` every evaluated candidate in
evaluation order (genome, arch hash, costs, accuracy, fitness, step), and
`counts` how many proposals the constraints rejected (the "fraction of
evaluations hitting the constraint" of the strategy comparison).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import rundir as rd
from ..atomic import write_json, write_png
from ..plotstyle import FIG_DPI, FIG_WIDTH_IN, PLOT_STYLE
from ..space.arch import save_arch
from .budget import Archive

ENTRY_KEYS = ("accuracy", "fitness", "sram_bytes", "flash_bytes", "latency_ms", "macs", "params",
              "arena_bytes", "arch_hash", "resolution", "index", "step")


def entry(archive: Archive, row: Mapping[str, Any]) -> dict[str, Any]:
    """A `best`/`top` item: the arch plus its accuracy and costs."""
    return {"arch": archive.arch_of(row), **{k: row[k] for k in ENTRY_KEYS if k in row}}


def summarize(archive: Archive, *, seed: int, top_k: int, info: Mapping[str, Any], wall_s: float,
              predictor: str | None = None) -> dict[str, Any]:
    p = archive.problem
    ranked = archive.ranked()
    c = archive.counts
    return {
        "strategy": archive.strategy, "predictor": predictor, "budget": archive.budget,
        "budget_used": archive.used, "seed": seed, "board": p.board_id, "limits": p.limits(),
        "latency_ms": p.latency_ms, "latency_weight": p.latency_weight,
        "best": entry(archive, ranked[0]) if ranked else None,
        "top": [entry(archive, r) for r in ranked[:top_k]],
        "front": [entry(archive, archive.history[i]) for i in _front(archive.history)],
        "counts": dict(c), "constraint_hit_fraction": c["infeasible"] / c["proposed"] if c["proposed"] else 0.0,
        "space": p.spec.to_dict(), "info": dict(info), "wall_s": round(wall_s, 3),
        "history": archive.history,
    }


def _front(history: list[dict[str, Any]]) -> list[int]:
    """History positions on the latency-accuracy Pareto front, fastest first."""
    if not history:
        return []
    lat = np.array([r["latency_ms"] for r in history])
    acc = np.array([r["accuracy"] for r in history])
    return [int(i) for i in pareto_front(lat, acc)]


def clean_json(obj: Any) -> Any:
    """NaN and inf become null: search.json must be strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return clean_json(obj.item())
    return obj


def write_outputs(out_dir: str | os.PathLike, result: Mapping[str, Any]) -> dict[str, str]:
    """search.json, best_arch.json, pareto.png (+ controller.png for rl); returns the paths."""
    out = Path(out_dir)
    files = {"search": str(out / rd.SEARCH_JSON), "pareto": str(out / "pareto.png")}
    write_json(out / rd.SEARCH_JSON, clean_json(dict(result)))
    if result.get("best"):
        save_arch(out / rd.BEST_ARCH, result["best"]["arch"])
        files["best_arch"] = str(out / rd.BEST_ARCH)
    plot_pareto(result, out / "pareto.png")
    rl = result.get("info", {}).get("rl")
    if rl:
        plot_controller(rl, out / "controller.png")
        files["controller"] = str(out / "controller.png")
    return files


def _save(fig, path: Path) -> None:
    write_png(path, fig, dpi=FIG_DPI)


def pareto_front(lat: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of candidates no other beats on both latency (lower) and accuracy (higher), by latency."""
    order = np.lexsort((-acc, lat))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return np.array(front, dtype=np.int64)


def plot_pareto(result: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Accuracy vs latency, SRAM as colour, the board's SRAM limit on the colour bar, latency limit dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result["history"]
    with plt.rc_context(PLOT_STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN, 5.0))
        lim = result.get("limits", {})
        if h:
            lat = np.array([r["latency_ms"] for r in h])
            acc = 100 * np.array([r["accuracy"] for r in h])
            sram = np.array([r["sram_bytes"] for r in h])
            vmax = lim.get("sram") or sram.max()
            sc = ax.scatter(lat, acc, c=sram / 1024, cmap="viridis", s=14, vmin=sram.min() / 1024,
                                vmax=max(vmax, sram.max()) / 1024)
            cb = fig.colorbar(sc, ax=ax, label="SRAM (KiB)")
            if lim.get("sram"):
                cb.ax.axhline(lim["sram"] / 1024, color="red", lw=2)
                cb.ax.text(0.5, lim["sram"] / 1024, "board", color="red", ha="center", va="bottom")
            f = pareto_front(lat, acc)
            ax.step(lat[f], acc[f], where="post", color="black", lw=1, label="Pareto front")
            b = result["best"]
            ax.scatter([b["latency_ms"]], [100 * b["accuracy"]], marker="*", s=200, color="red", label="best")
        if lim.get("latency"):
            ax.axvline(lim["latency"], color="red", ls="--", label=f"latency limit {lim['latency']:g} ms")
        ax.set_xlabel("latency (ms, cost model)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{result['strategy']} on {result['board']}: {len(h)} candidates")
        ax.legend(loc="lower right")
        fig.tight_layout()
        _save(fig, Path(path))


def plot_controller(rl: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Entropy, mean reward and the probability of the best arch's choices over controller steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = rl["steps"]
    x = [s["step"] for s in steps]
    fig, axes = plt.subplots(3, 1, figsize=(7, 7), sharex=True)
    axes[0].plot(x, [s["entropy"] for s in steps])
    axes[0].set_ylabel("entropy (nats)")
    axes[1].plot(x, [s["mean_reward"] for s in steps], label="mean reward")
    axes[1].plot(x, [s["baseline"] for s in steps], label="baseline (EMA)")
    axes[1].legend(fontsize=8)
    axes[1].set_ylabel("reward")
    prob = rl.get("best_arch_decision_prob") or []
    axes[2].plot(x[:len(prob)], prob)
    axes[2].set_ylabel("P(best arch's choice)\nper decision")
    axes[2].set_xlabel("controller step")
    fig.suptitle("REINFORCE controller")
    fig.tight_layout()
    _save(fig, Path(path))
