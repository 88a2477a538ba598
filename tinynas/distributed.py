"""Data-parallel training under torchrun: process group setup and gradient all-reduce.

`torchrun --nproc_per_node=N tinynas train-supernet ...` starts N copies of the
command; `setup()` joins them into one group (gloo on CPU, nccl on GPU). The
same code runs with one process and no torchrun, where every helper here is a
no-op, so there is a single training path.

Gradients are averaged with one flat all-reduce per step rather than through
DistributedDataParallel's hooks: a supernet path leaves most parameters unused
and the optimizer must know exactly which elements a path touched, which DDP's
unused-parameter handling would blur. The arithmetic is DDP's (sum, then divide
by the world size), so the result equals DDP's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when setup() created the group and teardown() must end it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_and_world(join: bool = False) -> tuple[int, int]:
    """(rank, world size) of the running group, or (0, 1) outside torch.distributed.

    The package's one way to ask. `join`: under torchrun (WORLD_SIZE > 1), first join
    the group if nobody has yet (nccl with CUDA, else gloo), as `tinynas run` does first thing.
    """
    if join and int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pick_device(device: str | torch.device | None = None, local_rank: int = 0) -> torch.device:
    """'auto'/None: this rank's GPU when CUDA is present, else the CPU."""
    if device not in (None, "auto"):
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup(device: str | torch.device | None = None) -> DistContext:
    """Join torchrun's group when WORLD_SIZE > 1 (gloo on CPU, nccl on GPU); else a 1-process context."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), dev, False)
    if world <= 1:
        return DistContext(0, 1, dev, False)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), dev, True)


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def _comm_device() -> torch.device:
    """nccl only moves CUDA tensors; gloo moves CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all ranks (a copy on t's device); identity outside a group."""
    if rank_and_world()[1] == 1:
        return t
    buf = t.detach().to(_comm_device(), copy=True)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def average_gradients(params: list[torch.nn.Parameter], extra: torch.Tensor) -> torch.Tensor:
    """Average the grads of `params` (those that have one) over ranks in place; returns mean `extra`.

    `extra` (e.g. the step's loss and correct count) rides in the same message,
    so one all-reduce per step also tells every rank whether any rank saw a
    non-finite loss. Every rank must hold grads for the same parameters, which
    holds because every rank trains the same path each step.
    """
    _, world = rank_and_world()
    if world == 1:
        return extra
    grads = [p.grad for p in params if p.grad is not None]
    g0 = grads[0]
    flat = torch.cat([g.reshape(-1) for g in grads] + [extra.reshape(-1).to(g0.device, g0.dtype)])
    flat = all_reduce_sum(flat).div_(world)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[offset:].view(extra.shape).to(extra.device, extra.dtype)


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating buffers (BN running stats) over ranks, so rank 0's checkpoint reflects all data."""
    if rank_and_world()[1] == 1:
        return
    _, world = rank_and_world()
    for b in module.buffers():
        if b.is_floating_point():
            b.copy_(all_reduce_sum(b).div_(world))
