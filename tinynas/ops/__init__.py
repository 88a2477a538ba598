"""One registry of what tinynas knows about each TFLM operator (see `spec`)."""

from .registry import (REGISTRY, RESOLVERS, cost_kind_of_signature, op_spec, resolver_name,
                       signature_kind)
from .spec import OpSpec, Target

__all__ = ["REGISTRY", "RESOLVERS", "OpSpec", "Target", "cost_kind_of_signature", "op_spec",
           "resolver_name", "signature_kind"]
