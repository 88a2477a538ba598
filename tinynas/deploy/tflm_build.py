"""Build a generated CMake project against a TFLM tree, with TFLM compiled once.

Compiling a TFLM tree takes minutes on a small machine, and it is nearly the same
work for every model: the library depends only on the tree, on the generated
project's cmake/tflm.cmake, toolchain file and core flags, and on which operators'
kernels it holds (TFLM_OPS). So the library is built by configuring a generated
project with -DTFLM_DIR (exactly what a user runs) and building its `tflm` target,
and the resulting libtflm.a is kept under the user cache directory: one folder per
hash of the tree and those files, one library in it per operator set, with the set
written beside it. A project whose operators a cached library covers links that one
(-DTFLM_LIBRARY) and compiles only its main.cc and model array.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import locked
from ..errors import UserError
from ..paths import user_cache_dir

# Files of a generated project that decide how TFLM is compiled.
LIBRARY_INPUTS = ("cmake/tflm.cmake", "cmake/arm-none-eabi.cmake", "cmake/core.cmake")
CMSIS_NN_MARKER = "tensorflow/lite/micro/kernels/cmsis_nn"
LIBRARY_NAME = "libtflm.a"


def cache_root() -> Path:
    """$TINYNAS_CACHE/tflm, else $XDG_CACHE_HOME/tinynas/tflm, else ~/.cache/tinynas/tflm."""
    return user_cache_dir() / "tflm"


def is_cortex_m_tree(tree: Path) -> bool:
    return (Path(tree) / CMSIS_NN_MARKER).is_dir()


CROSS_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"
# What TFLM needs of a C++ toolchain: the standard headers and libstdc++ to link against.
_CROSS_PROBE = ("#include <cstddef>\n#include <cstdarg>\n"
                "struct A { virtual ~A() {} virtual int f() = 0; };\n"
                "struct B : A { int f() override { return 1; } };\n"
                "int main() { A* a = new B; int r = a->f(); delete a; return r; }\n")


def cross_cxx_problem(cxx: str = "arm-none-eabi-g++") -> str | None:
    """Why `cxx` cannot build TFLM for a Cortex-M, or None when it can.

    Debian ships Arm's compiler and newlib apart from their C++ standard headers
    (libstdc++-arm-none-eabi-dev) and library (libstdc++-arm-none-eabi-newlib);
    without them TFLM fails in its first file with "cstddef: No such file or
    directory", or at the very end with "cannot find -lstdc++", deep in a make log.
    Compiling and linking a few lines says it up front instead.
    """
    if shutil.which(cxx) is None:
        return f"{cxx} is not on PATH (Debian: apt-get install {CROSS_PACKAGES})"
    with tempfile.TemporaryDirectory(prefix="tinynas-cxx.") as d:
        src = Path(d) / "probe.cc"
        src.write_text(_CROSS_PROBE, encoding="utf-8")
        cmd = [cxx, "-mcpu=cortex-m4", "-mthumb", "-fno-exceptions", "-fno-rtti", "--specs=nosys.specs",
               str(src), "-o", str(Path(d) / "probe.elf")]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return f"{cxx} did not build a five-line program within 120 s"
    if r.returncode != 0:
        return (f"{cxx} cannot build C++ for Cortex-M (no standard headers or libstdc++; "
                f"Debian: apt-get install libstdc++-arm-none-eabi-newlib)")
    return None


def extract_tree(archive: Path) -> Path:
    """Unpack a tflm-*.tar.xz (one top folder) once under the cache; the tree's path."""
    archive = Path(archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    dest = cache_root() / "trees" / digest
    (cache_root() / "trees").mkdir(parents=True, exist_ok=True)
    with locked(cache_root() / "trees", digest):  # parallel test workers unpack once
        if not dest.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{digest}."))
            try:
                with tarfile.open(archive) as tar:
                    tar.extractall(tmp, filter="data")
                os.replace(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise UserError(f"{archive} should hold one top-level folder, found {len(tops)}")
    return tops[0]


def cortex_m_tree(src: str, what: str) -> Path:
    """The Cortex-M (CMSIS-NN) TFLM tree at `src`: a folder, or a .tar.xz unpacked once.

    `what` names where `src` came from (an option) in the one-line error a user sees.
    """
    p = Path(src).expanduser()
    if p.is_file() and p.name.endswith(".tar.xz"):
        p = extract_tree(p)
    p = p.resolve()
    if not (p / "tensorflow/lite/micro/micro_interpreter.h").is_file():
        raise UserError(f"{what} {src} is not a TFLM tree or its .tar.xz (no tensorflow/lite/micro/"
                        "micro_interpreter.h); make one with create_tflm_tree.py")
    if not is_cortex_m_tree(p):
        raise UserError(f"{what} {src} has no CMSIS-NN kernels; a Cortex-M build needs a tree made with "
                        "OPTIMIZED_KERNEL_DIR=cmsis_nn TARGET=cortex_m_generic")
    return p


def tree_digest(tree: Path) -> str:
    """Hash of every file's path and content under the tree (a few MB: well under a second)."""
    h = hashlib.sha256()
    for p in sorted(Path(tree).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(tree).as_posix().encode() + b"\0")
            h.update(p.read_bytes())
    return h.hexdigest()


def _library_inputs(tree: Path) -> tuple[str, ...]:
    """A host tree ignores the board's core flags, so its library serves every board."""
    return LIBRARY_INPUTS if is_cortex_m_tree(tree) else LIBRARY_INPUTS[:1]


def library_key(project: Path, tree: Path) -> str:
    """Cache key of the library `project` builds from `tree`."""
    h = hashlib.sha256(tree_digest(tree).encode())
    for rel in _library_inputs(tree):
        p = Path(project) / rel
        h.update(rel.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"-"))
    return h.hexdigest()[:20]


def _run(cmd: Sequence[str], cwd: Path | None = None, timeout: float = 3600) -> str:
    r = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{tail}")
    return r.stdout


def _configure(project: Path, build: Path, tree: Path, extra: Sequence[str] = ()) -> None:
    _run(["cmake", "-S", str(project), "-B", str(build), f"-DTFLM_DIR={tree}", *extra])


ALL_OPS = "ALL"
_PROJECT_OPS = re.compile(r'^\s*set\(TFLM_OPS "([^"]*)"\)', re.M)  # as CMakeLists.txt sets it


def project_ops(project: Path) -> frozenset[str] | None:
    """The operators `project`'s CMakeLists.txt compiles kernels for; None for every kernel."""
    p = Path(project) / "CMakeLists.txt"
    m = _PROJECT_OPS.search(p.read_text(encoding="utf-8")) if p.is_file() else None
    if m is None or m.group(1).strip() in ("", ALL_OPS):
        return None
    return frozenset(o for o in m.group(1).split(";") if o)


def _ops_text(ops: frozenset[str] | None) -> str:
    return ALL_OPS if ops is None else ";".join(sorted(ops))


def _find_variant(lib_dir: Path, ops: frozenset[str] | None) -> Path | None:
    """A library built already whose kernels cover `ops` (ALL covers every set)."""
    for cand in sorted(lib_dir.glob(f"*/{LIBRARY_NAME}")):
        if not (cand.parent / "ops.txt").is_file():  # a build folder, not a finished library
            continue
        have = (cand.parent / "ops.txt").read_text(encoding="utf-8").strip()
        if have == ALL_OPS or (ops is not None and ops <= set(have.split(";"))):
            return cand
    return None


def build_library(project: Path, tree: Path, jobs: int = 2, ops: Sequence[str] | None = None) -> Path:
    """libtflm.a for `project`'s flags and `tree`, built through the project's own CMake once.

    `ops` (builtin operator names, or None for the project's own TFLM_OPS) says which
    kernels the library must hold; any library built before from the same tree and flags
    whose kernels cover them serves, so one built for the union of many models' operators
    serves each of them.
    """
    project = Path(project)
    if is_cortex_m_tree(tree) and (problem := cross_cxx_problem()) is not None:
        raise UserError(f"cannot cross-compile TFLM: {problem}")
    want = project_ops(project) if ops is None else (None if ALL_OPS in ops else frozenset(ops))
    key = library_key(project, tree)
    lib_dir = cache_root() / "lib" / key
    lib_dir.mkdir(parents=True, exist_ok=True)
    with locked(cache_root() / "lib", key):  # parallel test workers build once
        found = _find_variant(lib_dir, want)
        if found is not None:
            return found
        variant = "all" if want is None else hashlib.sha256(_ops_text(want).encode()).hexdigest()[:12]
        lib = lib_dir / variant / LIBRARY_NAME
        # The whole project, configured with -DTFLM_DIR (and TFLM_OPS when asked for other
        # operators than its own) and built with plain make, as a user would; an
        # interrupted build resumes from the objects it left. The project is copied
        # first, so the build folder's source never moves.
        src = lib_dir / f"{variant}.src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(project, src, ignore=shutil.ignore_patterns("build"))
        build = lib_dir / f"{variant}.build"
        cache = build / "CMakeCache.txt"
        if cache.is_file() and f"CMAKE_HOME_DIRECTORY:INTERNAL={src}\n" not in cache.read_text():
            cache.unlink()  # configured from elsewhere: reconfigure, keep the objects
        extra = [] if ops is None else [f"-DTFLM_OPS={_ops_text(want)}"]
        _configure(src, build, tree, extra)
        _run(["make", "-C", str(build), f"-j{jobs}", "tflm"])
        lib.parent.mkdir(parents=True, exist_ok=True)
        (lib.parent / "ops.txt").write_text(_ops_text(want) + "\n", encoding="utf-8")
        tmp = lib.parent / f".{LIBRARY_NAME}.tmp"
        shutil.copyfile(build / LIBRARY_NAME, tmp)
        os.replace(tmp, lib)  # last: a library is only found once complete, ops.txt beside it
        for rel in _library_inputs(tree):  # what the key covers, for people reading the cache
            if (project / rel).is_file():
                shutil.copyfile(project / rel, lib_dir / Path(rel).name)
        shutil.rmtree(build, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
    return lib


@dataclass(frozen=True)
class Built:
    """A linked application."""

    executable: Path
    build_dir: Path


def build_project(project: Path, tree: Path, build: Path | None = None, selftest: bool = True,
                  jobs: int = 2, library: Path | None = None, extra: Sequence[str] = (),
                  ops: Sequence[str] | None = None) -> Built:
    """Configure and make `project` against `tree`, linking the cached TFLM library.

    `ops` as for build_library: the operators the library must hold, when the project
    registers others than its CMakeLists.txt names (the footprint calibration does).
    """
    project = Path(project)
    lib = library or build_library(project, tree, jobs, ops)
    build = Path(build) if build else project / "build"
    _configure(project, build, tree, [f"-DTFLM_LIBRARY={lib}",
                                      f"-DTINYNAS_SELFTEST={'ON' if selftest else 'OFF'}", *extra])
    _run(["make", "-C", str(build), f"-j{jobs}"])
    apps = sorted(build.glob("*_app")) + sorted(build.glob("*_app.elf"))
    if not apps:
        raise RuntimeError(f"no *_app in {build} after make")
    return Built(apps[0], build)


def run_host(exe: Path, timeout: float = 300) -> str:
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{exe} exited {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def run_qemu(elf: Path, machine: str, timeout: float = 300, icount: bool = True) -> str:
    """Run an image under qemu-system-arm with semihosting; what it printed.

    QEMU writes the guest's semihosting output to its own stderr, so both streams count.

    -icount shift=0 makes one guest instruction one nanosecond of virtual time, so the
    SysTick counts are instruction counts that repeat exactly from run to run.
    """
    cmd = ["qemu-system-arm", "-M", machine, "-nographic", "-semihosting", "-monitor", "none",
           "-serial", "none", *(["-icount", "shift=0"] if icount else []), "-kernel", str(elf)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout + r.stderr


@dataclass(frozen=True)
class ImageSize:
    """arm-none-eabi-size's Berkeley figures of a linked image."""

    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data  # .data's initial values live in flash too

    @property
    def sram(self) -> int:
        return self.data + self.bss


def image_size(elf: Path, size_tool: str = "arm-none-eabi-size") -> ImageSize:
    out = _run([size_tool, "-B", str(elf)])
    text, data, bss = (int(v) for v in out.strip().splitlines()[-1].split()[:3])
    return ImageSize(text, data, bss)
