"""Throughput and memory reporting of model runs: items per second, peak RAM and peak GPU memory.

Part of the public runtime (:mod:`dinoscope.embed.runtime`): the embedding engine reports objects/s, the patch
PCA patches/s, both with the same memory figures, and the progress bars show the same live memory status.

Example:
    >>> with measure_throughput() as t:
    ...     t.n_items += 10
    >>> t.n_items, t.seconds >= 0.0, t.peak_rss_mb > 0.0
    (10, True, True)
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dinoscope.errors import DinoscopeWarning

__all__ = [
    "LOW_MEMORY_FRAC",
    "Throughput",
    "gpu_memory_mb",
    "measure_throughput",
    "memory_status",
    "peak_gpu_memory_mb",
    "peak_rss_mb",
    "rss_mb",
    "warn_if_low_memory",
]

#: Fraction of the machine's RAM left under which :func:`warn_if_low_memory` warns.
LOW_MEMORY_FRAC = 0.05


@dataclass
class Throughput:
    """What a measured loop did: items over wall time, and the memory high-water marks at its end.

    Attributes:
        n_items: Items computed (objects, frames, patches: the caller counts).
        seconds: Wall time of the loop.
        peak_rss_mb: Peak resident memory of this process (MiB).
        peak_gpu_mb: Peak CUDA memory allocated during the loop (MiB; 0 without CUDA).
    """

    n_items: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float = 0.0

    @property
    def items_per_s(self) -> float:
        """Items per second (0 when no time was measured)."""
        return self.n_items / self.seconds if self.seconds else 0.0


@contextmanager
def measure_throughput(device_type: str = "cpu") -> Iterator[Throughput]:
    """Measure a loop: the caller adds to ``n_items``; time and memory are filled in on exit, even on errors.

    Args:
        device_type: ``cuda`` resets and reads the CUDA peak-memory counters; other devices report RAM only.
    """
    cuda = device_type == "cuda" and _cuda_initialized()
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    result = Throughput()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        result.peak_rss_mb = peak_rss_mb()
        result.peak_gpu_mb = peak_gpu_memory_mb() if cuda else 0.0


def rss_mb() -> float:
    """Resident memory of this process now (MiB; the peak where the current value cannot be read)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB; 0 where the platform does not tell)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return 0.0
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB elsewhere


def gpu_memory_mb() -> float:
    """CUDA memory allocated by this process now (MiB; 0 when CUDA is not in use)."""
    if not _cuda_initialized():
        return 0.0
    import torch

    return torch.cuda.memory_allocated() / 2**20


def peak_gpu_memory_mb() -> float:
    """Peak CUDA memory allocated since the last reset of the counters (MiB; 0 when CUDA is not in use)."""
    if not _cuda_initialized():
        return 0.0
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def memory_status() -> str:
    """RAM in use by this process, and GPU memory when CUDA is in use: the status text of progress bars.

    Example:
        >>> memory_status().startswith("RAM ")
        True
    """
    text = f"RAM {rss_mb():,.0f} MB"
    if _cuda_initialized():
        text += f", GPU {gpu_memory_mb():,.0f} MB"
    return text


def warn_if_low_memory(frac: float = LOW_MEMORY_FRAC) -> None:
    """Warn (:class:`~dinoscope.errors.DinoscopeWarning`) when less than ``frac`` of the machine's RAM is free."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        total = float(info["MemTotal"].split()[0])
        available = float(info["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return
    if available / total < frac:
        warnings.warn(
            f"only {available / 1024:.0f} MB of RAM left: lower --batch-size or --workers",
            DinoscopeWarning,
            stacklevel=2,
        )


def _cuda_initialized() -> bool:
    """True when torch is loaded and has initialised CUDA (never imports torch nor initialises CUDA itself)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
