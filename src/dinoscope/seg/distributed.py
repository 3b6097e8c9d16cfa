"""Data-parallel training under ``torchrun`` (DDP): one process per GPU (or CPU process, gloo), nothing else.

``torchrun --nproc-per-node 4 -m dinoscope.cli.main seg train DATA --out MODEL`` starts four processes;
:func:`start_distributed` reads torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), joins the
process group (NCCL on GPUs, gloo on CPUs) and pins each process to its GPU. Each process trains on its shard
of every epoch's crops (``DistributedSampler``; ``--batch-size`` is per process) and gradients are averaged
by ``DistributedDataParallel``; rank 0 alone validates, saves checkpoints, writes ``metrics.csv`` and prints.
Without torchrun (``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Distributed", "start_distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process."""
        import torch.distributed as dist

        dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over every process."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def wrap(self, net: Any) -> Any:
        """The network in ``DistributedDataParallel`` on this process's device."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else None
        return DistributedDataParallel(net, device_ids=ids)

    def close(self) -> None:
        """Leave the process group."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def start_distributed(device: str) -> Distributed | None:
    """Join the torchrun job this process belongs to, or None when it runs alone.

    Args:
        device: The resolved device (``cuda`` -> ``cuda:<LOCAL_RANK>``; ``cpu`` -> gloo on the CPU).

    Example:
        >>> start_distributed("cpu") is None  # not started by torchrun
        True
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Distributed(rank, world, local, device)
