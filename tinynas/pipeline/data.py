"""The data a run (or a baseline) trains and scores on: one loader, so both see the same split."""

from __future__ import annotations

from typing import Any, Callable, Mapping
from ..data import load_dataset
from ..data.meta import data_meta


def load_run_data(cfg: Mapping[str, Mapping[str, Any]], log: Callable[[str], None]) -> tuple[Any, dict]:
    """(bundle, data record) for cfg["run"]: the split follows val_fraction/val_count, holdout and seed.

    `tinynas run` and `tinynas baseline` must hold out exactly the same
    images, or an equal-time comparison compares different validation sets.
    """
    r = cfg["run"]
    load_kw = {"val_fraction": r["val_fraction"], "seed": r["seed"], "holdout_fraction": r["holdout_fraction"]}
    if r["val_count"]:
        load_kw["val_count"] = r["val_count"]
    bundle = load_dataset(r["data"], **load_kw)
    meta = data_meta(r["data"], bundle, **load_kw)
    held = len(bundle.holdout) if bundle.holdout is not None else 0
    c, h, w = bundle.input_shape
    log(f"data {r['data']}: {len(bundle.train.y):,} train / {held:,} held out for selection / "
        f"{len(bundle.val.y):,} val (reported), input {h}x{w}x{c} (HxWxC), {bundle.num_classes} classes")
    return bundle, meta
