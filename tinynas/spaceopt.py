"""Search-space optimization (MCUNet's TinyNAS step 1): pick width x resolution for a board.

For every (width multiplier, resolution) of a grid, sample subnets uniformly,
keep those whose peak SRAM and flash fit the board, and choose the space whose
fitting subnets carry the most MACs on average: within the same memory, more
compute buys more accuracy. A space where fewer than 5% of the samples fit is
never chosen (its few fitting subnets are the smallest of a space too big for
the board, and the search would spend its budget rejecting the rest).

The same N genomes are scored in every space (the genome layout does not
depend on width or resolution): paired samples make the comparison between
spaces less noisy than independent draws would, at no cost in uniformity.

Under a compute budget (`max_macs`, which `tinynas run --time` derives from
the time it gives the supernet and the training throughput it measures), a
space whose fitting subnets average more MACs than the budget can train is
not eligible either: more compute only buys accuracy if there is time to
train it. If every space is over, the one with the fewest MACs is chosen.

The stem stride is pinned to what the input size implies (see pinned_stem).
Non-square inputs keep their aspect ratio: the grid runs over the first side
(H) and W follows as round(r * W / H).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .boards import Board
from .atomic import write_png
from .errors import UserError
from .plotstyle import FIG_DPI, FIG_WIDTH_IN, PLOT_STYLE
from .costmodel import CostModel
from .space.arch import sample_genomes
from .space.spec import SpaceSpec, replace_spec

MIN_FIT_FRACTION = 0.05
DEFAULT_WIDTHS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SMALL_INPUT = 64   # below this side the resolution grid steps by 8, else by 16
MIN_SIDE = 8       # no grid resolution below this (unless the input itself is smaller)
MAX_SIDE = 512


# ---------------------------------------------------------------- grids


def default_resolutions(hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Half to twice the input's first side, stepping by 16 (8 for small inputs), through the input.

    The grid is anchored at the input size so the input itself is always a
    candidate; sides are clipped to [MIN_SIDE, MAX_SIDE].
    """
    h, w = hw
    step = 8 if h < SMALL_INPUT else 16
    lo = max(min(MIN_SIDE, h), math.ceil(h / 2))
    hi = min(max(MAX_SIDE, h), 2 * h)
    sides = range(h - (h - lo) // step * step, hi + 1, step)
    return [scaled_hw(hw, r) for r in sides]


def scaled_hw(hw: tuple[int, int], side: int) -> tuple[int, int]:
    """(side, W scaled like H), keeping the input's aspect ratio."""
    h, w = hw
    return (side, side) if h == w else (side, max(1, round(side * w / h)))


def pinned_stem(spec: SpaceSpec) -> SpaceSpec:
    """The spec with its stem stride fixed at what the input size implies.

    An automatic stem stride depends on the resolution (1 up to 32 px, else
    2), so a grid crossing 32 px would jump from full to half resolution and
    back; pinning it to the input's choice makes resolution scale every layer.
    """
    if spec.stem_stride is not None:
        return spec
    return replace_spec(spec, stem_stride=spec.effective_stem_stride)


def check_widths(widths: Sequence[float]) -> list[float]:
    out = []
    for v in widths:
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise UserError(f"width {v!r} is not a number > 0; widths multiply channel counts, "
                            "e.g. 0.5")
        out.append(round(float(v), 6))
    if not out:
        raise UserError("the width grid is empty; give at least one width multiplier")
    return out


def check_resolutions(res: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out = [(int(h), int(w)) for h, w in res]
    if not out:
        raise UserError("the resolution grid is empty; give at least one resolution")
    bad = [f"{h}x{w}" for h, w in out if h < 1 or w < 1]
    if bad:
        raise UserError(f"resolution {bad[0]} is not positive")
    return out


# ---------------------------------------------------------------- result


@dataclass
class SpaceResult:
    """The scored grid and the chosen space.

    `table` has one row per (width, resolution); `macs_fitting[i]` holds the
    MACs of row i's fitting samples (for the CDF plot).
    """

    board: Board
    base: SpaceSpec
    widths: list[float]
    resolutions: list[tuple[int, int]]
    table: list[dict[str, Any]]
    macs_fitting: list[np.ndarray]
    samples: int
    chosen: int | None
    seed: int | None = None
    min_fit_fraction: float = MIN_FIT_FRACTION
    min_needed: dict[str, int] = field(default_factory=dict)
    max_macs: float | None = None

    @property
    def chosen_row(self) -> dict[str, Any]:
        if self.chosen is None:
            raise UserError(self.no_fit_message())
        return self.table[self.chosen]

    @property
    def chosen_spec(self) -> SpaceSpec:
        """The chosen space, with the searched grid kept in widths/resolutions (load_space reads it)."""
        row = self.chosen_row
        return replace_spec(self.base, width_mult=row["width_mult"], resolution=list(row["resolution"]),
                            widths=list(self.widths), resolutions=[list(r) for r in self.resolutions])

    def no_fit_message(self) -> str:
        """Why nothing was chosen, with the smallest SRAM and flash any sample needed."""
        b, m = self.board, self.min_needed
        sram, flash = m["sram_bytes"], m["flash_bytes"]
        over = []
        if sram > b.sram_bytes:
            over.append(f"SRAM {sram:,} B of {b.sram_bytes:,} B ({sram - b.sram_bytes:,} B over)")
        if flash > b.flash_bytes:
            over.append(f"flash {flash:,} B of {b.flash_bytes:,} B ({flash - b.flash_bytes:,} B over)")
        if over:
            return (f"no sampled subnet of any space fits {b.id}: the smallest needs "
                    + " and ".join(over) + " (reserves included); try smaller --widths or "
                    "--resolutions, fewer --classes, or a larger board")
        best = max(self.table, key=lambda r: r["fit_fraction"])
        return (f"no space fits {b.id} well enough: at most {100 * best['fit_fraction']:.1f}% of the "
                f"samples fit (width {best['width_mult']:g}, resolution {_res(best['resolution'])}), "
                f"below the {100 * self.min_fit_fraction:g}% required; the smallest subnet needs "
                f"SRAM {sram:,} of {b.sram_bytes:,} B and flash {flash:,} of {b.flash_bytes:,} B; "
                "try smaller --widths or --resolutions")

    def to_json(self) -> dict[str, Any]:
        c, h, w = self.base.input_shape
        row = self.chosen_row
        return {"board": self.board.id, "input": [h, w, c], "classes": self.base.num_classes,
                "chosen": {"width_mult": row["width_mult"], "resolution": list(row["resolution"])},
                "space": self.chosen_spec.to_dict(), "table": self.table, "samples": self.samples,
                "seed": self.seed, "min_fit_fraction": self.min_fit_fraction,
                "min_needed": self.min_needed, "max_macs": self.max_macs}


def _res(hw: Sequence[int]) -> str:
    return f"{hw[0]}x{hw[1]}" if hw[0] != hw[1] else str(hw[0])


# ---------------------------------------------------------------- optimization


def _row(width: float, hw: tuple[int, int], macs: np.ndarray, sram: np.ndarray, flash: np.ndarray,
         fit: np.ndarray) -> dict[str, Any]:
    fm = macs[fit]
    q = np.percentile(fm, [10, 50, 90]) if len(fm) else [None] * 3
    return {"width_mult": width, "resolution": [int(hw[0]), int(hw[1])],
            "fit_fraction": round(float(fit.mean()), 6) if len(fit) else 0.0,
            "fitting": int(fit.sum()),
            "macs_mean": float(fm.mean()) if len(fm) else None,
            "macs_p10": None if q[0] is None else float(q[0]),
            "macs_p50": None if q[1] is None else float(q[1]),
            "macs_p90": None if q[2] is None else float(q[2]),
            "max_fit_sram_bytes": int(sram[fit].max()) if len(fm) else None,
            "max_fit_flash_bytes": int(flash[fit].max()) if len(fm) else None,
            "min_sram_bytes": int(sram.min()), "min_flash_bytes": int(flash.min())}


def choose(table: list[dict[str, Any]], min_fit_fraction: float = MIN_FIT_FRACTION,
           max_macs: float | None = None) -> int | None:
    """Index of the row with the largest mean MACs of fitting subnets among rows where
    at least `min_fit_fraction` of the samples fit (and, given `max_macs`, whose mean is
    within it; if none is, the row with the smallest mean); ties go to the larger fitting
    fraction, then to the smaller resolution and width (cheaper to train)."""
    ok = [i for i, r in enumerate(table) if r["fitting"] and r["fit_fraction"] >= min_fit_fraction]
    if not ok:
        return None
    if max_macs is not None:
        within = [i for i in ok if table[i]["macs_mean"] <= max_macs]
        if not within:
            return min(ok, key=lambda i: (table[i]["macs_mean"], -table[i]["fit_fraction"]))
        ok = within
    return max(ok, key=lambda i: (table[i]["macs_mean"], table[i]["fit_fraction"],
                                  -table[i]["resolution"][0], -table[i]["width_mult"]))


def optimize_space(spec: SpaceSpec, board: Board, widths: Sequence[float] | None = None,
                   resolutions: Sequence[tuple[int, int]] | None = None, samples: int = 1000,
                   rng: np.random.Generator | None = None, progress: bool = True, lut: Any = None,
                   min_fit_fraction: float = MIN_FIT_FRACTION, raise_if_none: bool = True,
                   max_macs: float | None = None) -> SpaceResult:
    """Score every (width, resolution) of the grid on `board` and choose one (see module doc).

    widths/resolutions default to the spec's grid (spec.widths, spec.resolutions),
    and an empty spec.resolutions to half to twice the input (default_resolutions).
    Raises UserError naming the smallest SRAM and
    flash any sample needed when no space qualifies (unless raise_if_none=False,
    which returns a result with chosen None).
    """
    widths = check_widths(list(spec.widths) if widths is None else list(widths))
    if resolutions is None:
        resolutions = list(spec.resolutions) or default_resolutions(tuple(spec.resolution))
    resolutions = check_resolutions(list(resolutions))
    if not isinstance(samples, int) or samples < 1:
        raise UserError(f"samples: {samples!r} is not an integer >= 1")
    rng = np.random.default_rng(0) if rng is None else rng
    spec = pinned_stem(spec)
    genomes = sample_genomes(spec, samples, rng)
    table, macs_fit = [], []
    need = {"sram_bytes": None, "flash_bytes": None}
    bar = _progress(len(widths) * len(resolutions), progress)
    for width in widths:
        cm = CostModel(spec.with_config(width_mult=width), board, lut)
        for hw, c in zip(resolutions, cm.evaluate_grid(genomes, resolutions, reference=False)):
            ok = cm.feasible(c)
            table.append(_row(width, hw, c.macs, c.sram_bytes, c.flash_bytes, ok))
            macs_fit.append(c.macs[ok])
            for k in need:
                v = int(getattr(c, k).min())
                need[k] = v if need[k] is None else min(need[k], v)
            bar.update(1)
    bar.close()
    res = SpaceResult(board=board, base=spec, widths=widths, resolutions=resolutions, table=table,
                      macs_fitting=macs_fit, samples=samples, chosen=choose(table, min_fit_fraction, max_macs),
                      min_fit_fraction=min_fit_fraction, min_needed=need, max_macs=max_macs)
    if res.chosen is None and raise_if_none:
        raise UserError(res.no_fit_message())
    return res


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="spaces", unit="space", disable=not enabled, leave=False)


# ---------------------------------------------------------------- report


def format_table(result: SpaceResult) -> str:
    """The table `tinynas space` prints: one line per space, the chosen one marked."""
    hdr = (f"{'':2}{'width':>5} {'res':>7} {'fit':>6} {'MACs mean':>10} {'p10':>9} {'p50':>9} "
           f"{'p90':>9} {'max SRAM':>10} {'max flash':>10}")
    lines = [hdr, "-" * len(hdr)]
    for i, r in enumerate(result.table):
        mark = "*" if i == result.chosen else ""
        m = [_mega(r[k]) for k in ("macs_mean", "macs_p10", "macs_p50", "macs_p90")]
        lines.append(f"{mark:2}{r['width_mult']:>5g} {_res(r['resolution']):>7} "
                     f"{100 * r['fit_fraction']:>5.1f}% {m[0]:>10} {m[1]:>9} {m[2]:>9} {m[3]:>9} "
                     f"{_kib(r['max_fit_sram_bytes']):>10} {_kib(r['max_fit_flash_bytes']):>10}")
    return "\n".join(lines)


def _mega(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e6:.2f}M"


def _kib(v: int | None) -> str:
    return "-" if v is None else f"{v / 1024:.0f}K"


def plot_flops_cdf(result: SpaceResult, path: str) -> None:
    """One empirical CDF of fitting subnets' MACs per space, the chosen one highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(PLOT_STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH_IN, 5.0))
        for i, (row, m) in enumerate(zip(result.table, result.macs_fitting)):
            if not len(m) or i == result.chosen:
                continue
            xs = np.sort(m) / 1e6
            eligible = row["fit_fraction"] >= result.min_fit_fraction
            ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs), color="0.6" if eligible else "0.8",
                    lw=0.7, ls="-" if eligible else ":", alpha=0.8)
        if result.chosen is not None:
            row, m = result.table[result.chosen], np.sort(result.macs_fitting[result.chosen]) / 1e6
            ax.plot(m, np.arange(1, len(m) + 1) / len(m), color="#E45756", lw=2.5,
                    label=f"chosen: width {row['width_mult']:g}, res {_res(row['resolution'])} "
                          f"({100 * row['fit_fraction']:.0f}% fit)")
        ax.plot([], [], color="0.6", lw=0.7, label="other spaces")
        ax.plot([], [], color="0.8", lw=0.7, ls=":",
                label=f"spaces where < {100 * result.min_fit_fraction:g}% fit (not eligible)")
        ax.set_xlabel("MACs of fitting subnets (millions)")
        ax.set_ylabel("fraction of fitting subnets")
        ax.set_title(f"search spaces on {result.board.id}")
        ax.legend(loc="lower right")
        fig.tight_layout()
        write_png(path, fig, dpi=FIG_DPI)
