"""Board profiles: the 14 built-ins load and agree with the reference table, lookups
resolve, and every kind of bad board file fails with a UserError naming the field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinynas.boards import (
    BUILTIN_ORDER,
    CORES,
    DEFAULT_RESERVES,
    Board,
    list_boards,
    load_board,
    load_board_file,
)
from tinynas.errors import UserError
from tinynas.paths import profiles_dir, project_root

KIB = 1024

# (id, core, clock MHz, SRAM bytes, flash bytes): shared/reference/README.md board table.
EXPECTED = [
    ("stm32f746g-disco", "cortex-m7", 216, 320 * KIB, 1024 * KIB),
    ("nucleo-h743zi2", "cortex-m7", 480, 512 * KIB, 2048 * KIB),
    ("stm32f412g-disco", "cortex-m4", 100, 256 * KIB, 1024 * KIB),
    ("nucleo-f446re", "cortex-m4", 180, 128 * KIB, 512 * KIB),
    ("nucleo-f767zi", "cortex-m7", 216, 512 * KIB, 2048 * KIB),
    ("nucleo-l4r5zi", "cortex-m4", 120, 640 * KIB, 2048 * KIB),
    ("arduino-nano-33-ble-sense", "cortex-m4", 64, 256 * KIB, 1024 * KIB),
    ("nrf5340-dk", "cortex-m33", 128, 512 * KIB, 1024 * KIB),
    ("ek-ra6m4", "cortex-m33", 200, 256 * KIB, 1024 * KIB),
    ("rpi-pico", "cortex-m0plus", 133, 264 * KIB, 2048 * KIB),
    ("esp32-s3-devkitc", "xtensa-lx7", 240, 512 * KIB, 8192 * KIB),
    ("sparkfun-edge", "cortex-m4", 48, 384 * KIB, 1024 * KIB),
    ("adafruit-metro-m4", "cortex-m4", 120, 192 * KIB, 512 * KIB),
    ("teensy-41", "cortex-m7", 600, 512 * KIB, 8192 * KIB),
    ("rpi-pico2", "cortex-m33", 150, 512 * KIB, 4096 * KIB),
    ("b-u585i-iot02a", "cortex-m33", 160, 512 * KIB, 2048 * KIB),
    ("ek-ra8d1", "cortex-m85", 480, 896 * KIB, 2048 * KIB),
    ("alif-ensemble-e7-hp", "cortex-m55", 400, 1024 * KIB, 5632 * KIB),
    ("esp32-c3-devkitm", "riscv32-imc", 160, 400 * KIB, 4096 * KIB),
]

GOOD = """\
id = "my-board"
name = "My Board"
aliases = ["mine"]
core = "cortex-m4"
clock_hz = 80_000_000
sram_bytes = 131072
flash_bytes = 524288
dsp = true
simd = true
fpu = "sp"
kernels = "cmsis-nn"
notes = "test board"
sources = ["made up"]

[reserve]
sram_bytes = 10240
flash_bytes = 65536
reasoning = "small app"
"""


def write(tmp_path: Path, text: str, name: str = "my.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def replace_line(text: str, key: str, new: str | None) -> str:
    """Swap (or drop, with None) the first line that sets `key`."""
    out, done = [], False
    for line in text.splitlines():
        if not done and line.split("=")[0].strip() == key:
            done = True
            if new is not None:
                out.append(new)
            continue
        out.append(line)
    assert done, key
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ built-ins


def _listed_ids(ids: list[str]) -> None:
    assert ids == [e[0] for e in EXPECTED] == list(BUILTIN_ORDER)


def test_all_builtins_load_in_order() -> None:
    ids = [b.id for b in list_boards()]
    _listed_ids(ids)
    assert sorted(p.stem for p in profiles_dir().glob("*.toml")) == sorted(ids)


@pytest.mark.parametrize("bid, core, mhz, sram, flash", EXPECTED)
def test_builtin_matches_reference(bid: str, core: str, mhz: int, sram: int, flash: int) -> None:
    b = load_board(bid)
    assert isinstance(b, Board)
    assert (b.id, b.core, b.clock_hz, b.sram_bytes, b.flash_bytes) == (bid, core, mhz * 10**6, sram, flash)
    assert b.path == (profiles_dir() / f"{bid}.toml").resolve()
    assert b.pointer_bytes == 4
    assert b.name and b.notes and b.sources and b.aliases
    assert all(a == a.lower() for a in b.aliases)
    # every built-in states its own reserve, not a silent default
    assert "core-family default" not in b.reserve_reasoning
    assert 0 < b.sram_reserved_bytes < b.sram_bytes and 0 < b.flash_reserved_bytes < b.flash_bytes
    assert b.sram_available == b.sram_bytes - b.sram_reserved_bytes
    assert b.flash_available == b.flash_bytes - b.flash_reserved_bytes
    # at least the TFLM runtime (4 KiB SRAM, 37 KiB flash) plus a stack
    assert b.sram_reserved_bytes >= 8 * KIB and b.flash_reserved_bytes >= 37 * KIB


def test_builtin_features_consistent() -> None:
    for b in list_boards():
        if b.core == "cortex-m0plus":
            assert (b.dsp, b.simd, b.fpu) == (False, False, "none")
            assert b.kernels == "cmsis-nn" and "fallback" in b.notes.lower()
        elif b.core == "xtensa-lx7":
            assert b.kernels == "esp-nn" and b.simd
        elif b.core == "riscv32-imc":
            assert b.kernels == "esp-nn" and not b.simd and not b.dsp  # ESP-NN's generic C kernels
        else:
            assert b.kernels == "cmsis-nn" and b.dsp and b.simd and b.fpu in ("sp", "dp")
    assert load_board("nucleo-h743zi2").fpu == "dp"
    assert load_board("esp32-s3-devkitc").sram_reserved_bytes >= 96 * KIB
    assert load_board("esp32-s3-devkitc").flash_reserved_bytes >= 256 * KIB


def test_to_dict_is_json() -> None:
    b = load_board("nucleo-f446re")
    d = json.loads(json.dumps(b.to_dict()))
    assert d["id"] == "nucleo-f446re"
    assert d["sram_available"] == b.sram_available
    assert d["flash_available"] == b.flash_available
    for field in ("sram_reserved_bytes", "flash_reserved_bytes", "reserve_reasoning", "path",
                  "pointer_bytes", "aliases", "sources", "kernels", "fpu", "simd", "dsp"):
        assert field in d


@pytest.mark.parametrize(
    "alias, bid",
    [
        ("disco_f746ng", "stm32f746g-disco"),
        ("F746", "stm32f746g-disco"),
        ("NUCLEO-F446RE", "nucleo-f446re"),
        ("nucleo_h743zi", "nucleo-h743zi2"),
        ("nrf5340dk_nrf5340_cpuapp", "nrf5340-dk"),
        ("nrf5340dk/nrf5340/cpuapp", "nrf5340-dk"),
        ("nano33ble", "arduino-nano-33-ble-sense"),
        ("rp2040", "rpi-pico"),
        ("ESP32S3", "esp32-s3-devkitc"),
        ("teensy41", "teensy-41"),
        ("  apollo3 ", "sparkfun-edge"),
    ],
)
def test_aliases_resolve(alias: str, bid: str) -> None:
    assert load_board(alias).id == bid


def test_aliases_unique() -> None:
    seen: dict[str, str] = {}
    for b in list_boards():
        for n in (b.id, *b.aliases):
            assert n not in seen, f"{n} used by {seen.get(n)} and {b.id}"
            seen[n] = b.id


def test_unknown_id_suggests() -> None:
    with pytest.raises(UserError) as e:
        load_board("stm32f746")
    msg = str(e.value)
    assert "unknown board 'stm32f746'" in msg
    assert "did you mean: stm32f746g-disco" in msg
    assert "tinynas boards" in msg and "\n" not in msg
    with pytest.raises(UserError, match="unknown board 'zzzz'"):
        load_board("zzzz")


# ------------------------------------------------------------------ user files


def test_load_by_path(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    for spec in (str(p), p):
        b = load_board(spec)
        assert b.id == "my-board" and b.sram_available == 131072 - 10240
        assert b.reserve_reasoning == "small app" and b.path == p.resolve()
    # a copy of a built-in loads by path, too
    assert load_board(str(profiles_dir() / "rpi-pico.toml")).id == "rpi-pico"
    # relative path with a separator
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert load_board("./my.toml").id == "my-board"
        assert load_board("my.toml").id == "my-board"
    finally:
        os.chdir(cwd)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_board(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize(
    "core, sram, flash",
    [(c, r.sram_bytes, r.flash_bytes) for c, r in DEFAULT_RESERVES.items()],
)
def test_default_reserve(tmp_path: Path, core: str, sram: int, flash: int) -> None:
    text = GOOD.split("[reserve]")[0].replace('"cortex-m4"', f'"{core}"')
    if core in ("xtensa-lx7", "riscv32-imc"):
        text = replace_line(text, "kernels", 'kernels = "esp-nn"')
        text = replace_line(text, "sram_bytes", "sram_bytes = 524288")
        text = replace_line(text, "flash_bytes", "flash_bytes = 8388608")
    b = load_board_file(write(tmp_path, text))
    assert (b.sram_reserved_bytes, b.flash_reserved_bytes) == (sram, flash)
    assert "core-family default" in b.reserve_reasoning
    assert set(DEFAULT_RESERVES) == set(CORES)


def test_pointer_bytes_optional(tmp_path: Path) -> None:
    b = load_board_file(write(tmp_path, GOOD.replace('kernels = "cmsis-nn"', 'kernels = "cmsis-nn"\npointer_bytes = 8')))
    assert b.pointer_bytes == 8
    with pytest.raises(UserError, match="'pointer_bytes'"):
        load_board_file(write(tmp_path, GOOD.replace('kernels = "cmsis-nn"', 'kernels = "cmsis-nn"\npointer_bytes = 3')))


BAD_CASES = [
    # (what, edit(text) -> text, substrings the message must contain)
    ("missing field", lambda t: replace_line(t, "sram_bytes", None), ["'sram_bytes' is missing"]),
    ("negative size", lambda t: replace_line(t, "sram_bytes", "sram_bytes = -5"), ["'sram_bytes' must be a positive integer", "-5"]),
    ("zero clock", lambda t: replace_line(t, "clock_hz", "clock_hz = 0"), ["'clock_hz' must be a positive integer"]),
    ("string size", lambda t: replace_line(t, "flash_bytes", 'flash_bytes = "1MB"'), ["'flash_bytes' must be a positive integer", "'1MB'"]),
    ("float size", lambda t: replace_line(t, "flash_bytes", "flash_bytes = 1.5"), ["'flash_bytes' must be a positive integer"]),
    ("bool size", lambda t: replace_line(t, "sram_bytes", "sram_bytes = true"), ["'sram_bytes' must be a positive integer"]),
    ("bad core", lambda t: replace_line(t, "core", 'core = "cortex-m3"'), ["'core' must be one of", "cortex-m4", "'cortex-m3'"]),
    ("bad fpu", lambda t: replace_line(t, "fpu", 'fpu = "yes"'), ["'fpu' must be one of"]),
    ("bad kernels", lambda t: replace_line(t, "kernels", 'kernels = "tinyengine"'), ["'kernels' must be one of"]),
    ("esp-nn on arm", lambda t: replace_line(t, "kernels", 'kernels = "esp-nn"'), ["'kernels'", "xtensa-lx7"]),
    ("dsp not bool", lambda t: replace_line(t, "dsp", 'dsp = "yes"'), ["'dsp' must be true or false"]),
    ("aliases not list", lambda t: replace_line(t, "aliases", 'aliases = "mine"'), ["'aliases' must be a list of"]),
    ("sources bad item", lambda t: replace_line(t, "sources", "sources = [1]"), ["'sources' must be a list of"]),
    ("empty name", lambda t: replace_line(t, "name", 'name = ""'), ["'name' must be a non-empty string"]),
    ("bad id", lambda t: replace_line(t, "id", 'id = "My Board"'), ["'id' must be lowercase"]),
    ("unknown field", lambda t: t.replace("dsp = true", "dsp = true\nsram = 5"), ["unknown field 'sram'", "did you mean 'sram_bytes'"]),
    ("unknown reserve field", lambda t: t.replace("reasoning =", "stack = 1\nreasoning ="), ["unknown field 'reserve.stack'"]),
    ("negative reserve", lambda t: t.replace("sram_bytes = 10240", "sram_bytes = -1"), ["'reserve.sram_bytes' must be a non-negative integer"]),
    ("reserve too big", lambda t: t.replace("sram_bytes = 10240", "sram_bytes = 131072"), ["'reserve.sram_bytes'", "must be smaller than sram_bytes (131072)"]),
    ("flash reserve too big", lambda t: t.replace("flash_bytes = 65536", "flash_bytes = 600000"), ["'reserve.flash_bytes'", "smaller than flash_bytes"]),
    ("reserve not table", lambda t: t.split("[reserve]")[0].replace("dsp = true", "reserve = 5\ndsp = true"), ["'reserve' must be a table"]),
    ("bad toml", lambda t: t.replace('name = "My Board"', "name = My Board"), ["invalid TOML", "line 2"]),
]


@pytest.mark.parametrize("what, edit, needles", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_files(tmp_path: Path, what: str, edit, needles: list[str]) -> None:
    p = write(tmp_path, edit(GOOD))
    with pytest.raises(UserError) as e:
        load_board(str(p))
    msg = str(e.value)
    assert msg.startswith(f"board file {p}"), msg
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, (n, msg)


def test_builtin_id_must_match_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "profiles").mkdir(parents=True)
    (home / "profiles" / "other.toml").write_text(GOOD)
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    with pytest.raises(UserError, match="field 'id' is 'my-board' but the file is named other.toml"):
        list_boards()


def test_extra_profiles_sort_after_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "profiles").mkdir(parents=True)
    for name in ("rpi-pico", "nucleo-f446re"):
        (home / "profiles" / f"{name}.toml").write_bytes((profiles_dir() / f"{name}.toml").read_bytes())
    (home / "profiles" / "my-board.toml").write_text(GOOD)
    monkeypatch.setenv("TINYNAS_HOME", str(home))
    assert [b.id for b in list_boards()] == ["nucleo-f446re", "rpi-pico", "my-board"]
    assert load_board("MINE").id == "my-board"


# ------------------------------------------------------------------ CLI


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinynas.cli", "boards", *args],
        capture_output=True, text=True, cwd=project_root(), timeout=60,
    )


def test_cli_table() -> None:
    r = cli()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "name", "core"]
    for bid in BUILTIN_ORDER:
        assert any(line.startswith(bid + " ") for line in lines), bid
    assert "20 / 101" in r.stdout


def test_cli_json() -> None:
    r = cli("--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    _listed_ids([d["id"] for d in data])
    assert all("sram_available" in d and "reserve_reasoning" in d for d in data)


def test_cli_show(tmp_path: Path) -> None:
    r = cli("show", "f746")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("stm32f746g-disco: STM32F746G-DISCO")
    for needle in ("reserve:", "sources:", "MicroNets", "300 KiB"):
        assert needle in r.stdout, needle
    for args in (("show", "esp32s3", "--json"), ("--json", "show", "esp32s3")):
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["id"] == "esp32-s3-devkitc" and d["kernels"] == "esp-nn"
    p = write(tmp_path, GOOD)
    r = cli("show", str(p))
    assert r.returncode == 0 and "my-board" in r.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (("show", "stm32f746"), "did you mean: stm32f746g-disco"),
        (("show", "/nonexistent/board.toml"), "not found"),
        (("show",), "ID_OR_PATH"),
        (("bogus",), "invalid choice"),
    ],
)
def test_cli_errors(args: tuple[str, ...], needle: str) -> None:
    r = cli(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, r.stderr
    assert err.startswith("tinynas: error:") and needle in err
    assert "Traceback" not in r.stderr


def test_cli_bad_file_one_line(tmp_path: Path) -> None:
    p = write(tmp_path, replace_line(GOOD, "sram_bytes", "sram_bytes = -5"))
    r = cli("show", str(p))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "'sram_bytes' must be a positive integer, got -5" in r.stderr
