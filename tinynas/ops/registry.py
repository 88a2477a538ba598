"""The op registry: name -> OpSpec, with resolver names attached.

`op_spec(name)` is the one lookup the planner, op_costs, latency, the cost
model and the graph builder use. An op without a spec of its own gets the
defaults (OpSpec's), so an unknown op is still planned, conservatively.
"""

from __future__ import annotations

import re
from functools import lru_cache

from . import control, elementwise, linear, sequence, signal
from .resolver import BUILTIN_RESOLVERS, CUSTOM_RESOLVERS
from .spec import OpSpec

REGISTRY: dict[str, OpSpec] = {
    s.name: s for group in (linear.SPECS, elementwise.SPECS, sequence.SPECS, control.SPECS,
                            signal.SPECS) for s in group}

RESOLVERS: dict[str, str] = {**BUILTIN_RESOLVERS, **CUSTOM_RESOLVERS}


@lru_cache(maxsize=None)
def op_spec(name: str) -> OpSpec:
    """The op's spec; a default one (named after the op) when the registry has none."""
    got = REGISTRY.get(name)
    return got if got is not None else OpSpec(name)


def resolver_name(name: str) -> str | None:
    """The MicroMutableOpResolver method that registers this op, None when TFLM has no kernel."""
    return RESOLVERS.get(name)


def signature_kind(name: str) -> str:
    """The op's kind in latency signatures: its spec's, else its lower-cased name."""
    kind = op_spec(name).sig_kind
    return kind or re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "op"


def cost_kind_of_signature(sig_kind: str) -> str:
    """Cycle-model kind of a signature kind (what a LUT key alone says)."""
    return _COST_KINDS.get(sig_kind, "other")


_COST_KINDS: dict[str, str] = {signature_kind(n): s.cost_kind for n, s in REGISTRY.items()}
