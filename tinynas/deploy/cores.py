"""Compiler flags per board core, and the QEMU machine that emulates each core.

The generated project compiles TFLM and the application with exactly these flags
(written into its cmake/core.cmake), so a user's build matches the one tinynas
measured. They follow TFLM's cortex_m_generic Makefile settings (see
../shared/tflm/README.md): -mcpu, then the FPU the board's core really has (the
profile's `fpu`: an STM32F746's Cortex-M7 is single precision, an STM32H743's double),
hard float whenever there is an FPU, and the CMSIS device defines that TFLM's
micro_time.cc needs.

QEMU machines: Debian's qemu-system-arm 7.2 emulates one MPS2/MPS3 FPGA image per
core. Only the MPS2 images without TrustZone (AN386 Cortex-M4, AN500 Cortex-M7)
share the simple map the generated linker script uses: 4 MiB of code SSRAM at 0 and
4 MiB of data SSRAM at 0x20000000, SysTick at 25 MHz.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..boards import Board
from ..errors import UserError

MIB = 1024 * 1024


@dataclass(frozen=True)
class CoreFlags:
    """What the compiler and TFLM need to know about one board's core."""

    core: str
    cpu_flags: str        # -mcpu/-mfpu/-mfloat-abi/-mthumb, for compiler and linker
    device: str           # CMSIS Cortex_DFP device: ARMCM7 -> Device/ARMCM7/Include/ARMCM7.h
    defines: tuple[str, ...]

    def template_values(self, board: Board) -> dict[str, str]:
        """Placeholders of cmake/core.cmake and the READMEs."""
        return {
            "board_name": board.name,
            "board_id": board.id,
            "core": board.core,
            "fpu": board.fpu,
            "cpu_flags": self.cpu_flags,
            "device": self.device,
            "core_defines": " ".join(self.defines),
        }


# core -> (-mcpu, CMSIS device, -mfpu for a single-precision FPU, -mfpu for double precision)
_CORES: dict[str, tuple[str, str, str | None, str | None]] = {
    "cortex-m0plus": ("cortex-m0plus", "ARMCM0plus", None, None),
    "cortex-m4": ("cortex-m4", "ARMCM4", "fpv4-sp-d16", None),
    "cortex-m7": ("cortex-m7", "ARMCM7", "fpv5-sp-d16", "fpv5-d16"),
    "cortex-m33": ("cortex-m33", "ARMCM33", "fpv5-sp-d16", None),
    "cortex-m55": ("cortex-m55", "ARMCM55", "auto", "auto"),
    "cortex-m85": ("cortex-m85", "ARMCM85", "auto", "auto"),
}


def core_flags(board: Board) -> CoreFlags:
    """Flags for `board`'s core and FPU; UserError for a core arm-none-eabi-gcc cannot target."""
    if board.core not in _CORES:
        raise UserError(f"board {board.id} has core {board.core}; the CMake/QEMU firmware targets "
                        f"support Arm Cortex-M only ({', '.join(_CORES)})")
    mcpu, device, fpu_sp, fpu_dp = _CORES[board.core]
    fpu = (fpu_dp or fpu_sp) if board.fpu == "dp" else fpu_sp if board.fpu == "sp" else None
    if board.core == "cortex-m33" and not board.dsp:
        mcpu += "+nodsp"
    flags = [f"-mcpu={mcpu}", "-mthumb"]
    flags += [f"-mfpu={fpu}", "-mfloat-abi=hard"] if fpu else ["-mfloat-abi=soft"]
    suffix = device.removeprefix("ARMCM").upper()
    defines = [device, f"CPU_M{suffix}=1"]
    if board.core == "cortex-m55":
        defines.append("ARM_MODEL_USE_PMU_COUNTERS")
    return CoreFlags(board.core, " ".join(flags), device, tuple(defines))


@dataclass(frozen=True)
class QemuMachine:
    """One `qemu-system-arm -M` machine and the memory the linker script may use."""

    name: str
    code_origin: int
    code_bytes: int
    ram_origin: int
    ram_bytes: int
    tick_hz: int  # SysTick reference clock


QEMU_MACHINES: dict[str, QemuMachine] = {
    "cortex-m4": QemuMachine("mps2-an386", 0x0000_0000, 4 * MIB, 0x2000_0000, 4 * MIB, 25_000_000),
    "cortex-m7": QemuMachine("mps2-an500", 0x0000_0000, 4 * MIB, 0x2000_0000, 4 * MIB, 25_000_000),
    # AN505 boots in the Secure state: code in SSRAM1's Secure alias, data in SSRAM2 and 3.
    "cortex-m33": QemuMachine("mps2-an505", 0x1000_0000, 4 * MIB, 0x3800_0000, 4 * MIB, 20_000_000),
}


def qemu_machine(board: Board) -> QemuMachine:
    """The machine that runs `board`'s core; UserError for a core none emulates here."""
    if board.core not in QEMU_MACHINES:
        cores = ", ".join(sorted(QEMU_MACHINES))
        raise UserError(f"board {board.id} has core {board.core}; the qemu target emulates {cores} "
                        "(pick a board with one of those cores)")
    return QEMU_MACHINES[board.core]
