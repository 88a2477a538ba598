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


def arena_for_firmware(measured_bytes: int, scratch_bytes: int = 0,
                       margin_fraction: float = 0.05, min_margin_bytes: int = 256) -> int:
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


def model_settings_header(name: str, graph: Graph, arena_bytes: int,
                          labels: Sequence[str] | None = None, arena_note: str = "") -> str:
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
        f"namespace {ident}_model {{",
        "",
        "// Tensor arena for tflite::MicroInterpreter, a multiple of 16 bytes.",
        *note_lines,
        f"constexpr int kArenaBytes = {arena};",
        "",
        f"constexpr int kNumInputs = {len(ins)};",
        f"constexpr int kNumOutputs = {len(outs)};",
        "",
    ]
    for prefix, t in zip(_tensor_prefixes("Input", len(ins)), ins):
        lines += _tensor_block(prefix, t) + [""]
    for prefix, t in zip(_tensor_prefixes("Output", len(outs)), outs):
        lines += _tensor_block(prefix, t) + [""]
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
    lines += [
        "",
        f"}}  // namespace {ident}_model",
        "",
        f"#endif  // {guard}",
        "",
    ]
    return "\n".join(lines)


def generated_files(name: str, tflite_bytes: bytes, graph: Graph, arena_bytes: int,
                    labels: Sequence[str] | None = None, arena_note: str = "",
                    op_types: Sequence[str] | None = None, source: str = "") -> dict[str, str]:
    """All four generated files for one model, keyed by file name."""
    ident = c_identifier(name)
    files = model_data_files(ident, tflite_bytes, source=source)
    files[f"{ident}_op_resolver.h"] = op_resolver_header(ident, op_types if op_types is not None else graph)
    files[f"{ident}_model_settings.h"] = model_settings_header(ident, graph, arena_bytes, labels, arena_note)
    return files
