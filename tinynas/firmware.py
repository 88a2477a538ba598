"""Render a firmware project skeleton from the template trees under targets/.

A target is a folder `targets/<target>/` holding plain files plus a
`tinynas-target.json` manifest that says where the generated model files go
(`generated_dir`) and which suffix C++ sources need there (`source_suffix`;
Arduino compiles .cpp, not .cc), and optionally `base`, another target whose
files come first and which this one's files add to or replace (the QEMU target is
the CMake project plus startup code, a linker script and a run rule). Text files and path names may use `{{key}}`
placeholders, filled from the settings given; an unknown placeholder is an error
rather than a silent blank, so a template typo cannot ship. Templates stay files
so that people can read, diff and adapt them without touching Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .cgen import c_identifier, pascal_case
from .errors import UserError
from .paths import targets_dir

MANIFEST = "tinynas-target.json"
NO_TARGET = "none"  # just the generated files, no project around them

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Target:
    """One template tree and where it wants the generated files."""

    name: str
    root: Path | None
    generated_dir: str
    source_suffix: str
    summary: str
    base: str | None = None


def available_targets(root: Path | None = None) -> list[str]:
    """Targets that have a manifest, sorted, plus 'none'."""
    base = root or targets_dir()
    found = sorted(p.parent.name for p in base.glob(f"*/{MANIFEST}")) if base.is_dir() else []
    return found + [NO_TARGET]


def load_target(target: str, root: Path | None = None) -> Target:
    """Read a target's manifest; UserError for an unknown target or a broken manifest."""
    if target == NO_TARGET:
        return Target(NO_TARGET, None, ".", ".cc", "generated C/C++ files only")
    base = root or targets_dir()
    tdir = base / target
    manifest = tdir / MANIFEST
    if not manifest.is_file():
        raise UserError(
            f"unknown target {target!r}; choose one of {', '.join(available_targets(base))}"
        )
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        base = meta.get("base")
        return Target(target, tdir, str(meta.get("generated_dir", ".")),
                      str(meta.get("source_suffix", ".cc")), str(meta.get("summary", "")),
                      None if base is None else str(base))
    except (json.JSONDecodeError, AttributeError) as e:
        raise UserError(f"template manifest {manifest} is not valid JSON ({e}); fix or restore it") from None


def substitute(text: str, values: Mapping[str, str], where: str = "template") -> str:
    """Replace every {{key}}; an unknown key raises UserError naming it and the file."""
    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise UserError(
                f"{where} uses placeholder {{{{{key}}}}} that tinynas does not provide "
                f"(known: {', '.join(sorted(values))}); fix the template"
            )
        return values[key]

    return _PLACEHOLDER.sub(repl, text)


def template_values(name: str, settings: Mapping[str, object]) -> dict[str, str]:
    """Placeholder values: the caller's settings plus name, Name and NAME."""
    ident = c_identifier(name)
    values = {str(k): str(v) for k, v in settings.items()}
    values.update(name=ident, Name=pascal_case(ident), NAME=ident.upper())
    return values


def _safe_relpath(rel: str, where: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise UserError(f"{where} resolves to {rel!r}, outside the output folder; fix the template")
    return p


def render_target(target: str, out_dir: str | os.PathLike, name: str,
                  files: Mapping[str, str], settings: Mapping[str, object],
                  templates: Path | None = None) -> list[Path]:
    """Write target `target`'s skeleton plus the generated `files` into `out_dir`.

    `out_dir` should be empty (the export command passes a fresh staging folder);
    a path the template and the generated files both claim is an error. Returns
    the written paths relative to `out_dir`, sorted. `templates` overrides the
    folder holding the target trees (default: targets/ beside the package).
    """
    tgt = load_target(target, templates)
    out = Path(out_dir)
    values = template_values(name, settings)
    written: dict[Path, str] = {}

    def claim(rel: Path, origin: str) -> Path:
        if rel in written:
            raise UserError(f"{origin} and {written[rel]} both write {rel}; fix the template")
        written[rel] = origin
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    layered: dict[Path, tuple[str, Path, str]] = {}
    for layer, src, rel_t in _template_files(tgt, templates):
        rel = _safe_relpath(substitute(rel_t, values, f"template path {rel_t}"), rel_t)
        layered[rel] = (layer, src, rel_t)  # a later layer's file replaces its base's
    for rel, (layer, src, rel_t) in layered.items():
        dest = claim(rel, f"template {layer}/{rel_t}")
        raw = src.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # binary asset: copy untouched
            shutil.copyfile(src, dest)
        else:
            dest.write_text(substitute(text, values, f"template {layer}/{rel_t}"),
                            encoding="utf-8", newline="")
        shutil.copymode(src, dest)

    gen_dir = substitute(tgt.generated_dir, values, f"{target}/{MANIFEST}")
    for fname, text in files.items():
        fname = _renamed(fname, tgt.source_suffix)
        rel = _safe_relpath((Path(gen_dir) / fname).as_posix(), fname)
        claim(rel, f"generated {fname}")
        (out / rel).write_text(text, encoding="utf-8", newline="")
    return sorted(written)


def _template_files(tgt: Target, templates: Path | None) -> list[tuple[str, Path, str]]:
    """(layer, file, relative path) of the target's tree, its base's files first."""
    if tgt.root is None:
        return []
    layers = [tgt]
    while layers[0].base is not None:
        if len(layers) > 4 or layers[0].base in {t.name for t in layers}:
            raise UserError(f"target {tgt.name!r}: its 'base' chain loops; fix {MANIFEST}")
        layers.insert(0, load_target(layers[0].base, templates))
    files = []
    for layer in layers:
        assert layer.root is not None
        for src in sorted(layer.root.rglob("*")):
            if src.is_file() and src.name != MANIFEST:
                files.append((layer.name, src, src.relative_to(layer.root).as_posix()))
    return files


def _renamed(fname: str, source_suffix: str) -> str:
    """Give generated C++ sources the suffix the target's build system compiles."""
    if fname.endswith(".cc") and source_suffix != ".cc":
        return fname[: -len(".cc")] + source_suffix
    return fname
