"""Data-parallel jobs on one or several machines (DDP or FSDP): torchrun's environment, or ``--nproc N`` here.

One place for what `seg train` and `adapt` share: :func:`join_distributed` reads torchrun's environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), joins the process group (NCCL on GPUs, gloo on CPUs) and pins each
process to its GPU; :func:`spawn` starts N processes on this machine with that environment (what ``--nproc``
does). Each process trains on its share of every step (the batch size is per process), gradients are averaged by
``DistributedDataParallel`` (:meth:`Distributed.wrap`), and rank 0 alone validates, saves and prints. For
models too large for one device, :meth:`Distributed.shard` shards them with FSDP (torch's ``fully_shard``) and
:func:`full_state` / :func:`load_full_state` gather and restore their whole state dicts for checkpoints that do
not depend on the number of processes' shards. Without either nothing here does anything. torch is imported
only when a job runs.

Example:
    >>> join_distributed("cpu") is None  # not started by torchrun or spawn
    True
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Distributed", "full_state", "join_distributed", "load_full_state", "spawn"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job."""

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

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every process."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def wrap(self, net: Any, *, find_unused_parameters: bool = False) -> Any:
        """The network in ``DistributedDataParallel`` on this process's device (``find_unused_parameters`` when
        some parameters get no gradient in some steps, e.g. frozen during a warm-up)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [int(self.device.split(":")[1])] if self.device.startswith("cuda") else None
        return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def shard(self, net: Any, units: list[Any]) -> Any:
        """Shard ``net`` in place with FSDP (torch's ``fully_shard``, FSDP2): each of ``units`` (e.g. the
        transformer blocks, and every submodule called on its own) becomes one all-gather unit, the rest of
        ``net`` another; each process keeps 1/N of the parameters, gradients and optimiser state. Works on CPUs
        (gloo) as on GPUs (NCCL). Build the optimiser after sharding."""
        from torch.distributed.fsdp import fully_shard

        for unit in units:
            fully_shard(unit)
        return fully_shard(net)

    def close(self) -> None:
        """Leave the process group."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def full_state(net: Any, optimiser: Any = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The whole (unsharded) state dict of an FSDP-sharded ``net`` (and of its ``optimiser``, keyed by
    parameter name), gathered on rank 0 in CPU memory ({} on the other ranks). Every process must call it."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model = get_model_state_dict(net, options=options)
    return model, None if optimiser is None else get_optimizer_state_dict(net, optimiser, options=options)


def load_full_state(net: Any, state: dict[str, Any], optimiser: Any = None, optimiser_state: Any = None) -> None:
    """Load :func:`full_state`'s dicts into the sharded ``net`` (and ``optimiser``): rank 0's are scattered
    to every process's shards (the other processes' may be empty). Every process must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)  # rank 0's copy is scattered
    set_model_state_dict(net, state, options=options)
    if optimiser is not None:
        set_optimizer_state_dict(net, optimiser, optimiser_state, options=options)


def join_distributed(device: str) -> Distributed | None:
    """Join the job of this process (``WORLD_SIZE`` > 1 in the environment), or None when it runs alone.

    Args:
        device: The resolved device (``cuda`` -> ``cuda:<LOCAL_RANK>``; ``cpu`` -> gloo on the CPU).
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
    return Distributed(rank, world, local, device)


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
