"""Imports follow the pipeline (issue 17): no module imports from a higher layer, and the
package's own modules are imported at module level, where a reader sees them.

The layers are declared once, in tinynas/layers.py. Every import statement of every module
is read with ast: at module level (typing-only ones too) and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tinynas.layers import LAYERS, layer_of

ROOT = Path(__file__).resolve().parents[1] / "tinynas"

# Function-local imports of the package's own modules that stay, each for a reason.
# (Third-party heavy dependencies loaded lazily, such as tensorflow, tflite_micro,
# ai_edge_litert, onnx, onnxruntime, torch in light modules and matplotlib, are not the
# package's own modules and are not checked here.)
LAZY: dict[tuple[str, str], str] = {
    # `import tinynas` is the Python API and must stay free of NumPy and PyTorch
    # (tests/test_api.py): every `import tinynas.x` runs it first, so it imports what a
    # function needs when the function is called.
    ("tinynas", "tinynas.boards"): "API",
    ("tinynas", "tinynas.latency"): "API",
    ("tinynas", "tinynas.profile"): "API",
    ("tinynas", "tinynas.pipeline.config"): "API",
    ("tinynas", "tinynas.pipeline.main"): "API",
    ("tinynas", "tinynas.cli"): "API",
    ("tinynas", "tinynas.deploy.footprint"): "API",
    # tinynas/__init__ loads tinynas.profile (so the API function keeps the name); these
    # bring NumPy and wait until a model is profiled.
    ("tinynas.profile", "tinynas.cgen"): "NumPy",
    ("tinynas.profile", "tinynas.latency"): "NumPy",
    ("tinynas.profile", "tinynas.planner"): "NumPy",
    ("tinynas.profile", "tinynas.tflite_reader"): "NumPy",
    ("tinynas.profile", "tinynas.tflm_measure"): "NumPy",
}
# (tinynas.cli loads only the command module that runs, through importlib, which is not an
# import statement: `tinynas boards` does not pay for PyTorch.)

# Pending exceptions, pair by pair, while a rewrite is under way (none today: deploy/,
# commands/export.py and cgen.py were the last; their library code now lives in deploy/project.py).
PENDING: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module `name` (a module, or a module's attribute) lives in; None outside tinynas."""
    if name.split(".")[0] != "tinynas":
        return None
    while name not in MODULES:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported tinynas module, line, inside a function) for every import statement."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                if child.level:
                    base = base[:len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                names = [f"{target}.{a.name}" for a in child.names]
            else:
                visit(child, local)
                continue
            for name in names:
                resolved = _resolve(name)
                if resolved is not None and resolved != module:
                    found.append((resolved, child.lineno, in_function))

    visit(tree, False)
    return found


IMPORTS = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)  # KeyError names a module missing from tinynas/layers.py


def test_no_import_from_a_higher_layer():
    upward = [f"{m}:{line} imports {t} ({LAYERS[layer_of(t)][0]} is above {LAYERS[layer_of(m)][0]})"
              for m, found in IMPORTS.items() for t, line, _ in found
              if layer_of(t) > layer_of(m) and (m, t) not in PENDING]
    assert not upward, "\n".join(upward)


def test_no_function_local_import_of_our_own_modules():
    hidden = [f"{m}:{line} imports {t} inside a function" for m, found in IMPORTS.items()
              for t, line, local in found if local and (m, t) not in LAZY and (m, t) not in PENDING]
    assert not hidden, "\n".join(hidden)


def test_allow_lists_are_not_stale():
    """An entry that no longer matches an import must go, so the lists only shrink."""
    local = {(m, t) for m, found in IMPORTS.items() for t, _, is_local in found if is_local}
    upward = {(m, t) for m, found in IMPORTS.items() for t, _, _ in found if layer_of(t) > layer_of(m)}
    assert set(LAZY) <= local, sorted(set(LAZY) - local)
    assert PENDING <= local | upward, sorted(PENDING - local - upward)
