"""Where ``--engine ray`` runs decoding and the model: the ``split`` and ``fused`` layouts of
:mod:`~dinoscope.embed.ray_engine` (see its docstring), chosen from the cluster's CPUs and GPUs, and the pieces
of shards a ``fused`` actor takes one at a time. Pure functions: no Ray needed.

Example:
    >>> plan_layout(2, 0).describe()
    'fused: 2 actors x 1 CPU, 1 thread each (decode + crop + forward in each actor)'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dinoscope.errors import ConfigError

__all__ = ["DECODE_CPUS", "Layout", "pieces", "plan_layout"]

#: CPUs a decoding task of ``split`` asks Ray for (decoding one shard is light; several share a core).
DECODE_CPUS = 0.25


@dataclass(frozen=True)
class Layout:
    """Where decoding and the model run on the cluster (see the module docstring).

    Attributes:
        name: ``split`` (decode tasks -> model actors) or ``fused`` (actors decode, crop and embed).
        actors: Model actors in the pool.
        actor_cpus: CPUs each actor asks Ray for.
        threads: torch intra-op threads of each actor.
        gpu: Each actor holds one GPU.
    """

    name: str
    actors: int
    actor_cpus: float
    threads: int
    gpu: bool = False

    def describe(self) -> str:
        """One line for the logs, ``run.yaml`` (``embed_stats.split``) and the benchmark.

        Example:
            >>> Layout("fused", 2, 1.0, 1).describe()
            'fused: 2 actors x 1 CPU, 1 thread each (decode + crop + forward in each actor)'
        """
        where = "1 GPU" if self.gpu else f"{self.actor_cpus:g} CPU"
        work = "decode + crop + forward in each actor" if self.name == "fused" else "decode tasks -> model actors"
        return f"{self.name}: {self.actors} actors x {where}, {self.threads} thread each ({work})"


def plan_layout(
    cpus: float, gpus: float, device: str = "auto", workers: int | None = None, name: str | None = None
) -> Layout:
    """The layout of a cluster with ``cpus`` CPUs and ``gpus`` GPUs for a model on ``device``.

    With GPUs for the model (``device`` ``auto`` or ``cuda...``): ``split``, one actor per GPU (or ``workers``)
    and one CPU each; decoding runs as CPU tasks on every node. CPU only: ``fused``, ``workers`` actors
    (default: one per CPU, the local engine's ``replicas``, the fastest split of a CPU for a light model —
    :mod:`~dinoscope.embed.sizing`), each with an equal share of the CPUs (whole cores when there are enough)
    and as many torch threads. A fused actor holds its own copy of the model (no fork to share it).

    Args:
        cpus: CPUs of the cluster.
        gpus: GPUs of the cluster.
        device: The model's device (``--device``).
        workers: Model actors (``--workers``; None: as above).
        name: Force ``split`` or ``fused`` (None: as above). A forced ``split`` on CPUs leaves one CPU to the
            decoding tasks and shares the rest between the actors.

    Example:
        >>> plan_layout(2, 0).describe()
        'fused: 2 actors x 1 CPU, 1 thread each (decode + crop + forward in each actor)'
        >>> plan_layout(64, 8).name, plan_layout(64, 8).actors
        ('split', 8)
        >>> plan_layout(8, 0, workers=2).threads
        4
    """
    wants_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
    if wants_gpu and gpus <= 0:
        raise ConfigError(
            f"--device {device} but the Ray cluster has no GPU (Ray would wait for one forever); use --device auto "
            "or cpu, or add GPU nodes to the cluster"
        )
    name = name or ("split" if wants_gpu else "fused")
    if name not in ("split", "fused"):
        raise ValueError(f"Ray layout must be split or fused, not {name!r}")
    if name == "split":
        n = workers or max(1, int(gpus))
        if wants_gpu:
            return Layout("split", n, 1.0, 1, gpu=True)
        share = max(DECODE_CPUS, (cpus - 1) / n)
        return Layout("split", n, share, max(1, round(share)))
    n = workers or max(1, int(cpus))
    share = float(cpus // n) if n <= cpus else max(cpus, 0.01) / n
    return Layout("fused", n, share, max(1, int(share)))


def pieces(shards: list[tuple[int, np.ndarray]], sources: np.ndarray, size: int) -> list[tuple[int, np.ndarray]]:
    """Each shard's rows (grouped by source, as ``shard_rows`` makes them) cut into pieces of about ``size``
    objects, whole source files each; every piece keeps its shard's number (the work items of ``fused``).

    Example:
        >>> sources = np.array(["a", "a", "b", "c"])
        >>> [(k, r.tolist()) for k, r in pieces([(0, np.arange(4))], sources, 2)]
        [(0, [0, 1]), (0, [2, 3])]
    """
    out = []
    for k, rows in shards:
        src = sources[rows]
        ends = np.flatnonzero(np.r_[src[1:] != src[:-1], True]) + 1
        start = 0
        for end in ends.tolist():
            if end - start >= size or end == len(rows):
                out.append((k, rows[start:end]))
                start = end
    return out
