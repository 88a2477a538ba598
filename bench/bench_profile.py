"""Wall time of `tinynas profile` (bisection included) and arena accuracy on ../shared/models.

Prints one JSON object. Target (issue 2): vww_96_int8 profiled in <= 10 s on 2 cores;
estimate within 2% of TFLM's measured arena on every shared model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinynas.paths import shared_dir  # noqa: E402

MODELS = ["mlperf_tiny/pretrainedResnet_quant.tflite", "mlperf_tiny/kws_ref_model.tflite",
          "mlperf_tiny/vww_96_int8.tflite", "mlperf_tiny/ad01_int8.tflite",
          "tflite_micro/hello_world_int8.tflite", "tflite_micro/micro_speech_quantized.tflite",
          "tflite_micro/person_detect.tflite"]


def main() -> None:
    models = shared_dir() / "models"
    if not models.is_dir():
        print(json.dumps({"skipped": f"../shared is absent ({models})"}))
        return
    rows = []
    for rel in MODELS:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "tinynas.cli", "profile", str(models / rel),
                            "--board", "stm32f746g-disco", "--json"], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        p = json.loads(r.stdout)
        meas, est = p["arena_bytes_measured"], p["arena_bytes_estimated"]
        rows.append({"model": rel.split("/")[-1], "wall_s": round(wall, 2), "measured": meas,
                     "estimated": est, "error_pct": round(100 * (est - meas) / meas, 3),
                     "device": p["arena_bytes_device"], "cmsis_scratch": p["cmsis_scratch_bytes"],
                     "latency_ms": p["latency_ms"]})
    vww = next(r for r in rows if r["model"].startswith("vww"))
    print(json.dumps({"vww_profile_wall_s": vww["wall_s"], "vww_target_s": 10,
                      "max_abs_error_pct": max(abs(r["error_pct"]) for r in rows),
                      "models": rows}, indent=2))


if __name__ == "__main__":
    main()
