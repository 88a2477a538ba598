"""Count the shipped cores' instruction tables: profiles/emulated/<core>.json.

Every Cortex-M4, M7 and M33 board with CMSIS-NN runs the same kernels' code as
its core's build, so one table of instructions per op signature per core serves
all of them (tinynas.latency.lut.lut_for_board multiplies by the core's cycles
per instruction). Each table is filled by `tinynas lut emulate`'s machinery
(tinynas.lutkit.emulated_lut.fill) on one board of the core, over a few space
configurations whose covering subnets hold every op class the default space can
contain, at small and large feature maps (the LUT rescales other sizes of a class
from the nearest counted one). Per-subnet counts are cached in the work folder,
so an interrupted fill resumes.

    .venv/bin/python tools/fill_emulated_tables.py                 # all three cores
    .venv/bin/python tools/fill_emulated_tables.py --cores cortex-m4 --configs mb:1.0x32 res:0.5x32

Needs cmake, make, the Arm GNU toolchain (with libstdc++) and qemu-system-arm, and
../shared/tflm/tflm-cortex-m.tar.xz (or --tflm-dir). Prints one JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tinynas.boards import load_board
from tinynas.deploy import tflm_build
from tinynas.deploy.cores import QEMU_MACHINES
from tinynas.errors import quiet_native_logs
from tinynas.latency.emulated import CoreCounts, counts_path, save_core_counts
from tinynas.lutkit.emulated_lut import fill
from tinynas.paths import shared_dir
from tinynas.space.spec import space_for_block

# One board per core: the one whose QEMU machine counts it (any board of the core gives the same counts).
BOARDS = {"cortex-m4": "nucleo-l4r5zi", "cortex-m7": "stm32f746g-disco", "cortex-m33": "ek-ra6m4"}
# [block:]width x square resolution: the MBConv space at CIFAR size and a narrower one at
# 96x96 (person-detection-sized feature maps), and the fused-MBConv and residual spaces, whose
# full 3x3/5x5 convolutions (ResNet-8's kind) no MBConv subnet holds. Their widths are the
# largest whose every covering subnet fits QEMU's 4 MiB (fused at 1.0 needs up to 22 MB).
CONFIGS = ("mb:1.0x32", "mb:0.5x96", "fused:0.35x32", "res:0.75x32")


def parse_config(text: str) -> tuple[str, float, int]:
    """'fused:0.5x96' -> ('fused', 0.5, 96); the block defaults to mb."""
    block, _, size = text.lower().rpartition(":")
    width, res = size.split("x")
    return block or "mb", float(width), int(res)


def fill_core(core: str, configs: list[str], tree: Path, work: Path) -> tuple[CoreCounts, list[dict]]:
    """Instructions of every op signature the configs' covering subnets hold, smallest count kept."""
    board = load_board(BOARDS[core])
    best: dict[str, int] = {}
    fills = []
    for text in configs:
        block, width, res = parse_config(text)
        spec = space_for_block(block).with_config(width_mult=width, resolution=[res, res])

        def progress(i: int, n: int, what: str) -> None:
            print(f"[{core} {text}] subnet {min(i + 1, n)}/{n}: {what}", file=sys.stderr, flush=True)

        got = fill(board, spec, tree, work / core, progress=progress)
        for sig, n in got.instructions.items():
            best[sig] = min(best.get(sig, n), int(n))
        fills.append({"board": board.id, "block": block, "width": width, "resolution": res,
                      "subnets": got.subnets, "entries": len(got.instructions), "missing": len(got.missing),
                      "failed": {str(k): v for k, v in got.failed.items()}, "seconds": round(got.seconds, 1)})
    meta = {"counted_on": f"{QEMU_MACHINES[core].name} ({core})", "tflm_tree": tflm_build.tree_digest(tree),
            "fills": [{k: v for k, v in f.items() if k != "seconds"} for f in fills]}  # no cache-dependent times
    return CoreCounts(core, best, meta), fills


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", nargs="+", default=list(BOARDS), choices=list(BOARDS))
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS),
                    help="[BLOCK:]WIDTHxRESOLUTION, e.g. res:1.0x32 (block mb, fused or res)")
    ap.add_argument("--tflm-dir", default=str(shared_dir() / "tflm" / "tflm-cortex-m.tar.xz"))
    ap.add_argument("--work", default=str(tflm_build.cache_root() / "emulated-tables"))
    ap.add_argument("--out-dir", default=None, help="write <core>.json here (default: profiles/emulated)")
    args = ap.parse_args(argv)
    tree = tflm_build.cortex_m_tree(args.tflm_dir, "--tflm-dir")
    summary = {}
    for core in args.cores:
        t0 = time.time()
        with quiet_native_logs():  # one TFLite converter run per covering subnet; entered once per process
            counts, fills = fill_core(core, args.configs, tree, Path(args.work))
        out = Path(args.out_dir) / f"{core}.json" if args.out_dir else counts_path(core)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_core_counts(out, counts)
        summary[core] = {"table": str(out), "entries": len(counts.instructions), "fills": fills,
                         "seconds": round(time.time() - t0, 1)}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
