"""Issue 15, item 8: report.html a person can read at 1280 px, checked on its structure.

A run folder is faked from small JSON records (no training), then the report is
written and parsed: sections, per-layer table, data description, relative
links, next steps, and plots no wider than the page column (so the browser never
scales their text down). The plots' own choices (distinct legend colours, KiB
and percent) are checked on the figures.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from tinynas.boards import load_board
from tinynas.cgen import firmware_sram
from tinynas.pipeline.config import build_config
from tinynas.pipeline.records import StageRecord
from tinynas.pipeline.report import BUDGET_COLOURS, budget_figure, pareto_figure, write_report
from tinynas.plotstyle import FIG_DPI, FIG_WIDTH_IN
from tinynas.profile import memory_figure

COLUMN_PX = 960  # the report's max-width: 60em at 16 px


def _ops(n: int) -> list[dict]:
    return [{"index": i, "type": "CONV_2D" if i % 2 == 0 else "ADD", "inputs": [[1, 16, 16, 8]],
             "outputs": [[1, 16, 16, 8]], "macs": 1000 * i, "weight_bytes": 10 * i, "live_bytes": 4096,
             "arena_in_use_bytes": 8192, "scratch_bytes": 0, "latency_ms": 0.5, "latency_source": "model"}
            for i in range(n)]


def _profile(board, n_ops: int = 12) -> dict:
    return {"model": "export/model.tflite", "model_bytes": 120_000, "board": board.id, "board_name": board.name,
            "macs": 3_000_000, "arena_bytes_measured": 20_000, "arena_bytes_estimated": 19_900,
            "arena_bytes_device": 18_560, "cmsis_scratch_bytes": 0, "kernel_scratch_max_bytes": 0,
            "kernels": board.kernels, "flash_bytes": 120_000 + board.flash_reserved_bytes,
            "arena_bytes_firmware": 19_488, "sram_breakdown": firmware_sram(
                18_560, 0, board.sram_reserved_bytes, "planned for the board (32-bit) by tinynas.planner"),
            "sram_bytes": 19_488 + board.sram_reserved_bytes, "flash_reserved_bytes": board.flash_reserved_bytes,
            "sram_reserved_bytes": board.sram_reserved_bytes, "board_sram_bytes": board.sram_bytes,
            "board_flash_bytes": board.flash_bytes, "latency_ms": 6.0, "fits": True, "violations": [],
            "unsupported_ops": [], "ops": _ops(n_ops)}


def _search() -> dict:
    hist = [{"latency_ms": 30 + i, "accuracy": 0.3 + 0.01 * i, "sram_bytes": 39_000 + 300 * i} for i in range(6)]
    return {"strategy": "evolution", "history": hist, "front": hist[::2], "best": hist[0]}


def _write(p: Path, obj) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj))


def _fake_run(tmp_path: Path, board_id: str, target: str) -> tuple[Path, dict]:
    board = load_board(board_id)
    out = tmp_path / "run"
    _write(out / "profile" / "profile.json", _profile(board))
    _write(out / "search" / "search.json", _search())
    _write(out / "export" / "export.json", {
        "accuracy_float": 0.9, "accuracy_int8": 0.89, "verify_samples": 180, "tflm_litert_identical_fraction": 1.0,
        "max_lsb_diff": 0, "data": {"data": "/somewhere/cifar10.zip", "load": {"val_count": 180, "seed": 0},
                                    "preprocessing": {"input_shape": [3, 32, 32], "color": "RGB"},
                                    "class_names": ["cat", "dog", "ship"], "num_classes": 3}})
    (out / "export" / "model.tflite").write_bytes(b"TFL3")
    (out / "export" / "model").mkdir()
    cfg = build_config(None, {"run": {"board": board_id, "data": "/somewhere/cifar10.zip", "out": str(out),
                                      "time": "10m"},
                              "export": {"target": target}})
    results = {k: StageRecord(stage=k, wall_s=w) for k, w in (("search", 3.0), ("export", 2.0), ("profile", 1.0))}
    write_report(out, board, cfg, results)
    return out, cfg


class _Doc(HTMLParser):
    """Headings in order, the tables after each heading, links and images."""

    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self._tag: str | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2":
            self._tag = "h2"
            self.h2.append("")
        elif tag == "tr" and self.h2:
            self._row = []
            self.tables.setdefault(self.h2[-1], []).append(self._row)
        elif tag in ("td", "th"):
            self._tag = "cell"
            if self._row is not None:
                self._row.append("")
        elif tag == "a":
            self.links.append(a["href"])
        elif tag == "img":
            self.images.append(a["src"])

    def handle_endtag(self, tag):
        if tag in ("h2", "td", "th"):
            self._tag = None

    def handle_data(self, data):
        self.text.append(data)
        if self._tag == "h2":
            self.h2[-1] += data
        elif self._tag == "cell" and self._row is not None:
            self._row[-1] += data


def _parse(out: Path) -> _Doc:
    d = _Doc()
    d.feed((out / "report.html").read_text(encoding="utf-8"))
    return d


def _png_width(data_uri: str) -> int:
    raw = base64.b64decode(data_uri.split(",", 1)[1])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", raw[16:20])[0]


def test_report_sections_tables_links_and_next_steps(tmp_path):
    out, cfg = _fake_run(tmp_path, "arduino-nano-33-ble-sense", "arduino")
    doc = _parse(out)
    text = " ".join(" ".join(doc.text).split())
    assert doc.h2[0] == "Board and limits" and "Data" in doc.h2 and doc.h2[-1] == "Next steps"
    assert "cifar10.zip" in text and "3 classes (cat, dog, ship)" in text and "180 validation images" in text
    assert "input 32x32x3 (HxWxC" in text
    layers = doc.tables["Memory and latency per layer"]
    assert layers[0][:4] == ["#", "op", "input", "output"] and len(layers) == 1 + 12
    assert layers[1][2] == "16x16x8"
    assert doc.links and all(not re.match(r"^(/|[a-z]+:)", h) for h in doc.links)
    assert all((out / h).exists() for h in doc.links), doc.links
    assert "arduino-cli compile" in text and "arduino:mbed_nano:nano33ble" in text
    assert "tinynas lut measure --board arduino-nano-33-ble-sense" in text
    assert "--time 20m" in text  # twice this run's budget
    assert "%" in text and "0.89" not in text  # accuracy in percent only


def test_report_plots_are_shown_unscaled(tmp_path):
    out, _ = _fake_run(tmp_path, "stm32f746g-disco", "cmake")
    doc = _parse(out)
    assert len(doc.images) >= 2  # budget and Pareto; the stage plots are absent in this fake run
    for src in doc.images:
        assert _png_width(src) <= COLUMN_PX


def test_target_none_offers_an_export_command(tmp_path):
    out, _ = _fake_run(tmp_path, "stm32f746g-disco", "none")
    text = (out / "report.md").read_text()
    assert "none project" not in text and "`none` project" not in text
    assert "tinynas export export/model.tflite --target cmake" in text


def test_budget_legend_colours_differ():
    board = load_board("stm32f746g-disco")
    fig = budget_figure(_profile(board))
    leg = fig.axes[0].get_legend()
    colours = {t.get_text(): tuple(h.get_facecolor()) for t, h in zip(leg.get_texts(), leg.legend_handles)}
    plt.close(fig)
    assert set(colours) == set(BUDGET_COLOURS) and len(set(colours.values())) == len(colours)


def test_pareto_uses_percent_and_kib_over_the_candidates_range():
    board = load_board("stm32f746g-disco")
    fig = pareto_figure(_search(), board)
    ax, cax = fig.axes[0], fig.axes[1]
    plt.close(fig)
    assert "%" in ax.get_ylabel() and "KiB" in cax.get_ylabel()
    lo, hi = cax.get_ylim()
    assert 38 < lo and hi < 41  # the candidates' 39.0-40.5 KiB, not 0..board SRAM


@pytest.mark.parametrize("n_ops", [5, 200])
def test_memory_plot_width_does_not_grow_with_the_op_count(n_ops):
    board = load_board("stm32f746g-disco")
    fig = memory_figure(_profile(board, n_ops))
    plt.close(fig)
    assert fig.get_size_inches()[0] == FIG_WIDTH_IN and FIG_WIDTH_IN * FIG_DPI <= COLUMN_PX
