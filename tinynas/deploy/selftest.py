"""The generated firmware's self-test inputs, reproduced in Python, and its output parsed.

A project built with -DTINYNAS_SELFTEST=ON (targets/cmake/main.cc) invokes the
model once per input kind (zeros, a pattern, seeded xorshift32 bytes) and prints
every output tensor as hex. Here the same inputs go through the TFLM Python runtime,
so a firmware build can be compared with it byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from ..tflite_reader import parse_tflite

KINDS = ("zeros", "pattern", "random")
SEED = 2463534242

_INVOKE = re.compile(r"^invoke (\w+) ticks (\d+) per_second (\d+)$")
_OUTPUT = re.compile(r"^output (\w+) (\d+) ([0-9a-f]*)$")
_ARENA = re.compile(r"^arena used (\d+) of (\d+)$")
_OP = re.compile(r"^op (\w+) (\d+) (\S+) (\d+)$")  # -DTINYNAS_OP_PROFILE: kind, index, op name, ticks


def input_bytes(kind: str, n: int, state: list[int]) -> np.ndarray:
    """n input bytes of `kind`; `state` carries the xorshift32 state across tensors, as in C."""
    if kind == "zeros":
        return np.zeros(n, np.uint8)
    if kind == "pattern":
        return ((np.arange(n, dtype=np.uint32) * 37 + 11) & 0xFF).astype(np.uint8)
    out = np.empty(n, np.uint8)
    x = state[0]
    for i in range(n):  # sequential by nature; inputs are at most a few hundred KB
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x >> 24
    state[0] = x
    return out


def reference_outputs(tflite: bytes, arena_bytes: int) -> dict[str, list[bytes]]:
    """Every output tensor's bytes per input kind, from the TFLM Python runtime."""
    from tflite_micro.python.tflite_micro import runtime

    graph = parse_tflite(tflite)
    n_in, n_out = len(graph.inputs), len(graph.outputs)
    it = runtime.Interpreter.from_bytes(tflite, arena_size=int(arena_bytes))
    result: dict[str, list[bytes]] = {}
    for kind in KINDS:
        state = [SEED]
        for i in range(n_in):
            d = it.get_input_details(i)
            dtype = np.dtype(d["dtype"])
            count = int(np.prod(d["shape"]))
            if dtype == np.float32:
                x = input_bytes(kind, count, state).astype(np.float32) / 256.0
            else:
                x = input_bytes(kind, count * dtype.itemsize, state).view(dtype)
            it.set_input(x.reshape(d["shape"]), i)
        it.invoke()
        result[kind] = [np.ascontiguousarray(it.get_output(o)).tobytes()
                        for o in range(n_out)]
    return result


@dataclass
class SelftestRun:
    """What one firmware self-test printed."""

    outputs: dict[str, list[bytes]] = field(default_factory=dict)
    ticks: dict[str, int] = field(default_factory=dict)
    ticks_per_second: int = 0
    done: bool = False
    op_ticks: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # per kind: (op, ticks) in order
    arena_used: int | None = None  # MicroInterpreter::arena_used_bytes() on the target

    @property
    def instructions_per_tick(self) -> int:
        """Under QEMU's -icount shift=0 one guest instruction is one nanosecond of its clock."""
        return round(1e9 / self.ticks_per_second) if self.ticks_per_second else 0

    def invoke_ms(self, kind: str) -> float:
        return 1e3 * self.ticks[kind] / self.ticks_per_second if self.ticks_per_second else float("nan")


def parse_selftest(text: str) -> SelftestRun:
    """Parse the firmware's stdout; lines it does not know are ignored."""
    run = SelftestRun()
    for line in text.splitlines():
        line = line.strip()
        if m := _INVOKE.match(line):
            run.ticks[m.group(1)] = int(m.group(2))
            run.ticks_per_second = int(m.group(3))
        elif m := _OUTPUT.match(line):
            outs = run.outputs.setdefault(m.group(1), [])
            if int(m.group(2)) == len(outs):
                outs.append(bytes.fromhex(m.group(3)))
        elif m := _OP.match(line):
            ops = run.op_ticks.setdefault(m.group(1), [])
            if int(m.group(2)) == len(ops):
                ops.append((m.group(3), int(m.group(4))))
        elif m := _ARENA.match(line):
            run.arena_used = int(m.group(1))
        elif line == "selftest done":
            run.done = True
    return run


def compare(got: dict[str, list[bytes]], want: dict[str, list[bytes]]) -> tuple[int, int, int]:
    """(identical inputs, inputs, largest byte difference as int8) over the self-test kinds."""
    same, worst = 0, 0
    for kind in KINDS:
        g, w = got.get(kind, []), want[kind]
        if g == w:
            same += 1
        elif len(g) == len(w) and all(len(a) == len(b) for a, b in zip(g, w)):
            for a, b in zip(g, w):
                d = np.abs(np.frombuffer(a, np.int8).astype(int) - np.frombuffer(b, np.int8).astype(int))
                worst = max(worst, int(d.max(initial=0)))
        else:
            worst = max(worst, 256)
    return same, len(KINDS), worst
