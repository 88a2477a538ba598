"""Atomic torch checkpoints: a crash or a NaN stop never leaves a half-written file.

The object is serialised to memory first and written through
`tinynas.atomic.write_bytes` (temp file + rename), so DIR/checkpoint.pt is
always either the previous complete checkpoint or the new complete one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from .atomic import write_bytes
from .errors import UserError


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def load_torch(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """torch.load onto the CPU, with a one-line error for a missing or unreadable file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {p} does not exist; check the path")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, not a pickle traceback
        raise UserError(f"{p} is not a readable {what} ({type(e).__name__}: {e})") from None


def check_resumable(saved: dict, current: dict, what: str = "setting") -> None:
    """A resumed run replays the original only with the same settings; name the first that differs."""
    for key in sorted(set(saved) | set(current)):
        if key == "epochs":
            continue
        if saved.get(key) != current.get(key):
            raise UserError(f"--resume: {what} {key!r} was {saved.get(key)!r} in the checkpoint but is now "
                            f"{current.get(key)!r}; pass the original value to resume")
