"""Where the project's data folders live, found relative to the package.

The package is installed editable (see README), so `profiles/` and `targets/`
sit beside `tinynas/` in the checkout; TINYNAS_HOME overrides that for
unusual layouts.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout root that holds profiles/ and targets/."""
    env = os.environ.get("TINYNAS_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def profiles_dir() -> Path:
    return project_root() / "profiles"


def targets_dir() -> Path:
    return project_root() / "targets"


def shared_dir() -> Path:
    """../shared beside the checkout: third-party models and data for tests and benchmarks."""
    env = os.environ.get("TINYNAS_SHARED")
    return Path(env) if env else project_root().parent / "shared"
