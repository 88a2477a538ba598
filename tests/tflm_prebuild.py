"""Build the firmware tests' TFLM libraries in the background while the rest of the suite runs.

The suite is mostly single-threaded Python, so on a 2-core machine one core sits idle
for most of it; an empty cache, meanwhile, must compile three TFLM libraries (host,
Cortex-M7, Cortex-M4) before the firmware tests can link anything. conftest.py starts
this script at a low priority once it knows firmware tests were collected, and moves
those tests to the end; the libraries are then mostly done when they are needed.

It builds exactly what the tests ask for (tflm_build.build_library with the same
operator union, under the same per-library file lock), so a test that gets there first
builds the library itself and this script finds it done. Nothing here decides a test's
outcome: a failure only leaves the work to the tests, which report it.

    python tests/tflm_prebuild.py SHARED_DIR
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tinynas.deploy import tflm_build
from tinynas.deploy.project import FirmwareArena, from_tflite, model_op_types, write_project
from tinynas.errors import UserError
from tinynas.space.graph_builder import OP_VERSIONS

# The boards whose cores the firmware tests build for: host (any board), M7, M4 with the
# union of the tests' operators; the M33 for one model, with that model's operators only.
BUILDS = (("tflm-host.tar.xz", "cmake", "stm32f746g-disco", None),
          ("tflm-cortex-m.tar.xz", "qemu", "stm32f746g-disco", None),
          ("tflm-cortex-m.tar.xz", "qemu", "nucleo-l4r5zi", None),
          ("tflm-cortex-m.tar.xz", "qemu", "ek-ra6m4", "ad01_int8"))


def union_ops(models: Iterable[Path]) -> list[str]:
    """The ops of `models` and every op a tinynas export emits: one library serves them all."""
    ops = set(OP_VERSIONS)
    for path in models:
        ops |= set(model_op_types(from_tflite(path)))
    return sorted(ops)


def prebuild(shared: Path, models: list[Path]) -> None:
    """Each BUILDS library with union_ops(models), through a project generated for its board."""
    ops = union_ops(models)
    tflm = shared / "tflm"
    with tempfile.TemporaryDirectory(prefix="tflm-prebuild.") as work:
        for i, (archive, target, board, only) in enumerate(BUILDS):
            tree = tflm_build.extract_tree(tflm / archive)
            one = [m for m in models if m.stem == only]
            if only and not one:
                continue
            model = from_tflite(one[0] if one else models[0])
            arena = FirmwareArena(64 * 1024, None, 0, 0.0, "prebuild", "")  # the library ignores it
            project = Path(work) / f"p{i}"
            write_project(model, target, project, "prebuild", None, arena, model_op_types(model), board)
            try:
                lib = tflm_build.build_library(project, tree, jobs=2, ops=None if only else ops)
            except UserError as e:  # a missing cross compiler: the tests skip and say so
                print(f"{archive} {board}: {e}", flush=True)
                continue
            print(f"{archive} {board}: {lib}", flush=True)


def main(argv: list[str]) -> int:
    shared = Path(argv[0])
    os.nice(15)  # the suite's own work comes first
    models = sorted((shared / "models").rglob("*.tflite"))
    if not models:
        return 0
    prebuild(shared, models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
