"""Target skeletons and the `tinynas export` command, end to end through the CLI.

The template mains are compiled (-fsyntax-only) against small stand-ins for the
TFLM, Zephyr, FreeRTOS and Arduino APIs they use: that catches template typos and
placeholder slips, not drift in the real TFLM API.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinynas import cgen
from tinynas.errors import UserError
from tinynas.firmware import available_targets, render_target, substitute
from tinynas.tflite_reader import read_tflite

TARGETS = ["cmake", "arduino", "zephyr", "esp-idf", "qemu"]
HELLO = "hello_world_int8"
HELLO_MIN_ARENA = 1937  # ../shared/models/README.md, TFLM Python runtime bisection


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinynas.cli", "export", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def _assert_user_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinynas: error:"), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _files(d: Path) -> dict[str, str]:
    return {p.relative_to(d).as_posix(): p.read_text() for p in sorted(d.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- render_target

def test_available_targets() -> None:
    assert available_targets() == sorted(TARGETS) + ["none"]


def test_substitute() -> None:
    assert substitute("a {{name}} b {{ Name }}", {"name": "x", "Name": "X"}) == "a x b X"
    assert substitute("int a[] = {1, {2}};", {}) == "int a[] = {1, {2}};"
    with pytest.raises(UserError, match=r"\{\{nope\}\}"):
        substitute("{{nope}}", {"name": "x"}, "t.txt")


def test_render_target_places_generated_files(tmp_path: Path) -> None:
    files = {"m_model_data.h": "h", "m_model_data.cc": "cc", "m_op_resolver.h": "r", "m_model_settings.h": "s"}
    from tinynas.boards import load_board
    from tinynas.deploy.firmware_settings import board_settings

    base = {"arena_bytes": 1024, "model_file": "m.tflite", "model_bytes": 10, "op_count": 1, "ops": "ADD",
            "tflm_ops": "ADD"}
    expect = {
        "cmake": "model/m_model_data.cc",
        "qemu": "model/m_model_data.cc",
        "arduino": "src/m_model_data.cpp",
        "zephyr": "src/m_model_data.cc",
        "esp-idf": "components/m_model/m_model_data.cc",
        "none": "m_model_data.cc",
    }
    for target, data_path in expect.items():
        out = tmp_path / target
        settings = {**base, **board_settings(load_board("stm32f746g-disco"), target)}
        written = render_target(target, out, "m", files, settings)
        assert data_path in {p.as_posix() for p in written}
        assert (out / data_path).read_text() == "cc"
        for rel, text in _files(out).items():
            assert "{{" not in text and "{{" not in rel, (target, rel)


def test_render_target_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown target 'vxworks'"):
        render_target("vxworks", tmp_path / "a", "m", {}, {})
    root = tmp_path / "templates"
    (root / "t").mkdir(parents=True)
    (root / "t" / "tinynas-target.json").write_text('{"generated_dir": "."}')
    (root / "t" / "x.txt").write_text("{{name}} {{typo}}")
    with pytest.raises(UserError, match="typo"):
        render_target("t", tmp_path / "b", "m", {}, {}, templates=root)
    (root / "t" / "x.txt").write_text("ok")
    with pytest.raises(UserError, match="both write"):
        render_target("t", tmp_path / "c", "m", {"x.txt": "clash"}, {}, templates=root)


# ----------------------------------------------------------------------------- export CLI

@pytest.fixture(scope="module")
def hello(shared_models: dict[str, Path]) -> Path:
    return shared_models[HELLO]


@pytest.fixture(scope="module")
def exported(hello: Path, tmp_path_factory) -> dict[str, Path]:
    """hello_world exported once per target; the first measures the arena, the rest reuse it."""
    base = tmp_path_factory.mktemp("export")
    outs: dict[str, Path] = {}
    for i, target in enumerate(TARGETS + ["none"]):
        out = base / target
        extra = [] if i == 0 else ["--arena-bytes", "2208"]
        r = _cli(str(hello), "--target", target, "--out", str(out), "--name", "hello_world", *extra)
        assert r.returncode == 0, (target, r.stderr)
        assert "exported hello_world" in r.stdout and "FULLY_CONNECTED" in r.stdout
        outs[target] = out
    return outs


@pytest.mark.parametrize("target", TARGETS + ["none"])
def test_export_writes_complete_project(exported: dict[str, Path], hello: Path, target: str) -> None:
    files = _files(exported[target])
    gen_dir = {"cmake": "model/", "qemu": "model/", "arduino": "src/", "zephyr": "src/",
               "esp-idf": "components/hello_world_model/", "none": ""}[target]
    suffix = ".cpp" if target == "arduino" else ".cc"
    for name in ("hello_world_model_data.h", f"hello_world_model_data{suffix}",
                 "hello_world_op_resolver.h", "hello_world_model_settings.h", "hello_world_model_io.h"):
        assert gen_dir + name in files, (target, sorted(files))
    for rel, text in files.items():
        assert "{{" not in text and "}}" not in rel, (target, rel)
    data = files[gen_dir + f"hello_world_model_data{suffix}"]
    assert f"g_hello_world_model_data_len = {hello.stat().st_size};" in data
    settings = files[gen_dir + "hello_world_model_settings.h"]
    assert "constexpr int kArenaBytes = " in settings
    main = {"cmake": "main.cc", "qemu": "main.cc", "arduino": "examples/hello_world/hello_world.ino",
            "zephyr": "src/main.cpp", "esp-idf": "main/main.cc"}.get(target)
    if main:
        text = files[main]
        for needle in ("HelloWorldOpResolver", "hello_world_register_ops", "MicroInterpreter",
                       "AllocateTensors", "Invoke", "arena_used_bytes", "SetDemoInput", "SetInputRaw",
                       "OutputValue", "LabelOf"):
            assert needle in text, (target, needle)
        for copied in ("quantize", "set_input(", "get_output(", "label_of("):  # the io header's, not a copy
            assert copied not in text, (target, copied)
    io = files[gen_dir + "hello_world_model_io.h"]
    assert "kInputScale" in io and "kOutputZeroPoint" in io
    if target == "zephyr":
        assert "CONFIG_TENSORFLOW_LITE_MICRO=y" in files["prj.conf"]
    if target == "esp-idf":
        assert "espressif/esp-tflite-micro" in files["components/hello_world_model/idf_component.yml"]
        assert "idf_component_register" in files["components/hello_world_model/CMakeLists.txt"]
    if target == "arduino":
        assert "depends=Chirale_TensorFLowLite" in files["library.properties"]  # registered spelling
    if target in ("cmake", "qemu"):  # the default board's exact core flags
        assert '"-mcpu=cortex-m7 -mthumb -mfpu=fpv5-sp-d16 -mfloat-abi=hard"' in files["cmake/core.cmake"]
        assert "-fno-rtti -fno-exceptions -fno-threadsafe-statics" in files["cmake/tflm.cmake"]
    if target == "qemu":
        assert "mps2-an500" in files["qemu/qemu.cmake"]
        assert "LENGTH = 327680" in files["qemu/memory.ld"]  # no more SRAM than the board has


def test_export_measured_arena_is_explained(exported: dict[str, Path]) -> None:
    settings = (exported["cmake"] / "model" / "hello_world_model_settings.h").read_text()
    assert "How the arena was obtained" in settings and "measurement" in settings
    # A 64-bit host build allocates the host figure; the 32-bit board its own, smaller plan.
    arena = int(settings.split("constexpr int kArenaBytesHost = ")[1].split(";")[0])
    device = int(settings.split("constexpr int kArenaBytesDevice = ")[1].split(";")[0])
    assert device < arena and device % 16 == 0
    # Bisection may land a few bytes either side of the README figure; then the 256 B
    # margin floor and rounding up to 16.
    assert HELLO_MIN_ARENA - 16 + 256 <= arena <= HELLO_MIN_ARENA + 16 + 256 + 16 and arena % 16 == 0


def test_export_refuses_non_empty_out_without_force(exported: dict[str, Path], hello: Path) -> None:
    out = exported["none"]
    before = _files(out)
    r = _cli(str(hello), "--target", "none", "--out", str(out), "--arena-bytes", "4000")
    _assert_user_error(r, "not empty", "--force")
    assert _files(out) == before  # untouched
    r = _cli(str(hello), "--target", "none", "--out", str(out), "--arena-bytes", "4000",
             "--name", "hello_world", "--force")
    assert r.returncode == 0, r.stderr
    assert "kArenaBytes = 4000;" in (out / "hello_world_model_settings.h").read_text()


def _unsupported_op_model(hello: Path, dest: Path) -> Path:
    """hello_world with its FULLY_CONNECTED opcode rewritten to REDUCE_PROD (no TFLM kernel)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = bytearray(hello.read_bytes())
    oc = schema.Model.GetRootAs(buf, 0).OperatorCodes(0)
    tab = oc._tab
    buf[tab.Pos + tab.Offset(4)] = schema.BuiltinOperator.REDUCE_PROD  # deprecated_builtin_code (int8)
    pos = tab.Pos + tab.Offset(10)  # builtin_code (int32)
    buf[pos:pos + 4] = int(schema.BuiltinOperator.REDUCE_PROD).to_bytes(4, "little")
    dest.write_bytes(bytes(buf))
    return dest


def test_export_bad_inputs_exit_2_with_one_line(hello: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    _assert_user_error(_cli(str(tmp_path / "missing.tflite"), "--target", "none", "--out", out),
                       "does not exist")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"definitely not a flatbuffer" * 4)
    _assert_user_error(_cli(str(junk), "--target", "none", "--out", out), "TFL3")
    other = tmp_path / "model.onnx"
    other.write_bytes(b"\x08\x07" + b"\x00" * 64)
    _assert_user_error(_cli(str(other), "--target", "none", "--out", out), "expected a .tflite")
    arch = tmp_path / "arch.json"
    arch.write_text("{}")
    _assert_user_error(_cli(str(arch), "--target", "none", "--out", out), "missing from arch")
    bad_op = _unsupported_op_model(hello, tmp_path / "bad_op.tflite")
    _assert_user_error(_cli(str(bad_op), "--target", "cmake", "--out", out), "REDUCE_PROD")
    _assert_user_error(_cli(str(hello), "--target", "none", "--out", out, "--name", "!!!"), "'!!!'")
    _assert_user_error(_cli(str(hello), "--target", "none", "--out", out, "--labels", "a,b"),
                       "2 labels", "1 elements")
    _assert_user_error(_cli(str(hello), "--target", "none", "--out", out, "--labels", "nofile.txt"),
                       "neither an existing file")
    _assert_user_error(_cli(str(hello), "--target", "vxworks", "--out", out), "invalid choice")
    _assert_user_error(_cli(str(hello), "--target", "none", "--out", out, "--arena-margin", "2"),
                       "between 0 and 1")
    _assert_user_error(_cli(str(hello), "--target", "none", "--out", out, "--arena-bytes", "-5"),
                       "positive")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_export_labels_from_file(hello: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("sine\n\n")
    r = _cli(str(hello), "--target", "none", "--out", str(tmp_path / "o"), "--labels", str(labels),
             "--arena-bytes", "2208")
    assert r.returncode == 0, r.stderr
    settings = (tmp_path / "o" / f"{HELLO}_model_settings.h").read_text()
    assert 'constexpr const char* kLabels[] = {\n    "sine",\n};' in settings


# ----------------------------------------------------------------------------- templates compile

_STUBS = {
    "tensorflow/lite/c/common.h": """
#pragma once
#include <cstddef>
#include <cstdint>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt32 = 2, kTfLiteUInt8 = 3,
               kTfLiteInt64 = 4, kTfLiteString = 5, kTfLiteBool = 6, kTfLiteInt16 = 7,
               kTfLiteComplex64 = 8, kTfLiteInt8 = 9 } TfLiteType;
typedef union { int32_t* i32; float* f; uint8_t* uint8; int8_t* int8; int16_t* i16; void* data; } TfLitePtrUnion;
typedef struct { float scale; int32_t zero_point; } TfLiteQuantizationParams;
typedef struct { TfLiteType type; TfLitePtrUnion data; TfLiteQuantizationParams params; size_t bytes; } TfLiteTensor;
""",
    "tensorflow/lite/micro/micro_mutable_op_resolver.h": """
#pragma once
#include "tensorflow/lite/c/common.h"
namespace tflite {
class MicroOpResolver {};
template <unsigned int N> class MicroMutableOpResolver : public MicroOpResolver {
 public:
  TfLiteStatus AddFullyConnected() { return kTfLiteOk; }
};
}
""",
    "tensorflow/lite/schema/schema_generated.h": """
#pragma once
#include <cstdint>
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite {
struct Model { uint32_t version() const { return 3; } };
inline const Model* GetModel(const void* p) { return static_cast<const Model*>(p); }
}
""",
    "tensorflow/lite/micro/micro_profiler_interface.h": """
#pragma once
#include <cstdint>
namespace tflite {
class MicroProfilerInterface {
 public:
  virtual ~MicroProfilerInterface() {}
  virtual uint32_t BeginEvent(const char* tag) = 0;
  virtual void EndEvent(uint32_t event_handle) = 0;
};
}
""",
    "tensorflow/lite/micro/micro_interpreter.h": """
#pragma once
#include <cstddef>
#include <cstdint>
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
namespace tflite {
class MicroInterpreter {
 public:
  MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t*, size_t, void* = nullptr,
                   MicroProfilerInterface* = nullptr) {}
  TfLiteStatus AllocateTensors() { return kTfLiteOk; }
  TfLiteStatus Invoke() { return kTfLiteOk; }
  TfLiteTensor* input(size_t) { return &t_; }
  TfLiteTensor* output(size_t) { return &t_; }
  size_t inputs_size() const { return 1; }
  size_t outputs_size() const { return 1; }
  size_t arena_used_bytes() const { return 0; }
 private:
  TfLiteTensor t_{};
};
}
""",
    "tensorflow/lite/micro/system_setup.h": "#pragma once\nnamespace tflite { inline void InitializeTarget() {} }\n",
    "tensorflow/lite/micro/micro_time.h": """
#pragma once
#include <cstdint>
namespace tflite { inline uint32_t ticks_per_second() { return 1000000; }
inline uint32_t GetCurrentTimeTicks() { return 0; } }
""",
    "zephyr/kernel.h": "#pragma once\n#include <cstdint>\ninline int32_t k_msleep(int32_t ms) { return ms; }\n",
    "zephyr/sys/printk.h": "#pragma once\n#include <cstdio>\n#define printk printf\n",
    "freertos/FreeRTOS.h": "#pragma once\n#define pdMS_TO_TICKS(ms) (ms)\n",
    "freertos/task.h": "#pragma once\ninline void vTaskDelay(int) {}\n",
    "Chirale_TensorFlowLite.h": "#pragma once\n",
    "Arduino.h": """
#pragma once
struct SerialStub {
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  template <typename T> void print(T) {}
  void print(float, int) {}
  template <typename T> void println(T) {}
};
extern SerialStub Serial;
unsigned long millis();
unsigned long micros();
void delay(unsigned long);
""",
}


def test_template_mains_compile_against_api_stubs(exported: dict[str, Path], hello: Path,
                                                  tmp_path: Path) -> None:
    if shutil.which("g++") is None:
        pytest.skip("host g++ is not on PATH")
    stubs = tmp_path / "stubs"
    for rel, text in _STUBS.items():
        (stubs / rel).parent.mkdir(parents=True, exist_ok=True)
        (stubs / rel).write_text(text)
    units = [
        (exported["cmake"] / "main.cc", exported["cmake"] / "model", []),
        (exported["zephyr"] / "src/main.cpp", exported["zephyr"] / "src", []),
        (exported["esp-idf"] / "main/main.cc", exported["esp-idf"] / "components/hello_world_model", []),
        (exported["arduino"] / "examples/hello_world/hello_world.ino", exported["arduino"] / "src",
         ["-x", "c++", "-include", "Arduino.h"]),
    ]
    # The cmake main once more, against a settings header that has labels (an array, not nullptr).
    labelled = tmp_path / "labelled"
    shutil.copytree(exported["cmake"] / "model", labelled)
    (labelled / "hello_world_model_settings.h").write_text(
        cgen.model_settings_header("hello_world", read_tflite(hello), 2208, labels=["sine"]))
    units.append((exported["cmake"] / "main.cc", labelled, []))
    units.append((exported["cmake"] / "main.cc", labelled, ["-DTINYNAS_SELFTEST"]))
    units.append((exported["cmake"] / "main.cc", labelled, ["-DTINYNAS_SELFTEST", "-DTINYNAS_OP_PROFILE"]))
    for src, inc, extra in units:
        r = subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                            "-I", str(stubs), "-I", str(inc), *extra, str(src)],
                           capture_output=True, text=True)
        assert r.returncode == 0, (src, r.stderr[-3000:])


def test_readme_documents_templates() -> None:
    from tinynas.paths import targets_dir

    text = (targets_dir() / "README.md").read_text()
    for t in TARGETS:
        assert f"`{t}`" in text
    assert "{{name}}" in text


# ----------------------------------------------------------------------------- arena sources

def test_arena_adds_planner_scratch_when_available(hello: Path, monkeypatch) -> None:
    from tinynas.deploy import project as export
    from tinynas.planner import plan_arena as planner_arena

    model = export.load_model_input(hello)
    monkeypatch.setattr(export, "board_scratch_bytes", lambda graph, board: 1000)
    # A measurement the planner does not match (a loosely modelled op): the host figure is the base.
    monkeypatch.setattr(export, "measure_arena_bytes", lambda data, graph: (10_000, "test"))
    plan = export.plan_arena(model, margin_fraction=0.1)
    assert (plan.measured_bytes, plan.scratch_bytes, plan.firmware_bytes) == (10_000, 1000, 12_112)
    assert "measured in TFLM" in plan.note() and "12,112 B" in plan.note()
    # A measurement the planner matches: the board's own 32-bit plan is the base, the host keeps its own.
    x86 = planner_arena(model.graph, pointer_bytes=8, kernels="reference").arena_bytes
    bare = planner_arena(model.graph, pointer_bytes=4, kernels="reference").arena_bytes
    monkeypatch.setattr(export, "measure_arena_bytes", lambda data, graph: (x86, "test"))
    plan = export.plan_arena(model, margin_fraction=0.0)
    assert (plan.measured_bytes, plan.firmware_bytes) == (bare, -(-(bare + 1000) // 16) * 16)
    assert plan.host_bytes == -(-x86 // 16) * 16 and "planned for the board" in plan.note()


def test_profile_sram_is_the_firmware_arena_plus_reserve(hello: Path) -> None:
    """One SRAM figure: `tinynas profile` reports what `tinynas export` compiles, plus the reserve."""
    from tinynas.boards import load_board
    from tinynas.deploy import project as export
    from tinynas.profile import format_report, profile_model

    for board_id in ("stm32f746g-disco", "arduino-nano-33-ble-sense"):
        board = load_board(board_id)
        prof = profile_model(hello, board)
        plan = export.plan_arena(export.load_model_input(hello), board=board)
        assert prof["arena_bytes_firmware"] == plan.firmware_bytes
        assert prof["sram_bytes"] == plan.firmware_bytes + board.sram_reserved_bytes
        assert f"SRAM        {prof['sram_bytes']:,} B = firmware arena {plan.firmware_bytes:,}" in format_report(prof)


def test_tflm_ops_setting_names_builtins_or_all() -> None:
    """A model's builtin ops become TFLM_OPS (sorted, once each); a custom op asks for every kernel."""
    from tinynas.deploy.project import tflm_ops_setting

    assert tflm_ops_setting(["SOFTMAX", "CONV_2D", "CONV_2D"]) == "CONV_2D;SOFTMAX"
    assert tflm_ops_setting(["CONV_2D", "CUSTOM:TFLite_Detection_PostProcess"]) == "ALL"
    assert tflm_ops_setting([]) == "ALL"


def test_cached_library_serves_any_subset_of_its_ops(tmp_path: Path, monkeypatch) -> None:
    """One library built for the union of several models' ops serves each; ALL serves every set."""
    from tinynas.deploy import tflm_build

    monkeypatch.setenv("TINYNAS_CACHE", str(tmp_path / "cache"))
    lib_dir = tmp_path / "lib"
    for variant, ops in (("u", "ADD;CONV_2D;SOFTMAX"),):
        (lib_dir / variant).mkdir(parents=True)
        (lib_dir / variant / "ops.txt").write_text(ops + "\n")
        (lib_dir / variant / tflm_build.LIBRARY_NAME).write_bytes(b"!<arch>\n")
    (lib_dir / "v.build").mkdir()  # an interrupted build's archive: no ops.txt, never used
    (lib_dir / "v.build" / tflm_build.LIBRARY_NAME).write_bytes(b"!<arch>\n")
    find = tflm_build._find_variant
    assert find(lib_dir, frozenset({"CONV_2D", "SOFTMAX"})) == lib_dir / "u" / tflm_build.LIBRARY_NAME
    assert find(lib_dir, frozenset({"CONV_2D", "MEAN"})) is None
    assert find(lib_dir, None) is None  # every kernel: only an ALL library will do
    (lib_dir / "all").mkdir()
    (lib_dir / "all" / "ops.txt").write_text("ALL\n")
    (lib_dir / "all" / tflm_build.LIBRARY_NAME).write_bytes(b"!<arch>\n")
    assert find(lib_dir, None) == lib_dir / "all" / tflm_build.LIBRARY_NAME
    assert find(lib_dir, frozenset({"MEAN"})) == lib_dir / "all" / tflm_build.LIBRARY_NAME


def test_project_ops_reads_the_generated_cmakelists(tmp_path: Path) -> None:
    from tinynas.deploy import tflm_build

    (tmp_path / "CMakeLists.txt").write_text('if(NOT DEFINED TFLM_OPS)\n  set(TFLM_OPS "CONV_2D;SOFTMAX")\nendif()\n')
    assert tflm_build.project_ops(tmp_path) == {"CONV_2D", "SOFTMAX"}
    (tmp_path / "CMakeLists.txt").write_text('  set(TFLM_OPS "ALL")\n')
    assert tflm_build.project_ops(tmp_path) is None
    (tmp_path / "CMakeLists.txt").write_text("project(x)\n")  # a project from before TFLM_OPS
    assert tflm_build.project_ops(tmp_path) is None


def test_missing_cross_cxx_headers_are_named_before_any_build(tmp_path: Path, monkeypatch) -> None:
    """Arm's g++ without Debian's libstdc++-arm-none-eabi-newlib: one line naming the package."""
    from tinynas.deploy import tflm_build

    assert "not on PATH" in tflm_build.cross_cxx_problem("no-such-arm-none-eabi-g++")
    fake = tmp_path / "fake-g++"
    fake.write_text("#!/bin/sh\necho 'fatal error: cstddef: No such file or directory' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert "libstdc++-arm-none-eabi-newlib" in tflm_build.cross_cxx_problem(str(fake))
    monkeypatch.setenv("TINYNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tflm_build, "cross_cxx_problem", lambda cxx="": "no headers")
    tree = tmp_path / "tree"
    (tree / tflm_build.CMSIS_NN_MARKER).mkdir(parents=True)
    with pytest.raises(UserError, match="cannot cross-compile TFLM: no headers"):
        tflm_build.build_library(tmp_path / "project", tree)
