"""Board profiles: what a microcontroller offers a model, and what it keeps for itself.

A board is one TOML file (see profiles/README.md). Everything downstream (the memory
planner, the latency model, the search) asks one question of it: how many bytes of
SRAM and flash are left for the tensor arena and the weights once the TFLM runtime,
the stack and the application have had theirs. So the reserve is part of the profile,
with the reasoning written next to the numbers, rather than a fudge factor hidden in
code.

Built-in profiles live in `profiles/<id>.toml`; users pass their own with
`--board path/to/board.toml`. Both go through the same validation, and every error
names the file and the field, because a silently wrong board makes every later number
wrong.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .errors import UserError, one_line
from .paths import profiles_dir

KIB = 1024

CORES: tuple[str, ...] = (
    "cortex-m0plus",
    "cortex-m4",
    "cortex-m7",
    "cortex-m33",
    "cortex-m55",
    "cortex-m85",
    "xtensa-lx7",
    "riscv32-imc",
)
FPUS: tuple[str, ...] = ("none", "sp", "dp")
KERNELS: tuple[str, ...] = ("cmsis-nn", "esp-nn", "reference")
POINTER_SIZES: tuple[int, ...] = (2, 4, 8)

# The board a command assumes when --board is not given (MCUNet's reference board).
DEFAULT_BOARD = "stm32f746g-disco"

# `tinynas boards` lists the built-ins in this order (roughly: MCUNet/MLPerf reference
# boards first, then popular hobby boards); any other TOML in profiles/ follows by id.
BUILTIN_ORDER: tuple[str, ...] = (
    "stm32f746g-disco",
    "nucleo-h743zi2",
    "stm32f412g-disco",
    "nucleo-f446re",
    "nucleo-f767zi",
    "nucleo-l4r5zi",
    "arduino-nano-33-ble-sense",
    "nrf5340-dk",
    "ek-ra6m4",
    "rpi-pico",
    "esp32-s3-devkitc",
    "sparkfun-edge",
    "adafruit-metro-m4",
    "teensy-41",
    "rpi-pico2",
    "b-u585i-iot02a",
    "ek-ra8d1",
    "alif-ensemble-e7-hp",
    "esp32-c3-devkitm",
)

# TFLM's own footprint, measured by MicroNets on an STM32F746ZG (reference README).
TFLM_RUNTIME_SRAM = 4 * KIB
TFLM_RUNTIME_FLASH = 37 * KIB


@dataclass(frozen=True)
class _Reserve:
    sram_bytes: int
    flash_bytes: int
    reasoning: str


def _bare_metal_reserve(stack_kib: int) -> _Reserve:
    sram = TFLM_RUNTIME_SRAM + (stack_kib + 8) * KIB
    flash = TFLM_RUNTIME_FLASH + 64 * KIB
    return _Reserve(
        sram,
        flash,
        f"core-family default (the file has no [reserve] table): TFLM runtime 4 KiB SRAM "
        f"+ 37 KiB flash (MicroNets, STM32F746ZG) + {stack_kib} KiB stack + 8 KiB SRAM / "
        f"64 KiB flash for HAL, drivers and application = {sram // KIB} KiB SRAM, "
        f"{flash // KIB} KiB flash, assuming a bare-metal vendor SDK; add a [reserve] "
        f"table if you run an RTOS or a bootloader.",
    )


# Used when a user's board file has no [reserve] table. Built-in profiles always
# carry their own, with board-specific reasoning (bootloaders, RTOS, caches).
DEFAULT_RESERVES: Mapping[str, _Reserve] = MappingProxyType(
    {
        "cortex-m0plus": _bare_metal_reserve(stack_kib=4),
        "cortex-m4": _bare_metal_reserve(stack_kib=8),
        "cortex-m7": _bare_metal_reserve(stack_kib=8),
        "cortex-m33": _bare_metal_reserve(stack_kib=8),
        "cortex-m55": _bare_metal_reserve(stack_kib=8),
        "cortex-m85": _bare_metal_reserve(stack_kib=8),
        "xtensa-lx7": _Reserve(
            192 * KIB,
            384 * KIB,
            "core-family default (the file has no [reserve] table): ESP-IDF keeps "
            "I-cache, D-cache, IRAM code, its static data and FreeRTOS task stacks in "
            "internal SRAM (about 166 KiB) and a 2nd-stage bootloader, partition table "
            "and about 200 KiB of base image in flash; with TFLM 4 KiB / 37 KiB, an 8 KiB "
            "stack and an 8 KiB / 64 KiB application allowance that is 192 KiB SRAM and "
            "384 KiB flash (see profiles/esp32-s3-devkitc.toml).",
        ),
        "riscv32-imc": _Reserve(
            160 * KIB,
            384 * KIB,
            "core-family default (the file has no [reserve] table): ESP-IDF on an ESP32-C3/C6 "
            "keeps its I-cache, IRAM code, static data and FreeRTOS task stacks in internal SRAM "
            "(about 140 KiB) and a 2nd-stage bootloader, partition table and about 200 KiB of "
            "base image in flash; with TFLM 4 KiB / 37 KiB, an 8 KiB stack and an 8 KiB / 64 KiB "
            "application allowance that is 160 KiB SRAM and 384 KiB flash "
            "(see profiles/esp32-c3-devkitm.toml).",
        ),
    }
)

_REQUIRED = ("id", "name", "core", "clock_hz", "sram_bytes", "flash_bytes", "dsp", "simd", "fpu", "kernels")
_OPTIONAL = ("aliases", "notes", "sources", "pointer_bytes", "reserve")
_KNOWN = _REQUIRED + _OPTIONAL
_RESERVE_KNOWN = ("sram_bytes", "flash_bytes", "reasoning")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Board:
    """One validated board profile; sizes in bytes, clock in Hz."""

    id: str
    name: str
    aliases: tuple[str, ...]
    core: str
    clock_hz: int
    sram_bytes: int
    flash_bytes: int
    dsp: bool
    simd: bool
    fpu: str
    kernels: str
    notes: str
    sources: tuple[str, ...]
    sram_reserved_bytes: int
    flash_reserved_bytes: int
    reserve_reasoning: str
    path: Path
    pointer_bytes: int = 4

    @property
    def sram_available(self) -> int:
        """SRAM left for the tensor arena once runtime, stack and application are served."""
        return self.sram_bytes - self.sram_reserved_bytes

    @property
    def flash_available(self) -> int:
        """Flash left for the model (weights + graph) once code and bootloaders are served."""
        return self.flash_bytes - self.flash_reserved_bytes

    @property
    def spec(self) -> str:
        """What --board takes to load this board again: a built-in's id, else its .toml path."""
        builtin = self.path.resolve().parent == profiles_dir().resolve()
        return self.id if builtin else str(self.path)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: every field, plus the two derived `*_available` sizes."""
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["sources"] = list(self.sources)
        d["path"] = str(self.path)
        d["sram_available"] = self.sram_available
        d["flash_available"] = self.flash_available
        return d


# --------------------------------------------------------------------------- parsing


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({kind})"


class _Fields:
    """Typed getters over one TOML table that raise UserErrors naming file and field."""

    def __init__(self, where: str, table: Mapping[str, Any], prefix: str = "") -> None:
        self.where = where
        self.table = table
        self.prefix = prefix

    def fail(self, field: str, msg: str) -> UserError:
        return UserError(f"board file {self.where}: field '{self.prefix}{field}' {msg}")

    def raw(self, field: str, default: Any = ...) -> Any:
        if field in self.table:
            return self.table[field]
        if default is ...:
            raise self.fail(field, "is missing")
        return default

    def string(self, field: str, default: Any = ..., nonempty: bool = True) -> str:
        v = self.raw(field, default)
        if not isinstance(v, str) or (nonempty and not v.strip()):
            raise self.fail(field, f"must be a non-empty string, got {_describe(v)}")
        return v.strip()

    def integer(self, field: str, default: Any = ..., minimum: int = 1) -> int:
        v = self.raw(field, default)
        what = "a positive integer" if minimum >= 1 else "a non-negative integer"
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(field, f"must be {what}, got {_describe(v)}")
        return v

    def boolean(self, field: str) -> bool:
        v = self.raw(field)
        if not isinstance(v, bool):
            raise self.fail(field, f"must be true or false, got {_describe(v)}")
        return v

    def choice(self, field: str, options: tuple[Any, ...], default: Any = ...) -> Any:
        v = self.raw(field, default)
        if isinstance(v, bool) or not isinstance(v, type(options[0])) or v not in options:
            opts = ", ".join(repr(o) if isinstance(o, str) else str(o) for o in options)
            raise self.fail(field, f"must be one of {opts}; got {_describe(v)}")
        return v

    def strings(self, field: str) -> tuple[str, ...]:
        v = self.raw(field, [])
        if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v):
            raise self.fail(field, f"must be a list of non-empty strings, got {_describe(v)}")
        return tuple(s.strip() for s in v)

    def reject_unknown(self, known: tuple[str, ...]) -> None:
        for key in self.table:
            if key not in known:
                close = [k for k in known if k.startswith(key) or key.startswith(k)]
                close = close or difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{self.prefix}{close[0]}'?)" if close else ""
                raise UserError(
                    f"board file {self.where}: unknown field '{self.prefix}{key}'{hint}; "
                    f"known fields: {', '.join(self.prefix + k for k in known)}"
                )


def _read_toml(path: Path, where: str) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"board file {where} not found; pass a built-in board id (run `tinynas boards`) "
            f"or the path of an existing .toml"
        ) from None
    except IsADirectoryError:
        raise UserError(f"board file {where} is a directory; pass the path of a .toml file") from None
    except OSError as e:
        raise UserError(f"board file {where} cannot be read: {e.strerror}") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"board file {where} is not UTF-8 text; is it really a board .toml?") from None
    except tomllib.TOMLDecodeError as e:
        # tomllib's message already ends with "(at line N, column M)".
        raise UserError(f"board file {where}: invalid TOML: {one_line(e)}") from None


def parse_board(table: Mapping[str, Any], path: Path, where: str | None = None) -> Board:
    """Validate one parsed TOML table into a Board; `where` names the file in errors."""
    where = where or str(path)
    f = _Fields(where, table)
    f.reject_unknown(_KNOWN)

    board_id = f.string("id")
    if not _ID_RE.match(board_id):
        raise f.fail("id", f"must be lowercase letters, digits, '.', '_' or '-', got {board_id!r}")
    core = f.choice("core", CORES)
    kernels = f.choice("kernels", KERNELS)
    if kernels == "cmsis-nn" and not core.startswith("cortex-m"):
        raise f.fail("kernels", f"is 'cmsis-nn', which needs an Arm Cortex-M core, but core is {core!r}; use 'esp-nn' or 'reference'")
    if kernels == "esp-nn" and core not in ("xtensa-lx7", "riscv32-imc"):
        raise f.fail("kernels", f"is 'esp-nn', which needs core 'xtensa-lx7' or 'riscv32-imc', but core is {core!r}; "
                                "use 'cmsis-nn' or 'reference'")

    sram = f.integer("sram_bytes")
    flash = f.integer("flash_bytes")

    if "reserve" in table:
        rtable = table["reserve"]
        if not isinstance(rtable, dict):
            raise f.fail("reserve", f"must be a table ([reserve]), got {_describe(rtable)}")
        r = _Fields(where, rtable, prefix="reserve.")
        r.reject_unknown(_RESERVE_KNOWN)
        reserve = _Reserve(
            r.integer("sram_bytes", minimum=0),
            r.integer("flash_bytes", minimum=0),
            r.string("reasoning", default=f"given in {where} without reasoning"),
        )
    else:
        reserve = DEFAULT_RESERVES[core]
    for mem, total, reserved in (("sram", sram, reserve.sram_bytes), ("flash", flash, reserve.flash_bytes)):
        if reserved >= total:
            raise f.fail(
                f"reserve.{mem}_bytes",
                f"({reserved}) must be smaller than {mem}_bytes ({total}); nothing would be "
                f"left for the model",
            )

    aliases = tuple(a.lower() for a in f.strings("aliases"))
    return Board(
        id=board_id,
        name=f.string("name"),
        aliases=aliases,
        core=core,
        clock_hz=f.integer("clock_hz"),
        sram_bytes=sram,
        flash_bytes=flash,
        dsp=f.boolean("dsp"),
        simd=f.boolean("simd"),
        fpu=f.choice("fpu", FPUS),
        kernels=kernels,
        notes=f.string("notes", default="", nonempty=False),
        sources=f.strings("sources"),
        sram_reserved_bytes=reserve.sram_bytes,
        flash_reserved_bytes=reserve.flash_bytes,
        reserve_reasoning=reserve.reasoning,
        path=path,
        pointer_bytes=f.choice("pointer_bytes", POINTER_SIZES, default=4),
    )


def load_board_file(path: str | os.PathLike) -> Board:
    """Read and validate one board TOML (a user's, or a built-in by its path)."""
    where = str(path)
    p = Path(path).expanduser()
    return parse_board(_read_toml(p, where), p.resolve(), where)


# --------------------------------------------------------------------------- built-ins


def _builtin_dir() -> Path:
    d = profiles_dir()
    if not d.is_dir():
        raise UserError(
            f"built-in board profiles not found at {d}; reinstall tinynas from its checkout, "
            f"set TINYNAS_HOME to the checkout, or pass --board path/to/board.toml"
        )
    return d


def _load_builtin(path: Path) -> Board:
    board = load_board_file(path)
    if board.id != path.stem:
        raise UserError(
            f"board file {path}: field 'id' is {board.id!r} but the file is named {path.name}; "
            f"built-in profiles must be named <id>.toml"
        )
    return board


def _sort_key(board: Board) -> tuple[int, str]:
    try:
        return (BUILTIN_ORDER.index(board.id), "")
    except ValueError:
        return (len(BUILTIN_ORDER), board.id)


def list_boards() -> list[Board]:
    """All built-in boards: the curated ones in BUILTIN_ORDER, then extras by id."""
    boards = [_load_builtin(p) for p in sorted(_builtin_dir().glob("*.toml"))]
    owner: dict[str, str] = {}
    for b in boards:
        for name in (b.id, *b.aliases):
            if name in owner and owner[name] != b.id:
                raise UserError(
                    f"board file {b.path}: name {name!r} is already used by board "
                    f"'{owner[name]}'; ids and aliases must be unique across profiles/"
                )
            owner[name] = b.id
    return sorted(boards, key=_sort_key)


def _looks_like_path(spec: str) -> bool:
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return spec.lower().endswith(".toml") or any(s in spec for s in seps)


def _suggest(key: str, boards: list[Board]) -> list[str]:
    """Ids whose id or alias resembles `key`, best first."""
    names = {n: b.id for b in boards for n in (b.id, *b.aliases)}
    found = [bid for n, bid in names.items() if len(key) >= 3 and (key in n or n in key)]
    found += [names[n] for n in difflib.get_close_matches(key, list(names), n=6, cutoff=0.6)]
    return list(dict.fromkeys(found))[:3]


def load_board(spec: str | os.PathLike) -> Board:
    """Resolve a built-in id, an alias (case-insensitive) or a path to a board TOML.

    Ids and aliases win over paths (Zephyr names such as `nrf5340dk/nrf5340/cpuapp`
    contain a slash); otherwise anything ending in .toml or containing a path
    separator is read as a file.
    """
    if isinstance(spec, os.PathLike):
        return load_board_file(spec)
    raw = str(spec).strip()
    if not raw:
        raise UserError("no board given; pass a board id (run `tinynas boards`) or a path to a .toml")
    key = raw.lower()
    if _ID_RE.match(key):
        direct = _builtin_dir() / f"{key}.toml"
        if direct.is_file():
            return _load_builtin(direct)
    boards = list_boards()
    for b in boards:
        if key == b.id or key in b.aliases:
            return b
    if _looks_like_path(raw):
        return load_board_file(raw)
    ids = _suggest(key, boards)
    hint = f"; did you mean: {', '.join(ids)}?" if ids else ""
    raise UserError(
        f"unknown board '{raw}'{hint} (run `tinynas boards` for the list, "
        f"or pass --board path/to/board.toml)"
    )


def add_board_argument(parser: Any, required: bool = False, from_config: bool = False) -> None:
    """--board, spelt, described and defaulted the same way in every command.

    Commands that check a model against a board default to DEFAULT_BOARD; with
    `from_config` the default is left to the config file (which itself defaults
    to DEFAULT_BOARD), so a run.toml's board is not overridden by argparse. The
    LUT commands pass `required`: the table they write belongs to one board.
    """
    text = "board id, alias, or path to a board .toml (`tinynas boards` lists them)"
    if required:
        parser.add_argument("--board", required=True, metavar="ID", help=text)
    elif from_config:
        parser.add_argument("--board", metavar="ID", help=f"{text} (default: run.board of --config, else "
                                                          f"{DEFAULT_BOARD})")
    else:
        parser.add_argument("--board", default=DEFAULT_BOARD, metavar="ID", help=f"{text} (default: %(default)s)")
