"""How long the CIFAR-10 JPEG zip takes to load: decoded cold, then from the cache.

Prints one JSON object. decode_s is the first load_dataset() call with an empty
cache (list, decode 50,000 JPEGs, write the .npy, split, statistics);
cached_load_s is the second call, which maps the cached array. Also reports
one augmented training epoch through iter_batches, and decoding with one
thread versus a thread pool (tinynas uses the pool only for images of 128x128
and up, where Pillow's C decoder rather than Python dominates).

    .venv/bin/python bench/bench_data.py [--zip PATH] [--skip-workers]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from tinynas.data import load_dataset
from tinynas.data.cache import decode_listing
from tinynas.data.sources import list_image_folder
from tinynas.paths import shared_dir


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


def _epoch_s(bundle) -> float:
    """One shuffled, augmented pass over the training split at batch 256, on CPU."""
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _x, _y in bundle.iter_batches("train", 256, shuffle=True, generator=g, augment=True):
        pass
    return round(time.perf_counter() - t0, 3)


def _workers(path: Path) -> dict:
    listing = list_image_folder(path)
    _, serial = _timed(lambda: decode_listing(listing, None, workers=1))
    threads = min(8, os.cpu_count() or 1)
    _, pooled = _timed(lambda: decode_listing(listing, None, workers=threads))
    return {"decode_1_thread_s": serial, "decode_pool_s": pooled, "pool_threads": threads}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", type=Path, default=shared_dir() / "data" / "cifar10-jpeg" / "train.zip")
    ap.add_argument("--skip-workers", action="store_true", help="skip the 1-thread vs pool comparison")
    args = ap.parse_args()
    if not args.zip.is_file():
        print(json.dumps({"skipped": f"{args.zip} is absent; pass --zip or provide ../shared/data"}))
        return 0
    cache = Path(tempfile.mkdtemp(prefix="tinynas-bench-data-"))
    try:
        load = lambda: load_dataset(args.zip, cache_dir=cache, val_count=5000)  # noqa: E731
        bundle, decode_s = _timed(load)
        bundle2, cached_s = _timed(load)
        images = len(bundle.train) + len(bundle.val)
        same = bool((bundle.train.x == bundle2.train.x).all() and (bundle.val.y == bundle2.val.y).all())
        result = {
            "images": images,
            "decode_s": decode_s,
            "cached_load_s": cached_s,
            "images_per_s": round(images / decode_s, 1),
            "cached_images_per_s": round(images / cached_s, 1),
            "cache_identical": same,
            "train_epoch_augmented_s": _epoch_s(bundle2),
            "cpu_count": os.cpu_count(),
        }
        if not args.skip_workers:
            result.update(_workers(args.zip))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
