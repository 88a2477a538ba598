"""tinynas.data: sources, cache, split, preprocessing, augmentation, batches, errors."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinynas.data import (
    Augment,
    augment_batch,
    channel_stats,
    default_cache_dir,
    load_dataset,
    preprocess,
    split_indices,
)
from tinynas.errors import UserError

COLORS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "emu": (30, 30, 200)}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never touch the user's real cache from tests."""
    monkeypatch.setenv("TINYNAS_CACHE", str(tmp_path / "default-cache"))


def _png(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def _class_image(name: str, i: int, size=(12, 12)) -> np.ndarray:
    """A solid class colour with a sample-specific pixel, so classes and samples are tellable."""
    a = np.empty((*size, 3), np.uint8)
    a[:] = COLORS[name]
    a[0, 0] = (i * 7) % 256
    return a


def _make_folder(root: Path, per_class: int = 6, prefix: str = "", fmt: str = "PNG") -> dict[str, bytes]:
    """Files of a tiny ImageFolder as {relative path: bytes}; written under root too."""
    files = {}
    for name in COLORS:
        for i in range(per_class):
            files[f"{prefix}{name}/{i:03d}.{fmt.lower()}"] = _png(_class_image(name, i), fmt)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    return path


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _labels(n: int, k: int = 3) -> np.ndarray:
    return np.arange(n) % k


# ---------------------------------------------------------------- digits


def test_digits_is_real_32x32_grey(tmp_path):
    b = load_dataset("digits")
    assert len(b.train) + len(b.val) == 1797 and len(b.val) == 180
    assert b.num_classes == 10 and b.class_names == [str(i) for i in range(10)]
    assert b.input_shape == (1, 32, 32)
    assert b.train.x.dtype == np.uint8 and b.train.x.shape[1:] == (32, 32, 1) and b.train.x.max() == 255
    assert b.augment.flip is False and b.augment.pad == (4, 4)  # mirrored digits change meaning
    assert load_dataset("digits", image_size=16).input_shape == (1, 16, 16)


# ------------------------------------------------------------------- npz


def test_npz_layouts_agree(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (30, 8, 10, 3), dtype=np.uint8)
    y = _labels(30)
    a = load_dataset(_npz(tmp_path / "a.npz", x=nhwc, y=y), val_fraction=0.2)
    b = load_dataset(_npz(tmp_path / "b.npz", x=nhwc.transpose(0, 3, 1, 2), y=y), val_fraction=0.2)
    c = load_dataset(_npz(tmp_path / "c.npz", x=nhwc / 255.0, y=y), val_fraction=0.2)
    d = load_dataset(_npz(tmp_path / "d.npz", x=nhwc.astype(np.float32), y=y), val_fraction=0.2)
    assert a.input_shape == (3, 8, 10)
    for other in (b, c, d):
        np.testing.assert_array_equal(a.train.x, other.train.x)
        np.testing.assert_array_equal(a.val.y, other.val.y)
    grey = load_dataset(_npz(tmp_path / "e.npz", x=nhwc[..., 0], y=y))
    assert grey.input_shape == (1, 8, 10) and grey.augment.flip is False
    assert a.augment.flip is True
    resized = load_dataset(tmp_path / "a.npz", image_size=(16, 20))
    assert resized.input_shape == (3, 16, 20)


def test_npz_labels_are_renumbered_or_named(tmp_path):
    x = np.zeros((20, 4, 4, 1), np.uint8)
    b = load_dataset(_npz(tmp_path / "a.npz", x=x, y=np.where(np.arange(20) % 2, 7, 3)))
    assert b.class_names == ["3", "7"] and set(np.unique(b.train.y)) == {0, 1}
    b = load_dataset(_npz(tmp_path / "b.npz", x=x, y=np.array(["no", "yes"] * 10)))
    assert b.class_names == ["no", "yes"]
    b = load_dataset(_npz(tmp_path / "c.npz", x=x, y=_labels(20, 2), classes=np.array(["off", "on", "broken"])))
    assert b.class_names == ["off", "on", "broken"] and b.num_classes == 3
    b = load_dataset(_npz(tmp_path / "d.npz", x=x, y=np.eye(4, dtype=np.uint8)[_labels(20, 2)]))
    assert b.num_classes == 4 and set(np.unique(b.train.y)) <= {0, 1}


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"images": np.zeros((4, 4, 4)), "labels": np.zeros(4)}, r"holds arrays \['images', 'labels'\].*needs 'x'"),
        ({"x": np.zeros((5, 4, 4), np.uint8), "y": np.zeros(4)}, "5 images but y has 4 labels"),
        ({"x": np.zeros((5, 6, 7, 8), np.uint8), "y": _labels(5)}, r"NHWC or NCHW with C in \{1, 3, 4\}"),
        ({"x": np.full((6, 4, 4), 300.0), "y": _labels(6)}, "uint8, float in 0..1 or float in 0..255"),
        ({"x": np.full((6, 4, 4), -1.0), "y": _labels(6)}, "undo any normalisation"),
        ({"x": np.full((6, 4, 4), np.nan), "y": _labels(6)}, "NaN"),
        ({"x": np.zeros((6, 4, 4), np.uint8), "y": np.zeros(6)}, "only one class"),
        ({"x": np.zeros((2, 4, 4), np.uint8), "y": _labels(2, 2)}, "add data or lower val_fraction"),
        ({"x": np.zeros((0, 4, 4), np.uint8), "y": np.zeros(0, int)}, "no samples"),
        ({"x": np.zeros((6, 4, 4), np.uint8), "y": _labels(6), "classes": np.array(["a"])}, "index the 1 entries"),
        ({"x": np.zeros((6, 4, 4), np.uint8), "y": np.full(6, 0.5)}, "non-integer"),
    ],
)
def test_npz_errors_are_user_errors(tmp_path, arrays, match):
    with pytest.raises(UserError, match=match):
        load_dataset(_npz(tmp_path / "bad.npz", **arrays))


def test_not_an_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_dataset(tmp_path / "junk.npz")


# ---------------------------------------------------------- ImageFolder


def test_image_folder_dir(tmp_path):
    _make_folder(tmp_path / "data")
    b = load_dataset(tmp_path / "data", cache_dir=tmp_path / "cache", val_fraction=0.25)
    assert b.class_names == ["cat", "dog", "emu"] and b.input_shape == (3, 12, 12)
    assert len(b.train) == 13 and len(b.val) == 5
    for split in (b.train, b.val):
        for img, label in zip(split.x, split.y):  # PNG is lossless: the colour tells the class
            assert tuple(img[5, 5]) == COLORS[b.class_names[label]]
    assert b.augment == Augment((2, 2), True)


@pytest.mark.parametrize("prefix", ["", "train/", "outer/train/"])
def test_image_folder_zip_matches_dir(tmp_path, prefix):
    files = _make_folder(tmp_path / "data")
    z = _zip(tmp_path / "data.zip", {prefix + k: v for k, v in files.items()})
    a = load_dataset(tmp_path / "data", cache_dir=tmp_path / "c1")
    b = load_dataset(z, cache_dir=tmp_path / "c2")
    assert a.class_names == b.class_names
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.val.y, b.val.y)
    assert b.source["kind"] == "zip" and a.source["kind"] == "folder"


def test_jpeg_zip_and_mixed_sizes_and_modes(tmp_path):
    files = {f"{c}/{i}.jpg": _png(_class_image(c, i, (16, 16)), "JPEG") for c in COLORS for i in range(4)}
    files["cat/odd.jpg"] = _png(_class_image("cat", 9, (20, 30)), "JPEG")
    files["dog/grey.png"] = _png(np.full((16, 16), 128, np.uint8))
    b = load_dataset(_zip(tmp_path / "d.zip", files), cache_dir=tmp_path / "c")
    assert b.input_shape == (3, 16, 16) and b.source["resized"] == 1 and b.source["mode"] == "RGB"
    sized = load_dataset(tmp_path / "d.zip", cache_dir=tmp_path / "c", image_size=8)
    assert sized.input_shape == (3, 8, 8)


def test_odd_first_image_triggers_a_second_pass(tmp_path):
    """The first pass guesses from the first file; a grey, odd-sized one must not win."""
    files = {f"{c}/{i}.png": _png(_class_image(c, i, (16, 16))) for c in COLORS for i in range(3)}
    files["cat/+first.png"] = _png(np.full((20, 30), 77, np.uint8))  # sorts first
    b = load_dataset(_zip(tmp_path / "d.zip", files), cache_dir=tmp_path / "c", val_fraction=0.1)
    assert b.input_shape == (3, 16, 16) and b.source["mode"] == "RGB" and b.source["resized"] == 1
    first = b.train.x[0] if b.train.indices[0] == 0 else b.val.x[0]
    assert (first == 77).all()  # grey became RGB by repeating the channel


def test_exif_rotation_is_applied(tmp_path):
    files = {}
    for c in COLORS:
        for i in range(3):
            buf = io.BytesIO()
            exif = Image.Exif()
            exif[0x0112] = 6  # stored sideways: rotate 90 degrees to view
            Image.fromarray(_class_image(c, i, (8, 16))).save(buf, "JPEG", exif=exif.tobytes())
            files[f"{c}/{i}.jpg"] = buf.getvalue()
    b = load_dataset(_zip(tmp_path / "d.zip", files), cache_dir=tmp_path / "c")
    assert b.input_shape == (3, 16, 8)


def test_grey_folder_stays_one_channel(tmp_path):
    files = {f"{c}/{i}.png": _png(np.full((8, 8), 40 * k + i, np.uint8)) for k, c in enumerate("ab") for i in range(5)}
    b = load_dataset(_zip(tmp_path / "g.zip", files), cache_dir=tmp_path / "c")
    assert b.input_shape == (1, 8, 8) and b.augment.flip is False and b.preprocessing["color"] == "L"


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no images found in .*empty.*root/<class>/<image>"):
        load_dataset(tmp_path / "empty", cache_dir=tmp_path / "c")
    with pytest.raises(UserError, match="no images found"):
        load_dataset(_zip(tmp_path / "txt.zip", {"a/readme.txt": b"hi"}), cache_dir=tmp_path / "c")
    with pytest.raises(UserError, match="single class folder 'cat'"):
        load_dataset(_zip(tmp_path / "one.zip", {"cat/1.png": _png(_class_image("cat", 1))}), cache_dir=tmp_path / "c")
    flat = {f"{i}.png": _png(_class_image("cat", i)) for i in range(3)}
    with pytest.raises(UserError, match="no class folders"):
        load_dataset(_zip(tmp_path / "flat.zip", flat), cache_dir=tmp_path / "c")
    splits = {f"{s}/{c}/{i}.png": _png(_class_image(c, i)) for s in ("train", "val") for c in COLORS for i in range(2)}
    with pytest.raises(UserError, match=r"split folders \['train', 'val'\]"):
        load_dataset(_zip(tmp_path / "splits.zip", splits), cache_dir=tmp_path / "c")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(UserError, match="not a readable zip"):
        load_dataset(tmp_path / "bad.zip", cache_dir=tmp_path / "c")


def test_missing_and_unsupported_paths(tmp_path):
    with pytest.raises(UserError, match="does not exist; pass 'digits', a .npz"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(UserError, match="not a directory, .npz or .zip"):
        load_dataset(tmp_path / "x.csv")


def test_many_corrupt_images_fail_naming_the_file(tmp_path):
    files = _make_folder(tmp_path / "d", per_class=3)
    (tmp_path / "d" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError, match=r"1 of 10 images .* dog/broken.png .*fix or delete"):
        load_dataset(tmp_path / "d", cache_dir=tmp_path / "c")
    assert files  # the good files were fine


def test_few_corrupt_images_are_skipped_with_a_warning(tmp_path):
    files = {f"{c}/{i}.png": _png(_class_image(c, i, (4, 4))) for c in COLORS for i in range(50)}
    files["emu/zz_truncated.png"] = files["emu/0.png"][:30]
    z = _zip(tmp_path / "d.zip", files)
    for _ in range(2):  # the warning repeats when the entry comes from the cache
        with pytest.warns(UserWarning, match="skipped 1 unreadable image.*emu/zz_truncated.png"):
            b = load_dataset(z, cache_dir=tmp_path / "c")
        assert len(b.train) + len(b.val) == 150 and b.source["skipped"] == ["emu/zz_truncated.png"]


# ----------------------------------------------------------------- cache


def test_cache_hit_is_identical_and_faster(tmp_path):
    files = {f"{c}/{i:03d}.jpg": _png(_class_image(c, i, (32, 32)), "JPEG") for c in COLORS for i in range(150)}
    z = _zip(tmp_path / "d.zip", files)
    cold = load_dataset(z, cache_dir=tmp_path / "c")
    warm = load_dataset(z, cache_dir=tmp_path / "c")
    assert cold.source["from_cache"] is False and warm.source["from_cache"] is True
    assert warm.source["load_s"] < cold.source["load_s"]
    np.testing.assert_array_equal(cold.train.x, warm.train.x)
    np.testing.assert_array_equal(cold.val.y, warm.val.y)
    assert cold.preprocessing == warm.preprocessing
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert not [n for n in names if n.endswith(".tmp")] and any(n.endswith(".x.npy") for n in names)
    assert np.load(cold.source["cache_file"], mmap_mode="r").shape == (450, 32, 32, 3)


def test_cache_notices_changed_files(tmp_path):
    _make_folder(tmp_path / "d")
    load_dataset(tmp_path / "d", cache_dir=tmp_path / "c")
    (tmp_path / "d" / "cat" / "000.png").write_bytes(_png(np.zeros((12, 12, 3), np.uint8)))
    again = load_dataset(tmp_path / "d", cache_dir=tmp_path / "c")
    assert again.source["from_cache"] is False
    assert load_dataset(tmp_path / "d", cache_dir=tmp_path / "c", cache=False).source["from_cache"] is False


def test_default_cache_dir_and_unwritable_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNAS_CACHE", str(tmp_path / "tc"))
    assert default_cache_dir() == tmp_path / "tc" / "data"
    _make_folder(tmp_path / "d")
    (tmp_path / "file").write_text("")
    with pytest.warns(UserWarning, match="not writable"):
        b = load_dataset(tmp_path / "d", cache_dir=tmp_path / "file" / "cache")
    assert len(b.train) == 16


# ----------------------------------------------------------------- split


def test_split_is_seeded_exact_and_disjoint():
    y = _labels(1000, 10)
    tr, va = split_indices(y, 0.1, seed=3)
    tr2, va2 = split_indices(y, 0.1, seed=3)
    np.testing.assert_array_equal(va, va2)
    assert len(va) == 100 and len(tr) == 900
    assert not set(tr) & set(va) and len(set(tr) | set(va)) == 1000
    assert not np.array_equal(va, split_indices(y, 0.1, seed=4)[1])
    assert len(split_indices(y, 0.1, seed=3, val_count=250)[1]) == 250
    _, strat = split_indices(y, 0.2, seed=0, stratify=True)
    assert (np.bincount(y[strat]) == 20).all()
    # Pinned values: the split must not change across runs, machines or refactors.
    assert va[:8].tolist() == [8, 10, 14, 47, 54, 59, 76, 78]
    assert split_indices(np.zeros(10), 0.3, seed=0)[1].tolist() == [0, 1, 8]
    with pytest.raises(UserError, match="val_fraction"):
        split_indices(y, 1.0)
    with pytest.raises(UserError, match="val_count"):
        split_indices(y, val_count=1000)


# --------------------------------------------------------- preprocessing


def test_normalisation_comes_from_train_only(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (200, 6, 6, 3), dtype=np.uint8)
    b = load_dataset(_npz(tmp_path / "a.npz", x=x, y=_labels(200)), val_fraction=0.5)
    mean, std = channel_stats(b.train.x)
    p = b.preprocessing
    assert p["mean"] == mean and p["std"] == std
    assert p["mean"] != channel_stats(x)[0]
    np.testing.assert_allclose(mean, (b.train.x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, (b.train.x / 255.0).std(axis=(0, 1, 2)), rtol=1e-12)
    assert json.loads(json.dumps(p)) == p
    assert p["input_shape"] == [3, 6, 6] and p["layout"] == "NCHW" and p["value_scale"] == 255.0
    assert p["class_names"] == ["0", "1", "2"]


def test_preprocess_applies_exactly_the_dict():
    b = load_dataset("digits")
    p = b.preprocessing
    x = b.val.x[:4]
    want = ((x / 255.0 - p["mean"][0]) / p["std"][0]).transpose(0, 3, 1, 2)
    got = preprocess(x, p)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (4, 1, 32, 32)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert preprocess(x[0], p).shape == (1, 32, 32)
    assert isinstance(b.preprocess(torch.from_numpy(x)), torch.Tensor)
    assert preprocess(x, p, resolution=20).shape == (4, 1, 20, 20)
    xb, yb = next(b.iter_batches("val", 4))
    np.testing.assert_array_equal(xb.numpy(), got)
    np.testing.assert_array_equal(yb.numpy(), b.val.y[:4])
    with pytest.raises(ValueError, match="uint8 NHWC with C=1"):
        preprocess(np.zeros((2, 32, 32, 3), np.uint8), p)


# ---------------------------------------------------------- augmentation


def test_augment_is_seeded_and_keeps_shapes():
    x = torch.randint(0, 256, (16, 12, 10, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    aug = Augment((2, 2), True)
    a = augment_batch(x, aug, torch.Generator().manual_seed(5))
    b = augment_batch(x, aug, torch.Generator().manual_seed(5))
    c = augment_batch(x, aug, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(augment_batch(x, Augment(), torch.Generator()), x)
    flips = augment_batch(x, Augment((0, 0), True), torch.Generator().manual_seed(1))
    for i in range(16):  # each image is itself or its mirror
        assert torch.equal(flips[i], x[i]) or torch.equal(flips[i], x[i].flip(1))
    crops = augment_batch(x, Augment((2, 2), False), torch.Generator().manual_seed(2))
    padded = torch.nn.functional.pad(x, (0, 0, 2, 2, 2, 2))
    for i in range(16):  # each crop is some 12x10 window of the zero-padded image
        assert any(
            torch.equal(crops[i], padded[i, dy : dy + 12, dx : dx + 10]) for dy in range(5) for dx in range(5)
        )


# --------------------------------------------------------------- batches


def test_iter_batches_shapes_order_and_sharding():
    b = load_dataset("digits")
    n = len(b.train)
    g = torch.Generator().manual_seed(0)
    batches = list(b.iter_batches("train", 100, shuffle=True, generator=g, augment=True, resolution=24))
    assert sum(len(y) for _, y in batches) == n
    assert batches[0][0].shape == (100, 1, 24, 24) and batches[0][0].dtype == torch.float32
    assert batches[0][1].dtype == torch.int64
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(b.train.y.tolist())
    again = next(b.iter_batches("train", 100, shuffle=True, generator=torch.Generator().manual_seed(0), augment=True, resolution=24))
    assert torch.equal(again[0], batches[0][0])
    assert len(list(b.iter_batches("train", 100, drop_last=True))) == n // 100
    shard = list(b.iter_batches("train", 64, indices=range(0, n, 2)))
    assert sum(len(y) for _, y in shard) == (n + 1) // 2
    np.testing.assert_array_equal(shard[0][1].numpy(), b.train.y[0:128:2])
    with pytest.raises(ValueError, match="torch.Generator"):
        next(b.iter_batches("train", 8, shuffle=True))


def test_torch_dataset_view_with_distributed_sampler():
    from torch.utils.data import DataLoader, DistributedSampler

    b = load_dataset("digits")
    ds = b.as_torch_dataset("val")
    x, y = ds[3]
    assert len(ds) == len(b.val) and x.shape == (1, 32, 32) and y.dtype == torch.int64
    np.testing.assert_allclose(x.numpy(), b.preprocess(b.val.x[3]), atol=0)
    sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=False)
    seen = sum(len(yb) for _, yb in DataLoader(ds, batch_size=32, sampler=sampler))
    assert seen == len(ds) // 2


# ------------------------------------------------------ real CIFAR JPEGs


def test_first_cifar_jpegs_from_shared_zip(tmp_path, shared):
    src = shared / "data" / "cifar10-jpeg" / "train.zip"
    if not src.is_file():
        pytest.skip(f"{src} is absent")
    with zipfile.ZipFile(src) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")]
        picked = [n for n in names if n.split("/")[1] in ("airplane", "automobile", "bird")]
        files = {n: zf.read(n) for k, n in enumerate(picked) if k % 50 < 4}
    b = load_dataset(_zip(tmp_path / "small.zip", files), cache_dir=tmp_path / "c", val_fraction=0.2)
    assert b.class_names == ["airplane", "automobile", "bird"] and b.input_shape == (3, 32, 32)
    assert len(b.train) + len(b.val) == len(files) and 0.3 < np.mean(b.preprocessing["mean"]) < 0.7


def test_holdout_is_carved_from_train_stratified_and_disjoint():
    b = load_dataset("digits", holdout_fraction=0.1)
    plain = load_dataset("digits")
    assert b.selection_split == "holdout" and plain.selection_split == "val" and plain.holdout is None
    assert np.array_equal(b.val.indices, plain.val.indices)  # the reported split does not move
    assert len(b.train) + len(b.holdout) == len(plain.train)
    assert not set(b.holdout.indices) & (set(b.train.indices) | set(b.val.indices))
    counts = np.bincount(b.holdout.y, minlength=10)
    assert counts.max() - counts.min() <= 2
    assert len(next(b.iter_batches("holdout", 500))[0]) == len(b.holdout)
    with pytest.raises(UserError, match="holdout_fraction"):
        load_dataset("digits", holdout_fraction=0.7)


def test_resize_loss_tells_upscaled_from_native_images():
    """Upscaled images lose almost nothing when scaled down again; detailed ones lose a lot."""
    import torch.nn.functional as F

    from tinynas.data.resize_loss import resize_loss

    rng = np.random.default_rng(0)
    small = torch.from_numpy(rng.uniform(0, 255, (64, 1, 8, 8)).astype(np.float32))
    up = F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)
    upscaled = up.permute(0, 2, 3, 1).numpy().astype(np.uint8)
    native = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    lost_up, lost_native = resize_loss(upscaled, [16])[16], resize_loss(native, [16])[16]
    assert lost_up < lost_native / 5 and lost_native > 0.2
    assert resize_loss(native, [32])[32] == 0
