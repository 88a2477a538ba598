"""Measure the true tensor arena with the real TFLite Micro runtime.

TFLM is the ground truth for "does it run" and "how much arena". The smallest
`arena_size` at which construction and `invoke()` both succeed is found by
bisection to the byte. It runs in a child process with a timeout, so a model
that crashes or hangs the C++ runtime cannot take the CLI down with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .errors import CapturedStderr
from .tflite_reader import read_tflite

_TOTAL_RE = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD_RE = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL_RE = re.compile(r"Arena allocation tail (\d+) bytes")
_PROBE_ARENA = 64 << 20


@dataclass
class MeasuredArena:
    """The outcome of a measurement; arena_bytes is None when TFLM cannot run the model."""

    arena_bytes: int | None
    recorded_bytes: int | None = None
    head_bytes: int | None = None
    tail_bytes: int | None = None
    error: str | None = None
    tries: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def measure_arena(model_bytes: bytes, timeout_s: float = 60.0) -> MeasuredArena:
    """Bisect the minimum arena in a child process; never raises for a bad model."""
    with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
        f.write(model_bytes)
        path = f.name
    try:
        proc = subprocess.run([sys.executable, "-m", "tinynas.tflm_measure", path],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return MeasuredArena(None, error=f"TFLM measurement timed out after {timeout_s:.0f} s")
    finally:
        os.unlink(path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        tail = " ".join(proc.stderr.strip().splitlines()[-2:])[:300]
        return MeasuredArena(None, error=f"TFLM runtime crashed ({how}) {tail}".strip())
    return MeasuredArena(**json.loads(lines[-1]))


# ---------------------------------------------------------------- child process


def _try_arena(runtime, model: bytes, size: int, n_inputs: int):
    """Construct and invoke at `size`; return (interpreter or None, captured log)."""
    import numpy as np

    with CapturedStderr() as cap:
        try:
            it = runtime.Interpreter.from_bytes(model, arena_size=size)
            for i in range(n_inputs):
                d = it.get_input_details(i)
                it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
            it.invoke()
        except Exception as e:  # the runtime raises RuntimeError/ValueError with no detail
            err = f"{type(e).__name__}: {e}"
            it = None
        else:
            err = ""
    return it, (cap.text + err).strip()


def _fits(runtime, model: bytes, size: int, n_inputs: int) -> bool:
    """Try one arena size in a forked process: TFLM can segfault on a too-small
    arena, and a crash there must count as "does not fit", not end the search."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        ok = False
        try:
            it, _ = _try_arena(runtime, model, size, n_inputs)
            ok = it is not None
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _recorded(it) -> dict:
    with CapturedStderr() as cap:
        it.print_allocations()
    out = {}
    for key, rx in (("recorded_bytes", _TOTAL_RE), ("head_bytes", _HEAD_RE), ("tail_bytes", _TAIL_RE)):
        m = rx.search(cap.text)
        out[key] = int(m.group(1)) if m else None
    return out


def _child(path: str) -> dict:
    from tflite_micro.python.tflite_micro import runtime

    model = open(path, "rb").read()
    n_inputs = len(read_tflite(path).inputs)
    it, log = _try_arena(runtime, model, _PROBE_ARENA, n_inputs)
    if it is None:
        first = next((ln for ln in log.splitlines() if ln.strip()), "unknown error")
        return {"arena_bytes": None, "error": f"TFLM cannot run this model: {first}", "tries": 1}
    rec = _recorded(it)
    del it
    tries = 1
    guess = rec["recorded_bytes"] or 1024
    lo, hi = max(guess - 64, 0), None
    step = 64
    while hi is None:  # grow from the recorded total until it runs
        tries += 1
        if _fits(runtime, model, guess, n_inputs):
            hi = guess
        else:
            lo = guess
            guess += step
            step *= 2
            if guess > _PROBE_ARENA:
                hi = _PROBE_ARENA
    while tries < 200:  # make sure lo fails, then bisect to the byte
        tries += 1
        if not _fits(runtime, model, lo, n_inputs) or lo == 0:
            break
        hi, lo = lo, max(lo - 1024, 0)
    while hi - lo > 1:
        tries += 1
        mid = (lo + hi) // 2
        if _fits(runtime, model, mid, n_inputs):
            hi = mid
        else:
            lo = mid
    return {"arena_bytes": hi, "tries": tries, **rec}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1])))
