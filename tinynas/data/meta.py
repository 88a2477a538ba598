"""The data record that travels with every stage's output.

train-supernet, finetune, export and run all need the *same* split and the
*same* preprocessing (normalisation statistics come from the training split).
Each stage writes this small JSON-able record, and the next stage reloads the
data from it instead of re-deriving options, so firmware and training never
disagree on mean/std or on which images were held out.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ..errors import UserError, option
from .dataset import DatasetBundle, load_dataset

LOAD_KEYS = ("val_fraction", "seed", "val_count", "image_size", "stratify", "flip", "holdout_fraction")


def data_meta(spec: str | os.PathLike, bundle: DatasetBundle, **load_kwargs: Any) -> dict[str, Any]:
    """What `load_from_meta` needs to rebuild `bundle`: the --data spec, load options, preprocessing."""
    bad = sorted(set(load_kwargs) - set(LOAD_KEYS))
    if bad:
        raise ValueError(f"data_meta: unknown load options {bad}")
    load = {k: (list(v) if isinstance(v, tuple) else v) for k, v in load_kwargs.items()}
    spec_s = str(spec)
    if spec_s != "digits" and os.path.exists(spec_s):
        spec_s = os.path.abspath(spec_s)
    return {"data": spec_s, "load": load, "preprocessing": bundle.preprocessing,
            "num_classes": bundle.num_classes, "class_names": list(bundle.class_names),
            "input_shape": list(bundle.input_shape)}


def load_from_meta(meta: Mapping[str, Any], data: str | os.PathLike | None = None,
                   **overrides: Any) -> DatasetBundle:
    """Reload the dataset a previous stage used; `data` may point at a moved copy of it."""
    if "data" not in meta or "load" not in meta:
        raise UserError("data record: missing 'data' or 'load'; re-run the stage that wrote it")
    load = dict(meta["load"])
    if isinstance(load.get("image_size"), list):
        load["image_size"] = tuple(load["image_size"])
    load.update(overrides)
    bundle = load_dataset(data if data is not None else meta["data"], **load)
    want = meta.get("preprocessing", {})
    got = bundle.preprocessing
    for key in ("mean", "std"):
        if key in want and want[key] != got.get(key):
            raise UserError(f"data: {key} of the reloaded training split differs from the recorded one; "
                            f"pass the same {option('data')} (and options) that the earlier stage used")
    return bundle
