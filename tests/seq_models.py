"""Stateful int8 models built without TensorFlow: LSTM stacks, SVDF keyword nets, resource variables.

TF 2.21 cannot make these for TFLM (its Keras LSTM becomes a WHILE loop whose
int8 calibration crashes, and it has no SVDF layer), so they are written as
flatbuffers with tests/tflite_build.py, with quantization parameters TFLM's
kernels accept (power-of-two cell-state scale, SVDF bias scale = state scale x
time-weight scale). Each builds in milliseconds; the weights are random because
only memory is measured.
"""

from __future__ import annotations

import numpy as np
from tflite_build import O, Sub, T, build, const


def _act(shape: tuple[int, ...], scale: float = 0.05, zp: int = 0, dtype: str = "int8",
         variable: bool = False) -> T:
    return T(shape, dtype, scale=(scale,), zero_point=(zp,), variable=variable)


def _lstm(ts: list[T], x: int, batch: int, steps: int, feats: int, units: int, seed: int) -> int:
    """Append one int8 UNIDIRECTIONAL_SEQUENCE_LSTM reading tensor x; returns its output tensor."""
    def add(t: T) -> int:
        ts.append(t)
        return len(ts) - 1

    w_in = [add(const((units, feats), "int8", seed + k, (0.01,))) for k in range(4)]
    w_rec = [add(const((units, units), "int8", seed + 4 + k, (0.01,))) for k in range(4)]
    bias = [add(const((units,), "int32", seed + 8 + k, (0.0005,))) for k in range(4)]
    h = add(_act((batch, units), 0.0078125, 0, variable=True))
    c = add(_act((batch, units), 2.0 ** -11, 0, "int16", variable=True))
    y = add(_act((batch, steps, units), 0.0078125, 0))
    inputs = (x, *w_in, *w_rec, -1, -1, -1, *bias, -1, -1, h, c, -1, -1, -1, -1)
    opts = ("UnidirectionalSequenceLSTMOptions", {"fusedActivationFunction": 4, "cellClip": 10.0,
                                                  "timeMajor": False})
    ts_ops.append(O("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, (y,), opts))
    return y


ts_ops: list[O] = []


def lstm_model(layers: int = 2, batch: int = 1, steps: int = 10, feats: int = 8,
               units: tuple[int, ...] = (16, 12), classes: int = 4) -> bytes:
    """int8 LSTM stack over a sequence, then RESHAPE + FULLY_CONNECTED + SOFTMAX on all steps."""
    ts_ops.clear()
    ts: list[T] = [_act((batch, steps, feats))]
    x, f = 0, feats
    for i in range(layers):
        x = _lstm(ts, x, batch, steps, f, units[i], 10 * i)
        f = units[i]
    shape = ts.__len__()
    ts.append(const((2,), "int32", 0, ()))
    ts[shape].data = np.array([batch, steps * f], np.int32)
    ts.append(_act((batch, steps * f), 0.0078125))
    ts_ops.append(O("RESHAPE", (x, shape), (shape + 1,), ("ReshapeOptions", {"newShape": [batch, steps * f]})))
    w = len(ts)
    ts += [const((classes, steps * f), "int8", 99, (0.01,)), const((classes,), "int32", 98, (0.01 * 0.0078125,)),
           _act((batch, classes), 0.1), _act((batch, classes), 1 / 256, -128)]
    ts_ops.append(O("FULLY_CONNECTED", (shape + 1, w, w + 1), (w + 2,), ("FullyConnectedOptions", {})))
    ts_ops.append(O("SOFTMAX", (w + 2,), (w + 3,), ("SoftmaxOptions", {"beta": 1.0})))
    return build(Sub(ts, list(ts_ops), (0,), (w + 3,)))


def svdf_model(feats: int = 40, layers: tuple[tuple[int, int, int], ...] = ((64, 1, 8), (32, 2, 6), (16, 1, 4)),
               classes: int = 6, batch: int = 1) -> bytes:
    """Keyword-spotting style stack of int8 SVDF layers (units, rank, memory), FULLY_CONNECTED, SOFTMAX."""
    ts: list[T] = [_act((batch, feats), 0.1)]
    ops: list[O] = []
    x, f = 0, feats
    state_scale, time_scale = 0.002, 0.001
    for i, (units, rank, memory) in enumerate(layers):
        filters = units * rank
        base = len(ts)
        ts += [const((filters, f), "int8", 20 + i, (0.01,)),
               const((filters, memory), "int16", 30 + i, (time_scale,)),
               const((units,), "int32", 40 + i, (state_scale * time_scale,)),
               _act((batch, memory * filters), state_scale, 0, "int16", variable=True),
               _act((batch, units), 0.05)]
        ops.append(O("SVDF", (x, base, base + 1, base + 2, base + 3), (base + 4,),
                     ("SVDFOptions", {"rank": rank, "fusedActivationFunction": 1})))
        x, f = base + 4, units
    w = len(ts)
    ts += [const((classes, f), "int8", 50, (0.01,)), const((classes,), "int32", 51, (0.0005,)),
           _act((batch, classes), 0.1), _act((batch, classes), 1 / 256, -128)]
    ops.append(O("FULLY_CONNECTED", (x, w, w + 1), (w + 2,), ("FullyConnectedOptions", {})))
    ops.append(O("SOFTMAX", (w + 2,), (w + 3,), ("SoftmaxOptions", {"beta": 1.0})))
    return build(Sub(ts, ops, (0,), (w + 3,)))


def resvar_model(n: int = 8, nvars: int = 1) -> bytes:
    """Streaming accumulator: CALL_ONCE zero-initialises nvars resource variables, each step adds the input."""
    f = dict(scale=(), zero_point=())
    main_t = [T((1, n), "float32", **f)]
    ops = [O("CALL_ONCE", (), (), ("CallOnceOptions", {"initSubgraphIndex": 1}))]
    init_t: list[T] = []
    init_ops: list[O] = []
    x = 0
    for v in range(nvars):
        main_t += [T((), "resource", **f), T((1, n), "float32", **f), T((1, n), "float32", **f)]
        r, val, y = len(main_t) - 3, len(main_t) - 2, len(main_t) - 1
        ops += [O("VAR_HANDLE", (), (r,), ("VarHandleOptions", {"sharedName": f"v{v}"})),
                O("READ_VARIABLE", (r,), (val,)), O("ADD", (val, x), (y,), ("AddOptions", {})),
                O("ASSIGN_VARIABLE", (r, y), ())]
        x = y
        init_t += [T((), "resource", **f), T((1, n), "float32", data=np.zeros((1, n), np.float32), **f)]
        init_ops += [O("VAR_HANDLE", (), (len(init_t) - 2,), ("VarHandleOptions", {"sharedName": f"v{v}"})),
                     O("ASSIGN_VARIABLE", (len(init_t) - 2, len(init_t) - 1), ())]
    return build([Sub(main_t, ops, (0,), (x,)), Sub(init_t, init_ops, (), ())])


def signal_model(n: int = 64, fft: int = 64) -> bytes:
    """Audio front end of TFLM signal ops: SignalWindow -> SignalRfft (int16) -> SignalEnergy."""
    from flatbuffers import flexbuffers

    f = dict(scale=(), zero_point=())
    ts = [T((n,), "int16", **f), T((n,), "int16", data=np.full(n, 1000, np.int16), **f),
          T((n,), "int16", **f), T((fft + 2,), "int16", **f), T((fft // 2 + 1,), "uint32", **f)]
    ops = [O("CUSTOM:SignalWindow", (0, 1), (2,), custom_options=bytes(flexbuffers.Dumps({"shift": 12}))),
           O("CUSTOM:SignalRfft", (2,), (3,),
             custom_options=bytes(flexbuffers.Dumps({"T": 7, "fft_length": fft}))),
           O("CUSTOM:SignalEnergy", (3,), (4,),
             custom_options=bytes(flexbuffers.Dumps({"end_index": fft // 2, "start_index": 1})))]
    return build(Sub(ts, ops, (0,), (4,)))
