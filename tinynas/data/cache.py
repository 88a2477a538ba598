"""Decode an ImageFolder once, keep the pixels as memory-mappable .npy files.

Decoding 50,000 small JPEGs costs seconds of pure-Python overhead per run and far
more for large photos; a training run, a search and a fine-tune would each pay
it. So the decoded uint8 NHWC array is written under the cache directory, keyed
by what was decoded (the zip's sha256, or every image's path, size and mtime for
a directory) and how (target size, decoder version). A later load maps the file.

Entries are written to a temp file and renamed, the metadata JSON last, so a
crash leaves no half entry that a later run could trust. A lock file lets the
ranks of a torchrun job wait for the one that decodes instead of all decoding.

Large images are decoded on a thread pool: Pillow drops the GIL inside its
decoders, which cut the time per 256x256 JPEG by 20% on two cores (more on more
cores). Small ones are decoded on one thread: for 32x32 JPEGs the per-image
Python work holds the GIL and two threads were 40-80% slower than one
(measured on a 2-core machine; bench/bench_data.py reports both).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..atomic import locked, write_json
from ..errors import UserError
from ..paths import user_cache_dir
from .sources import Decoded, Listing, Member, list_image_folder

DECODER_VERSION = 1  # bump when decoding changes, so stale cache entries are ignored
CORRUPT_LIMIT = 0.01  # below this fraction unreadable images are skipped, at or above it we stop
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
CHUNK = 256
THREADS_FROM_PIXELS = 128 * 128  # images at least this large are decoded on a thread pool


def default_cache_dir() -> Path:
    """$TINYNAS_CACHE/data, else $XDG_CACHE_HOME/tinynas/data, else ~/.cache/tinynas/data."""
    return user_cache_dir() / "data"


# -------------------------------------------------------------- cache keys


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: Path, listing: Listing | None) -> str:
    """What identifies the source's content: zip bytes, or (path, size, mtime) of each image.

    A zip needs no listing, so a cache hit skips reading its 50,000-entry directory.
    """
    if listing is None:
        return "zip-sha256:" + file_sha256(path)
    h = hashlib.sha256()
    for m in listing.members:
        h.update(f"{'/'.join(m.parts)}\0{m.size}\0{m.mtime_ns}\n".encode())
    return "dir-stat-sha256:" + h.hexdigest()


def cache_key(source_fingerprint: str, image_size: tuple[int, int] | None) -> str:
    spec = json.dumps({"src": source_fingerprint, "size": image_size, "v": DECODER_VERSION})
    return hashlib.sha256(spec.encode()).hexdigest()[:32]


# ---------------------------------------------------------------- decoding


class _Reader:
    """Bytes of ImageFolder members, safe to call from decoding threads.

    One ZipFile is shared and read under a lock: its open-file bookkeeping is not
    thread-safe, and reopening a 50,000-entry zip per thread costs 0.3 s each.
    """

    def __init__(self, listing: Listing):
        self._zip = zipfile.ZipFile(listing.path) if listing.is_zip else None
        self._lock = threading.Lock()

    def read(self, m: Member) -> bytes:
        if self._zip is not None:
            with self._lock:
                return self._zip.read(m.ref)
        with open(m.ref, "rb") as f:
            return f.read()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _to_8bit(im: Image.Image) -> Image.Image:
    """16/32-bit grey to 8-bit by scaling, not clipping (Pillow's convert clips at 255)."""
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    return im.convert("RGBA") if im.mode == "P" else im


def _decode(data: bytes, size: tuple[int, int], mode: str) -> tuple[np.ndarray, tuple[int, int], bool]:
    """One image -> (uint8 HxWxC at `size` in `mode`, native (H, W), native is grey).

    JPEGs are decoded at a reduced DCT scale when far larger than needed (draft);
    EXIF rotation is applied, since phone photos are stored sideways otherwise.
    Different aspect ratios are stretched, never cropped, so no object is cut off.
    """
    h, w = size
    with Image.open(io.BytesIO(data)) as im:
        native_w, native_h = im.size
        turned = "exif" in im.info and im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        if turned:
            native_w, native_h = native_h, native_w
        gray = im.mode in GRAY_MODES
        if im.format == "JPEG":
            im.draft(mode, (max(h, w), max(h, w)))
        if "exif" in im.info:
            im = ImageOps.exif_transpose(im)
        im = _to_8bit(im)
        if im.mode != mode:
            im = im.convert(mode)
        if im.size != (w, h):
            im = im.resize((w, h), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return a.reshape(h, w, -1), (native_h, native_w), gray


class _Pass:
    """Decode every member at one target size and mode, filling preallocated arrays."""

    def __init__(self, listing: Listing, size: tuple[int, int], mode: str):
        n, c = len(listing.members), 1 if mode == "L" else 3
        self.listing, self.size, self.mode = listing, size, mode
        self.x = np.zeros((n, size[0], size[1], c), np.uint8)
        self.native = np.zeros((n, 2), np.int64)
        self.gray = np.zeros(n, bool)
        self.bad: dict[int, str] = {}

    def chunk(self, reader: _Reader, start: int) -> None:
        for i in range(start, min(start + CHUNK, len(self.x))):
            m = self.listing.members[i]
            try:
                self.x[i], self.native[i], self.gray[i] = _decode(reader.read(m), self.size, self.mode)
            except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable file"
                self.bad[i] = f"{type(e).__name__}: {e}"

    def run(self, reader: _Reader, workers: int) -> "_Pass":
        starts = range(0, len(self.x), CHUNK)
        if workers <= 1 or len(starts) <= 1:
            for s in starts:
                self.chunk(reader, s)
        else:
            with ThreadPoolExecutor(workers) as ex:
                list(ex.map(lambda s: self.chunk(reader, s), starts))
        return self


def _probe(listing: Listing, reader: _Reader) -> tuple[tuple[int, int], str]:
    """Size and mode of the first readable image: the guess the first pass decodes to."""
    for m in listing.members[:100]:
        try:
            _, native, gray = _decode(reader.read(m), (1, 1), "L")
            return (int(native[0]), int(native[1])), "L" if gray else "RGB"
        except Exception:  # noqa: BLE001 - an unreadable probe just moves to the next file
            continue
    return (32, 32), "RGB"


def _choose(p: _Pass, image_size: tuple[int, int] | None) -> tuple[tuple[int, int], str]:
    """The dataset's size (given, else the most common) and mode (L only if all grey)."""
    good = np.array([i not in p.bad for i in range(len(p.x))], bool)
    mode = "L" if p.gray[good].all() else "RGB"
    if image_size is not None:
        return image_size, mode
    counts = Counter(map(tuple, p.native[good].tolist()))
    best = max(counts.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1], kv[0]))
    return (int(best[0][0]), int(best[0][1])), mode


def _check_corrupt(p: _Pass) -> list[str]:
    """Fail loudly when many files are unreadable; return the few to skip otherwise."""
    names = ["/".join(p.listing.members[i].parts) for i in sorted(p.bad)]
    if not names:
        return []
    if len(names) >= CORRUPT_LIMIT * len(p.x):
        first = "; ".join(f"{n} ({p.bad[i]})" for n, i in zip(names[:3], sorted(p.bad)))
        raise UserError(
            f"{len(names)} of {len(p.x)} images in {p.listing.path} could not be decoded, e.g. {first}; "
            "fix or delete them (up to 1% unreadable files are skipped with a warning)"
        )
    return names


def default_workers(native_size: tuple[int, int]) -> int:
    """Threads pay only when Pillow's C decoder, not Python, dominates (large images)."""
    if native_size[0] * native_size[1] < THREADS_FROM_PIXELS:
        return 1
    return min(8, os.cpu_count() or 1)


def decode_listing(listing: Listing, image_size: tuple[int, int] | None, workers: int | None = None) -> Decoded:
    """Decode all images to one uint8 NHWC array of a common size and mode.

    The first pass decodes to the first image's size and mode; only when the
    dataset turns out to be mostly another size, or has colour images after a
    grey first one, is it decoded again at the right target (one pass is typical).
    """
    t0 = time.perf_counter()
    reader = _Reader(listing)
    try:
        size, mode = _probe(listing, reader)
        workers = workers or default_workers(size)
        p = _Pass(listing, image_size or size, mode).run(reader, workers)
        skipped = _check_corrupt(p)
        target = _choose(p, image_size)
        if target != (p.size, p.mode):
            p = _Pass(listing, *target).run(reader, workers)
    finally:
        reader.close()
    keep = np.array([i not in p.bad for i in range(len(p.x))], bool)
    index = {name: k for k, name in enumerate(listing.class_names)}
    labels = np.array([index[m.parts[0]] for m in listing.members], np.int64)
    info = {
        "source": str(listing.path),
        "mode": p.mode,
        "skipped": skipped,
        "resized": int((p.native[keep] != np.array(p.size)).any(axis=1).sum()),
        "ignored_root_files": listing.ignored_root_files,
        "decode_s": round(time.perf_counter() - t0, 3),
    }
    x = p.x if keep.all() else p.x[keep]
    return Decoded(x, labels[keep], list(listing.class_names), "zip" if listing.is_zip else "folder", info)


# ----------------------------------------------------------- cache entries


def _save_npy(path: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_entry(folder: Path, key: str, d: Decoded) -> None:
    _save_npy(folder / f"{key}.x.npy", d.x)
    _save_npy(folder / f"{key}.y.npy", d.y)
    meta = {"version": DECODER_VERSION, "kind": d.kind, "class_names": d.class_names, "info": d.info}
    write_json(folder / f"{key}.json", meta)


def _read_entry(folder: Path, key: str) -> Decoded | None:
    """A complete, consistent entry, or None (a broken one is simply decoded again)."""
    meta_path = folder / f"{key}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        x = np.load(folder / f"{key}.x.npy", mmap_mode="r", allow_pickle=False)
        y = np.load(folder / f"{key}.y.npy", allow_pickle=False)
        if meta["version"] != DECODER_VERSION or x.ndim != 4 or len(x) != len(y):
            return None
    except (OSError, ValueError, KeyError):
        return None
    return Decoded(x, y.astype(np.int64), meta["class_names"], meta["kind"], meta["info"])


def _usable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.access(folder, os.W_OK)
    except OSError:
        return False


def load_image_folder(
    path: Path,
    image_size: tuple[int, int] | None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    workers: int | None = None,
) -> Decoded:
    """An ImageFolder (directory or zip), from the cache when it was decoded before."""
    t0 = time.perf_counter()
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if use_cache and not _usable(folder):
        warnings.warn(f"cache directory {folder} is not writable; decoding without a cache", stacklevel=3)
        use_cache = False
    is_zip = path.is_file()
    listing = None if is_zip and use_cache else list_image_folder(path)
    if not use_cache:
        d = decode_listing(listing, image_size, workers)
        d.info.update(from_cache=False, load_s=round(time.perf_counter() - t0, 3))
        return _warn_skipped(d)
    key = cache_key(fingerprint(path, listing), image_size)
    d = _read_entry(folder, key)
    hit = d is not None
    if not hit:
        with locked(folder, key):
            d = _read_entry(folder, key)  # another process may have written it meanwhile
            hit = d is not None
            if not hit:
                d = _decode_and_store(listing or list_image_folder(path), image_size, workers, folder, key)
    d.info.update(from_cache=hit, cache_file=str(folder / f"{key}.x.npy"), load_s=round(time.perf_counter() - t0, 3))
    return _warn_skipped(d)


def _decode_and_store(
    listing: Listing, image_size: tuple[int, int] | None, workers: int | None, folder: Path, key: str
) -> Decoded:
    d = decode_listing(listing, image_size, workers)
    try:
        _write_entry(folder, key, d)
    except OSError as e:
        warnings.warn(f"could not write the data cache in {folder} ({e}); continuing without it", stacklevel=4)
    return d


def _warn_skipped(d: Decoded) -> Decoded:
    """Say what was left out, on every load: a cached entry hides it otherwise."""
    skipped = d.info.get("skipped") or []
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {d.info['source']}: {', '.join(skipped[:5])}"
            + (" ..." if len(skipped) > 5 else ""),
            stacklevel=3,
        )
    if d.info.get("ignored_root_files"):
        warnings.warn(
            f"ignored {d.info['ignored_root_files']} image(s) directly under {d.info['source']}, "
            "outside any class folder; move them into root/<class>/ to use them",
            stacklevel=3,
        )
    return d
