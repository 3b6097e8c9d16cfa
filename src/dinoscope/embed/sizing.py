"""How the engine shares a CPU between decoding and the model: workers and threads from measured costs.

On a CPU the two sides of the engine compete for the same cores: decoding + cropping (one core per worker
process) and the forward pass (torch's intra-op threads). Oversubscribing the cores (a decode worker beside a
model that uses every core) costs a light model a third of its speed: the worker preempts one of torch's
threads and every parallel region waits for that straggler. The engine therefore times a first calibration
batch — decode + crop per object, and the forward per object with every core and with one thread — and
:func:`plan_split` picks, among the splits that never ask for more than the cores it has, the one with the
highest predicted throughput:

- ``in-process``: no worker; decode, then forward on every core, one after the other:
  ``1 / (decode + forward(C))``.
- ``pipeline``: ``w`` decode workers feed a model with ``C - w`` threads: ``min(w / decode, 1 / forward(C - w))``.
- ``replicas``: ``C`` worker processes each decode their share and run the model on one thread (the main
  process only writes the store): ``C / (decode + forward(1))`` — the bound of a light model, one core-second
  per (decode + crop + forward) of each object, perfectly overlapped; memory grows by one activation set per
  replica (the weights are shared copy-on-write after fork).

``forward(t)`` is interpolated linearly in throughput between the two measured points (1 thread, C threads).

A split must beat a simpler one by a margin. Pipeline vs in-process: 5 % (timing noise). Replicas: their
prediction assumes ``C`` single-thread processes scale perfectly, while the threads were measured to reach
``s = forward(1) / forward(C)``, an efficiency ``e = s / C``. Threads fall short for two reasons: the parallel
regions' synchronisation (a light model's many small ops; replicas avoid it) and shared memory bandwidth and
caches (a heavy model's; replicas meet it too — DINOv2-small measured 1.82x on 2 threads, its replicas reached
0.94 of the threaded split although predicted 10 % faster). The closer the threads come to the cores, the more
of their shortfall is the shared kind, so the margin replicas must clear grows with ``e``:
``max(1.05, 1 + 0.02 e / (1 - e))`` — 1.05 up to e = 0.71, 1.11 at EfficientNet-Lite0's measured 1.69x on 2
cores (replicas predicted +22 %: chosen, measured 1.25x the fixed split), 1.20 at DINOv2-small's 1.82x
(predicted +11 %: the 2-thread model is kept), never when the threads scale perfectly.

Example:
    >>> split = plan_split(2, decode_s=0.002, forward_1_s=0.010, forward_n_s=0.006)
    >>> split.mode, split.workers, split.threads
    ('replicas', 2, 1)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from dinoscope.embed.base import Backend
    from dinoscope.embed.spec import CropSpec
    from dinoscope.table import ObjectTable

__all__ = ["Split", "available_cores", "calibrate", "forward_seconds", "plan_split", "replicas_margin"]

Mode = Literal["in-process", "pipeline", "replicas"]
#: A split must beat a simpler one (earlier in :data:`_ORDER`) by this factor to be chosen (measurement noise).
MARGIN = 1.05
#: Replicas must beat a threaded split by ``1 + REPLICA_MARGIN * e / (1 - e)`` (at least :data:`MARGIN`), ``e``
#: the threads' measured efficiency (see the module docstring).
REPLICA_MARGIN = 0.02
_ORDER: dict[str, int] = {"in-process": 0, "pipeline": 1, "replicas": 2}


@dataclass(frozen=True)
class Split:
    """Workers and threads of one embedding run, and the measured costs they were chosen from.

    Attributes:
        mode: ``in-process``, ``pipeline`` or ``replicas`` (see the module docstring).
        workers: DataLoader worker processes (decoding; in ``replicas`` mode they run the model too).
        threads: torch intra-op threads of each process that runs the model.
        predicted_per_s: Predicted objects per second.
        decode_s: Measured core-seconds of decode + crop per object.
        forward_1_s: Measured seconds of forward per object on one thread.
        forward_n_s: Measured seconds of forward per object on every core.
    """

    mode: Mode
    workers: int
    threads: int
    predicted_per_s: float = 0.0
    decode_s: float = 0.0
    forward_1_s: float = 0.0
    forward_n_s: float = 0.0

    def describe(self) -> str:
        """One line: the split and the costs behind it (the benchmark prints it).

        Example:
            >>> Split("pipeline", 1, 1, 100.0, 0.001, 0.01, 0.006).describe()[:31]
            'pipeline: 1 workers x 1 threads'
        """
        return (
            f"{self.mode}: {self.workers} workers x {self.threads} threads (decode {self.decode_s * 1e3:.1f} ms, "
            f"forward {self.forward_1_s * 1e3:.1f} ms on 1 thread / {self.forward_n_s * 1e3:.1f} ms on all cores "
            f"per object; predicted {self.predicted_per_s:.0f} obj/s)"
        )


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells, else ``os.cpu_count()``).

    Example:
        >>> available_cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def forward_seconds(threads: int, n_cores: int, forward_1_s: float, forward_n_s: float) -> float:
    """Seconds of forward per object on ``threads`` threads: throughput interpolated linearly between the
    measured points at 1 thread and at ``n_cores`` threads.

    Example:
        >>> round(forward_seconds(2, 3, 0.010, 0.005), 5)
        0.00667
    """
    if n_cores <= 1 or threads <= 1:
        return forward_1_s
    frac = (min(threads, n_cores) - 1) / (n_cores - 1)
    rate = (1 - frac) / forward_1_s + frac / forward_n_s
    return 1.0 / rate


def plan_split(n_cores: int, *, decode_s: float, forward_1_s: float, forward_n_s: float) -> Split:
    """The split of ``n_cores`` CPU cores between decoding and the model with the highest predicted throughput.

    A split must beat a simpler one (in-process, then pipeline, then replicas) by :data:`MARGIN` to be chosen,
    replicas by :func:`replicas_margin` (more when the threads already scale well).

    Args:
        n_cores: Cores available (>= 1).
        decode_s: Core-seconds of decode + crop per object (> 0).
        forward_1_s: Seconds of forward per object on one thread (> 0).
        forward_n_s: Seconds of forward per object on ``n_cores`` threads (> 0).

    Returns:
        The chosen :class:`Split`.

    Example:
        >>> plan_split(2, decode_s=0.001, forward_1_s=0.2, forward_n_s=0.1).mode  # heavy model, cheap decode
        'in-process'
    """
    c = max(1, int(n_cores))
    d, f1, fn = (max(float(v), 1e-9) for v in (decode_s, forward_1_s, forward_n_s))
    candidates = [Split("in-process", 0, c, 1.0 / (d + fn))]
    for w in range(1, c):
        t = c - w
        candidates.append(Split("pipeline", w, t, min(w / d, 1.0 / forward_seconds(t, c, f1, fn))))
    if c > 1:
        candidates.append(Split("replicas", c, 1, c / (d + f1)))
    best = candidates[0]
    for s in candidates[1:]:
        margin = MARGIN if _ORDER[s.mode] > _ORDER[best.mode] else 1.0
        if s.mode == "replicas":
            margin = replicas_margin(c, f1, fn)
        if s.predicted_per_s > best.predicted_per_s * margin:
            best = s
    return Split(best.mode, best.workers, best.threads, best.predicted_per_s, d, f1, fn)


def replicas_margin(n_cores: int, forward_1_s: float, forward_n_s: float) -> float:
    """The factor by which replicas must beat a threaded split: ``max(MARGIN, 1 + REPLICA_MARGIN e / (1 - e))``
    with ``e`` the threads' efficiency ``forward_1_s / forward_n_s / n_cores`` (infinite when ``e >= 1``).

    Example:
        >>> round(replicas_margin(2, 0.034, 0.0201), 3), round(replicas_margin(2, 0.2026, 0.1113), 3)
        (1.11, 1.203)
    """
    e = forward_1_s / max(forward_n_s, 1e-12) / max(n_cores, 1)
    if e >= 1:
        return float("inf")
    return max(MARGIN, 1.0 + REPLICA_MARGIN * e / (1.0 - e))


def calibrate(
    table: ObjectTable, rows: np.ndarray, backend: Backend, crop: CropSpec, n_per_part: int, n_cores: int
) -> tuple[Split, dict[str, Any], np.ndarray] | None:
    """Time decode + crop and the forward pass (every core, then one thread) on the first objects of ``rows``.

    The calibration objects are embedded for real (nothing is thrown away): they come back as one batch dict
    (``rows``, ``vectors`` and the failure lists, as the loader's batches) with the table rows it covers.

    Args:
        table: The object table.
        rows: (m,) rows still to embed.
        backend: The model (on the CPU).
        crop: The crop policy.
        n_per_part: Objects per timed part (three parts: warm-up, every core, one thread).
        n_cores: Cores to plan for.

    Returns:
        (the split, the calibration batch, the rows it covers), or None when too few objects could be decoded.
    """
    import torch

    from dinoscope.embed.loader import make_loader

    sources = table.data["source"].to_numpy()[rows]
    order = np.argsort(sources, kind="stable")  # the loader's order: one decode pass per source
    first = sources[order[0]]
    warm_rows = rows[sources == first]
    need = 3 * n_per_part
    picked = rows[np.isin(sources, np.unique(sources[order[: need + len(warm_rows)]]))]
    timed_rows = picked[~np.isin(picked, warm_rows)]
    if len(timed_rows) < need:
        return None
    spec = backend.spec
    batches = list(make_loader(table, warm_rows, spec, crop, len(warm_rows), 0, "cpu"))  # warm-up: imports, caches
    start = time.perf_counter()
    batches += list(make_loader(table, timed_rows, spec, crop, len(timed_rows), 0, "cpu"))
    decode_s = (time.perf_counter() - start) / len(timed_rows)
    images = torch.cat([b["images"] for b in batches])
    if len(images) < need:
        return None
    parts, times = [], []
    threads = torch.get_num_threads()
    try:
        for i, n_threads in enumerate((n_cores, n_cores, 1)):
            torch.set_num_threads(n_threads)
            start = time.perf_counter()
            parts.append(backend.embed(images[i * n_per_part : (i + 1) * n_per_part]))
            times.append((time.perf_counter() - start) / n_per_part)
        torch.set_num_threads(n_cores)
        if len(images) > need:
            parts.append(backend.embed(images[need:]))
    finally:
        torch.set_num_threads(threads)
    split = plan_split(n_cores, decode_s=decode_s, forward_1_s=times[2], forward_n_s=times[1])
    batch = {
        "rows": torch.cat([b["rows"] for b in batches]),
        "vectors": torch.cat([p.float().cpu() for p in parts]),
        "failed_rows": [r for b in batches for r in b["failed_rows"]],
        "failed_reasons": [r for b in batches for r in b["failed_reasons"]],
        "failed_sources": [s for b in batches for s in b["failed_sources"]],
    }
    return split, batch, picked
