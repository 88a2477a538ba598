"""The run directory's file names, in one place.

Every stage writes its outputs under DIR/<stage>/ and the next stages read
them back; the names used to be repeated literals in a dozen modules, so a
rename in one would silently break another. Library modules use the
constants; the pipeline and the report use `RunDir`, which knows where each
stage's files live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STAGE_JSON = "stage.json"          # a finished stage's record (hash, seconds, result)
SPACE_JSON = "space.json"
CHECKPOINT = "checkpoint.pt"       # resumable supernet training state
SUPERNET_WEIGHTS = "supernet.pt"
TRAIN_JSON = "train.json"
SEARCH_JSON = "search.json"
BEST_ARCH = "best_arch.json"
ARCH_JSON = "arch.json"
MODEL_WEIGHTS = "model.pt"
FINETUNE_JSON = "finetune.json"
EXPORT_JSON = "export.json"
TFLITE_FILE = "model.tflite"
ONNX_FILE = "model.onnx"
PROFILE_JSON = "profile.json"
SUMMARY_JSON = "summary.json"


def _file(stage: str, name: str) -> property:
    return property(lambda self: self.root / stage / name, doc=f"DIR/{stage}/{name}")


@dataclass(frozen=True)
class RunDir:
    """Where `tinynas run DIR` keeps each stage's files."""

    root: Path

    def stage(self, name: str) -> Path:
        return self.root / name

    space_json = _file("space", SPACE_JSON)
    supernet = property(lambda self: self.root / "supernet", doc="DIR/supernet")
    train_json = _file("supernet", TRAIN_JSON)
    search_json = _file("search", SEARCH_JSON)
    best_arch = _file("search", BEST_ARCH)
    arch = _file("finetune", ARCH_JSON)
    weights = _file("finetune", MODEL_WEIGHTS)
    finetune_json = _file("finetune", FINETUNE_JSON)
    export_json = _file("export", EXPORT_JSON)
    tflite = _file("export", TFLITE_FILE)
    profile_json = _file("profile", PROFILE_JSON)
    summary_json = property(lambda self: self.root / SUMMARY_JSON, doc="DIR/summary.json")
