"""Issue 15, item 6: atomic writes keep the modes a plain open()/mkdir would give (the umask rules).

mkstemp and mkdtemp create 0600 files and 0700 folders; reports, models and
firmware written through them could not be shared with a colleague.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest

from tinynas.atomic import current_umask, staged_dir, write_bytes, write_json, write_text


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_follow_the_umask(tmp_path, mask):
    with umask(mask):
        assert current_umask() == mask
        write_text(tmp_path / "report.html", "<html></html>")
        write_json(tmp_path / "summary.json", {"fits": True})
        write_bytes(tmp_path / "sub" / "model.tflite", b"TFL3")
    for name in ("report.html", "summary.json", "sub/model.tflite"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name
    assert _mode(tmp_path / "sub") == 0o777 & ~mask


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_staged_dirs_follow_the_umask(tmp_path, mask):
    with umask(mask):
        with staged_dir(tmp_path / "export") as d:
            (d / "a.txt").write_text("x")
    assert _mode(tmp_path / "export") == 0o777 & ~mask


def test_overwrite_keeps_the_umask_mode(tmp_path):
    with umask(0o022):
        p = tmp_path / "a.json"
        p.write_text("{}")
        os.chmod(p, 0o600)
        write_json(p, {})
    assert _mode(p) == 0o644


def test_report_files_are_shareable(tmp_path):
    """report.html and summary.json come from write_report, which writes through atomic."""
    from tinynas.pipeline import report

    with umask(0o022):
        report.write_text(tmp_path / "report.html", "x")
        report.write_json(tmp_path / "summary.json", {})
    assert _mode(tmp_path / "report.html") == _mode(tmp_path / "summary.json") == 0o644
