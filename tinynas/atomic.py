"""Write outputs so that a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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


@contextmanager
def staged_dir(final: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temp directory that replaces `final` only if the block succeeds.

    An existing non-empty `final` is refused unless `force`, because users point
    --out at real project folders.
    """
    from .errors import UserError

    final = Path(final)
    if final.exists() and not final.is_dir():
        raise UserError(f"output path {final} exists and is not a directory; choose another --out")
    if final.is_dir() and any(final.iterdir()) and not force:
        raise UserError(f"output directory {final} is not empty; pass --force to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
