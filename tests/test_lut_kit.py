"""`tinynas lut measure` / `lut import`: the kit, the serial log format, the measured LUT.

The round trip the issue asks for: a kit is written, a log in the documented
format is made here from known cycle counts (with garbled and truncated lines
mixed in), imported, and the LUT must hold exactly those counts; graph_latency
must then report those ops as "measured". The kit's own main.cc is also
compiled for the host against small stand-ins of the TFLM API and run, so the
firmware's printing (and its CRC) is checked against the Python parser.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinynas.boards import load_board
from tinynas.cli import main
from tinynas.latency import graph_latency, load_lut, op_signature
from tinynas.lutkit.kit import pack_parts, space_signatures, write_kit
from tinynas.latency.serial_log import entry_line, header_line, parse_log
from tinynas.space import default_space, sample_arch, smallest_arch
from tinynas.space.graph_builder import build_graph

BOARD = "nucleo-l4r5zi"
WIDTH = 0.25
LIMIT = 5
KNOWN = [123_457, 98_765, 4_321_000, 77_001, 555_555]  # cycles per entry, made up


def _sealed(body: str) -> str:
    """The documented checksum, computed here independently of serial_log.seal."""
    return f"{body} crc={zlib.crc32(body.encode('ascii')):08x}"


def _tool_err(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kit") / "kit"
    rc = main(["lut", "measure", "--board", BOARD, "--out", str(out), "--width", str(WIDTH),
               "--limit", str(LIMIT), "--runs", "4", "--no-progress"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def manifest(kit: Path) -> dict:
    return json.loads((kit / "manifest.json").read_text())


def _header(manifest: dict, board: str = BOARD, kit_id: str | None = None) -> str:
    return _sealed(f"TINYNAS_LUT v1 board={board} kit={kit_id or manifest['kit']} part=0/1 "
                   "clock_hz=120000000 ticks_per_s=0 runs=10 warmup=2 models=5")


# ----------------------------------------------------------------------------- kit contents

def test_kit_layout(kit: Path, manifest: dict) -> None:
    spec = default_space(width_mult=WIDTH)
    want = list(space_signatures(spec))[:LIMIT]
    assert [e["signature"] for e in manifest["entries"]] == want
    assert manifest["board"] == BOARD and manifest["runs"] == 4 and len(manifest["parts"]) == 1
    for e in manifest["entries"]:
        assert (kit / e["model"]).is_file()
        assert (kit / "firmware" / "model" / f"lut_e{e['index']:03d}_model_data.cc").is_file()
        assert f'"{e["signature"]}"' in (kit / "firmware/model/lut_kit_part_0.cc").read_text()
    main_cc = (kit / "firmware" / "main.cc").read_text()
    assert "tflite::MicroProfiler" in main_cc and "{{" not in main_cc
    readme = (kit / "README.md").read_text()
    assert "TINYNAS_LUT v1" in readme and "ENTRY <index> <signature> cycles=" in readme
    assert "{{" not in readme and BOARD in readme
    assert "TINYNAS_KIT_PART" in (kit / "firmware" / "CMakeLists.txt").read_text()


def test_space_signatures_cover_sampled_subnets() -> None:
    spec = default_space(width_mult=0.5)
    sigs = space_signatures(spec)
    rng = np.random.default_rng(3)
    for _ in range(20):
        g = build_graph(sample_arch(spec, rng))
        assert {op_signature(g, op) for op in g.ops} <= set(sigs)


def test_single_op_models_for_every_kind_run_in_tflm() -> None:
    from tflite_micro.python.tflite_micro import runtime

    from tinynas.lutkit.kit_models import single_op_tflite
    from tinynas.tflite_reader import parse_tflite

    rng = np.random.default_rng(0)
    for sig in ["conv2d-in:8x8x8-out:4x4x16-k:3-s:2", "dwconv2d-in:8x8x16-out:8x8x16-k:5-s:1",
                "add-in:4x4x8-out:4x4x8", "mean-in:4x4x24-out:24", "fc-in:24-out:10"]:
        buf = single_op_tflite(sig, rng)
        g = parse_tflite(buf)
        assert [op_signature(g, op) for op in g.ops] == [sig]
        it = runtime.Interpreter.from_bytes(buf, arena_size=64 * 1024)
        shape = g.tensors[g.inputs[0]].shape
        it.set_input(np.ones(shape, np.int8), 0)
        it.invoke()


def test_parts_respect_flash_budget(tmp_path: Path) -> None:
    assert pack_parts([5, 5, 5, 9, 2], 10) == [0, 0, 1, 2, 3]
    assert pack_parts([20], 10) == [0]  # one model over budget still gets its own part
    board = load_board(BOARD)
    tiny = replace(board, flash_bytes=board.flash_reserved_bytes + 16 * 1024 + 3_000)
    m = write_kit(tiny, default_space(width_mult=WIDTH), tmp_path / "k", limit=4, progress=False)
    assert len(m["parts"]) > 1
    assert all(p["model_bytes"] <= 3_000 or len(p["entries"]) == 1 for p in m["parts"])
    cmake = (tmp_path / "k/firmware/model/lut_kit_parts.cmake").read_text()
    assert f"set(TINYNAS_KIT_PARTS {len(m['parts'])})" in cmake


# ----------------------------------------------------------------------------- log parsing

def test_log_parser_reports_every_bad_line() -> None:
    sig = "conv2d-in:8x8x8-out:8x8x8-k:1-s:1"
    good = entry_line(0, sig, 1000, 50, 10)
    assert good == _sealed(f"ENTRY 0 {sig} cycles=1000 overhead=50 runs=10")
    lines = [
        "boot ok",                                                   # 1 noise
        header_line("b", "abc123", 0, 1, 10_000, 0, 10, 2, 4),       # 2
        "\x00\xffnoise " + good,                                     # 3 noise prefix: accepted
        good.replace("cycles=1000", "cycles=1900"),                  # 4 garbled digit
        good[:25],                                                   # 5 truncated, no keyword? has ENTRY
        entry_line(1, sig, 7, 5, 10)[:-3],                           # 6 checksum cut short
        "cycles=3 overhead=1 runs=10 crc=12345678",                  # 7 fragment without keyword
        entry_line(0, sig, 1000, 50, 10),                            # 8 duplicate index
        entry_line(2, "conv2d-in:8x8x8-out:8x8x8-k:1-s", 5, 5, 10),  # 9 bad signature
        _sealed("ENTRY 3 x cycles=1"),                               # 10 malformed, crc ok
    ]
    log = parse_log("\n".join(lines))
    assert [(e.line, e.index, e.cycles) for e in log.entries] == [(3, 0, 1000)]
    by_line = {i.line: i.reason for i in log.issues}
    assert set(by_line) == {2, 4, 5, 6, 7, 8, 9, 10}
    assert "checksum mismatch" in by_line[4]
    assert "no checksum" in by_line[5]
    assert "cut short" in by_line[6]
    assert "keyword missing" in by_line[7]
    assert "twice" in by_line[8] and "bad signature" in by_line[9] and "malformed" in by_line[10]
    assert "no END" in by_line[2]
    assert log.noise_lines == 1


# ----------------------------------------------------------------------------- round trip

def _log_from_known(manifest: dict) -> tuple[str, dict[int, str]]:
    sigs = [e["signature"] for e in manifest["entries"]]
    ok = [_sealed(f"ENTRY {i} {s} cycles={KNOWN[i]} overhead=4321 runs=10") for i, s in enumerate(sigs)]
    lines = ["", "*** board reset ***", _header(manifest),
             ok[0],
             ok[1][:-8] + "0" * 8,                          # 5: garbled checksum of entry 1
             ok[1],
             ok[2].replace(str(KNOWN[2]), "4821000"),       # 7: a flipped digit: never accepted
             ok[2],
             "#@! " + ok[3],                                # 9: noise before the keyword: fine
             ok[4][:40],                                    # 10: entry 4 truncated, so not measured
             _sealed("END part=0 entries=5 failed=0"),      # 11: says 5, 4 arrived
             ok[3][:20]]                                    # 12: trailing truncated line
    expect_issue_lines = {5: "checksum mismatch", 7: "checksum mismatch", 10: "no checksum",
                          11: "4 arrived", 12: "no checksum"}
    return "\n".join(lines), expect_issue_lines


def test_round_trip_measure_log_import(kit: Path, manifest: dict, tmp_path: Path, capsys) -> None:
    text, expect = _log_from_known(manifest)
    log = tmp_path / "part0.log"
    log.write_text(text)
    out = tmp_path / "board.lut.json"
    capsys.readouterr()
    assert main(["lut", "import", "--board", BOARD, "--kit", str(kit), str(log), "--out", str(out)]) == 0
    err = _tool_err(capsys)
    for line, reason in expect.items():
        assert any(f"line {line}: " in e and reason in e for e in err), (line, err)
    sigs = [e["signature"] for e in manifest["entries"]]
    lut = load_lut(out, load_board(BOARD))
    assert {s: lut.entries[s].cycles for s in lut.entries} == {s: float(KNOWN[i])
                                                              for i, s in enumerate(sigs[:4])}
    assert all(e.source == "measured" for e in lut.entries.values())
    assert lut.invoke_overhead_cycles == 4321.0
    assert lut.meta["kit"] == manifest["kit"] and lut.meta["not_measured"] == [sigs[4]]

    # graph_latency uses the measured entries; the unmeasured op is flagged, not passed off.
    board = load_board(BOARD)
    g = build_graph(smallest_arch(default_space(width_mult=WIDTH)))
    rep = graph_latency(g, board, lut)
    by_sig = dict(zip(rep.signatures, rep.per_op))
    for i, s in enumerate(sigs[:4]):
        assert by_sig[s].source == "measured" and by_sig[s].cycles == KNOWN[i]
    assert by_sig[sigs[4]].source in ("interpolated", "model")
    assert rep.total_cycles == pytest.approx(4321.0 + sum(p.cycles for p in rep.per_op))


def test_import_writes_default_path_and_never_overwrites(kit: Path, manifest: dict, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    board_toml = tmp_path / "board.toml"
    shutil.copyfile(load_board(BOARD).path, board_toml)
    (tmp_path / "profiles").mkdir()
    monkeypatch.setenv("TINYNAS_HOME", str(tmp_path))  # a scratch checkout's profiles/
    sigs = [e["signature"] for e in manifest["entries"]]
    log1, log2 = tmp_path / "a.log", tmp_path / "b.log"
    log1.write_text("\n".join([_header(manifest), _sealed(f"ENTRY 0 {sigs[0]} cycles=10 overhead=1 runs=1")]))
    log2.write_text("\n".join([_header(manifest), _sealed(f"ENTRY 1 {sigs[1]} cycles=20 overhead=1 runs=1")]))
    args = ["lut", "import", "--board", str(board_toml)]
    assert main(args + [str(log1)]) == 0
    dest = tmp_path / "profiles" / f"{BOARD}.lut.json"
    assert set(load_lut(dest).entries) == {sigs[0]}
    capsys.readouterr()
    assert main(args + [str(log2)]) == 2
    err = _tool_err(capsys)
    assert len(err) == 1 and "--merge" in err[0]
    assert main(args + ["--merge", str(log2)]) == 0
    assert {s: e.cycles for s, e in load_lut(dest).entries.items()} == {sigs[0]: 10.0, sigs[1]: 20.0}
    assert main(args + ["--force", str(log2)]) == 0
    assert set(load_lut(dest).entries) == {sigs[1]}


@pytest.mark.parametrize("case", ["garbage", "board", "kit"])
def test_import_bad_logs_exit_2_one_line(kit: Path, manifest: dict, tmp_path: Path, capsys,
                                         case: str) -> None:
    sig = manifest["entries"][0]["signature"]
    entry = _sealed(f"ENTRY 0 {sig} cycles=10 overhead=1 runs=1")
    text = {
        "garbage": "hello\nENTRY 0 conv2d-in:1x1x1-out:1x1x1-k:1-s:1 cycles=5\n"
                   + entry.replace("cycles=10", "cycles=19") + "\n",
        "board": _header(manifest, board="nucleo-f446re") + "\n" + entry,
        "kit": _header(manifest, kit_id="0123456789ab") + "\n" + entry,
    }[case]
    log = tmp_path / f"{case}.log"
    log.write_text(text)
    capsys.readouterr()
    rc = main(["lut", "import", "--board", BOARD, "--kit", str(kit), str(log),
               "--out", str(tmp_path / "x.json")])
    assert rc == 2
    err = [e for e in _tool_err(capsys) if e.startswith("tinynas: error:")]
    assert len(err) == 1
    assert {"garbage": "no valid ENTRY", "board": "nucleo-f446re", "kit": "0123456789ab"}[case] in err[0]
    assert not (tmp_path / "x.json").exists()


# ----------------------------------------------------------------------------- the firmware itself

_STUBS = {
    "tensorflow/lite/micro/micro_time.h": """
#pragma once
#include <cstdint>
namespace tflite {
inline uint32_t g_fake_clock = 0;
inline uint32_t ticks_per_second() { return 0; }
inline uint32_t GetCurrentTimeTicks() { return g_fake_clock; }
}
""",
    "tensorflow/lite/micro/system_setup.h": "#pragma once\nnamespace tflite { inline void InitializeTarget() {} }\n",
    "tensorflow/lite/schema/schema_generated.h": """
#pragma once
#include <cstdint>
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite {
struct Model { uint32_t version() const { return 3; } };
inline const Model* GetModel(const void*) { static Model m; return &m; }
}
""",
    "tensorflow/lite/micro/micro_profiler.h": """
#pragma once
#include <cstdint>
#include "tensorflow/lite/micro/micro_time.h"
namespace tflite {
class MicroProfilerInterface {
 public:
  virtual ~MicroProfilerInterface() {}
  virtual uint32_t BeginEvent(const char* tag) = 0;
  virtual void EndEvent(uint32_t handle) = 0;
};
class MicroProfiler : public MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char*) override { start_[n_] = GetCurrentTimeTicks(); return n_++; }
  void EndEvent(uint32_t h) override { end_[h] = GetCurrentTimeTicks(); }
  void ClearEvents() { n_ = 0; }
  uint32_t GetTotalTicks() const { uint32_t t = 0; for (int i = 0; i < n_; ++i) t += end_[i] - start_[i]; return t; }
 private:
  uint32_t start_[16], end_[16];
  int n_ = 0;
};
}
""",
    "tensorflow/lite/micro/micro_mutable_op_resolver.h": """
#pragma once
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
class MicroOpResolver {};
template <unsigned int N> class MicroMutableOpResolver : public MicroOpResolver {
 public:
  TfLiteStatus AddConv2D() { return kTfLiteOk; }
  TfLiteStatus AddDepthwiseConv2D() { return kTfLiteOk; }
  TfLiteStatus AddAdd() { return kTfLiteOk; }
  TfLiteStatus AddMean() { return kTfLiteOk; }
  TfLiteStatus AddFullyConnected() { return kTfLiteOk; }
};
}
""",
    # Op k of the run takes 1000 + 100 k ticks; Invoke adds 30 + 20 around the op event.
    "tensorflow/lite/micro/micro_interpreter.h": """
#pragma once
#include <cstddef>
#include <cstdint>
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler.h"
#include "tensorflow/lite/schema/schema_generated.h"
typedef struct { union { char* raw; int8_t* int8; } data; size_t bytes; } TfLiteTensor;
namespace tflite {
class MicroResourceVariables;
inline int g_models = 0;
class MicroInterpreter {
 public:
  MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t* arena, size_t,
                   MicroResourceVariables*, MicroProfilerInterface* p) : p_(p) {
    t_.data.raw = reinterpret_cast<char*>(arena); t_.bytes = 64;
  }
  TfLiteStatus AllocateTensors() { op_ticks_ = 1000u + 100u * g_models++; return kTfLiteOk; }
  TfLiteStatus Invoke() {
    g_fake_clock += 30; uint32_t h = p_->BeginEvent("OP"); g_fake_clock += op_ticks_;
    p_->EndEvent(h); g_fake_clock += 20; return kTfLiteOk;
  }
  size_t inputs_size() const { return 1; }
  TfLiteTensor* input(size_t) { return &t_; }
 private:
  MicroProfilerInterface* p_;
  TfLiteTensor t_;
  uint32_t op_ticks_ = 0;
};
}
""",
}


def test_kit_firmware_prints_what_import_reads(kit: Path, manifest: dict, tmp_path: Path,
                                               capsys) -> None:
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed")
    stubs = tmp_path / "stubs"
    for rel, text in _STUBS.items():
        (stubs / rel).parent.mkdir(parents=True, exist_ok=True)
        (stubs / rel).write_text(text)
    model = kit / "firmware" / "model"
    srcs = [kit / "firmware" / "main.cc", model / "lut_kit_part_0.cc",
            *sorted(model.glob("lut_e*_model_data.cc"))]
    exe = tmp_path / "lut_kit"
    r = subprocess.run([gxx, "-std=c++17", "-O0", "-Wall", "-Werror", "-I", str(stubs), "-I", str(model),
                        *map(str, srcs), "-o", str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    log = tmp_path / "fw.log"
    log.write_text("boot banner\n" + out.stdout)
    parsed = parse_log(out.stdout)
    assert parsed.issues == [] and len(parsed.sessions) == 1 and parsed.sessions[0].ended
    assert parsed.sessions[0].header.runs == 4 and parsed.sessions[0].header.kit == manifest["kit"]
    dest = tmp_path / "fw.lut.json"
    capsys.readouterr()
    assert main(["lut", "import", "--board", BOARD, "--kit", str(kit), str(log), "--out", str(dest)]) == 0
    lut = load_lut(dest)
    want = {e["signature"]: 1000.0 + 100 * k for k, e in enumerate(manifest["entries"])}
    assert {s: e.cycles for s, e in lut.entries.items()} == want
    assert lut.invoke_overhead_cycles == 50.0
