"""A wheel built from a copy of the repo works outside the checkout (issue 15 item 1).

An editable install finds profiles/ and targets/ beside the code whatever the
packaging says; a wheel only has what package-data lists. So: copy the tracked
sources, build a wheel without dependencies, install it into a fresh venv with
no dependencies, and run `boards`, `profile` and `export --target arduino` from
another folder. The fresh venv borrows this venv's third-party packages through
PYTHONPATH (site-packages of an editable install holds no `tinynas` folder, so
the wheel's copy is the one imported); nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tinynas.paths import project_root

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = project_root()
    if not (root / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], root).split()
    for f in files:
        if (root / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, src / f)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
          str(src)], tmp)
    wheel = next((tmp / "dist").glob("tinynas-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)], tmp)
    env = {**os.environ, "PYTHONPATH": sysconfig.get_path("purelib")}
    env.pop("TINYNAS_HOME", None)
    return venv, env


def test_wheel_ships_boards_and_targets(wheel_venv, tmp_path: Path, shared_models) -> None:
    venv, env = wheel_venv
    py = str(venv / "bin" / "python")
    where = _run([py, "-c", "import tinynas, tinynas.paths as p; print(tinynas.__file__); print(p.profiles_dir())"],
                 tmp_path, env)
    assert str(project_root()) not in where, where  # the wheel's copy, not the checkout
    out = _run([py, "-m", "tinynas.cli", "boards"], tmp_path, env)
    assert "stm32f746g-disco" in out and "esp32-c3-devkitm" in out
    model = shared_models["hello_world_int8"]
    out = _run([py, "-m", "tinynas.cli", "profile", str(model), "--board", "nucleo-f446re", "--no-measure"],
               tmp_path, env)
    assert "FITS" in out
    # The M4's emulated instruction table ships in the wheel (profiles/emulated/), so latency comes from it.
    assert "estimated by the cycle model" not in out and ("emulated" in out or "interpolated" in out), out
    _run([py, "-m", "tinynas.cli", "export", str(model), "--target", "arduino", "--out", str(tmp_path / "ino")],
         tmp_path, env)
    assert (tmp_path / "ino" / "library.properties").is_file()
    assert _run([py, "-m", "tinynas.cli", "--version"], tmp_path, env).strip()
