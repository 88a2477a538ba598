"""The package's layers, lowest first: a module imports only from its own layer or below.

Data flows one way, as the pipeline runs: ground helpers, data, the search space, the
latency and cost models, space optimization, the supernet, training, the search, export
and the on-board measuring kit, the pipeline, and the command line on top.
tests/test_layering.py reads every module's imports and holds the code to this order;
README's layout section shows it. A name is a module or a package (all its modules).
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("tinynas.version", "tinynas.errors", "tinynas.paths", "tinynas.atomic", "tinynas.stats",
                "tinynas.plotstyle", "tinynas.timebudget", "tinynas.layers", "tinynas.graph", "tinynas.ops",
                "tinynas.op_costs", "tinynas.tflite_reader", "tinynas.planner", "tinynas.flash",
                "tinynas.boards", "tinynas.distributed", "tinynas.checkpoint", "tinynas.tflm_measure",
                "tinynas.cgen", "tinynas.firmware", "tinynas.rundir")),
    ("data", ("tinynas.data",)),
    ("space", ("tinynas.space",)),
    ("latency model", ("tinynas.latency", "tinynas.profile")),
    ("cost model", ("tinynas.costmodel",)),
    ("space optimization", ("tinynas.spaceopt",)),
    ("supernet", ("tinynas.supernet",)),
    ("train", ("tinynas.train",)),
    ("search", ("tinynas.search",)),
    ("deploy, measuring kit, baselines", ("tinynas.deploy", "tinynas.lutkit", "tinynas.baselines")),
    ("pipeline", ("tinynas.pipeline",)),
    ("command line", ("tinynas.commands", "tinynas.cli", "tinynas")),
)


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest name that is `module` or a package above it.

    "tinynas" names the package's own __init__ (the Python API) only, so that a new
    module must be given a layer here.
    """
    best, best_len = -1, -1
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            below = module.startswith(name + ".") and name != "tinynas"
            if (module == name or below) and len(name) > best_len:
                best, best_len = i, len(name)
    if best < 0:
        raise KeyError(f"{module} is in no layer of tinynas.layers.LAYERS")
    return best
