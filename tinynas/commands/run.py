"""`tinynas run`: the whole pipeline in one command (see tinynas.pipeline)."""

from __future__ import annotations

from ..pipeline.main import add_parser, run

__all__ = ["add_parser", "run"]
