"""The MBConv search space: spec (data), archs (subnets), and the three builders.

Only the light parts are re-exported here. The builders live in their own
modules so that importing tinynas.space never pulls in torch or TensorFlow
(search-space optimization needs the cost model, so it sits above it, in tinynas.spaceopt):
`tinynas.space.torch_model.build_model`, `tinynas.space.keras_model.build_keras`,
`tinynas.space.graph_builder.build_graph`.
"""

from .arch import (Arch, GenomeChoices, GenomeLayout, LayerPlan, arch_from_choices, arch_hash,
                   canonical_json, canonicalize_genomes, decode, encode, genome_layout, largest_arch,
                   layer_plan, load_arch, sample_arch, sample_genomes, save_arch, skeleton,
                   smallest_arch, unpack_genomes, validate_arch)
from .spec import SpaceSpec, StageSpec, default_space, load_space, make_divisible

__all__ = [
    "Arch", "GenomeChoices", "GenomeLayout", "LayerPlan", "SpaceSpec", "StageSpec",
    "arch_from_choices", "arch_hash", "canonical_json", "canonicalize_genomes", "decode",
    "default_space", "encode", "genome_layout", "largest_arch", "layer_plan", "load_arch",
    "load_space", "make_divisible", "sample_arch",
    "sample_genomes", "save_arch", "skeleton", "smallest_arch", "unpack_genomes", "validate_arch",
]
