"""Read a `--data` source into one uint8 NHWC array plus integer labels.

Three kinds of source are understood (see `tinynas.data.load_dataset`):

* ``digits``: scikit-learn's bundled 8x8 digits, so that every command has real
  data to run on with no download.
* a ``.npz`` holding arrays ``x`` (images) and ``y`` (labels), optionally
  ``classes`` (names), for data the user already has as arrays.
* an ImageFolder (``root/<class>/<image>``), as a directory or a ``.zip``; this
  module only lists it (`list_image_folder`); `tinynas.data.cache` decodes it
  once and keeps the result.

This module never imports torch, so listing and decoding stay cheap to import.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError, option

SPEC_HELP = (
    "pass 'digits', a .npz with arrays x and y, an ImageFolder directory "
    "(root/<class>/<image>) or a .zip of one"
)
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
# Top-level folder names that mean "this is a split, not a class".
SPLIT_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


@dataclass
class Decoded:
    """A whole source in memory: x uint8 NHWC, y int64 in 0..K-1, K class names."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    kind: str
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------- resizing


def _bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a triangle (bilinear) filter with half-pixel centres.

    Upscaling gives plain bilinear interpolation with clamped edges; downscaling
    widens the filter to the scale factor so it averages instead of aliasing. This
    is the convention of Pillow's BILINEAR and torch's bilinear with antialias=True,
    so arrays resized here match images resized at decode time.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    dist = (np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / support
    w = np.clip(1.0 - np.abs(dist), 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def resize_nhwc(x: np.ndarray, size: tuple[int, int], chunk: int = 4096) -> np.ndarray:
    """Resize uint8 (or 0..255 float) NHWC images to `size` (H, W) -> uint8 NHWC."""
    h, w = size
    if x.shape[1:3] == (h, w):
        return np.ascontiguousarray(x, dtype=np.uint8)
    wh = _bilinear_weights(x.shape[1], h).astype(np.float32)
    ww = _bilinear_weights(x.shape[2], w).astype(np.float32)
    out = np.empty((x.shape[0], h, w, x.shape[3]), np.uint8)
    for s in range(0, x.shape[0], chunk):
        part = np.einsum("oh,nhwc,pw->nopc", wh, x[s : s + chunk].astype(np.float32), ww)
        out[s : s + chunk] = np.clip(np.rint(part), 0, 255)
    return out


def as_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """Normalise an `image_size` argument to (H, W), refusing nonsense early."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
        raise UserError(f"image size {image_size!r} is invalid; give one positive int or (height, width)")
    return int(size[0]), int(size[1])


# ------------------------------------------------------------------ digits


def load_digits(image_size: tuple[int, int] | None) -> Decoded:
    """scikit-learn's 8x8 digits (1797 images, 10 classes), upscaled to 32x32 by default.

    Values 0..16 are scaled to 0..255 and upscaled with bilinear filtering rather
    than nearest neighbour: nearest would hand the network 4x4 blocks, a pattern
    no camera produces. The digits ship inside scikit-learn: nothing is downloaded.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    x = (d.images.astype(np.float32) * (255.0 / 16.0))[..., None]
    x = resize_nhwc(x, image_size or (32, 32))
    names = [str(int(t)) for t in d.target_names]
    return Decoded(x, d.target.astype(np.int64), names, "digits", {"source": "sklearn.datasets.load_digits"})


# --------------------------------------------------------------------- npz

NPZ_LAYOUTS = (
    "x must be NHWC or NCHW with C in {1, 3, 4}, or NHW (one channel); "
    "the last axis is taken as C when it is 1, 3 or 4, else axis 1"
)


def _npz_layout(x: np.ndarray, path: Path) -> tuple[np.ndarray, str]:
    """Bring x to NHWC; ambiguity is resolved by the fixed rule in NPZ_LAYOUTS."""
    if x.ndim == 3:
        return x[..., None], "NHW"
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4):
        return x, "NHWC"
    if x.ndim == 4 and x.shape[1] in (1, 3, 4):
        return x.transpose(0, 2, 3, 1), "NCHW"
    raise UserError(f"{path}: x has shape {x.shape}, which is no image layout I know; {NPZ_LAYOUTS}")


def _npz_values(x: np.ndarray, path: Path) -> tuple[np.ndarray, str]:
    """Bring pixel values to uint8 0..255.

    Floats whose maximum is <= 1 are read as 0..1 (scaled by 255); other floats and
    wider integers must already lie in 0..255. Anything else (e.g. data that was
    already mean/std normalised) is refused, since tinynas computes its own
    normalisation and must know the raw scale to reproduce it on the device.
    """
    if x.dtype == np.uint8:
        return x, "uint8"
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255, "bool"
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UserError(f"{path}: x has dtype {x.dtype}; store images as uint8 or float")
    if x.size == 0:
        return x.astype(np.uint8), str(x.dtype)
    lo, hi = float(x.min()), float(x.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise UserError(f"{path}: x contains NaN or infinite values; clean the data first")
    if np.issubdtype(x.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return np.rint(x * 255.0).astype(np.uint8), "float 0..1"
    if lo >= 0.0 and hi <= 255.0:
        return np.rint(x).astype(np.uint8), f"{x.dtype} 0..255"
    raise UserError(
        f"{path}: x values span {lo:g}..{hi:g}; tinynas needs raw pixels as uint8, "
        "float in 0..1 or float in 0..255 (undo any normalisation; tinynas computes its own)"
    )


def _is_one_hot(y: np.ndarray) -> bool:
    return (
        y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "iubf"
        and bool(np.isin(y, (0, 1)).all()) and bool((y.sum(axis=1) == 1).all())
    )


def _npz_labels(y: np.ndarray, classes: np.ndarray | None, path: Path) -> tuple[np.ndarray, list[str]]:
    """Labels to int64 0..K-1 with K names.

    With a `classes` array, y must index into it. One-hot rows (N, K) become their
    argmax with K classes. Otherwise labels that are already 0..K-1 are kept, and
    others (e.g. 1..10, {3, 7}, strings) are renumbered in sorted order with their
    original values as the class names.
    """
    one_hot_k = y.shape[1] if _is_one_hot(y) else None
    if one_hot_k:
        y = y.argmax(axis=1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UserError(f"{path}: y has shape {y.shape}; give one integer label per image (shape (N,))")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise UserError(f"{path}: y holds non-integer values; labels must be class ids or names")
        y = y.astype(np.int64)
    if classes is not None:
        names = [str(c) for c in np.asarray(classes).reshape(-1)]
        if y.dtype.kind not in "iub" or (y.size and (y.min() < 0 or y.max() >= len(names))):
            raise UserError(
                f"{path}: y must hold integers in 0..{len(names) - 1} to index the {len(names)} entries of 'classes'"
            )
        return y.astype(np.int64), names
    if one_hot_k:
        return y.astype(np.int64), [str(i) for i in range(one_hot_k)]
    if y.dtype.kind not in "iubUS":
        raise UserError(f"{path}: y has dtype {y.dtype}; labels must be integers or strings")
    values, inverse = np.unique(y, return_inverse=True)
    if y.dtype.kind in "iub" and np.array_equal(values, np.arange(len(values))):
        return y.astype(np.int64), [str(int(v)) for v in values]
    return inverse.astype(np.int64).reshape(-1), [str(v.item()) for v in values]


def load_npz(path: Path, image_size: tuple[int, int] | None) -> Decoded:
    """Arrays from a .npz: x (images), y (labels), optional classes (names)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            if "x" not in keys or "y" not in keys:
                raise UserError(
                    f"{path} holds arrays {keys}; it needs 'x' (images) and 'y' (labels), "
                    "e.g. np.savez(path, x=images, y=labels)"
                )
            x, y = f["x"], f["y"]
            classes = f["classes"] if "classes" in keys else None
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path} is not a readable .npz ({e}); write it with np.savez(path, x=..., y=...)") from e
    x, layout = _npz_layout(x, path)
    if len(x) != len(y):
        raise UserError(f"{path}: x has {len(x)} images but y has {len(y)} labels; they must match")
    x, scale = _npz_values(x, path)
    y, names = _npz_labels(y, classes, path)
    if image_size is not None:
        x = resize_nhwc(x, image_size)
    info = {"source": str(path), "layout": layout, "values": scale}
    return Decoded(np.ascontiguousarray(x), y, names, "npz", info)


# ------------------------------------------------------------- ImageFolder


@dataclass(frozen=True)
class Member:
    """One image file of an ImageFolder: its class, where it lives, its size on disk."""

    parts: tuple[str, ...]  # path below the (stripped) root, class folder first
    ref: str  # file path (directory) or member name (zip)
    size: int
    mtime_ns: int = 0


@dataclass
class Listing:
    """The images of an ImageFolder, sorted by path so that indices are stable."""

    path: Path
    is_zip: bool
    members: list[Member]
    class_names: list[str]
    ignored_root_files: int = 0


def _is_hidden(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _walk_dir(root: Path) -> list[Member]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if _is_hidden(rel) or not _is_image(p.name) or not p.is_file():
            continue
        st = p.stat()
        out.append(Member(rel, str(p), st.st_size, st.st_mtime_ns))
    return out


def _walk_zip(path: Path) -> list[Member]:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path} is not a readable zip ({e}); re-create it, e.g. `zip -r data.zip root/`") from e
    out = []
    for i in infos:
        rel = tuple(p for p in i.filename.replace("\\", "/").split("/") if p)
        if i.is_dir() or not rel or _is_hidden(rel) or not _is_image(rel[-1]):
            continue
        out.append(Member(rel, i.filename, i.file_size))
    return out


def _strip_common_top(members: list[Member]) -> list[Member]:
    """Drop a single wrapping folder, e.g. train.zip holding train/<class>/<image>."""
    while members and all(len(m.parts) >= 3 for m in members) and len({m.parts[0] for m in members}) == 1:
        members = [Member(m.parts[1:], m.ref, m.size, m.mtime_ns) for m in members]
    return members


def list_image_folder(path: Path) -> Listing:
    """List an ImageFolder directory or zip; classes are the sorted first-level folders."""
    is_zip = path.is_file()
    members = _walk_zip(path) if is_zip else _walk_dir(path)
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    if not members:
        raise UserError(f"no images found in {path} (looked for {exts}); expected root/<class>/<image>")
    members = _strip_common_top(members)
    in_classes = [m for m in members if len(m.parts) >= 2]
    if not in_classes:
        raise UserError(
            f"{path} has {len(members)} images but no class folders; put each class's images in root/<class>/"
        )
    names = sorted({m.parts[0] for m in in_classes})
    if all(len(m.parts) >= 3 for m in in_classes) and {n.lower() for n in names} <= SPLIT_NAMES:
        raise UserError(
            f"{path} holds split folders {names}, not class folders; point {option('data')} at one split "
            "(a directory like root/train, or a zip holding only train/<class>/<image>)"
        )
    if len(names) < 2:
        raise UserError(
            f"{path} has a single class folder {names[0]!r}; a classifier needs at least 2 (root/<class>/<image>)"
        )
    in_classes.sort(key=lambda m: m.parts)
    return Listing(path, is_zip, in_classes, names, len(members) - len(in_classes))


# ------------------------------------------------------------------ dispatch


def resolve_spec(spec: str) -> tuple[str, Path | None]:
    """Which kind of source `spec` names: ('digits'|'npz'|'zip'|'folder', path)."""
    if str(spec) == "digits":
        return "digits", None
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"data {str(spec)!r} does not exist; {SPEC_HELP}")
    if path.is_dir():
        return "folder", path
    if path.suffix.lower() == ".npz":
        return "npz", path
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return "zip", path
    raise UserError(f"data {str(spec)!r} is not a directory, .npz or .zip; {SPEC_HELP}")
