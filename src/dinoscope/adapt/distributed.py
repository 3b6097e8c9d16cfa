"""Data-parallel adaptation (DDP) on one machine: ``--nproc N`` starts N processes, or run under ``torchrun``.

``dinoscope adapt IMAGES --model M --out DIR --nproc 2`` spawns two processes (NCCL on GPUs, one per GPU;
gloo on CPUs) that each train on their share of every step's images (``--batch-size`` is per process);
``DistributedDataParallel`` averages the student's gradients, the teacher centres are averaged by lightly's
centring, so every process holds the same teacher. Rank 0 alone checks, saves and writes. The equivalent
torchrun line (several machines: add ``--nnodes``/``--rdzv-endpoint``)::

    torchrun --nproc-per-node 4 -m dinoscope.cli.main adapt IMAGES --model M --out DIR

Without either nothing here does anything.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Distributed", "join_distributed", "spawn"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job."""

    rank: int
    world_size: int
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, net: Any) -> Any:
        """The network in ``DistributedDataParallel`` (parameters the head warm-up freezes get no gradient)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else None
        return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=True)

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every process."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def join_distributed(device: str) -> Distributed | None:
    """Join the job of this process (``WORLD_SIZE`` > 1 in the environment), or None when it runs alone.

    Example:
        >>> join_distributed("cpu") is None
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
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=world)
    return Distributed(rank, world, device)


def spawn(fn: Callable[..., Any], nproc: int, *args: Any) -> None:
    """Run ``fn(*args)`` in ``nproc`` fresh processes joined as one job on this machine (torchrun's environment)."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_child, args=(nproc, port, fn, args), nprocs=nproc, start_method="spawn", join=True)


def _child(rank: int, nproc: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": str(nproc),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
        }
    )
    fn(*args)
