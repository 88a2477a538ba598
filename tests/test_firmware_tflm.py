"""Generated projects built against the real TFLM trees in ../shared/tflm, and run.

For the seven ../shared/models and a model exported the way a run exports its winner:
- host: the cmake project, built with only -DTFLM_DIR (the library) and then linking the
  cached library, runs three fixed inputs; outputs byte-identical to the TFLM Python runtime;
- Cortex-M7 and Cortex-M4 with CMSIS-NN: the qemu project links for the board and runs under
  qemu-system-arm; outputs equal to the host's (CMSIS-NN may differ by 1 LSB in requantization);
- the linked image's size against `tinynas profile`'s flash/SRAM prediction and against
  tinynas.deploy.footprint's.

TFLM is compiled once per tree and flags into the user cache (tinynas.deploy.tflm_build).
Every test skips, saying why, without ../shared/tflm, cmake, arm-none-eabi-gcc or QEMU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tinynas.boards import load_board
from tinynas.deploy.project import MEASURED_HOW, FirmwareArena, from_tflite, model_op_types, plan_arena, write_project
from tinynas.deploy import selftest, tflm_build
from tinynas.deploy.cores import qemu_machine

import tflm_prebuild
from conftest import SHARED_MIN_ARENA

pytestmark = pytest.mark.slow

MODELS = sorted(SHARED_MIN_ARENA) + ["run_export"]
CORTEX_BOARDS = {"m7": "stm32f746g-disco", "m4": "nucleo-l4r5zi"}
M4_MODELS = ["kws_ref_model", "person_detect", "run_export"]


def _need(*tools: str) -> None:
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip(f"{t} is not on PATH (Debian: see .ci/run)")


@pytest.fixture(scope="session")
def tflm_dir(shared: Path) -> Path:
    d = shared / "tflm"
    if not (d / "tflm-host.tar.xz").is_file():
        pytest.skip(f"{d} is absent: the offline TFLM trees live there")
    return d


@pytest.fixture(scope="session")
def host_tree(tflm_dir: Path) -> Path:
    return tflm_build.extract_tree(tflm_dir / "tflm-host.tar.xz")


@pytest.fixture(scope="session")
def cm_tree(tflm_dir: Path) -> Path:
    if (problem := tflm_build.cross_cxx_problem()) is not None:
        pytest.skip(f"{problem}; .ci/run installs it")
    return tflm_build.extract_tree(tflm_dir / "tflm-cortex-m.tar.xz")


@pytest.fixture(scope="session")
def run_model(tmp_path_factory) -> Path:
    """A subnet of the default space exported by the run's export stage (deploy.export_subnet)."""
    import torch

    from tinynas.data import load_dataset
    from tinynas.deploy.pipeline import export_subnet
    from tinynas.space import default_space, smallest_arch
    from tinynas.space.torch_model import build_model

    torch.manual_seed(0)
    bundle = load_dataset("digits", image_size=16)
    arch = smallest_arch(default_space(input_channels=1, resolution=[16, 16], width_mult=0.2, num_classes=10))
    out = tmp_path_factory.mktemp("run_export") / "export"
    export_subnet(arch, build_model(arch).state_dict(), bundle, out, target="none", name="run_export",
                  rep_samples=200, verify_limit=40, progress=False)
    return out / "model.tflite"


@pytest.fixture(scope="session")
def model_paths(shared_models: dict[str, Path]) -> dict[str, Path]:
    return dict(shared_models)


@pytest.fixture(scope="session")
def union_ops(model_paths: dict[str, Path], run_model: Path) -> list[str]:
    """Every operator of the models built here: one library per tree and core serves all of them
    (the one conftest.py has tflm_prebuild.py build in the background)."""
    return tflm_prebuild.union_ops([*model_paths.values(), run_model])


def _model_path(name: str, model_paths: dict[str, Path], request) -> Path:
    return request.getfixturevalue("run_model") if name == "run_export" else model_paths[name]


def _generate(path: Path, target: str, board: str, out: Path) -> tuple[Path, FirmwareArena]:
    """Export `path` for `target`/`board` as `tinynas export` does; (project, firmware arena)."""
    model = from_tflite(path)
    name = path.stem
    if name in SHARED_MIN_ARENA:  # the README's bisection: skip re-measuring in every test
        arena = plan_arena(model, measurement=(SHARED_MIN_ARENA[name], MEASURED_HOW))
    else:
        arena = plan_arena(model)
    write_project(model, target, out, name, None, arena, model_op_types(model), board)
    return out, arena


def _report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\n[firmware] {line}", end="")


@pytest.mark.parametrize("name", MODELS)
def test_host_build_matches_python_tflm(name: str, host_tree: Path, model_paths, union_ops, request,
                                        tmp_path: Path, capsys) -> None:
    _need("cmake", "make", "g++")
    path = _model_path(name, model_paths, request)
    project, arena = _generate(path, "cmake", "stm32f746g-disco", tmp_path / "p")
    built = tflm_build.build_project(project, host_tree, tmp_path / "build", ops=union_ops)
    run = selftest.parse_selftest(tflm_build.run_host(built.executable))
    assert run.done, "the host build did not finish its self-test"
    host_arena = arena.host_bytes or arena.firmware_bytes  # a 64-bit build allocates kArenaBytesHost
    same, total, worst = selftest.compare(run.outputs, selftest.reference_outputs(path.read_bytes(), host_arena))
    _report(capsys, f"{name}: host identical {same}/{total} (max diff {worst} LSB), "
                    f"Invoke() {run.ticks['random']} us")
    assert same == total


def _configured_sources(project: Path, tree: Path, build: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["cmake", "-S", str(project), "-B", str(build), f"-DTFLM_DIR={tree}",
                           "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", *extra], capture_output=True, text=True)


def test_generated_project_compiles_only_its_models_kernels(host_tree: Path, model_paths, tmp_path: Path) -> None:
    """kws_ref_model's project compiles its six ops' kernels, their _common files and the helpers."""
    import json

    _need("cmake")
    project, _ = _generate(model_paths["kws_ref_model"], "cmake", "stm32f746g-disco", tmp_path / "p")
    r = _configured_sources(project, host_tree, tmp_path / "b")
    assert r.returncode == 0, r.stderr[-2000:]
    files = [e["file"] for e in json.loads((tmp_path / "b" / "compile_commands.json").read_text())]
    kernels = {Path(f).name for f in files if "/lite/micro/kernels/" in f}
    for op in ("conv", "depthwise_conv", "pooling", "reshape", "fully_connected", "softmax"):
        assert {f"{op}.cc", f"{op}_common.cc"} <= kernels, op
    assert {"kernel_util.cc", "micro_tensor_utils.cc"} <= kernels  # helpers every kernel shares
    assert not {"add.cc", "add_common.cc", "svdf.cc", "svdf_common.cc", "reduce.cc"} & kernels
    assert len(kernels) < 40, sorted(kernels)  # of 117
    assert any(f.endswith("micro_interpreter.cc") for f in files)  # the framework stays whole
    r = _configured_sources(project, host_tree, tmp_path / "all", "-DTFLM_OPS=ALL")
    assert r.returncode == 0
    every = json.loads((tmp_path / "all" / "compile_commands.json").read_text())
    assert sum("/lite/micro/kernels/" in e["file"] for e in every) > 100


def test_unknown_tflm_op_fails_at_configure(host_tree: Path, model_paths, tmp_path: Path) -> None:
    _need("cmake")
    project, _ = _generate(model_paths["kws_ref_model"], "cmake", "stm32f746g-disco", tmp_path / "p")
    r = _configured_sources(project, host_tree, tmp_path / "b", "-DTFLM_OPS=CONV_2D;NOT_AN_OP")
    assert r.returncode != 0
    assert "Register_NOT_AN_OP()" in r.stderr and "-DTFLM_OPS=ALL" in r.stderr, r.stderr[-1500:]


# Every model on the Cortex-M7; a few on the Cortex-M4, whose library is another TFLM build.
QEMU_CASES = [(name, "m7") for name in MODELS] + [(name, "m4") for name in M4_MODELS]


@pytest.mark.parametrize("name, core", QEMU_CASES)
def test_qemu_cmsis_nn_matches_host(name: str, core: str, cm_tree: Path, model_paths, union_ops, request,
                                    tmp_path: Path, capsys) -> None:
    _need("cmake", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from tinynas.deploy import footprint

    path = _model_path(name, model_paths, request)
    board = load_board(CORTEX_BOARDS[core])
    project, fw = _generate(path, "qemu", board.id, tmp_path / "p")
    arena = fw.firmware_bytes  # the 32-bit image allocates the board's figure: the planner's plan, run for real
    built = tflm_build.build_project(project, cm_tree, tmp_path / "build", ops=union_ops)
    size = tflm_build.image_size(built.executable)
    run = selftest.parse_selftest(tflm_build.run_qemu(built.executable, qemu_machine(board).name))
    assert run.done, "the image did not finish its self-test under QEMU"
    same, total, worst = selftest.compare(run.outputs, selftest.reference_outputs(path.read_bytes(),
                                                                                  fw.host_bytes or arena))
    graph = from_tflite(path).graph
    pred = footprint.predict(graph, board, arena)  # with the arena the project compiles
    est = footprint.predict(graph, board)  # as profile would: arena from the planner's estimate
    prof = footprint.profile_prediction(path, board)
    _report(capsys, (
        f"{name} {core} ({board.id}): QEMU identical {same}/{total} (max diff {worst} LSB), "
        f"Invoke() {run.ticks['random']:,} ticks; image flash {size.flash:,} B, SRAM {size.sram:,} B; "
        f"profile predicts flash {prof.flash:,} ({_err(prof.flash, size.flash)}), SRAM {prof.sram:,} "
        f"({_err(prof.sram, size.sram)}); footprint predicts flash {pred.flash:,} "
        f"({_err(pred.flash, size.flash)}), SRAM {pred.sram:,} ({_err(pred.sram, size.sram)}), "
        f"SRAM {est.sram:,} ({_err(est.sram, size.sram)}) from the planner's arena"))
    assert worst <= 1, "CMSIS-NN outputs differ from the reference kernels by more than 1 LSB"
    # The 32-bit TFLM's own count of the arena it used, against the planner's device figure
    # (which kArenaBytes is built from wherever the planner matches the host measurement).
    device = plan_arena_bytes(graph, board)
    _report(capsys, f"{name} {core}: arena used on the target {run.arena_used:,} B, planner's device figure "
                    f"{device:,} B ({_err(device, run.arena_used)}), kArenaBytes {arena:,} B")
    assert run.arena_used is not None and run.arena_used <= arena
    assert abs(pred.flash - size.flash) <= 0.05 * size.flash
    assert abs(pred.sram - size.sram) <= 0.02 * size.sram
    assert abs(est.sram - size.sram) <= 0.02 * size.sram


def test_qemu_cortex_m33_matches_host(cm_tree: Path, model_paths, tmp_path: Path, capsys) -> None:
    """A Cortex-M33 board's project (mps2-an505, Secure state) runs and gives the reference outputs."""
    _need("cmake", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    path = model_paths["ad01_int8"]
    board = load_board("ek-ra6m4")
    project, fw = _generate(path, "qemu", board.id, tmp_path / "p")
    built = tflm_build.build_project(project, cm_tree, tmp_path / "build")  # the model's own kernels
    run = selftest.parse_selftest(tflm_build.run_qemu(built.executable, qemu_machine(board).name))
    assert run.done and run.instructions_per_tick == 50  # AN505's 20 MHz SysTick under -icount shift=0
    same, total, worst = selftest.compare(run.outputs, selftest.reference_outputs(
        path.read_bytes(), fw.host_bytes or fw.firmware_bytes))
    _report(capsys, f"ad01_int8 m33 ({board.id}): QEMU identical {same}/{total} (max diff {worst} LSB), "
                    f"Invoke() {run.ticks['random'] * run.instructions_per_tick:,} instructions")
    assert worst <= 1


def plan_arena_bytes(graph, board) -> int:
    from tinynas.planner import plan_arena as planner_arena

    return planner_arena(graph, pointer_bytes=board.pointer_bytes, kernels=board.kernels, core=board.core,
                         dsp=board.dsp).arena_bytes


def _err(pred: int, real: int) -> str:
    return f"{100 * (pred - real) / real:+.1f}%"


def test_export_qemu_builds_and_runs(cm_tree: Path, tflm_dir: Path, model_paths, tmp_path: Path, capsys) -> None:
    """`tinynas export --target qemu --tflm-dir TREE` prints the output bytes and Invoke() ticks.

    TREE is the archive itself here: --tflm-dir takes a tree's .tar.xz as well as its folder.
    """
    import subprocess
    import sys

    _need("cmake", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "export", str(model_paths["kws_ref_model"]),
                        "--target", "qemu", "--board", "stm32f746g-disco",
                        "--tflm-dir", str(tflm_dir / "tflm-cortex-m.tar.xz"),
                        "--arena-bytes", "40000", "--out", str(tmp_path / "q"), "--op-counts"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "mps2-an500 (cortex-m7)" in r.stdout and "Invoke()" in r.stdout
    # smoke.sh's pattern input gives -128 -128 -128 -120 ... 120 (../shared/tflm/README.md)
    assert "pattern  Invoke()" in r.stdout and "808080888080808080808078" in r.stdout, r.stdout
    assert "instructions per operator" in r.stdout and "CONV_2D" in r.stdout, r.stdout
    _report(capsys, "export --target qemu:\n" + r.stdout)


@pytest.mark.parametrize("argv, needle", [
    (["--board", "esp32-s3-devkitc"], "emulates cortex-m33, cortex-m4, cortex-m7"),
    (["--board", "rpi-pico"], "emulates cortex-m33, cortex-m4, cortex-m7"),
    (["--tflm-dir", "/nonexistent"], "is not a TFLM tree"),
])
def test_export_qemu_bad_requests_exit_2(argv: list[str], needle: str, model_paths, tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "export", str(model_paths["hello_world_int8"]),
                        "--target", "qemu", "--arena-bytes", "4000", "--out", str(tmp_path / "q"), *argv],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "q").exists()


def test_export_qemu_refuses_host_tree(host_tree: Path, model_paths, tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "export", str(model_paths["hello_world_int8"]),
                        "--target", "qemu", "--arena-bytes", "4000", "--out", str(tmp_path / "q"),
                        "--tflm-dir", str(host_tree)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no CMSIS-NN kernels" in r.stderr, r.stderr


def test_map_sections_reads_kept_code_only(tmp_path: Path) -> None:
    """The calibration's map parser: long names wrap, debug sections and RAM do not count."""
    from tinynas.deploy.footprint import map_sections

    m = tmp_path / "a.map"
    m.write_text("Discarded input sections\n .text.gone 0x0 0x40 x.a(gone.o)\n"
                 "Linker script and memory map\n"
                 " .text.short    0x00000400       0x10 /p/libtflm.a(a.cc.obj)\n"
                 "                0x00000400                short()\n"
                 " .text._ZN6tflite4LongNameEv\n"
                 "                0x00000410       0x2c /p/libtflm.a(b.cc.obj)\n"
                 "                0x00000410                tflite::LongName(int, char*, x)\n"
                 " .debug_info    0x00000000      0x999 /p/libtflm.a(b.cc.obj)\n"
                 " .data.ram      0x20000000        0x8 /p/libtflm.a(b.cc.obj)\n")
    assert map_sections(m, 0x2000_0000) == {"libtflm.a(a.cc.obj).text.short": 0x10,
                                            "libtflm.a(b.cc.obj).text._ZN6tflite4LongNameEv": 0x2c}


def test_selftest_random_bytes_are_xorshift32() -> None:
    """The C generator in main.cc: xorshift32 from 2463534242, top byte of each state."""
    x, want = selftest.SEED, []
    for _ in range(5):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        want.append(x >> 24)
    state = [selftest.SEED]
    assert list(selftest.input_bytes("random", 3, state)) + list(selftest.input_bytes("random", 2, state)) == want
    assert list(selftest.input_bytes("pattern", 3, state)) == [11, 48, 85]


def test_emulated_op_counts_repeat_exactly(cm_tree: Path, model_paths, tmp_path: Path, capsys) -> None:
    """Per-op instruction counts of the real CMSIS-NN kernels under QEMU: the same image counts the same."""
    _need("cmake", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from tinynas.deploy.emulate import build_profiled, count

    board = load_board(CORTEX_BOARDS["m7"])
    path = model_paths["kws_ref_model"]
    elf = build_profiled(path.read_bytes(), board, cm_tree, tmp_path, name="kws", arena_bytes=40_000)
    a, b = count(elf, board), count(elf, board)
    assert a == b  # every op's count, every input kind, twice
    n_ops = len(from_tflite(path).graph.ops)
    for kind, ops in a.ops.items():
        assert len(ops) == n_ops and all(o.instructions > 0 for o in ops)
        # the profiler's own calls sit between the ops: a little over the ops' sum, never under
        assert a.total_ops(kind) <= a.invoke_instructions[kind] <= 1.05 * a.total_ops(kind)
    _report(capsys, "emulated kws_ref_model on cortex-m7: " + ", ".join(
        f"{o.op} {o.instructions:,}" for o in a.ops["random"]) + f"; Invoke() {a.invoke_instructions['random']:,}")


def test_lut_emulate_fills_every_space_signature_and_resumes(cm_tree: Path, tmp_path: Path, capsys) -> None:
    """`tinynas lut emulate` on a one-subnet space: every signature, source "emulated", CPI x count; a re-run counts nothing."""
    _need("cmake", "make", "arm-none-eabi-gcc", "qemu-system-arm")
    from tinynas.cli import main
    from tinynas.latency import load_lut
    from tinynas.latency.emulated import cpi_for_core
    from tinynas.lutkit.kit import space_signatures
    from tinynas.space import load_space

    space = tmp_path / "tiny.toml"
    space.write_text("width_mult = 0.25\nresolution = [16, 16]\ndepths = [1]\nkernels = [3]\nexpand_ratios = [3]\n")
    out, work = tmp_path / "m4.lut.json", tmp_path / "work"
    argv = ["lut", "emulate", "--board", CORTEX_BOARDS["m4"], "--space", str(space), "--tflm-dir", str(cm_tree),
            "--work", str(work), "--out", str(out), "--json", "--no-progress"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    lut = load_lut(out, load_board(CORTEX_BOARDS["m4"]))
    want = space_signatures(load_space(space))
    assert first["missing"] == [] and set(lut.entries) == set(want) and first["counted_now"] == first["subnets"] == 1
    assert {e.source for e in lut.entries.values()} == {"emulated"}
    pairs = json.loads(next(work.glob("*.json")).read_text())["ops"]
    for sig, n in pairs:
        assert lut.entries[sig].cycles <= cpi_for_core("cortex-m4") * n + 1e-6
    assert main([*argv, "--force"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["counted_now"] == 0 and load_lut(out, load_board(CORTEX_BOARDS["m4"])).entries == lut.entries
    _report(capsys, f"lut emulate: {len(lut.entries)} entries from 1 subnet in {first['seconds']} s, "
                    f"re-run from the work folder in {again['seconds']} s")
