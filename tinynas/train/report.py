"""The training-curve PNG: loss over steps and accuracy per epoch, beside train.json."""

from __future__ import annotations

import os

from ..atomic import write_png
from ..plotstyle import FIG_DPI, FIG_WIDTH_IN, PLOT_STYLE


def plot_curve(history: list[dict], path: str | os.PathLike, title: str = "training") -> None:
    """Loss samples (left) and per-epoch training accuracy (right); written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(PLOT_STYLE):
        fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(FIG_WIDTH_IN, 3.8))
        pts = [p for h in history for p in h.get("curve", [])]
        if pts:
            ax_l.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2)
        ax_l.set_xlabel("step")
        ax_l.set_ylabel("training loss")
        ax_l.grid(alpha=0.3)
        ax_a.plot([h["epoch"] for h in history], [h["acc"] for h in history], "o-")
        ax_a.set_xlabel("epoch")
        ax_a.set_ylabel("training top-1 (sampled paths)")
        ax_a.grid(alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
        write_png(path, fig, dpi=FIG_DPI)
