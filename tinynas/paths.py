"""Where the project's data folders live, found relative to the package.

`profiles/` (board TOMLs, measured LUTs) and `targets/` (firmware templates)
are package data inside `tinynas/`, so a wheel installed anywhere has them;
TINYNAS_HOME points at another folder holding both (tests, custom layouts).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import UserError


PACKAGE_DIR = Path(__file__).resolve().parent


def data_root() -> Path:
    """The folder that holds profiles/ and targets/: the package, or TINYNAS_HOME."""
    env = os.environ.get("TINYNAS_HOME")
    return Path(env) if env else PACKAGE_DIR


def project_root() -> Path:
    """The checkout root (for an editable install): the folder above the package."""
    return PACKAGE_DIR.parent


def profiles_dir() -> Path:
    return data_root() / "profiles"


def targets_dir() -> Path:
    return data_root() / "targets"


def user_cache_dir() -> Path:
    """$TINYNAS_CACHE, else $XDG_CACHE_HOME/tinynas, else ~/.cache/tinynas (decoded data, TFLM builds)."""
    if os.environ.get("TINYNAS_CACHE"):
        return Path(os.environ["TINYNAS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tinynas"


def shared_dir() -> Path:
    """../shared beside the checkout: third-party models and data for tests and benchmarks."""
    env = os.environ.get("TINYNAS_SHARED")
    return Path(env) if env else project_root().parent / "shared"


# ------------------------------------------------------------------ checks before work starts


def read_json(path: str | os.PathLike, what: str, hint: str = "") -> Any:
    """A JSON file's content, or a one-line UserError naming `what` and the path."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {p} does not exist{hint}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{what} {p} is not valid JSON ({e})") from None


def check_input_file(path: str | os.PathLike, what: str = "input file") -> Path:
    """A readable regular file, or a UserError that says which and why.

    Checked before reading: a FIFO or a device would block the read forever,
    and a permission error deep inside a parser would surface as a traceback.
    """
    import stat

    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise UserError(f"{what} {p} does not exist; check the path") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {p}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {p} is a directory; pass a file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{what} {p} is not a regular file (a pipe, socket or device); pass a file")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise UserError(f"cannot read {what} {p}: {e.strerror}") from None
    return p


def _nearest_existing(p: Path) -> Path:
    """p itself or its closest ancestor that exists (what mkdir -p would start from)."""
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A folder we can create or write into; refused before any work starts.

    Catches the cases that would otherwise fail only at the end of a long job:
    the path is a file, a parent is a file, or the folder is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} exists and is not a directory; choose another {flag}")
    base = _nearest_existing(p)
    if not base.is_dir():
        raise UserError(f"{flag} {p}: {base} is a file, not a directory; choose another {flag}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {p}: no permission to write in {base}; choose another {flag}")
    return p


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """A file path whose folder we can create or write into, and which is not a folder itself."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a directory; give a file name")
    check_output_dir(p.parent, flag)
    return p
