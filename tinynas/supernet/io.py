"""Reading and writing DIR/supernet.pt, the contract between training and search.

    DIR/supernet.pt = {"format", "version", "state_dict", "space": spec.to_dict(),
                       "data": data_meta record, "epochs": completed, ...}

The file carries its space and its data record, so `load_supernet(DIR)` needs
nothing else to rebuild the network and reload the same split.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .. import rundir as rd
from ..checkpoint import load_torch, save_torch
from ..errors import UserError, option
from ..space.spec import SpaceSpec, load_space
from .supernet import Supernet

FORMAT = "tinynas-supernet"
VERSION = 1
FILENAME = rd.SUPERNET_WEIGHTS


def supernet_path(src: str | os.PathLike) -> Path:
    """DIR -> DIR/supernet.pt; a path to the .pt file itself is accepted too."""
    p = Path(src)
    return p / FILENAME if p.is_dir() else p


def save_supernet(path: str | os.PathLike, sn: Supernet, data_meta: Mapping[str, Any], **extra: Any) -> None:
    save_torch(path, {"format": FORMAT, "version": VERSION, "state_dict": sn.state_dict(),
                      "space": sn.spec.to_dict(), "data": dict(data_meta), **extra})


def load_supernet(src: str | os.PathLike) -> tuple[Supernet, SpaceSpec, dict]:
    """(supernet in eval mode on the CPU, its space, its data record) from a train-supernet DIR."""
    p = supernet_path(src)
    if not p.exists():
        raise UserError(f"{p} does not exist; pass the {option('out')} directory of `tinynas train-supernet`")
    d = load_torch(p, "supernet")
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise UserError(f"{p} is not a tinynas supernet file (written by `tinynas train-supernet`)")
    spec = load_space(d["space"])
    sn = Supernet(spec)
    try:
        sn.load_state_dict(d["state_dict"], strict=True)
    except RuntimeError as e:
        raise UserError(f"{p}: weights do not match its space ({str(e).splitlines()[0]})") from None
    sn.eval()
    return sn, spec, dict(d["data"])
