"""Read a .tflite flatbuffer into a Graph, through the schema LiteRT ships.

We read with the flatbuffer table API rather than an interpreter because the
profiler must work on models that LiteRT refuses (person_detect's depthwise
weights) and on models with ops neither runtime has. Every failure of a file
that is not a valid single-model TFLite flatbuffer becomes a UserError, so a
corrupt or foreign file never shows a traceback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import UserError
from .graph import Graph, Op, Tensor, check_runnable
from .op_costs import annotate_costs

_MAX_FILE_BYTES = 1 << 31


def _schema():
    from ai_edge_litert import schema_py_generated as schema  # light import, no runtime

    return schema


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def read_tflite(path: str | os.PathLike) -> Graph:
    """Parse a .tflite file; raise UserError with the reason when it is not one."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"model file {p} does not exist; check the path")
    if p.is_dir():
        raise UserError(f"{p} is a directory; pass a .tflite file")
    size = p.stat().st_size
    if size > _MAX_FILE_BYTES:
        raise UserError(f"{p} is {size} bytes; files over 2 GiB are not supported")
    data = p.read_bytes()
    return parse_tflite(data, source=str(p))


def _check_header(buf: bytes, source: str) -> None:
    if len(buf) == 0:
        raise UserError(f"{source} is empty; pass a TFLite flatbuffer (.tflite)")
    if len(buf) < 16:
        raise UserError(f"{source} is only {len(buf)} bytes, too short to be a TFLite model")
    if buf[:8] == b"\x08\x01\x12" or b"onnx" in buf[:64].lower() or buf[:2] == b"\x08\x07":
        if buf[4:8] != b"TFL3":
            raise UserError(f"{source} looks like an ONNX model, not TFLite; convert it to .tflite first")
    if buf[4:8] != b"TFL3":
        raise UserError(
            f"{source} is not a TFLite flatbuffer (missing the 'TFL3' identifier); "
            "pass a .tflite file produced by TFLiteConverter"
        )
    root = int.from_bytes(buf[:4], "little")
    if root < 8 or root + 4 > len(buf):
        raise UserError(f"{source} is truncated or corrupt (root table offset {root} is outside the file)")


def _vec_len_ok(n: int, buf_len: int, elem_bytes: int = 4) -> bool:
    return 0 <= n and n * elem_bytes <= buf_len


def parse_tflite(buf: bytes, source: str = "<bytes>") -> Graph:
    """Parse flatbuffer bytes into a Graph: subgraph 0, with the others in `subgraphs`."""
    _check_header(buf, source)
    try:
        return _parse(bytearray(buf), source)
    except UserError:
        raise
    except Exception as e:  # flatbuffers raises struct/Index/Value errors on corrupt data
        raise UserError(
            f"{source} is truncated or corrupt ({type(e).__name__} while reading the flatbuffer); "
            "re-export the model"
        ) from None


def _parse(buf: bytearray, source: str) -> Graph:
    s = _schema()
    n = len(buf)
    model = s.Model.GetRootAs(buf, 0)
    op_names = _enum_names(s.BuiltinOperator)
    type_names = {k: v.lower() for k, v in _enum_names(s.TensorType).items()}

    codes = _opcodes(model, op_names, n, source)

    n_sub = model.SubgraphsLength()
    if n_sub < 1 or not _vec_len_ok(n_sub, n):
        raise UserError(f"{source} has no subgraph; it is not a usable TFLite model")
    n_buffers = model.BuffersLength()
    if not _vec_len_ok(n_buffers, n):
        raise UserError(f"{source} is corrupt (buffer table of impossible length)")
    graphs = [_subgraph(s, model, model.Subgraphs(i), codes, type_names, buf, n_buffers, source)
              for i in range(n_sub)]
    desc = model.Description()
    n_tensors = sum(len(sg.tensors) for sg in graphs)
    g = graphs[0]
    g.model_bytes, g.num_subgraphs, g.subgraphs = n, n_sub, graphs[1:]
    g.offline_plan = _offline_plan(model, buf, n_tensors)
    g.description = desc.decode("utf-8", "replace") if desc else ""
    for i, sg in enumerate(graphs):
        check_runnable(sg, source if i == 0 else f"{source} (subgraph {i})")
        annotate_costs(sg)
    return g


def _subgraph(s, model, sg, codes, type_names, buf: bytearray, n_buffers: int, source: str) -> Graph:
    """One subgraph as a Graph (costs and checks are the caller's)."""
    n = len(buf)
    tensors = [_read_tensor(model, sg.Tensors(i), i, type_names, buf, n_buffers, source)
               for i in range(_checked_len(sg.TensorsLength(), n, source, "tensor"))]
    ops = [_read_op(s, sg.Operators(i), i, codes, len(tensors), source)
           for i in range(_checked_len(sg.OperatorsLength(), n, source, "operator"))]
    return Graph(tensors=tensors, ops=ops, inputs=_indices(sg.InputsAsNumpy(), len(tensors), source),
                 outputs=_indices(sg.OutputsAsNumpy(), len(tensors), source), source=source)


def _opcodes(model, op_names: dict[int, str], buf_len: int, source: str) -> list[tuple[str, int]]:
    """(op name, version) per operator-code entry; custom ops as CUSTOM:<name>."""
    n_codes = model.OperatorCodesLength()
    if not _vec_len_ok(n_codes, buf_len):
        raise UserError(f"{source} is corrupt (operator code table of impossible length)")
    codes = []
    for i in range(n_codes):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = op_names.get(code, f"UNKNOWN_{code}")
        if name == "CUSTOM":
            custom = oc.CustomCode()
            name = f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}"
        codes.append((name, oc.Version()))
    return codes


def opcode_table(buf: bytes, source: str = "<bytes>") -> list[str]:
    """Op names of the whole operator-code table, every subgraph's ops included."""
    _check_header(buf, source)
    s = _schema()
    try:
        model = s.Model.GetRootAs(bytearray(buf), 0)
        return [name for name, _ in _opcodes(model, _enum_names(s.BuiltinOperator), len(buf), source)]
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"{source} is truncated or corrupt ({type(e).__name__} while reading "
                        "the operator codes); re-export the model") from None


def _checked_len(count: int, buf_len: int, source: str, what: str) -> int:
    if not _vec_len_ok(count, buf_len):
        raise UserError(f"{source} is corrupt ({what} table of impossible length {count})")
    return count


def _indices(arr, n_tensors: int, source: str) -> tuple[int, ...]:
    if isinstance(arr, int):  # flatbuffers returns 0 for an absent vector
        return ()
    out = tuple(int(x) for x in arr)
    for x in out:
        if x < -1 or x >= n_tensors:
            raise UserError(f"{source} is corrupt (tensor index {x} out of range 0..{n_tensors - 1})")
    return out


def _read_tensor(model, t, i: int, type_names: dict[int, str], buf: bytearray,
                 n_buffers: int, source: str) -> Tensor:
    shape_arr = t.ShapeAsNumpy()
    shape = () if isinstance(shape_arr, int) else tuple(int(d) for d in shape_arr)
    if any(d < -1 or d > (1 << 30) for d in shape):
        raise UserError(f"{source} is corrupt (tensor {i} has shape {list(shape)})")
    dtype = type_names.get(t.Type(), f"type{t.Type()}")
    name = t.Name()
    data = None
    buffer_bytes = 0
    b = t.Buffer()
    if b < 0 or b >= max(n_buffers, 1) and n_buffers > 0:
        raise UserError(f"{source} is corrupt (tensor {i} refers to buffer {b} of {n_buffers})")
    if b > 0 and n_buffers:
        data, buffer_bytes = _buffer_data(model.Buffers(b), buf)
    scale: tuple[float, ...] = ()
    zp: tuple[int, ...] = ()
    qdim = 0
    q = t.Quantization()
    if q is not None:
        sc = q.ScaleAsNumpy()
        zz = q.ZeroPointAsNumpy()
        scale = () if isinstance(sc, int) else tuple(float(x) for x in sc)
        zp = () if isinstance(zz, int) else tuple(int(x) for x in zz)
        qdim = int(q.QuantizedDimension())
    return Tensor(index=i, name=name.decode("utf-8", "replace") if name else f"t{i}",
                  shape=shape, dtype=dtype, is_const=data is not None,
                  is_variable=bool(t.IsVariable()), scale=scale, zero_point=zp,
                  quantized_dimension=qdim, data=data, buffer_bytes=buffer_bytes)


def _buffer_data(b, buf: bytearray) -> tuple[np.ndarray | None, int]:
    """A constant buffer, inline or (for >2 GB models) by offset into the file."""
    arr = b.DataAsNumpy()
    if not isinstance(arr, int) and arr.size > 0:
        return arr, int(arr.size)
    off, size = int(b.Offset()), int(b.Size())
    if off > 1 and size > 0:
        if off + size > len(buf):
            raise ValueError("buffer offset beyond end of file")
        return np.frombuffer(bytes(buf[off:off + size]), dtype=np.uint8), size
    return None, 0


def _read_op(s, o, i: int, codes: list[tuple[str, int]], n_tensors: int, source: str) -> Op:
    idx = o.OpcodeIndex()
    if idx >= len(codes):
        raise UserError(f"{source} is corrupt (operator {i} uses opcode {idx} of {len(codes)})")
    name, version = codes[idx]
    options: dict = {}
    ot = o.BuiltinOptionsType()
    table = o.BuiltinOptions()
    if ot and table is not None:
        obj = s.BuiltinOptionsCreator(ot, table)
        if obj is not None:
            options = {_snake(k): _plain(v) for k, v in vars(obj).items()}
    if name.startswith("CUSTOM:"):
        options = _custom_options(o)
    inter = o.IntermediatesAsNumpy()
    return Op(index=i, type=name, version=version,
              inputs=_indices(o.InputsAsNumpy(), n_tensors, source),
              outputs=_indices(o.OutputsAsNumpy(), n_tensors, source),
              intermediates=_indices(inter, n_tensors, source), options=options)


def _custom_options(o) -> dict:
    """A custom op's flexbuffer map (TFLM's signal ops keep their sizes there); {} when absent or not a map."""
    raw = o.CustomOptionsAsNumpy()
    if isinstance(raw, int) or raw.size == 0:
        return {}
    from flatbuffers import flexbuffers

    try:
        got = flexbuffers.Loads(raw.tobytes())
    except Exception:  # a custom op may use any format; its options are then unknown, not an error
        return {}
    return {str(k): _plain(v) for k, v in got.items()} if isinstance(got, dict) else {}


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    return v


def _offline_plan(model, buf: bytearray, n_tensors: int) -> tuple[int, ...] | None:
    """Per-tensor arena offsets a converter may have stored (TFLM honours them)."""
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        if m.Name() == b"OfflineMemoryAllocation":
            data, _ = _buffer_data(model.Buffers(m.Buffer()), buf)
            if data is None or data.size < 12:
                return None
            words = np.frombuffer(data.tobytes(), dtype="<i4")
            count = int(words[2])
            return tuple(int(x) for x in words[3:3 + count])
    return None
