"""C/C++ source generation for TensorFlow Lite Micro: model arrays and headers.

Everything here returns text; nothing touches the file system, so the export
command can stage the whole output and commit it at once, and tests can compile
the strings directly. The generated code is C++ (TFLM is C++), kept free of
TFLM includes except the op resolver header, so the data and settings headers
compile on any host or cross compiler without a TFLM tree.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .graph import Graph, Tensor
from .ops.resolver import BUILTIN_RESOLVERS, CUSTOM_RESOLVERS
from .tflite_reader import opcode_table

# Longest identifier we emit as a stem. Derived symbols add up to 17 characters
# (g_<stem>_model_data_len); 48 keeps them short enough for readable file names and
# under the 63 significant characters C99 promises for internal identifiers.
MAX_IDENTIFIER_LEN = 48

# C11/C23 and C++20 keywords plus the alternative operator spellings. A stem that is
# one of these gets a "_model" suffix: it never appears bare in our output today,
# but users paste the stem into their own code (namespaces, variables).
_RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto
if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while bool true false nullptr alignas alignof
static_assert thread_local typeof typeof_unqual constexpr
and and_eq asm bitand bitor catch char8_t char16_t char32_t class co_await co_return
co_yield compl concept const_cast consteval constinit decltype delete dynamic_cast
explicit export friend mutable namespace new noexcept not not_eq operator or or_eq
private protected public reinterpret_cast requires static_cast template this throw try
typeid typename using virtual wchar_t xor xor_eq final override import module
""".split())

# TFLite op (graph.Op.type) -> MicroMutableOpResolver method: the op registry's table.
TFLM_BUILTIN_ADDERS: dict[str, str] = dict(BUILTIN_RESOLVERS)
TFLM_CUSTOM_ADDERS: dict[str, str] = dict(CUSTOM_RESOLVERS)
TFLM_OP_ADDERS: dict[str, str] = {**TFLM_BUILTIN_ADDERS, **TFLM_CUSTOM_ADDERS}

# tflite_reader dtype name -> the TfLiteType enumerator TFLM uses for it.
_TFLITE_TYPES: dict[str, str] = {
    "float32": "kTfLiteFloat32", "float16": "kTfLiteFloat16", "float64": "kTfLiteFloat64",
    "bfloat16": "kTfLiteBFloat16", "int4": "kTfLiteInt4", "int8": "kTfLiteInt8",
    "uint8": "kTfLiteUInt8", "int16": "kTfLiteInt16", "uint16": "kTfLiteUInt16",
    "int32": "kTfLiteInt32", "uint32": "kTfLiteUInt32", "int64": "kTfLiteInt64",
    "uint64": "kTfLiteUInt64", "bool": "kTfLiteBool", "string": "kTfLiteString",
    "complex64": "kTfLiteComplex64", "complex128": "kTfLiteComplex128",
    "resource": "kTfLiteResource", "variant": "kTfLiteVariant",
}

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_BYTES_PER_LINE = 12


# ----------------------------------------------------------------------------- names

def c_identifier(name: str) -> str:
    """Turn a model name into a lowercase C/C++ identifier stem.

    Lowercases, folds accents to ASCII, maps every run of other characters to one
    '_', strips '_' at the ends (leading '_' + letter is reserved in C), prefixes
    'model_' when it starts with a digit, suffixes '_model' for keywords and caps
    the length. It is idempotent, so callers may sanitize twice. A name with no
    ASCII letter or digit at all raises UserError naming it, because inventing a
    name silently would make two such models collide.
    """
    folded = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    ident = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    if not ident:
        raise UserError(
            f"cannot make a C identifier from the name {name!r}: it has no ASCII letter or "
            "digit; choose a name such as 'kws_model' (--name)"
        )
    if ident[0].isdigit():
        ident = "model_" + ident
    if len(ident) > MAX_IDENTIFIER_LEN:
        ident = ident[:MAX_IDENTIFIER_LEN].rstrip("_")
    if ident in _RESERVED:
        ident += "_model"
    return ident


def pascal_case(ident: str) -> str:
    """'hello_world_int8' -> 'HelloWorldInt8', for type names such as the resolver alias."""
    return "".join(part[:1].upper() + part[1:] for part in c_identifier(ident).split("_"))


# ----------------------------------------------------------------------------- model data

def _hex_rows(data: bytes) -> str:
    """The initializer body, 12 bytes a line, built with numpy (~10 ms for 300 KB).

    Every byte becomes the six characters "0xHH, "; each full line swaps its last
    space for a newline, so the whole body is one array reshape and one decode
    instead of 300,000 Python string formats.
    """
    a = np.frombuffer(data, dtype=np.uint8)
    if a.size == 0:
        return ""
    cells = np.empty((a.size, 6), dtype=np.uint8)
    cells[:, 0] = ord("0")
    cells[:, 1] = ord("x")
    cells[:, 2] = _HEX_DIGITS[a >> 4]
    cells[:, 3] = _HEX_DIGITS[a & 0x0F]
    cells[:, 4] = ord(",")
    cells[:, 5] = ord(" ")
    full = a.size // _BYTES_PER_LINE * _BYTES_PER_LINE
    parts = [_rows(cells[:full], _BYTES_PER_LINE), _rows(cells[full:], a.size - full)]
    return "".join(parts)


def _rows(cells: np.ndarray, per_line: int) -> str:
    """Lay out (n, 6) cells as lines of `per_line` cells: two-space indent, newline at the end."""
    if per_line == 0 or cells.size == 0:
        return ""
    count = cells.shape[0] // per_line
    rows = np.empty((count, 2 + per_line * 6), dtype=np.uint8)
    rows[:, :2] = ord(" ")
    rows[:, 2:] = cells.reshape(count, per_line * 6)
    rows[:, -1] = ord("\n")
    return rows.tobytes().decode("ascii")


def model_data_files(name: str, tflite_bytes: bytes, source: str = "") -> dict[str, str]:
    """`<name>_model_data.h` and `.cc`: the flatbuffer as a 16-byte aligned const array.

    const puts the array in flash (.rodata) instead of copying it to RAM; alignas(16)
    because TFLM reads tensor buffers in place and some kernels (and the flatbuffer
    verifier) expect aligned data. The header comes first in the .cc so its extern
    declaration gives the const array external linkage in C++.
    """
    ident = c_identifier(name)
    if not tflite_bytes:
        raise UserError(f"model {name!r} is empty; an empty array is not valid C++")
    sym = f"g_{ident}_model_data"
    guard = f"TINYNAS_{ident.upper()}_MODEL_DATA_H_"
    origin = f" from {source}" if source else ""
    n = len(tflite_bytes)
    header = (
        f"// {ident}_model_data.h: generated by tinynas{origin}; do not edit.\n"
        f"// The TFLite flatbuffer ({n} bytes) as a const array, so it stays in flash.\n"
        f"#ifndef {guard}\n"
        f"#define {guard}\n"
        "\n"
        "// 16-byte aligned in the definition: TFLM reads weights in place.\n"
        f"extern const unsigned char {sym}[];\n"
        f"extern const unsigned int {sym}_len;\n"
        "\n"
        f"#endif  // {guard}\n"
    )
    body = (
        f"// The {ident} model: generated by tinynas{origin}; do not edit.\n"
        f'#include "{ident}_model_data.h"\n'
        "\n"
        f"alignas(16) const unsigned char {sym}[] = {{\n"
        f"{_hex_rows(tflite_bytes)}"
        "};\n"
        f"const unsigned int {sym}_len = {n};\n"
    )
    return {f"{ident}_model_data.h": header, f"{ident}_model_data.cc": body}


# ----------------------------------------------------------------------------- op resolver

def unsupported_ops(op_types: Iterable[str]) -> list[str]:
    """Op types TFLM's MicroMutableOpResolver cannot register, sorted."""
    return sorted({t for t in op_types if t not in TFLM_OP_ADDERS})


def check_tflm_ops(op_types: Iterable[str]) -> None:
    """Raise UserError naming every op that TFLM cannot run."""
    missing = unsupported_ops(op_types)
    if missing:
        what = "op" if len(missing) == 1 else "ops"
        raise UserError(
            f"TensorFlow Lite Micro has no kernel for {what} {', '.join(missing)} "
            "(MicroMutableOpResolver cannot register it); change the model to use supported ops"
        )


def _op_list(graph_or_ops: Graph | Sequence[str]) -> list[str]:
    ops = graph_or_ops.op_types if isinstance(graph_or_ops, Graph) else list(graph_or_ops)
    return list(dict.fromkeys(ops))


def op_resolver_header(name: str, graph: Graph | Sequence[str]) -> str:
    """`<name>_op_resolver.h`: a MicroMutableOpResolver sized to exactly the ops used.

    N is the number of distinct op types, the registrations the resolver holds; a
    bigger N wastes RAM, a smaller one fails at runtime, so it is computed, never
    typed. Pass a Graph, or an op-type list when the model has several subgraphs
    whose ops a subgraph-0 Graph does not see.
    """
    ident = c_identifier(name)
    ops = _op_list(graph)
    check_tflm_ops(ops)
    n = len(ops)
    alias = f"{pascal_case(ident)}OpResolver"
    guard = f"TINYNAS_{ident.upper()}_OP_RESOLVER_H_"
    width = max((len(TFLM_OP_ADDERS[o]) for o in ops), default=0)
    adds = "".join(
        f"  if (r.{TFLM_OP_ADDERS[o]}() != kTfLiteOk) return kTfLiteError;"
        f"{' ' * (width - len(TFLM_OP_ADDERS[o]))}  // {o}\n"
        for o in ops
    )
    return (
        f"// {ident}_op_resolver.h: generated by tinynas; do not edit.\n"
        f"// Registers exactly the {n} op type{'s' if n != 1 else ''} the model uses, so the\n"
        "// linker keeps only those kernels and the resolver holds no spare slots.\n"
        f"#ifndef {guard}\n"
        f"#define {guard}\n"
        "\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n'
        "\n"
        f"using {alias} = tflite::MicroMutableOpResolver<{n}>;\n"
        "\n"
        "// Returns kTfLiteError if any registration fails (TFLM logs which one).\n"
        f"inline TfLiteStatus {ident}_register_ops(tflite::MicroMutableOpResolver<{n}>& r) {{\n"
        f"{adds}"
        "  return kTfLiteOk;\n"
        "}\n"
        "\n"
        f"#endif  // {guard}\n"
    )


def opcode_table_ops(tflite_bytes: bytes) -> list[str]:
    """Op types in the model's operator-code table, named as tflite_reader names them.

    The table covers every subgraph (IF/WHILE bodies too), which is what TFLM
    resolves at init; a Graph only holds subgraph 0.
    """
    return list(dict.fromkeys(opcode_table(tflite_bytes)))


# ----------------------------------------------------------------------------- settings

def round_up(n: int, multiple: int = 16) -> int:
    return -(-int(n) // multiple) * multiple


DEFAULT_MARGIN = 0.05    # the firmware arena's margin over measured + scratch (see arena_for_firmware)
MIN_MARGIN_BYTES = 256


def arena_for_firmware(measured_bytes: int, scratch_bytes: int = 0,
                       margin_fraction: float = DEFAULT_MARGIN, min_margin_bytes: int = MIN_MARGIN_BYTES) -> int:
    """Arena to compile into firmware: measured + CMSIS-NN scratch + margin, to 16 B.

    The measurement comes from the TFLM runtime on the host (reference kernels,
    64-bit pointers). On a 32-bit MCU TFLM's own bookkeeping is smaller, so that
    part errs high; what it misses is the scratch CMSIS-NN kernels request, which
    is added separately. The margin (5%, at least 256 B) covers what neither
    captures: TFLM version drift in persistent allocations and kernel-specific
    padding. 5% costs little RAM and is far below the spread between boards; the
    256 B floor matters only for tiny models, where a single extra allocation is a
    large fraction. margin_fraction=0 disables the margin and the floor.
    """
    if measured_bytes < 0 or scratch_bytes < 0:
        raise ValueError("arena sizes cannot be negative")
    if not 0.0 <= margin_fraction <= 1.0 or math.isnan(margin_fraction):
        raise UserError(f"arena margin {margin_fraction} must be between 0 and 1 (e.g. 0.05 for 5%)")
    base = int(measured_bytes) + int(scratch_bytes)
    margin = max(math.ceil(base * margin_fraction), min_margin_bytes) if margin_fraction > 0 else 0
    return round_up(base + margin, 16)


PLANNER_AGREEMENT = 0.01  # the planner is trusted for a model where its x86-64 figure is this close to TFLM's


def firmware_arena_base(measured: int | None, planned_x86: int, planned_device: int) -> tuple[int, str]:
    """The arena part of kArenaBytes (before kernel scratch and margin), and how it was obtained.

    TFLM on the board keeps 4-byte pointers where the host's measurement has 8,
    so the board's own plan (tinynas.planner, byte-exact for the ops it models)
    is the right figure wherever the planner is shown right for this model: its
    x86-64 figure within 1% of TFLM's measurement. Elsewhere (an op the planner
    models loosely) the larger host measurement is used. Without a measurement
    (the search) the planner's figure stands, as it does for every model the
    search space can build.
    """
    if measured is None:
        return int(planned_device), "planned for the board (32-bit) by tinynas.planner"
    off = abs(int(planned_x86) - int(measured))
    if off <= PLANNER_AGREEMENT * measured:
        return int(planned_device), (f"planned for the board (32-bit) by tinynas.planner, whose x86-64 figure is "
                                     f"within {off:,} B of TFLM's measurement ({int(measured):,} B)")
    return int(measured), (f"measured in TFLM on x86-64 (tinynas.planner's estimate, {int(planned_x86):,} B, "
                           "is off by more than 1% for this model)")


def firmware_sram(arena_bytes: int, scratch_bytes: int, reserve_bytes: int, arena_how: str) -> dict[str, Any]:
    """The one SRAM figure a user budgets with, and its parts: kArenaBytes + the board's reserve.

    `arena_bytes` and `arena_how` come from firmware_arena_base, `scratch_bytes`
    is the board's kernel scratch (planner.board_scratch_bytes): exactly what the
    export compiles as kArenaBytes, so profile, summary.json, the report, the
    search and the fit verdict all use the number the firmware allocates.
    """
    total = arena_for_firmware(arena_bytes, scratch_bytes)
    return {"arena_bytes": int(arena_bytes), "arena_how": arena_how, "kernel_scratch_bytes": int(scratch_bytes),
            "margin_bytes": int(total - arena_bytes - scratch_bytes), "firmware_arena_bytes": int(total),
            "reserve_bytes": int(reserve_bytes), "total_bytes": int(total + reserve_bytes)}


def arena_for_firmware_np(base_bytes: np.ndarray) -> np.ndarray:
    """arena_for_firmware(b, 0) for an array of arenas (default margin), bit for bit."""
    b = np.asarray(base_bytes, dtype=np.int64)
    margin = np.maximum(np.ceil(b * DEFAULT_MARGIN).astype(np.int64), MIN_MARGIN_BYTES)
    return -(-(b + margin) // 16) * 16


def _c_float(x: float) -> str:
    """A float literal that round-trips float32 exactly and always has a '.' or exponent."""
    if not math.isfinite(x):
        raise UserError(f"quantization parameter {x} is not finite; the model is corrupt")
    s = format(float(np.float32(x)), ".9g")
    if not any(c in s for c in ".en"):
        s += ".0"
    return s + "f"


def _c_string(s: str) -> str:
    """A C string literal; bytes outside printable ASCII become octal escapes."""
    out = []
    for b in s.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F and ch != "?":  # '?' escaped to dodge trigraphs
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _tensor_block(prefix: str, t: Tensor) -> list[str]:
    dims = [max(int(d), 1) for d in t.shape] or [1]
    ttype = _TFLITE_TYPES.get(t.dtype, "kTfLiteNoType")
    lines = [
        f"// {prefix}: tensor {t.index} '{_comment_safe(t.name)}', shape {list(t.shape)}, "
        f"{t.dtype} ({ttype})",
        f"constexpr int k{prefix}Rank = {len(dims)};",
        f"constexpr int k{prefix}Dims[] = {{{', '.join(str(d) for d in dims)}}};",
        f"constexpr int k{prefix}Elements = {t.num_elements};",
        f"constexpr int k{prefix}Bytes = {t.nbytes};",
        f'constexpr const char* k{prefix}Type = "{t.dtype}";  // {ttype}',
    ]
    if t.is_quantized:
        note = ""
        if len(t.scale) > 1:
            note = f"  // per-axis ({len(t.scale)} scales); first shown"
        lines += [
            f"constexpr float k{prefix}Scale = {_c_float(t.scale[0])};{note}",
            f"constexpr int k{prefix}ZeroPoint = {int(t.zero_point[0]) if t.zero_point else 0};",
            f"// real = k{prefix}Scale * (q - k{prefix}ZeroPoint)",
        ]
    else:
        lines += [
            f"constexpr float k{prefix}Scale = 0.0f;  // not quantized",
            f"constexpr int k{prefix}ZeroPoint = 0;",
        ]
    return lines


def _comment_safe(text: str) -> str:
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text).replace("*/", "* /")


def _tensor_prefixes(kind: str, count: int) -> list[str]:
    """Input 0 is kInput*, further ones kInput1*, kInput2*, ... (same for outputs)."""
    return [kind if i == 0 else f"{kind}{i}" for i in range(count)]


@dataclass(frozen=True)
class InputStage:
    """What the firmware must do to raw sensor values: the training preprocessing, as data.

    `table` maps a raw uint8 value of channel c straight to the model's
    quantized input (normalisation and quantisation folded together, computed
    by the same Python code the export verifies with); None for float inputs.
    """

    height: int
    width: int
    channels: int
    color: str                 # "L" (grayscale), "RGB", ...
    value_scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str                # how other image sizes were brought to height x width in training
    table: np.ndarray | None   # (channels, 256) of the input tensor's dtype, or None


_C_INT_TYPES = {"int8": "int8_t", "uint8": "uint8_t"}


def _input_stage_lines(stage: InputStage | None, t: Tensor | None) -> list[str]:
    """The settings header's input stage: layout, normalisation and the raw-value table."""
    if stage is None:
        return [
            "// Input stage: unknown. This model was exported from a bare .tflite, so tinynas",
            "// does not know how its inputs were normalised; set kInput values yourself",
            "// (real = kInputScale * (q - kInputZeroPoint)).",
            "constexpr bool kHasInputStage = false;",
            "",
        ]
    c = stage.channels
    lines = [
        "// Input stage: what to do to raw sensor values (the training preprocessing).",
        f"// The model takes one {stage.height}x{stage.width} image, {c} channel(s) ({stage.color}), "
        "interleaved HWC:",
        "// element i = (y * kInputWidth + x) * kInputChannels + c. Bring other sizes to "
        f"{stage.height}x{stage.width} first ({stage.resize}).",
        "// Normalisation: real = (raw / kInputValueScale - kInputMean[c]) / kInputStd[c].",
        "constexpr bool kHasInputStage = true;",
        f"constexpr int kInputHeight = {stage.height};",
        f"constexpr int kInputWidth = {stage.width};",
        f"constexpr int kInputChannels = {c};",
        f'constexpr const char* kInputColor = {_c_string(stage.color)};',
        f"constexpr float kInputValueScale = {_c_float(stage.value_scale)};",
        f"constexpr float kInputMean[{c}] = {{{', '.join(_c_float(m) for m in stage.mean)}}};",
        f"constexpr float kInputStd[{c}] = {{{', '.join(_c_float(v) for v in stage.std)}}};",
    ]
    if stage.table is not None and t is not None and t.dtype in _C_INT_TYPES:
        ctype = _C_INT_TYPES[t.dtype]
        lines += [
            f"// kInputFromRaw[c][v]: the model's {t.dtype} input for raw value v (0..255) of channel c,",
            "// normalisation and quantisation folded together (bit-exact with tinynas's Python path).",
            f"constexpr {ctype} kInputFromRaw[{c}][256] = {{",
        ]
        for row in np.asarray(stage.table).reshape(c, 256):
            lines.append("    {")
            lines += ["        " + ", ".join(str(int(v)) for v in row[k:k + 16]) + "," for k in range(0, 256, 16)]
            lines.append("    },")
        lines += [
            "};",
            "// Element i of the input tensor for raw value v (i in HWC order).",
            f"inline {ctype} InputFromRaw(int i, uint8_t v) {{ return kInputFromRaw[i % kInputChannels][v]; }}",
        ]
    lines += [
        "// Element i's normalised float value for a raw reading (any input type).",
        "inline float NormalizedInput(int i, float raw) {",
        "  return (raw / kInputValueScale - kInputMean[i % kInputChannels]) / kInputStd[i % kInputChannels];",
        "}",
        "",
    ]
    return lines


def _arena_lines(device: int, host: int | None) -> list[str]:
    """kArenaBytes: one figure, or the board's and a 64-bit host build's, picked by pointer size.

    TFLM keeps 8-byte pointers in its bookkeeping on a 64-bit host, so the same
    model needs more arena there than on a 32-bit MCU; the MCU's figure is the
    SRAM tinynas reports, the host's only lets the project run on a PC.
    """
    if host is None or round_up(host, 16) == device:
        return [f"constexpr int kArenaBytes = {device};"]
    return [f"constexpr int kArenaBytesDevice = {device};  // a 32-bit MCU: the SRAM figure tinynas reports",
            f"constexpr int kArenaBytesHost = {round_up(host, 16)};  // a 64-bit host build (tests, simulation)",
            "constexpr int kArenaBytes = sizeof(void*) > 4 ? kArenaBytesHost : kArenaBytesDevice;"]


def model_settings_header(name: str, graph: Graph, arena_bytes: int,
                          labels: Sequence[str] | None = None, arena_note: str = "",
                          input_stage: InputStage | None = None, host_arena_bytes: int | None = None) -> str:
    """`<name>_model_settings.h`: arena size, I/O shapes, types, quantization, labels.

    All constants live in namespace `<name>_model`, so two models can share one
    firmware. Only constexpr scalars/arrays and no TFLM includes: the header
    compiles anywhere, and firmware checks it against the interpreter at runtime.
    """
    ident = c_identifier(name)
    arena = round_up(arena_bytes, 16)
    if arena <= 0:
        raise ValueError("arena_bytes must be positive")
    guard = f"TINYNAS_{ident.upper()}_MODEL_SETTINGS_H_"
    ins = [graph.tensor(i) for i in graph.inputs]
    outs = [graph.tensor(i) for i in graph.outputs]
    if labels is not None:
        labels = list(labels)
        if outs and len(labels) != outs[0].num_elements:
            raise UserError(
                f"{len(labels)} labels given but output 0 has {outs[0].num_elements} elements; "
                "pass one label per output class"
            )

    note_lines = [f"// {line}" if line else "//" for line in (arena_note or
                  "Arena size given by the caller; see how it was obtained in your export log.").splitlines()]
    lines = [
        f"// {ident}_model_settings.h: generated by tinynas; do not edit.",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdint.h>",
        "",
        f"namespace {ident}_model {{",
        "",
        "// Tensor arena for tflite::MicroInterpreter, a multiple of 16 bytes.",
        *note_lines,
        *_arena_lines(arena, host_arena_bytes),
        "",
        f"constexpr int kNumInputs = {len(ins)};",
        f"constexpr int kNumOutputs = {len(outs)};",
        "",
    ]
    for prefix, t in zip(_tensor_prefixes("Input", len(ins)), ins):
        lines += _tensor_block(prefix, t) + [""]
    for prefix, t in zip(_tensor_prefixes("Output", len(outs)), outs):
        lines += _tensor_block(prefix, t) + [""]
    lines += _input_stage_lines(input_stage, ins[0] if ins else None)
    if labels:
        lines += [
            "// Class labels, one per element of output 0.",
            f"constexpr int kNumLabels = {len(labels)};",
            "constexpr const char* kLabels[] = {",
            *[f"    {_c_string(lab)}," for lab in labels],
            "};",
        ]
    else:
        lines += [
            "// No class labels were given at export (--labels); firmware prints indices.",
            "constexpr int kNumLabels = 0;",
            "constexpr const char* const* kLabels = nullptr;",
        ]
    return "\n".join(lines + _namespace_end(ident, guard))


def _namespace_end(ident: str, guard: str) -> list[str]:
    return ["", f"}}  // namespace {ident}_model", "", f"#endif  // {guard}", ""]


def _raw_input_body(stage: InputStage | None, t: Tensor | None) -> list[str]:
    if stage is None or t is None:
        return ["  (void)t;", "  (void)i;", "  (void)v;",
                "  return false;  // exported from a bare .tflite: the input stage is unknown"]
    if stage.table is not None and t.dtype in _C_INT_TYPES:
        return [f"  if (t->type != {_TFLITE_TYPES[t.dtype]}) return false;",
                f"  t->data.{t.dtype}[i] = InputFromRaw(i, v);", "  return true;"]  # TfLitePtrUnion's member
    return ["  return SetInputValue(t, i, NormalizedInput(i, static_cast<float>(v)));"]


def model_io_header(name: str, graph: Graph, input_stage: InputStage | None = None) -> str:
    """`<name>_model_io.h`: moving values in and out of the tensors, for every target's main.

    The example mains of all targets used to carry their own copies of these
    helpers; one generated header keeps them identical, and it is where the
    raw-input path (SetInputRaw through the settings header's table) lives.
    """
    ident = c_identifier(name)
    guard = f"TINYNAS_{ident.upper()}_MODEL_IO_H_"
    t = graph.tensor(graph.inputs[0]) if graph.inputs else None
    lines = [
        f"// {ident}_model_io.h: generated by tinynas; do not edit.",
        "// Getting values into and out of the model's tensors (example mains use these).",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <math.h>",
        "#include <stdint.h>",
        "",
        '#include "tensorflow/lite/c/common.h"',
        "",
        f'#include "{ident}_model_settings.h"',
        "",
        f"namespace {ident}_model {{",
        "",
        "template <typename T>",
        "inline T QuantizeInput(float x, float lo, float hi) {",
        "  const float q = roundf(x / kInputScale) + static_cast<float>(kInputZeroPoint);",
        "  return static_cast<T>(q < lo ? lo : (q > hi ? hi : q));",
        "}",
        "",
        "// Stores the normalised float x in element i of input 0, quantized with its scale and",
        "// zero point. Returns false for a type this helper does not handle.",
        "inline bool SetInputValue(TfLiteTensor* t, int i, float x) {",
        "  switch (t->type) {",
        "    case kTfLiteInt8:",
        "      t->data.int8[i] = QuantizeInput<int8_t>(x, -128.0f, 127.0f);",
        "      return true;",
        "    case kTfLiteUInt8:",
        "      t->data.uint8[i] = QuantizeInput<uint8_t>(x, 0.0f, 255.0f);",
        "      return true;",
        "    case kTfLiteInt16:",
        "      t->data.i16[i] = QuantizeInput<int16_t>(x, -32768.0f, 32767.0f);",
        "      return true;",
        "    case kTfLiteFloat32:",
        "      t->data.f[i] = x;",
        "      return true;",
        "    default:",
        "      return false;",
        "  }",
        "}",
        "",
        "// Stores raw sensor value v (a pixel, 0..255) in element i of input 0 through the",
        "// input stage of the settings header. Returns false where that stage is unknown.",
        "inline bool SetInputRaw(TfLiteTensor* t, int i, uint8_t v) {",
        *_raw_input_body(input_stage, t),
        "}",
        "",
        "// Element i of output 0 as a float (dequantized when the output is integer).",
        "inline float OutputValue(const TfLiteTensor* t, int i) {",
        "  switch (t->type) {",
        "    case kTfLiteInt8:",
        "      return kOutputScale * static_cast<float>(t->data.int8[i] - kOutputZeroPoint);",
        "    case kTfLiteUInt8:",
        "      return kOutputScale * static_cast<float>(t->data.uint8[i] - kOutputZeroPoint);",
        "    case kTfLiteInt16:",
        "      return kOutputScale * static_cast<float>(t->data.i16[i] - kOutputZeroPoint);",
        "    case kTfLiteFloat32:",
        "      return t->data.f[i];",
        "    default:",
        "      return 0.0f;",
        "  }",
        "}",
        "",
        "// The top class of output 0; its score goes to *score.",
        "inline int TopClass(const TfLiteTensor* t, float* score) {",
        "  int top = 0;",
        "  float best = OutputValue(t, 0);",
        "  for (int i = 1; i < kOutputElements; ++i) {",
        "    const float y = OutputValue(t, i);",
        "    if (y > best) {",
        "      best = y;",
        "      top = i;",
        "    }",
        "  }",
        "  *score = best;",
        "  return top;",
        "}",
        "",
        "inline const char* LabelOf(int index) {",
        '  return index < kNumLabels ? kLabels[index] : "-";',
        "}",
        "",
        "// A stand-in input for the example mains, different on every run: raw bytes through",
        "// the input stage where it is known, else normalised values. Replace its call with",
        "// your sensor's data (SetInputRaw per element, HWC order). False for an input type",
        "// the helpers do not handle.",
        "inline bool SetDemoInput(TfLiteTensor* t, int run) {",
        "  for (int i = 0; i < kInputElements; ++i) {",
        "    const bool ok = kHasInputStage",
        "                        ? SetInputRaw(t, i, static_cast<uint8_t>((i * 7 + run * 85) & 0xff))",
        "                        : SetInputValue(t, i, 0.5f + 0.25f * static_cast<float>(run % 4));",
        "    if (!ok) return false;",
        "  }",
        "  return true;",
        "}",
    ]
    return "\n".join(lines + _namespace_end(ident, guard))


def generated_files(name: str, tflite_bytes: bytes, graph: Graph, arena_bytes: int,
                    labels: Sequence[str] | None = None, arena_note: str = "",
                    op_types: Sequence[str] | None = None, source: str = "",
                    input_stage: InputStage | None = None, host_arena_bytes: int | None = None) -> dict[str, str]:
    """All five generated files for one model, keyed by file name."""
    ident = c_identifier(name)
    files = model_data_files(ident, tflite_bytes, source=source)
    files[f"{ident}_op_resolver.h"] = op_resolver_header(ident, op_types if op_types is not None else graph)
    files[f"{ident}_model_settings.h"] = model_settings_header(ident, graph, arena_bytes, labels, arena_note,
                                                               input_stage, host_arena_bytes)
    files[f"{ident}_model_io.h"] = model_io_header(ident, graph, input_stage)
    return files
