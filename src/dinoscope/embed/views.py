"""A second view of the same objects for copy detection: the denoised view, embedded but not kept in a run.

Augmented copies of one photo (Roboflow exports, albumentations pipelines) differ by a small rotation, a
brightness change and salt-and-pepper noise. Measured on PPE train (3 copies of each photo, EfficientNet-Lite0
fp32): impulse noise is what moves a copy furthest: photo 00599's noisy, darkened copy sits at cosine 0.57-0.63
from its siblings (30th-75th neighbour), and at 0.85-0.86 once all three pass a 3x3 median filter; rotating
or flipping the images does not bring it closer (0.46-0.63 for every dihedral variant and every rotation up
to 15 degrees). :func:`embed_denoised` embeds the objects with ``CropSpec(denoise=True)`` through the engine
(decoded once, batched, content-cached under the denoised crop key) into a temporary store, so the run keeps
its one store and later runs get the view from the cache.

Example:
    >>> vectors, valid = embed_denoised(table, model, CropSpec(), cache_root=None)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dinoscope.embed.spec import CropSpec
from dinoscope.table import ObjectTable

if TYPE_CHECKING:
    from dinoscope.embed.stage import EmbeddingModel

__all__ = ["embed_denoised"]

logger = logging.getLogger(__name__)


def embed_denoised(
    table: ObjectTable,
    model: EmbeddingModel,
    crop: CropSpec,
    *,
    cache_root: Path | None,
    batch_size: int | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """((N, D) float32 unit vectors of every object's denoised crop, zeros where unreadable; (N,) bool: valid).

    Args:
        table: The objects (rows of the result follow it).
        model: The run's embedding model (built only when something is not in the cache).
        crop: The run's crop spec; the view uses it with ``denoise=True``.
        cache_root: Content cache root (None: computed every time).
        batch_size: Crops per batch (default: from free memory).
        workers: Decode worker processes.

    Returns:
        (vectors, valid).
    """
    from dinoscope.embed.cache import EmbeddingCache
    from dinoscope.embed.engine import embed_table
    from dinoscope.embed.store import EmbeddingStore

    view = replace(crop, denoise=True)
    spec = model.spec
    meta = {"model": spec.to_dict(), "crop": view.to_dict()}
    cache = None
    if cache_root is not None:
        cache = EmbeddingCache(cache_root, model_key=spec.key(), crop_key=view.key(), spec=meta)
    with tempfile.TemporaryDirectory(prefix="dinoscope-view-") as tmp:
        store = EmbeddingStore.create(tmp, "denoised", list(table.object_id), spec.embed_dim, meta)
        stats = embed_table(table, model.__call__, store, view, cache=cache, batch_size=batch_size, num_workers=workers)
        valid = store.valid_mask()
        vectors = np.where(valid[:, None], np.asarray(store.vectors, dtype=np.float32), 0.0).astype(np.float32)
        del store
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    logger.info("denoised view: %d objects, %d from the cache, %d computed in %.1f s", stats.n_objects,
                stats.n_cached, stats.n_computed, stats.seconds)  # fmt: skip
    return vectors, valid
