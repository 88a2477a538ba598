"""CPU training throughput (images/s): the supernet step as the repo runs it, and what would speed it up.

Prints one JSON object on stdout (progress on stderr); with --out DIR also
writes DIR/throughput.json and DIR/throughput.png (both atomically).

Everything is CIFAR-10 shaped (3x32x32, 10 classes, batch 64) on random
pixels fed through the package's own batch path (`DatasetBundle.iter_batches`
with augmentation), so no dataset is needed. Options are measured in one
process, interleaved: for each of --reps rounds every case runs --steps timed
steps (after --warmup untimed ones), and the median images/s over rounds is
reported, because this 2-core machine is shared and drifts.

Cases (baseline = the repo's supernet step: fp32, channels-last, 1 thread):
  sn_spos            SPOS, one random path per step, through `Trainer._step` (MaskedSGD)
  sn_spos_contig     same, model and batch contiguous (NCHW)
  sn_spos_bf16       same, under torch.autocast("cpu", dtype=torch.bfloat16)
  sn_spos_2thr       same, torch.set_num_threads(2)
  sn_spos_torchsgd   same, torch.optim.SGD (foreach) instead of MaskedSGD: cost only, not a valid recipe
  sn_<arch> / sa_<arch>[_masked]
                     the supernet on one fixed path vs the standalone build_model(arch) of that path,
                     with torch SGD and with MaskedSGD(touched=None) as train_arch uses it;
                     forward+backward and optimizer time are reported separately, so the gap splits
  resnet8 / mbconv_matched
                     a plain 3x3 ResNet-8 vs an MBConv subnet of the space with about the same MACs
Subprocess cases: 2-process torchrun (gloo, 1 thread each, the repo's flat gradient all-reduce, 64 images
per rank as the repo's --batch-size means) once per round; torch.compile (default and
max-autotune-no-cudagraphs) on the small nets, and a supernet recompile probe, each under a timeout.

    .venv/bin/python bench/bench_throughput.py --out runs/throughput          # ~10 min
    .venv/bin/python bench/bench_throughput.py --quick                        # ~1 min smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: threads are set per measurement

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinynas.atomic import write_json, write_png
from tinynas.data.augment import default_augment
from tinynas.data.dataset import DatasetBundle, Split, make_preprocessing
from tinynas.space.arch import arch_from_choices, largest_arch, sample_arch
from tinynas.space.spec import SpaceSpec, default_space, space_for_block
from tinynas.space.torch_model import build_model, zero_init_residual
from tinynas.supernet import Supernet
from tinynas.distributed import DistContext, barrier, setup, teardown
from tinynas.train.finetune import PlainStep
from tinynas.train.loop import LoopConfig, Trainer, smoothed_ce
from tinynas.train.optim import MaskedSGD
from tinynas.train.spos import SposStep

CL = torch.channels_last
NUM_CLASSES = 10
LR, MOMENTUM, WD, LS = 0.05, 0.9, 5e-5, 0.1
RESNET8_MACS_HINT = 12.5e6  # MLPerf Tiny's ResNet-8; the matched MBConv net is picked by measured MACs


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ data and nets


def random_bundle(n: int, seed: int) -> DatasetBundle:
    """A CIFAR-shaped bundle of random uint8 pixels, so the package's batch/augment path runs unchanged."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, NUM_CLASSES, size=n, dtype=np.int64)
    aug = default_augment("images", 3, 32, 32)
    names = [f"c{i}" for i in range(NUM_CLASSES)]
    split = Split(x, y, np.arange(n))
    return DatasetBundle(split, Split(x[:64], y[:64], np.arange(64)), names, (3, 32, 32), aug,
                         {"kind": "random"}, make_preprocessing(x, names, "rgb", aug))


def make_batches(bundle: DatasetBundle, n: int, batch: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Augmented, normalised batches made once, so step timings exclude the data path (timed apart)."""
    gen = torch.Generator().manual_seed(seed)
    it = bundle.iter_batches("train", batch, shuffle=True, generator=gen, augment=True, drop_last=True)
    return [b for _, b in zip(range(n), it)]


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, ReLU, 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.short(x))


class ResNet8(nn.Module):
    """MLPerf Tiny's CIFAR ResNet-8 (not in the package yet): conv16, blocks 16/32/64 at strides 1/2/2."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def count_macs(model: nn.Module, shape: tuple[int, int, int] = (3, 32, 32)) -> int:
    """Multiply-accumulates of conv and linear layers for one image, by forward hooks (same rule for all nets)."""
    total = [0]

    def hook(m: nn.Module, inp, out) -> None:
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total[0] += out[0].numel() * k
        else:
            total[0] += m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    model.train(was)
    for h in hs:
        h.remove()
    return total[0]


def mid_arch(spec: SpaceSpec) -> dict:
    """Middle choice everywhere (depth, kernel, expand): a typical path, deterministic."""
    n, d = len(spec.stages), spec.max_depth
    mid = lambda c: sorted(c)[len(c) // 2]  # noqa: E731
    return arch_from_choices(spec, [mid(spec.depths)] * n, [[mid(spec.kernels)] * d] * n,
                             [[mid(spec.expand_ratios)] * d] * n)


def matched_mbconv(target_macs: int, seed: int) -> tuple[dict, int]:
    """The sampled subnet of the default space (widths 0.3-0.5) whose MACs are closest to `target_macs`."""
    rng = np.random.default_rng([seed, 7])
    best: tuple[float, dict, int] | None = None
    for w in (0.3, 0.4, 0.5):
        spec = default_space().with_config(width_mult=w, resolution=(32, 32))
        for _ in range(25):
            a = sample_arch(spec, rng)
            macs = count_macs(build_model(a))
            gap = abs(np.log(macs / target_macs))
            if best is None or gap < best[0]:
                best = (gap, a, macs)
    assert best is not None
    return best[1], best[2]


def init_model(make: Callable[[], nn.Module], seed: int, fmt: torch.memory_format = CL) -> nn.Module:
    """Seeded init (same weights for every variant of a net), zero-init residuals as the repo trains."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = make()
    if hasattr(m, "arch"):
        zero_init_residual(m)
    return m.to(memory_format=fmt).train()


# ------------------------------------------------------------------ optimizers and steps


class TorchSGDAdapter:
    """torch.optim.SGD behind MaskedSGD's interface (params dict, step(lr, touched), zero_grad), for Trainer."""

    def __init__(self, model: nn.Module) -> None:
        self.params = dict(model.named_parameters())
        decay = [p for p in self.params.values() if p.ndim > 1]
        rest = [p for p in self.params.values() if p.ndim <= 1]
        self.sgd = torch.optim.SGD([{"params": decay, "weight_decay": WD}, {"params": rest, "weight_decay": 0.0}],
                                   lr=LR, momentum=MOMENTUM)

    def step(self, lr: float, touched=None) -> None:
        for g in self.sgd.param_groups:
            g["lr"] = lr
        self.sgd.step()

    def zero_grad(self) -> None:
        self.sgd.zero_grad(set_to_none=True)


@dataclass
class Case:
    """One measured configuration: `step(x, y, rng)` runs a whole training step and returns phase seconds."""

    name: str
    step: Callable[[torch.Tensor, torch.Tensor, np.random.Generator], dict]
    threads: int = 1
    group: str = "supernet"
    macs: int | None = None
    samples: list[float] = field(default_factory=list)  # images/s per round
    phases: dict[str, list[float]] = field(default_factory=dict)  # seconds per step, per phase


def trainer_case(name: str, sn: Supernet, spec: SpaceSpec, bundle: DatasetBundle, opt, *, threads: int = 1,
                 wrap: Callable | None = None) -> Case:
    """The repo's supernet step (`Trainer._step` + `SposStep`); `wrap` adapts step_fn (autocast, layout)."""
    spos = SposStep(sn, spec, bundle, 1, LS)
    fn = wrap(spos) if wrap else spos
    cfg = LoopConfig(epochs=1, batch_size=64, lr=LR, momentum=MOMENTUM, weight_decay=WD, label_smoothing=LS)
    tr = Trainer(sn, opt, bundle, cfg, DistContext(), fn, progress=False)
    counter = [0]

    def step(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> dict:
        counter[0] += 1
        tr._step(0, counter[0] % tr.plan.steps, x, y, rng)
        return {}

    return Case(name, step, threads)


def autocast_wrap(fn: Callable) -> Callable:
    """Run the step function (forward and backward) under CPU bf16 autocast."""
    def wrapped(x, y, rng):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn(x, y, rng)
    return wrapped


def contiguous_wrap(fn: Callable) -> Callable:
    """Undo Trainer._step's channels-last conversion (one 0.8 MB copy per step, included in the timing)."""
    return lambda x, y, rng: fn(x.contiguous(), y, rng)


def phased_case(name: str, forward: Callable[[torch.Tensor], torch.Tensor], opt_step: Callable[[], None],
                fmt: torch.memory_format = CL, threads: int = 1, group: str = "supernet",
                macs: int | None = None, amp: bool = False) -> Case:
    """A step timed in two phases (forward+backward, optimizer), to split the supernet-vs-standalone gap."""
    def step(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> dict:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext():
            loss = smoothed_ce(forward(x.contiguous(memory_format=fmt)), y, LS)
            loss.backward()
        t1 = time.perf_counter()
        opt_step()
        return {"fwd_bwd": t1 - t0, "opt": time.perf_counter() - t1}

    return Case(name, step, threads, group, macs)


def supernet_fixed_case(name: str, sn: Supernet, arch: dict, macs: int) -> Case:
    """The supernet on one fixed path with the repo's MaskedSGD(touched=path_indices), as SposStep+Trainer do."""
    opt = MaskedSGD(sn.named_parameters(), momentum=MOMENTUM, weight_decay=WD)

    def opt_step() -> None:
        opt.step(LR, [sn.path_indices(arch)])
        opt.zero_grad()

    return phased_case(name, lambda x: sn(x, arch), opt_step, macs=macs)


def standalone_case(name: str, model: nn.Module, masked: bool, macs: int, group: str = "standalone",
                    fmt: torch.memory_format = CL, threads: int = 1, amp: bool = False) -> Case:
    """A plain model: torch.optim.SGD, or MaskedSGD(touched=None) as the repo's train_arch uses it."""
    if masked:
        mopt = MaskedSGD(model.named_parameters(), momentum=MOMENTUM, weight_decay=WD)

        def opt_step() -> None:
            mopt.step(LR, None)
            mopt.zero_grad()
    else:
        topt = TorchSGDAdapter(model)

        def opt_step() -> None:
            topt.step(LR)
            topt.zero_grad()
    return phased_case(name, model, opt_step, fmt, threads, group, macs, amp)


# ------------------------------------------------------------------ timing


def run_steps(case: Case, batches: list, rng: np.random.Generator, n: int) -> tuple[float, dict[str, float]]:
    """n steps of one case at its thread count; returns (seconds, summed phase seconds)."""
    torch.set_num_threads(case.threads)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(n):
        x, y = batches[i % len(batches)]
        for k, v in case.step(x, y, rng).items():
            phases[k] = phases.get(k, 0.0) + v
    return time.perf_counter() - t0, phases


def measure(cases: list[Case], batches: list, args, between_rounds: Callable[[int], None] | None = None) -> None:
    """Warm every case up, then --reps rounds of --steps timed steps per case, interleaved."""
    batch = batches[0][0].shape[0]
    for c in cases:
        t, _ = run_steps(c, batches, np.random.default_rng([args.seed, 99]), args.warmup)
        log(f"  warm-up {c.name}: {t / max(args.warmup, 1):.3f} s/step")
    for r in range(args.reps):
        for c in cases:
            t, ph = run_steps(c, batches, np.random.default_rng([args.seed, r]), args.steps)
            c.samples.append(batch * args.steps / t)
            for k, v in ph.items():
                c.phases.setdefault(k, []).append(v / args.steps)
            log(f"  round {r + 1}/{args.reps} {c.name}: {c.samples[-1]:.1f} images/s")
        if between_rounds is not None:
            between_rounds(r)
    torch.set_num_threads(1)


def median(v: list[float]) -> float | None:
    return round(statistics.median(v), 2) if v else None


# ------------------------------------------------------------------ separate measurements


def time_augmentation(bundle: DatasetBundle, batch: int, n: int, reps: int, seed: int) -> dict:
    """ms per batch of the package's batch path with and without augmentation (1 thread), median of reps."""
    torch.set_num_threads(1)
    out: dict[str, list[float]] = {"augment": [], "no_augment": []}
    for r in range(reps):
        for key, aug in (("augment", True), ("no_augment", False)):
            gen = torch.Generator().manual_seed(seed + r)
            it = bundle.iter_batches("train", batch, shuffle=True, generator=gen, augment=aug, drop_last=True)
            t0 = time.perf_counter()
            k = sum(1 for _ in zip(range(n), it))
            out[key].append(1000 * (time.perf_counter() - t0) / k)
    return {"ms_per_batch_augmented": median(out["augment"]), "ms_per_batch_plain": median(out["no_augment"]),
            "ms_augmentation_only": round(median(out["augment"]) - median(out["no_augment"]), 3)}


def time_path_bookkeeping(sn: Supernet, spec: SpaceSpec, n: int, seed: int) -> dict:
    """Pure-Python per-step cost of a new path: genome -> arch, plan (json key) and path_indices."""
    rng = np.random.default_rng([seed, 5])
    spos = SposStep(sn, spec, random_bundle(64, seed), 1, LS)
    t0 = time.perf_counter()
    archs = [spos.sample(rng)[1][0] for _ in range(n)]
    t1 = time.perf_counter()
    for a in archs:
        sn.plan(a)  # first sight: validate + layer_plan
    t2 = time.perf_counter()
    for a in archs:
        sn.plan(a)  # cached: the json key only (forward and path_indices each do this)
        sn.path_indices(a)
    t3 = time.perf_counter()
    return {"ms_sample_arch": round(1000 * (t1 - t0) / n, 3), "ms_plan_new_path": round(1000 * (t2 - t1) / n, 3),
            "ms_plan_cached_plus_path_indices": round(1000 * (t3 - t2) / n, 3)}


def bf16_loss_check(arch: dict, batches: list, steps: int, seed: int) -> dict:
    """Same init, same batches, torch SGD: per-step losses in fp32 vs bf16 autocast (a sanity check only)."""
    torch.set_num_threads(1)
    losses: dict[str, list[float]] = {}
    for key, amp in (("fp32", False), ("bf16", True)):
        m = init_model(lambda: build_model(arch), seed)
        opt = TorchSGDAdapter(m)
        losses[key] = []
        for i in range(steps):
            x, y = batches[i % len(batches)]
            with torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext():
                loss = smoothed_ce(m(x.contiguous(memory_format=CL)), y, LS)
                loss.backward()
            opt.step(LR)
            opt.zero_grad()
            losses[key].append(round(float(loss.detach()), 5))
    diff = [abs(a - b) for a, b in zip(losses["fp32"], losses["bf16"])]
    return {**losses, "max_abs_diff": round(max(diff), 5)}


# ------------------------------------------------------------------ subprocess workers


def worker_cmd(args, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--steps", str(args.steps), "--warmup",
            str(args.warmup), "--seed", str(args.seed), "--width", str(args.width), *extra]


def run_worker(cmd: list[str], timeout: float) -> dict:
    """Run a worker; its last stdout line is JSON. Timeouts and failures come back as {"error": ...}."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s", "wall_s": round(time.perf_counter() - t0, 1)}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": f"exit {p.returncode}: {p.stderr.strip().splitlines()[-1:] or ''}"}
    return {**json.loads(lines[-1]), "wall_s": round(time.perf_counter() - t0, 1)}


def ddp_worker(args) -> None:
    """One torchrun rank: the repo's supernet step (Trainer._step all-reduces grads under a group)."""
    torch.set_num_threads(1)
    ctx = setup("cpu")
    spec = default_space().with_config(width_mult=args.width, resolution=(32, 32))
    bundle = random_bundle(64 * 8 * ctx.world_size, args.seed)
    batches = make_batches(bundle, 8, 64, args.seed + 1 + ctx.rank)
    sn = init_model(lambda: Supernet(spec), args.seed)
    case = trainer_case("ddp", sn, spec, bundle, MaskedSGD(sn.named_parameters(), momentum=MOMENTUM,
                                                           weight_decay=WD))
    run_steps(case, batches, np.random.default_rng([args.seed, 99]), args.warmup)
    barrier()
    t, _ = run_steps(case, batches, np.random.default_rng([args.seed, args.round]), args.steps)
    barrier()
    if ctx.is_main:
        print(json.dumps({"images_per_s": round(64 * ctx.world_size * args.steps / t, 2),
                          "world_size": ctx.world_size, "per_rank_batch": 64}), flush=True)
    teardown(ctx)


def compile_worker(args) -> None:
    """Eager vs torch.compile(mode) on one net in a fresh process; compile time = first step minus eager."""
    torch.set_num_threads(1)
    bundle = random_bundle(64 * 8, args.seed)
    batches = make_batches(bundle, 8, 64, args.seed + 1)
    if args.net == "supernet":
        return compile_supernet_probe(args, bundle, batches)
    make = ResNet8 if args.net == "resnet8" else (lambda: build_model(json.loads(args.arch)))
    eager = standalone_case("eager", init_model(make, args.seed), False, 0)
    cm = init_model(make, args.seed)
    comp = standalone_case("compiled", torch.compile(cm, mode=None if args.mode == "default" else args.mode),
                           False, 0)
    rng = np.random.default_rng(0)
    t_first, _ = run_steps(comp, batches, rng, 1)
    args.reps = max(args.reps, 1)
    measure([eager, comp], batches, args)
    e, c = median(eager.samples), median(comp.samples)
    print(json.dumps({"eager_images_per_s": e, "compiled_images_per_s": c, "speedup": round(c / e, 3),
                      "compile_s": round(t_first - 64 / c, 1)}), flush=True)


def compile_supernet_probe(args, bundle: DatasetBundle, batches: list) -> None:
    """torch.compile on the supernet: each new random path is a new graph (guards on the arch); time them."""
    spec = default_space().with_config(width_mult=args.width, resolution=(32, 32))
    sn = init_model(lambda: Supernet(spec), args.seed)
    opt = MaskedSGD(sn.named_parameters(), momentum=MOMENTUM, weight_decay=WD)
    spos = SposStep(sn, spec, bundle, 1, LS)
    csn = torch.compile(sn)
    rng = np.random.default_rng([args.seed, 3])
    archs = [spos.sample(rng)[1][0] for _ in range(2)]
    times = []
    for a in [archs[0], archs[1], archs[0], archs[1]]:
        x, y = batches[len(times) % len(batches)]
        t0 = time.perf_counter()
        smoothed_ce(csn(x.contiguous(memory_format=CL), a), y, LS).backward()
        opt.step(LR, [sn.path_indices(a)])
        opt.zero_grad()
        times.append(round(time.perf_counter() - t0, 2))
        log(f"  supernet compile probe: step {len(times)} took {times[-1]} s")
    print(json.dumps({"step_s": times, "note": "steps 1-2: first sight of paths A and B (compile each); "
                      "3-4: A and B again (cached graphs)"}), flush=True)


# ------------------------------------------------------------------ main measurement


def build_cases(args, spec: SpaceSpec, bundle: DatasetBundle) -> tuple[list[Case], dict]:
    """Every in-process case, each with its own copy of identically initialised weights."""
    sn0 = init_model(lambda: Supernet(spec), args.seed)
    masked = lambda m: MaskedSGD(m.named_parameters(), momentum=MOMENTUM, weight_decay=WD)  # noqa: E731

    def sn_copy(fmt: torch.memory_format = CL) -> Supernet:
        return copy.deepcopy(sn0).to(memory_format=fmt)

    cases = []
    s = sn_copy()
    cases.append(trainer_case("sn_spos", s, spec, bundle, masked(s)))
    s = sn_copy(torch.contiguous_format)
    cases.append(trainer_case("sn_spos_contig", s, spec, bundle, masked(s), wrap=contiguous_wrap))
    s = sn_copy()
    cases.append(trainer_case("sn_spos_bf16", s, spec, bundle, masked(s), wrap=autocast_wrap))
    s = sn_copy()
    cases.append(trainer_case("sn_spos_2thr", s, spec, bundle, masked(s), threads=2))
    s = sn_copy()
    cases.append(trainer_case("sn_spos_torchsgd", s, spec, bundle, TorchSGDAdapter(s)))
    # the default space since time budgets: ResNet basic blocks (tinynas.space.spec.BLOCK_PRESETS["res"])
    res_spec = space_for_block("res", resolution=[32, 32], width_mult=args.width)
    s = init_model(lambda: Supernet(res_spec), args.seed)
    cases.append(trainer_case("sn_spos_res", s, res_spec, bundle, masked(s)))
    archs = {"mid": mid_arch(spec)} if args.quick else {"largest": largest_arch(spec), "mid": mid_arch(spec)}
    info: dict = {"archs": {}}
    for key, a in archs.items():
        macs = count_macs(build_model(a))
        info["archs"][key] = {"macs": macs, "params": sum(p.numel() for p in build_model(a).parameters())}
        cases.append(supernet_fixed_case(f"sn_{key}", sn_copy(), a, macs))
        cases.append(standalone_case(f"sa_{key}", init_model(lambda: build_model(a), args.seed), False, macs))
        cases.append(standalone_case(f"sa_{key}_masked", init_model(lambda: build_model(a), args.seed), True, macs))
    a = archs["mid"]
    macs = info["archs"]["mid"]["macs"]
    cases.append(standalone_case("sa_mid_contig", init_model(lambda: build_model(a), args.seed,
                                                             torch.contiguous_format), False, macs,
                                 fmt=torch.contiguous_format))
    cases.append(standalone_case("sa_mid_2thr", init_model(lambda: build_model(a), args.seed), False, macs,
                                 threads=2))
    cases.append(standalone_case("sa_mid_bf16", init_model(lambda: build_model(a), args.seed), False, macs,
                                 amp=True))
    r8 = init_model(ResNet8, args.seed)
    r8_macs = count_macs(r8)
    m_arch, m_macs = matched_mbconv(r8_macs, args.seed)
    info["resnet8"] = {"macs": r8_macs, "params": sum(p.numel() for p in r8.parameters())}
    info["mbconv_matched"] = {"macs": m_macs, "arch": m_arch,
                              "params": sum(p.numel() for p in build_model(m_arch).parameters())}
    cases.append(standalone_case("resnet8", r8, False, r8_macs, group="block type"))
    cases.append(standalone_case("resnet8_contig", init_model(ResNet8, args.seed, torch.contiguous_format), False,
                                 r8_macs, group="block type", fmt=torch.contiguous_format))
    cases.append(standalone_case("mbconv_matched", init_model(lambda: build_model(m_arch), args.seed), False,
                                 m_macs, group="block type"))
    for c in cases:
        c.group = c.group if not c.name.startswith("sa_") else "standalone"
    return cases, info


def summarize(cases: list[Case], ddp: list[float]) -> dict:
    """Median images/s per case, speed-up vs its baseline, phase ms, and images/s per MMAC."""
    by = {c.name: c for c in cases}
    base_of = lambda n: ("sn_spos" if n.startswith("sn_spos") else  # noqa: E731
                         "sa_mid" if n.startswith("sa_mid") else "sa_largest" if n.startswith("sa_largest")
                         else "resnet8" if n.startswith("resnet8") else None)
    rows = {}
    for c in cases:
        ips = median(c.samples)
        row: dict = {"images_per_s": ips, "threads": c.threads, "rounds": [round(v, 1) for v in c.samples]}
        b = base_of(c.name)
        if b and b != c.name and b in by:
            row["speedup_vs_" + b] = round(ips / median(by[b].samples), 3)
        if c.phases:
            row["ms_per_step"] = {k: round(1000 * statistics.median(v), 1) for k, v in c.phases.items()}
        if c.macs:
            row["macs"] = c.macs
            row["images_per_s_x_mmacs"] = round(ips * c.macs / 1e6, 1)  # effective MMAC/s (fwd only count)
        rows[c.name] = row
    if ddp:
        ips = median(ddp)
        rows["sn_spos_ddp2x1thr"] = {"images_per_s": ips, "rounds": [round(v, 1) for v in ddp],
                                     "speedup_vs_sn_spos": round(ips / median(by["sn_spos"].samples), 3),
                                     "vs_sn_spos_2thr": round(ips / median(by["sn_spos_2thr"].samples), 3),
                                     "note": "2 torchrun ranks x 64 images, gloo, 1 thread each"}
    return rows


def gap_breakdown(rows: dict, key: str) -> dict | None:
    """Supernet fixed path vs standalone of the same arch: where the extra milliseconds go."""
    sn, sa, sam = rows.get(f"sn_{key}"), rows.get(f"sa_{key}"), rows.get(f"sa_{key}_masked")
    if not (sn and sa and sam):
        return None
    p = lambda r, k: r["ms_per_step"][k]  # noqa: E731
    return {"supernet_over_standalone_masked": round(sam["images_per_s"] / sn["images_per_s"], 3),
            "extra_fwd_bwd_ms (slicing, full-size weight grads)": round(p(sn, "fwd_bwd") - p(sam, "fwd_bwd"), 1),
            "extra_opt_ms (MaskedSGD on slices vs whole tensors)": round(p(sn, "opt") - p(sam, "opt"), 1),
            "maskedsgd_minus_torchsgd_ms (standalone)": round(p(sam, "opt") - p(sa, "opt"), 1)}


def plot(rows: dict, path: Path, title: str) -> None:
    """Horizontal bars of median images/s, one colour per group, baseline marked."""
    import matplotlib  # heavy optional dependency: only when --out asks for the chart

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    vals = [rows[n]["images_per_s"] or 0.0 for n in names]
    colours = ["tab:blue" if n.startswith("sn_") else "tab:orange" if n.startswith("sa_") else "tab:green"
               for n in names]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(names) + 1.5))
    ax.barh(range(len(names)), vals, color=colours)
    for i, v in enumerate(vals):
        sp = next((rows[names[i]][k] for k in rows[names[i]] if k.startswith("speedup_vs_")), None)
        ax.text(v, i, f" {v:.0f}" + (f"  (x{sp:.2f})" if sp else ""), va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("training images/s (median of rounds; batch 64, 3x32x32)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, max(vals) * 1.3)
    fig.tight_layout()
    write_png(path, fig, dpi=110)


def compile_jobs(args, info: dict) -> dict:
    """torch.compile measurements, each in its own process under a timeout (inductor may take minutes)."""
    jobs = {"resnet8_default": ("resnet8", "default", "{}"),
            "mbconv_matched_default": ("mbconv", "default", json.dumps(info["mbconv_matched"]["arch"]))}
    if not args.quick:
        jobs["resnet8_max_autotune"] = ("resnet8", "max-autotune-no-cudagraphs", "{}")
    out = {}
    for name, (net, mode, arch) in jobs.items():
        log(f"compile: {name} (timeout {args.compile_timeout:.0f} s)")
        out[name] = run_worker(worker_cmd(args, "--worker", "compile", "--net", net, "--mode", mode, "--arch", arch,
                                          "--reps", "2"), args.compile_timeout)
        log(f"  {json.dumps(out[name])}")
    if not args.quick and not args.skip_supernet_compile:
        log(f"compile: supernet probe (timeout {args.compile_timeout:.0f} s)")
        out["supernet_default"] = run_worker(worker_cmd(args, "--worker", "compile", "--net", "supernet"),
                                             args.compile_timeout)
        log(f"  {json.dumps(out['supernet_default'])}")
    return out


def run_bench(args) -> dict:
    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    spec = default_space().with_config(width_mult=args.width, resolution=(32, 32))
    bundle = random_bundle(64 * 16, args.seed)
    batches = make_batches(bundle, 8, 64, args.seed + 1)
    cases, info = build_cases(args, spec, bundle)
    log(f"{len(cases)} cases, {args.reps} rounds x {args.steps} steps (+{args.warmup} warm-up)")
    ddp: list[float] = []

    def ddp_round(r: int) -> None:
        if args.skip_ddp:
            return
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               *worker_cmd(args, "--worker", "ddp", "--round", str(r))[1:]]
        res = run_worker(cmd, 300)
        log(f"  round {r + 1} ddp 2x1: {res}")
        if "images_per_s" in res:
            ddp.append(res["images_per_s"])

    measure(cases, batches, args, ddp_round)
    rows = summarize(cases, ddp)
    result = {"machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                          "cpu_capability": torch.backends.cpu.get_cpu_capability()},
              "config": {"batch": 64, "input": [3, 32, 32], "width_mult": args.width, "steps": args.steps,
                         "warmup": args.warmup, "reps": args.reps, "seed": args.seed, "quick": args.quick,
                         "baseline": "fp32, channels-last, 1 thread, Trainer._step + SposStep + MaskedSGD"},
              "nets": info, "cases": rows,
              "gap": {k: gap_breakdown(rows, k) for k in info["archs"]},
              "path_bookkeeping": time_path_bookkeeping(Supernet(spec), spec, 200, args.seed),
              "augmentation": time_augmentation(bundle, 64, 12, 3, args.seed),
              "bf16_loss_check": bf16_loss_check(info["mbconv_matched"]["arch"], batches, 3 if args.quick else 5,
                                                 args.seed)}
    aug = result["augmentation"]["ms_per_batch_augmented"]
    result["augmentation"]["share_of_sn_spos_step"] = round(aug / (aug + 64000 / rows["sn_spos"]["images_per_s"]),
                                                           4)
    if not args.skip_compile:
        result["compile"] = compile_jobs(args, info)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    return result


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (exit 2), not usage plus message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"bench_throughput: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="folder for throughput.json and throughput.png")
    ap.add_argument("--quick", action="store_true", help="~1 minute smoke mode (fewer cases, steps, no max-autotune)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per case per round (default 4; quick 1)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps per case first (default 2; quick 1)")
    ap.add_argument("--reps", type=int, default=None, help="interleaved rounds (default 3; quick 1)")
    ap.add_argument("--width", type=float, default=0.5, help="supernet width multiplier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile-timeout", type=float, default=None, help="seconds per compile job (default 150)")
    ap.add_argument("--skip-compile", action="store_true")
    ap.add_argument("--skip-supernet-compile", action="store_true")
    ap.add_argument("--skip-ddp", action="store_true")
    ap.add_argument("--worker", choices=("ddp", "compile"), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--net", default="resnet8", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--arch", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)

    args = ap.parse_args(argv)
    q = args.quick
    if q:  # a smoke test: compile jobs (minutes of inductor) and torchrun start-up (~15 s) are left out
        args.skip_compile = args.skip_ddp = True
    args.steps = args.steps if args.steps is not None else (1 if q else 4)
    args.warmup = args.warmup if args.warmup is not None else 1 if q else 2
    args.reps = args.reps if args.reps is not None else (1 if q else 3)
    args.compile_timeout = args.compile_timeout if args.compile_timeout is not None else (90 if q else 150)
    bad = [n for n in ("steps", "reps") if getattr(args, n) < 1] + (["warmup"] if args.warmup < 0 else []) \
        + (["width"] if not 0 < args.width <= 2 else []) + (["compile-timeout"] if args.compile_timeout <= 0 else [])
    if bad:
        print(f"bench_throughput: bad value for --{bad[0]}", file=sys.stderr)
        raise SystemExit(2)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker == "ddp":
        return ddp_worker(args)
    if args.worker == "compile":
        return compile_worker(args)
    result = run_bench(args)
    print(json.dumps(result, indent=1))
    if args.out:
        out = Path(args.out)
        write_json(out / "throughput.json", result)
        plot(result["cases"], out / "throughput.png",
             f"CPU training throughput, {result['machine']['cpus']} cores, width {args.width}"
             + (" (quick)" if args.quick else ""))


if __name__ == "__main__":
    main()
