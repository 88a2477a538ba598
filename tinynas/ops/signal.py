"""TFLM's signal-processing custom ops (signal/micro/kernels, registered as Signal*).

Their sizes come from the op's flexbuffer options, which tflite_reader decodes
into `Op.options`. Measured on the x86-64 runtime (tflite-micro 0.dev20261023):

* SignalWindow, SignalEnergy: an 8-byte params struct from Init;
* SignalRfft: a 48-byte params struct plus the KISS FFT state from Init, which
  for int16 is 280 + 5 x fft_length bytes (fitted on fft_length 64, 256 and
  512, exact to the byte; int32 and float use twice the bytes per point), and
  one scratch buffer of fft_length samples from Prepare. A small front end
  (64-point FFT) peaks while it is prepared, 480 B above the tail: fitted on
  that one model, so treat it as an estimate.

The other signal ops (filter banks, PCAN, framer, stacker, delay, overlap-add,
irfft, FFT auto-scale) keep OpSpec's default op data; their state buffers are
not modelled yet (see the report of issue 16).
"""

from __future__ import annotations

from .spec import Graph, Op, OpSpec, Target, tensor_in

_SAMPLE_BYTES = {"int16": 2, "int32": 4, "float32": 4}


def _fft_length(op: Op) -> int:
    return max(int(op.options.get("fft_length", 0) or 0), 0)


def rfft_state(g: Graph, op: Op, t: Target) -> list[int]:
    x = tensor_in(g, op, 0)
    per_point = 5 * _SAMPLE_BYTES.get(x.dtype if x is not None else "int16", 2) // 2
    return [280 + per_point * _fft_length(op)]


def rfft_scratch(g: Graph, op: Op, t: Target) -> list[int]:
    x = tensor_in(g, op, 0)
    return [_fft_length(op) * _SAMPLE_BYTES.get(x.dtype if x is not None else "int16", 2)]


NAMES = ("SignalDelay", "SignalEnergy", "SignalFftAutoScale", "SignalFilterBank",
         "SignalFilterBankLog", "SignalFilterBankSquareRoot",
         "SignalFilterBankSpectralSubtraction", "SignalFramer", "SignalIrfft",
         "SignalOverlapAdd", "SignalPCAN", "SignalRfft", "SignalStacker", "SignalWindow")

_SPECIAL = {
    "SignalWindow": OpSpec("CUSTOM:SignalWindow", options_bytes=0, opdata_bytes=8),
    "SignalEnergy": OpSpec("CUSTOM:SignalEnergy", options_bytes=0, opdata_bytes=8),
    "SignalRfft": OpSpec("CUSTOM:SignalRfft", options_bytes=0, opdata_bytes=48, opdata_pointers=2,
                         persistent=rfft_state, scratch=rfft_scratch, sig_kind="rfft", prepare_temp=480),
}

SPECS = tuple(_SPECIAL.get(n, OpSpec(f"CUSTOM:{n}", options_bytes=0)) for n in NAMES)
