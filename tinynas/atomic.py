"""Write outputs so that a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from .errors import UserError
from .paths import check_output_dir


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows.

    os.umask can only be read by setting it, which races with other threads
    creating files; Linux shows it in /proc/self/status, so try that first.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename over the target.

    mkstemp creates the temp file 0600; it gets the mode a plain open() would
    have given (0666 less the umask), so reports and models can be shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_png(path: str | os.PathLike, fig, dpi: int = 120, **savefig_kw) -> None:
    """Render a matplotlib figure to PNG, close it, and write it atomically.

    Closing here keeps long runs (search, training) from piling up open figures.
    """
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kw)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def check_staged_target(final: str | os.PathLike, force: bool = False, flag: str = "--out") -> Path:
    """Refuse a `final` that staged_dir would refuse; call it before long work, not after.

    An existing non-empty folder is refused unless `force`, because users point
    --out at real project folders.
    """
    final = check_output_dir(final, flag)
    if final.is_dir() and any(final.iterdir()) and not force:
        raise UserError(f"{flag} {final} is not empty; pass --force to replace it")
    return final


@contextmanager
def staged_dir(final: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temp directory that replaces `final` only if the block succeeds (see check_staged_target)."""
    final = check_staged_target(final, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700; the result is the user's folder
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def locked(folder: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock on folder/<key>.lock, where the OS offers one.

    Parallel workers filling one cache entry (a decoded data set, a TFLM library)
    then do the work once; the others wait and find it done.
    """
    try:
        import fcntl
    except ImportError:  # Windows: concurrent writers still end with one whole entry
        yield
        return
    with open(folder / f"{key}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
