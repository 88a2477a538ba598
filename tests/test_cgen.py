"""C generation: identifiers, the model array, the op resolver and the settings header.

The compile tests build every generated file for the seven third-party models
with the host g++ (linked and run, so the bytes are checked end to end) and with
arm-none-eabi-g++ for a Cortex-M7, where the array must land in .rodata (flash).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tinynas import cgen
from tinynas.errors import UserError
from tinynas.graph import Graph, Op, Tensor
from tinynas.tflite_reader import read_tflite

CXXFLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]


# ----------------------------------------------------------------------------- identifiers

@pytest.mark.parametrize("raw, ident", [
    ("hello_world_int8", "hello_world_int8"),
    ("Hello World!", "hello_world"),
    ("MobileNet-V2 (0.35)", "mobilenet_v2_0_35"),
    ("__init__", "init"),
    ("a--b__c", "a_b_c"),
    ("3dnet", "model_3dnet"),
    ("96", "model_96"),
    ("modèle", "modele"),
    ("int", "int_model"),
    ("class", "class_model"),
    ("namespace", "namespace_model"),
    ("Template", "template_model"),
    ("x" * 80, "x" * cgen.MAX_IDENTIFIER_LEN),
])
def test_c_identifier(raw: str, ident: str) -> None:
    assert cgen.c_identifier(raw) == ident
    assert cgen.c_identifier(ident) == ident  # idempotent
    assert re.fullmatch(r"[a-z][a-z0-9_]*", ident)


@pytest.mark.parametrize("raw", ["", "!!!", "___", "   ", "日本語", "-"])
def test_c_identifier_impossible_names_raise(raw: str) -> None:
    with pytest.raises(UserError) as e:
        cgen.c_identifier(raw)
    assert repr(raw) in str(e.value)


def test_pascal_case() -> None:
    assert cgen.pascal_case("hello_world_int8") == "HelloWorldInt8"
    assert cgen.pascal_case("3dnet") == "Model3dnet"


# ----------------------------------------------------------------------------- model data

def _array_bytes(cc: str) -> bytes:
    body = cc[cc.index("{") + 1: cc.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


@pytest.mark.parametrize("n", [1, 11, 12, 13, 25, 1000])
def test_model_data_round_trips(n: int) -> None:
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    files = cgen.model_data_files("m", data)
    assert set(files) == {"m_model_data.h", "m_model_data.cc"}
    cc = files["m_model_data.cc"]
    assert _array_bytes(cc) == data
    assert f"const unsigned int g_m_model_data_len = {n};" in cc
    assert "alignas(16) const unsigned char g_m_model_data[]" in cc
    assert all(len(line) <= 80 for line in cc.splitlines())
    h = files["m_model_data.h"]
    assert "#ifndef TINYNAS_M_MODEL_DATA_H_" in h and "extern const unsigned char g_m_model_data[];" in h


def test_model_data_rejects_empty_model() -> None:
    with pytest.raises(UserError, match="empty"):
        cgen.model_data_files("m", b"")


def test_model_data_is_fast() -> None:
    data = bytes(range(256)) * 1200  # 300 KB, like person_detect
    t = time.perf_counter()
    files = cgen.model_data_files("big", data)
    assert time.perf_counter() - t < 0.5
    assert _array_bytes(files["big_model_data.cc"]) == data


# ----------------------------------------------------------------------------- op resolver

def test_mapping_keys_are_tflite_builtin_ops() -> None:
    from ai_edge_litert import schema_py_generated as schema

    builtins = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}
    assert set(cgen.TFLM_BUILTIN_ADDERS) <= builtins
    assert all(k.startswith("CUSTOM:") for k in cgen.TFLM_CUSTOM_ADDERS)
    methods = list(cgen.TFLM_OP_ADDERS.values())
    assert len(methods) == len(set(methods)) and all(m.startswith("Add") for m in methods)
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
               "RESHAPE", "SOFTMAX", "ADD", "MEAN", "QUANTIZE", "DEQUANTIZE", "MUL", "PAD",
               "CONCATENATION", "LOGISTIC", "RELU", "RELU6", "TANH", "TRANSPOSE", "HARD_SWISH"):
        assert op in cgen.TFLM_OP_ADDERS


def test_op_resolver_counts_distinct_ops(shared_models: dict[str, Path]) -> None:
    for key, path in shared_models.items():
        g = read_tflite(path)
        header = cgen.op_resolver_header(key, g)
        distinct = {op.type for op in g.ops}
        n = int(re.search(r"MicroMutableOpResolver<(\d+)>;", header).group(1))
        assert n == len(distinct), key
        calls = re.findall(r"r\.(Add\w+)\(\)", header)
        assert sorted(calls) == sorted(cgen.TFLM_OP_ADDERS[o] for o in distinct), key
        assert f"inline TfLiteStatus {cgen.c_identifier(key)}_register_ops(" in header


def _tiny_graph(op_types: list[str]) -> Graph:
    tensors = [Tensor(index=0, name="x", shape=(1, 4), dtype="int8", scale=(0.5,), zero_point=(-3,)),
               Tensor(index=1, name="y", shape=(1, 3), dtype="int8", scale=(1.0,), zero_point=(0,))]
    ops = [Op(index=i, type=t, inputs=(0,), outputs=(1,)) for i, t in enumerate(op_types)]
    return Graph(tensors=tensors, ops=ops, inputs=(0,), outputs=(1,))


def test_op_resolver_unsupported_op_raises() -> None:
    with pytest.raises(UserError, match="REDUCE_PROD"):
        cgen.op_resolver_header("m", _tiny_graph(["CONV_2D", "REDUCE_PROD"]))
    with pytest.raises(UserError, match="CUSTOM:MyOp, UNKNOWN_999"):
        cgen.op_resolver_header("m", ["CUSTOM:MyOp", "SOFTMAX", "UNKNOWN_999"])


def test_op_resolver_custom_ops_count_as_registrations() -> None:
    header = cgen.op_resolver_header("det", ["CONV_2D", "CUSTOM:TFLite_Detection_PostProcess"])
    assert "MicroMutableOpResolver<2>;" in header and "r.AddDetectionPostprocess()" in header


# ----------------------------------------------------------------------------- settings

def test_arena_for_firmware() -> None:
    assert cgen.arena_for_firmware(1937, 0) == 2208          # 256 B floor, then to 16
    assert cgen.arena_for_firmware(100_000, 2_000) == 107_104  # 102,000 * 1.05 -> 107,100 -> 16
    assert cgen.arena_for_firmware(1937, 0, margin_fraction=0.0) == 1952
    assert cgen.arena_for_firmware(1000, 24, margin_fraction=0.0) % 16 == 0
    with pytest.raises(UserError):
        cgen.arena_for_firmware(1000, 0, margin_fraction=1.5)


def test_settings_header_contents() -> None:
    g = _tiny_graph(["FULLY_CONNECTED"])
    h = cgen.model_settings_header("Tiny Net", g, 1001, labels=["cat", 'say "hi"', "naïve"],
                                   arena_note="line one\nline two")
    assert "namespace tiny_net_model {" in h
    assert "constexpr int kArenaBytes = 1008;" in h  # rounded up to 16
    assert "// line one\n// line two\nconstexpr int kArenaBytes" in h
    assert "constexpr int kInputDims[] = {1, 4};" in h and "constexpr int kOutputElements = 3;" in h
    assert "constexpr float kInputScale = 0.5f;" in h and "constexpr int kInputZeroPoint = -3;" in h
    assert "constexpr float kOutputScale = 1.0f;" in h
    assert 'constexpr const char* kInputType = "int8";  // kTfLiteInt8' in h
    assert '"say \\"hi\\"",' in h and '"na\\303\\257ve",' in h
    assert "constexpr int kNumLabels = 3;" in h
    no_labels = cgen.model_settings_header("tiny", g, 1024)
    assert "constexpr int kNumLabels = 0;" in no_labels
    with pytest.raises(UserError, match="2 labels given but output 0 has 3"):
        cgen.model_settings_header("tiny", g, 1024, labels=["a", "b"])


# ----------------------------------------------------------------------------- compile

# A counting stand-in for TFLM's MicroMutableOpResolver, with every method the
# mapping names, so the generated resolver headers compile and run on the host.
def _stub_resolver_header() -> str:
    methods = "".join(f"  TfLiteStatus {m}() {{ return Add(); }}\n"
                      for m in sorted(set(cgen.TFLM_OP_ADDERS.values())))
    return (
        "#pragma once\n"
        "typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;\n"
        "namespace tflite {\n"
        "template <unsigned int N> class MicroMutableOpResolver {\n"
        " public:\n"
        f"{methods}"
        "  unsigned int count() const { return n_; }\n"
        " private:\n"
        "  TfLiteStatus Add() { if (n_ >= N) return kTfLiteError; ++n_; return kTfLiteOk; }\n"
        "  unsigned int n_ = 0;\n"
        "};\n"
        "}  // namespace tflite\n"
    )


@pytest.fixture(scope="module")
def generated(shared_models: dict[str, Path], tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """All generated files for the seven models in one folder, plus facts to check against."""
    d = tmp_path_factory.mktemp("cgen")
    facts: dict[str, dict] = {}
    for key, path in shared_models.items():
        data = path.read_bytes()
        g = read_tflite(path)
        files = cgen.generated_files(key, data, g, cgen.arena_for_firmware(20_000, 0),
                                     arena_note="test figure")
        for fname, text in files.items():
            (d / fname).write_text(text)
        facts[cgen.c_identifier(key)] = {"bytes": len(data), "sum": int(np.frombuffer(data, np.uint8).sum()),
                                         "ops": len(g.op_types)}
    return d, facts


def _check_tu(facts: dict[str, dict]) -> str:
    """A TU that includes every header, references every symbol and prints what it sees."""
    inc = "".join(f'#include "{i}_model_data.h"\n#include "{i}_model_settings.h"\n#include "{i}_op_resolver.h"\n'
                  for i in facts)
    body = "".join(
        f"  {{\n"
        f"    unsigned long sum = 0;\n"
        f"    for (unsigned int i = 0; i < g_{i}_model_data_len; ++i) sum += g_{i}_model_data[i];\n"
        f"    tflite::MicroMutableOpResolver<{facts[i]['ops']}> r;\n"
        f"    const int ok = {i}_register_ops(r) == kTfLiteOk && r.count() == {facts[i]['ops']};\n"
        f"    const int aligned = reinterpret_cast<std::uintptr_t>(g_{i}_model_data) % 16 == 0;\n"
        f"    std::printf(\"{i} %u %lu %d %d %d %d\\n\", g_{i}_model_data_len, sum, ok, aligned,\n"
        f"                {i}_model::kArenaBytes, {i}_model::kInputElements * {i}_model::kInputRank);\n"
        f"  }}\n"
        for i in facts)
    return f"#include <cstdint>\n#include <cstdio>\n{inc}\nint main() {{\n{body}  return 0;\n}}\n"


def test_generated_code_compiles_and_runs_on_host(generated) -> None:
    if shutil.which("g++") is None:
        pytest.skip("host g++ is not on PATH")
    d, facts = generated
    stub = d / "stub" / "tensorflow" / "lite" / "micro"
    stub.mkdir(parents=True)
    (stub / "micro_mutable_op_resolver.h").write_text(_stub_resolver_header())
    (d / "check.cc").write_text(_check_tu(facts))
    sources = ["check.cc"] + sorted(f"{i}_model_data.cc" for i in facts)
    r = subprocess.run(["g++", *CXXFLAGS, "-I", "stub", "-o", "check", *sources],
                       cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    out = subprocess.run([str(d / "check")], capture_output=True, text=True, check=True).stdout
    seen = {parts[0]: parts[1:] for parts in (ln.split() for ln in out.splitlines())}
    assert set(seen) == set(facts)
    for ident, f in facts.items():
        length, total, ok, aligned, arena, _ = (int(x) for x in seen[ident])
        assert (length, total) == (f["bytes"], f["sum"]), ident
        assert ok == 1 and aligned == 1, ident
        assert arena % 16 == 0


def _sections(size_output: str) -> dict[str, dict[str, int]]:
    """Parse `arm-none-eabi-size -A` output into {object: {section: bytes}}."""
    result: dict[str, dict[str, int]] = {}
    current = None
    for line in size_output.splitlines():
        m = re.match(r"^(\S+)\s+:$", line.strip())
        if m:
            current = Path(m.group(1)).name
            result[current] = {}
            continue
        parts = line.split()
        if current and len(parts) == 3 and parts[1].isdigit():
            result[current][parts[0]] = int(parts[1])
    return result


def test_model_array_is_in_flash_on_cortex_m7(generated) -> None:
    if shutil.which("arm-none-eabi-g++") is None or shutil.which("arm-none-eabi-size") is None:
        pytest.skip("arm-none-eabi-g++ is not on PATH (Debian/Ubuntu: apt-get install gcc-arm-none-eabi)")
    d, facts = generated
    arm = ["arm-none-eabi-g++", "-mcpu=cortex-m7", "-mthumb", "-Os", *CXXFLAGS]
    (d / "settings_tu.cc").write_text(
        "".join(f'#include "{i}_model_settings.h"\n' for i in facts)
        + "int settings_sum() { return 0" + "".join(f" + {i}_model::kArenaBytes" for i in facts) + "; }\n")
    objs = sorted(f"{i}_model_data.cc" for i in facts)
    r = subprocess.run([*arm, "-c", "settings_tu.cc", *objs], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    size = subprocess.run(["arm-none-eabi-size", "-A", *(o.replace(".cc", ".o") for o in objs)],
                          cwd=d, capture_output=True, text=True, check=True).stdout
    sections = _sections(size)
    for ident, f in facts.items():
        sec = sections[f"{ident}_model_data.o"]
        n = f["bytes"]
        assert sec.get(".data", 0) == 0, (ident, sec)
        assert n <= sec[".rodata"] <= n * 1.01 + 16 + 4, (ident, sec[".rodata"], n)  # + len word
