"""Datasets for tinynas: `--data` sources, a decoded-image cache, splits, preprocessing, batches.

    bundle = load_dataset("digits")              # or file.npz, an ImageFolder dir, a .zip
    g = torch.Generator().manual_seed(0)
    for x, y in bundle.iter_batches("train", 128, shuffle=True, generator=g, augment=True):
        ...                                      # x: float32 NCHW, y: int64
    json.dump(bundle.preprocessing, f)           # what export and firmware must apply

Accepted sources and layouts are described in `load_dataset` and `tinynas.data.sources`.
"""

from .augment import NO_AUGMENT, Augment, augment_batch, default_augment
from .cache import default_cache_dir
from .dataset import DatasetBundle, Split, SplitDataset, channel_stats, load_dataset, preprocess, split_indices
from .sources import IMAGE_EXTENSIONS, NPZ_LAYOUTS

__all__ = [
    "Augment",
    "DatasetBundle",
    "IMAGE_EXTENSIONS",
    "NO_AUGMENT",
    "NPZ_LAYOUTS",
    "Split",
    "SplitDataset",
    "augment_batch",
    "channel_stats",
    "default_augment",
    "default_cache_dir",
    "load_dataset",
    "preprocess",
    "split_indices",
]
