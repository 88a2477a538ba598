"""Issue 4's must-show figures on CIFAR-10: train a ~60k-param subnet briefly, export, verify.

Loads ../shared/data/cifar10-jpeg/train.zip with the fixed 45,000 / 5,000
split (load_dataset(..., val_count=5000); the first decode is cached), trains
a subnet of about 60,000 parameters for a few epochs, saves it as a finetune
folder and runs `tinynas export ARCH.json` on it (verification on all 5,000
held-out images), then `tinynas profile` on the exported model. Prints one
JSON object. Targets: int8 top-1 within 1.0 pt of float top-1; TFLM and LiteRT
(BUILTIN_REF) identical on >= 99% of inputs and never more than 1 LSB apart;
the profile's arena estimate within 2% of TFLM's measured arena.

    .venv/bin/python bench/bench_export_cifar.py [--epochs 4] [--workdir runs/bench_cifar] [--reuse]

--reuse skips training when WORKDIR/finetune/model.pt exists (re-export only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_export import pick_arch, run_export, save_finetune_dir, train_subnet  # noqa: E402
from tinynas.paths import shared_dir  # noqa: E402

VAL_COUNT = 5000
BOARD = "stm32f746g-disco"


def _profile(tflite: Path) -> dict:
    r = subprocess.run([sys.executable, "-m", "tinynas.cli", "profile", str(tflite), "--board", BOARD, "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"profile failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--params", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "bench_export_cifar"))
    ap.add_argument("--reuse", action="store_true", help="re-export the model a previous run trained")
    args = ap.parse_args()

    zip_path = shared_dir() / "data" / "cifar10-jpeg" / "train.zip"
    if not zip_path.is_file():
        print(json.dumps({"skipped": f"CIFAR-10 is absent ({zip_path})"}))
        return
    import torch

    from tinynas.data import load_dataset

    torch.set_num_threads(2)
    work = Path(args.workdir)
    t0 = time.perf_counter()
    bundle = load_dataset(zip_path, val_count=VAL_COUNT)
    load_s = time.perf_counter() - t0
    arch_json, train_s = work / "finetune" / "arch.json", 0.0
    if not (args.reuse and (work / "finetune" / "model.pt").is_file()):
        arch = pick_arch(3, 32, bundle.num_classes, args.params)
        t0 = time.perf_counter()
        model = train_subnet(arch, bundle, args.epochs, batch=args.batch, lr=args.lr)
        train_s = time.perf_counter() - t0
        save_finetune_dir(work / "finetune", arch, model, str(zip_path), bundle, val_count=VAL_COUNT)
    rep, export_s = run_export(arch_json, work / "export", "--target", "cmake")
    prof = _profile(work / "export" / "model.tflite")
    meas, est = prof["arena_bytes_measured"], prof["arena_bytes_estimated"]
    drop = rep["accuracy_drop_pts"]
    print(json.dumps({
        "data": str(zip_path), "train": len(bundle.train.y), "held_out": len(bundle.val.y),
        "epochs": None if train_s == 0 else args.epochs, "params": rep["params"], "macs": rep["macs"],
        "arch_hash": rep["arch_hash"], "arch_json": str(arch_json),
        "accuracy_float": rep["accuracy_float"], "accuracy_int8": rep["accuracy_int8"],
        "accuracy_drop_pts": drop, "drop_within_1pt": abs(drop) <= 1.0,
        "verify_samples": rep["verify_samples"],
        "tflm_litert_identical_fraction": rep["tflm_litert_identical_fraction"],
        "max_lsb_diff": rep["max_lsb_diff"],
        "agreement_ok": rep["tflm_litert_identical_fraction"] >= 0.99 and rep["max_lsb_diff"] <= 1,
        "profile_arena_estimated": est, "tflm_arena_measured": meas,
        "profile_arena_error_pct": round(100 * (est - meas) / meas, 3),
        "arena_within_2pct": abs(est - meas) <= 0.02 * meas,
        "cmsis_scratch_bytes": rep["cmsis_scratch_bytes"], "arena_bytes_firmware": rep["arena_bytes_firmware"],
        "model_bytes": rep["model_bytes"], "ops": rep["ops"],
        "wall_s": {"data_load": round(load_s, 1), "train": round(train_s, 1), "export": round(export_s, 1),
                   "export_breakdown": rep["timings_s"]},
    }, indent=2))


if __name__ == "__main__":
    main()
