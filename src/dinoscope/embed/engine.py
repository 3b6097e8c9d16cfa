"""The embedding engine: object table -> crops -> batches -> vectors in a store, cached by content.

Each source image (or video frame) is decoded once and all of its crops are cut from it in memory, in
DataLoader worker processes that build whole uint8 batches (pinned on CUDA), so the model never waits for
I/O. Crops a caller already holds in memory (video frames cut while detecting) skip the decoding. Vectors
already in the content cache are not recomputed; the store is flushed after every batch so an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope.embed.spec import CropSpec
from dinoscope.errors import BackendError, DinoscopeError, DinoscopeWarning
from dinoscope.table import ObjectTable

if TYPE_CHECKING:
    from dinoscope.embed.base import Backend
    from dinoscope.embed.cache import EmbeddingCache
    from dinoscope.embed.loader import MemoryCrops
    from dinoscope.embed.store import EmbeddingStore

__all__ = ["EmbedStats", "embed_table"]

logger = logging.getLogger(__name__)
_CPU_BATCH = 32
_LOW_MEMORY_FRAC = 0.05


@dataclass
class EmbedStats:
    """What a run did. ``objects_per_s`` counts computed objects over the compute loop's wall time."""

    n_objects: int = 0
    n_cached: int = 0
    n_resumed: int = 0
    n_computed: int = 0
    n_failed: int = 0
    seconds: float = 0.0
    objects_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    batch_size: int = 0
    failures: dict[str, str] = field(default_factory=dict)


def embed_table(
    table: ObjectTable,
    backend: Backend | Callable[[], Backend],
    store: EmbeddingStore,
    crop: CropSpec | None = None,
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
    crops: MemoryCrops | None = None,
) -> EmbedStats:
    """Fill ``store`` (rows aligned with ``table``) with the backend's vectors of every object.

    Rows already done in the store (a resumed run) and vectors found in ``cache`` are not recomputed.
    Unreadable images are reported (file and reason) and their rows marked failed; no row shifts.

    Args:
        table: Objects with ``source`` relative to ``table.root`` (stills, or video frames when ``frame >= 0``).
        backend: A model from :func:`dinoscope.embed.registry.create_backend`, already on its device, or a
            function that makes one: it is called only when something must be computed, so a fully cached
            run never loads the model (nor imports torch).
        store: The run's store for this model and crop spec.
        crop: Crop policy (default: keep the whole object, padded to a square).
        cache: Content cache shared across runs, or None.
        batch_size: Crops per forward pass (default: from free GPU memory, 32 on CPU).
        num_workers: Decode worker processes (default: 1 on a 2-core CPU run, up to 8 with a GPU).
        crops: Crops the caller already holds in memory (rows of ``table``), cut with ``crop`` and the
            backend's input size: they are embedded without opening their source, and the store and the
            cache are filled exactly as for decoded crops. Rows without one are decoded as usual.

    Returns:
        Counts and throughput of the run.

    Example:
        >>> stats = embed_table(table, backend, store, CropSpec(), crops=MemoryCrops(rows, images))  # doctest: +SKIP
    """
    crop = crop or CropSpec()
    stats = EmbedStats(n_objects=len(table))
    todo = store.missing()
    stats.n_resumed = len(table) - len(todo) - len(store.failed)
    keys = None
    if cache is not None and len(todo):
        from dinoscope.embed.cache_keys import cache_keys

        keys = cache_keys(table.data)
        found, vectors = cache.get_many(list(keys[todo]))
        if found.any():
            store.write(todo[found], vectors)
            store.flush()
        stats.n_cached = int(found.sum())
        todo = todo[~found]
    if not len(todo):
        return stats
    from dinoscope.embed.loader import make_loader

    if callable(backend) and not hasattr(backend, "spec"):
        backend = backend()
    device_type = getattr(getattr(backend, "device", None), "type", "cpu")
    stats.batch_size = batch_size or _default_batch_size(backend, device_type)
    loader = make_loader(table, todo, backend.spec, crop, stats.batch_size, num_workers, device_type, crops)
    _run(loader, backend, store, cache, keys, stats)
    return stats


def _run(
    loader: Any,
    backend: Backend,
    store: EmbeddingStore,
    cache: EmbeddingCache | None,
    keys: np.ndarray | None,
    stats: EmbedStats,
) -> None:
    from dinoscope.progress import ProgressBar

    start = time.perf_counter()
    max_chunk = stats.batch_size
    bar = ProgressBar(loader.dataset.n_objects, "embedding", "obj", status=_memory_status)
    try:
        with bar:
            for batch in loader:
                if batch["failed_rows"]:
                    store.mark_failed(np.asarray(batch["failed_rows"]), list(batch["failed_reasons"]))
                    stats.failures.update((source, reason) for source, reason in batch["failed_sources"])
                    stats.n_failed += len(batch["failed_rows"])
                    bar.advance(len(batch["failed_rows"]))
                rows = batch["rows"].numpy()
                if not len(rows):
                    continue
                vectors, max_chunk = _forward(backend, batch["images"], max_chunk)
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)  # cache unit vectors
                store.write(rows, vectors)
                store.flush()
                if cache is not None and keys is not None:
                    cache.put_many(list(keys[rows]), vectors)
                stats.n_computed += len(rows)
                bar.advance(len(rows))
                _check_memory()
    except KeyboardInterrupt:
        store.flush()
        raise DinoscopeError(
            f"interrupted after {stats.n_computed} new vectors; the store is consistent - run again with --resume "
            "to finish"
        ) from None
    finally:
        stats.seconds = time.perf_counter() - start
        stats.objects_per_s = stats.n_computed / stats.seconds if stats.seconds else 0.0
        stats.peak_rss_mb = _peak_rss_mb()
    for source, reason in stats.failures.items():
        logger.warning("%s: not embedded (%s)", source, reason)


def _forward(backend: Backend, images: Any, max_chunk: int) -> tuple[np.ndarray, int]:
    """Run the model in chunks of at most ``max_chunk``, halving it on CUDA out-of-memory errors."""
    import torch

    out, i = [], 0
    while i < len(images):
        chunk = images[i : i + max_chunk]
        try:
            vectors = backend.embed(chunk)
        except torch.OutOfMemoryError:
            if max_chunk == 1:
                raise BackendError("out of GPU memory even with one crop per batch; use --device cpu") from None
            max_chunk = max(1, max_chunk // 2)
            torch.cuda.empty_cache()
            logger.warning("GPU out of memory: batch size lowered to %d", max_chunk)
            continue
        out.append(vectors.float().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors))
        i += len(chunk)
    return np.concatenate(out).astype(np.float32, copy=False), max_chunk


# --- resources -------------------------------------------------------------------------------------------
def _default_batch_size(backend: Backend, device_type: str) -> int:
    if device_type != "cuda":
        return _CPU_BATCH
    import torch

    size = backend.spec.input_size
    probe = torch.zeros((8, size, size, 3), dtype=torch.uint8)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    backend.embed(probe)
    torch.cuda.synchronize()
    per_item = max((torch.cuda.max_memory_allocated() - base) / 8, 1)
    free, _ = torch.cuda.mem_get_info()
    return int(np.clip(0.6 * free / per_item // 8 * 8, 8, 1024))


def _check_memory() -> None:
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        total = float(info["MemTotal"].split()[0])
        available = float(info["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return
    if available / total < _LOW_MEMORY_FRAC:
        import warnings

        warnings.warn(
            f"only {available / 1024:.0f} MB of RAM left: lower --batch-size or --workers",
            DinoscopeWarning,
            stacklevel=2,
        )


def _memory_status() -> str:
    """RAM in use by this process (and GPU memory when CUDA is in use), for the progress bar."""
    import torch

    text = f"RAM {_rss_mb():,.0f} MB"
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        text += f", GPU {torch.cuda.memory_allocated() / 2**20:,.0f} MB"
    return text


def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, OSError):
        return 0.0
