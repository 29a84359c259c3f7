"""Data-parallel training on PyTorch's own engine: process-group setup under ``torchrun`` and rank agreement.

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them everything here is a
single-process no-op. NCCL is used on GPUs (one device per local rank), gloo on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sqair_world.utils import select_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job: global ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes checkpoints, logs and the progress bar."""
        return self.rank == 0


def init_distributed(device_name: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by ``torchrun`` with WORLD_SIZE > 1; else return rank 0 of 1.

    On CUDA each process takes ``cuda:LOCAL_RANK`` (one GPU per process, the DDP convention).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), select_device(device_name)
    if "RANK" not in os.environ:
        raise ValueError("WORLD_SIZE > 1 but RANK is not set; launch data-parallel runs with torchrun")
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = select_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


def any_rank(flags: list[bool], info: DistInfo, device: torch.device) -> list[bool]:
    """Element-wise OR of boolean ``flags`` over all ranks.

    Ranks must take the same branch (stop on the time budget, stop on a NaN loss) or the ones that go on
    block forever in the next gradient all-reduce; one tiny all-reduce per step keeps them in step.
    """
    if info.world == 1:
        return list(flags)
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


__all__ = ["DistInfo", "select_device", "init_distributed", "any_rank"]
