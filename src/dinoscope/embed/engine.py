"""The embedding engine: object table -> crops -> batches -> vectors in a store, cached by content.

Each source image (or video frame) is decoded once and all of its crops are cut from it in memory, in
DataLoader worker processes that build whole uint8 batches (pinned on CUDA), so the model never waits for
I/O. Crops a caller already holds in memory (video frames cut while detecting) skip the decoding. Vectors
already in the content cache are not recomputed; the store is flushed after every batch so an interrupted
run resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from dinoscope.embed.runtime import ChunkedForward, choose_batch_size, device_type_of
from dinoscope.embed.runtime_stats import measure_throughput, memory_status, warn_if_low_memory
from dinoscope.embed.spec import CropSpec
from dinoscope.errors import DinoscopeError
from dinoscope.table import ObjectTable

if TYPE_CHECKING:
    from dinoscope.embed.base import Backend
    from dinoscope.embed.cache import EmbeddingCache
    from dinoscope.embed.loader import MemoryCrops
    from dinoscope.embed.store import EmbeddingStore

__all__ = ["EmbedStats", "embed_table", "take_cached"]

logger = logging.getLogger(__name__)

#: Runs with fewer objects to compute keep the default split (a calibration would cost more than it saves).
CALIBRATE_MIN_OBJECTS = 256
#: Objects per timed part of the calibration (three parts; at most the batch size).
CALIBRATE_PART = 16


@dataclass
class EmbedStats:
    """What a run did. ``objects_per_s`` counts computed objects over the compute loop's wall time; the memory
    figures are the process' peak RAM and the peak CUDA memory of the loop (0 without CUDA)."""

    n_objects: int = 0
    n_cached: int = 0
    n_resumed: int = 0
    n_computed: int = 0
    n_failed: int = 0
    seconds: float = 0.0
    objects_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float = 0.0
    batch_size: int = 0
    split: str = ""
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
        batch_size: Crops per forward pass (default: :func:`~dinoscope.embed.runtime.choose_batch_size`, from
            free GPU memory, 32 on CPU).
        num_workers: Decode worker processes (default on a CPU: the split of the cores between decoding and the
            model that :mod:`~dinoscope.embed.sizing` predicts fastest from a timed first batch; up to 8
            workers with a GPU).
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
    todo, keys = take_cached(table, store, cache, todo, stats)
    if not len(todo):
        return stats
    from dinoscope.embed.loader import make_loader

    if callable(backend) and not hasattr(backend, "spec"):
        backend = backend()
    model = cast("Backend", backend)
    device_type = device_type_of(model)
    stats.batch_size = batch_size or choose_batch_size(model.embed, model.spec.input_size, device_type)
    first: list[dict[str, Any]] = []
    threads, calibration_s = None, 0.0
    if num_workers is None and device_type == "cpu" and crops is None and len(todo) >= CALIBRATE_MIN_OBJECTS:
        from dinoscope.embed.sizing import available_cores, calibrate

        part = min(stats.batch_size, CALIBRATE_PART)
        started = time.perf_counter()
        found = calibrate(table, todo, model, crop, part, available_cores())
        calibration_s = time.perf_counter() - started
        if found is not None:
            split, batch, done = found
            first, todo, num_workers, threads = [batch], todo[~np.isin(todo, done)], split.workers, split.threads
            stats.split = split.describe()
            logger.info("engine split: %s", stats.split)
    replicas = stats.split.startswith("replicas")
    loader = make_loader(
        table, todo, model.spec, crop, stats.batch_size, num_workers, device_type, crops, model if replicas else None
    )
    n_first = sum(len(b["rows"]) + len(b["failed_rows"]) for b in first)
    _run(chain(first, loader), n_first + loader.dataset.n_objects, model, store, cache, keys, stats, threads)
    if first:  # the calibration computed real vectors: its time belongs to the loop's
        stats.seconds += calibration_s
        stats.objects_per_s = stats.n_computed / stats.seconds if stats.seconds else 0.0
    return stats


def take_cached(
    table: ObjectTable, store: EmbeddingStore, cache: EmbeddingCache | None, todo: np.ndarray, stats: EmbedStats
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fill the rows of ``todo`` whose vectors are in ``cache`` into the store (counted in ``stats.n_cached``).

    Returns:
        (the rows still to compute, the content keys of every table row or None without a cache).
    """
    if cache is None or not len(todo):
        return todo, None
    from dinoscope.embed.cache_keys import cache_keys

    keys = cache_keys(table.data)
    found, vectors = cache.get_many(list(keys[todo]))
    if found.any():
        store.write(todo[found], vectors)
        store.flush()
    stats.n_cached = int(found.sum())
    return todo[~found], keys


def _run(
    batches: Iterable[dict[str, Any]],
    n_objects: int,
    backend: Backend,
    store: EmbeddingStore,
    cache: EmbeddingCache | None,
    keys: np.ndarray | None,
    stats: EmbedStats,
    threads: int | None = None,
) -> None:
    from dinoscope.progress import ProgressBar

    forward = ChunkedForward(backend.embed, stats.batch_size)
    bar = ProgressBar(n_objects, "embedding", "obj", status=memory_status)
    before = _set_threads(threads)
    try:
        with measure_throughput(device_type_of(backend)) as meter, bar:
            for batch in batches:
                if batch["failed_rows"]:
                    store.mark_failed(np.asarray(batch["failed_rows"]), list(batch["failed_reasons"]))
                    stats.failures.update((source, reason) for source, reason in batch["failed_sources"])
                    stats.n_failed += len(batch["failed_rows"])
                    bar.advance(len(batch["failed_rows"]))
                rows = batch["rows"].numpy()
                if not len(rows):
                    continue
                # the cache holds unit vectors; replica workers (and the calibration) bring them computed
                vectors = _unit_vectors([batch["vectors"]] if "vectors" in batch else forward(batch["images"]))
                store.write(rows, vectors)
                store.flush()
                if cache is not None and keys is not None:
                    cache.put_many(list(keys[rows]), vectors)
                stats.n_computed += len(rows)
                meter.n_items += len(rows)
                bar.advance(len(rows))
                warn_if_low_memory()
    except KeyboardInterrupt:
        store.flush()
        raise DinoscopeError(
            f"interrupted after {stats.n_computed} new vectors; the store is consistent - run again with --resume "
            "to finish"
        ) from None
    finally:
        _set_threads(before)
        stats.seconds, stats.objects_per_s = meter.seconds, meter.items_per_s
        stats.peak_rss_mb, stats.peak_gpu_mb = meter.peak_rss_mb, meter.peak_gpu_mb
    for source, reason in stats.failures.items():
        logger.warning("%s: not embedded (%s)", source, reason)


def _set_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads (None: leave them); returns the previous number (None if unchanged)."""
    if threads is None:
        return None
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


def _unit_vectors(parts: list[Any]) -> np.ndarray:
    """The chunks' (k, D) vectors (torch or numpy) as one (B, D) float32 array of unit rows."""
    import torch

    vectors = np.concatenate(
        [p.float().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p) for p in parts]
    ).astype(np.float32, copy=False)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
