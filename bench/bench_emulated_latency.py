"""Emulated against analytic latency, leave-one-out, on the published whole-model measurements.

For every Cortex-M measurement in tools/latency_measurements.json this builds the
real TFLM + CMSIS-NN firmware for the measured board's own core (Cortex-M4 on
mps2-an386, Cortex-M33 on mps2-an505), runs it under QEMU with -icount
(tinynas.deploy.emulate: deterministic instruction counts),
and turns instructions into milliseconds with one cycles-per-instruction scale
fitted on the current-runtime measurements (tinynas.latency.emulated). Each
fitted measurement is then predicted by a fit on the others (leave-one-out) and
set beside the analytic cycle model's own leave-one-out errors from
tinynas/latency/calibration.json. 'check' rows are predicted by the full fit.

Rows measured on a 2020 runtime (TFLM 2.3.1) are reported but not fitted: the
counts are of today's kernels.

    .venv/bin/python bench/bench_emulated_latency.py --out runs/emulated_latency

Prints one JSON object (also OUT/emulated_latency.json). Needs ../shared (models
and the Cortex-M TFLM tree), cmake, arm-none-eabi-g++ with libstdc++ and
qemu-system-arm; the TFLM library is built once into the tinynas cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinynas.atomic import write_json  # noqa: E402
from tinynas.boards import load_board  # noqa: E402
from tinynas.deploy import tflm_build  # noqa: E402
from tinynas.deploy.emulate import build_profiled, count  # noqa: E402
from tinynas.latency.cycle_model import CALIBRATION_PATH  # noqa: E402
from tinynas.latency.emulated import Measured, fit_cpi, leave_one_out, median_max_ape  # noqa: E402
from tinynas.lutkit.emulated_lut import count_board  # noqa: E402
from tinynas.paths import shared_dir  # noqa: E402

MEASUREMENTS = ROOT / "tools" / "latency_measurements.json"
CORTEX_M_DSP = {"cortex-m4", "cortex-m33"}  # one instruction stream (Armv7E-M / v8-M mainline + DSP)


def instructions(model: Path, board_id: str, tree: Path, work: Path) -> tuple[int, float]:
    """Invoke() instructions of `model` on `board_id`'s core, and the seconds building and counting took."""
    t0 = time.time()
    board = count_board(load_board(board_id))
    elf = build_profiled(model.read_bytes(), board, tree, work, name=model.stem)
    run = count(elf, board)
    return max(run.invoke_instructions.values()), time.time() - t0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/emulated_latency")
    args = p.parse_args(argv)
    if (problem := tflm_build.cross_cxx_problem()) is not None:
        print(f"bench_emulated_latency: {problem}", file=sys.stderr)
        return 2
    data = json.loads(MEASUREMENTS.read_text())
    boards = data["boards"]
    rows = [m for m in data["measurements"] if boards[m["board"]]["core"] in CORTEX_M_DSP]
    tree = tflm_build.extract_tree(shared_dir() / "tflm" / "tflm-cortex-m.tar.xz")
    counts: dict[tuple[str, str], int] = {}  # (model, board) -> instructions
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="emulated-latency.") as work:
        for name, board in sorted({(m["model"], m["board"]) for m in rows}):
            path = shared_dir() / "models" / data["models"][name]
            print(f"[bench] counting {name} on {board}'s core under QEMU", file=sys.stderr, flush=True)
            counts[name, board], seconds[f"{name} @ {board}"] = instructions(
                path, board, tree, Path(work) / f"{name}-{board}")
    measured = [Measured(f"{m['model']} @ {m['board']}", counts[m["model"], m["board"]],
                         boards[m["board"]]["clock_hz"], m["ms"]) for m in rows]
    current = [x for x, m in zip(measured, rows) if m["use"] == "fit" and m.get("runtime_generation") == "current"]
    fit = fit_cpi(current)
    loo = leave_one_out(current)
    calib = json.loads(Path(CALIBRATION_PATH).read_text())
    analytic_loo = {r["case"]: r["error_pct"] for r in calib["leave_one_out"]}  # the fitted rows
    analytic_check = {m["case"]: m["error_pct"] for m in calib["measurements"] if m["use"] == "check"}
    table = []
    for x, m in zip(measured, rows):
        fitted = m["use"] == "fit" and m.get("runtime_generation") == "current"
        emu = next(r["error_pct"] for r in loo if r["case"] == x.case) if fitted else \
            round(100 * (fit.predict_ms(x.instructions, x.clock_hz) / x.measured_ms - 1), 2)
        table.append({"case": x.case, "use": m["use"], "runtime_generation": m.get("runtime_generation"),
                      "measured_ms": x.measured_ms, "instructions": x.instructions,
                      "implied_cpi": round(x.cpi, 4),
                      "emulated_ms": round(fit.predict_ms(x.instructions, x.clock_hz), 2),
                      "emulated_error_pct": emu, "emulated_error_is": "leave-one-out" if fitted else "full fit",
                      "analytic_error_pct": round((analytic_loo if m["use"] == "fit" else analytic_check)
                                                  .get(x.case, float("nan")), 2),
                      "analytic_error_is": "leave-one-out" if m["use"] == "fit" else "full fit"})
    emu_med, emu_max = median_max_ape([r["error_pct"] for r in loo])
    # The 'check' row is a current-runtime measurement too: held out from the fit above, it can
    # still join a leave-one-out over every current-runtime row, which predicts each from the rest.
    everyone = [x for x, m in zip(measured, rows) if m.get("runtime_generation") == "current"]
    loo_all = leave_one_out(everyone)
    all_med, all_max = median_max_ape([r["error_pct"] for r in loo_all])
    ana_med, ana_max = median_max_ape([analytic_loo[x.case] for x in current if x.case in analytic_loo])
    result = {"cpi": round(fit.cpi, 4), "fitted_on": list(fit.cases),
              "instructions": {f"{k[0]} @ {k[1]}": v for k, v in counts.items()}, "count_seconds": {k: round(v, 1) for k, v in seconds.items()},
              "rows": table,
              "loo_current_runtime": {"emulated_median_ape": round(emu_med, 2), "emulated_max_ape": round(emu_max, 2),
                                      "analytic_median_ape": round(ana_med, 2), "analytic_max_ape": round(ana_max, 2)},
              "loo_every_current_row": {"cases": [r["case"] for r in loo_all],
                                        "error_pct": [r["error_pct"] for r in loo_all],
                                        "emulated_median_ape": round(all_med, 2),
                                        "emulated_max_ape": round(all_max, 2),
                                        "cpi_fitted_on_all": round(fit_cpi(everyone).cpi, 4)},
              "target": "median <= 10%, max <= 20% (issue 18)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "emulated_latency.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
