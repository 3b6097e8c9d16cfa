"""``dinoscope search RUN (--image FILE [--box x1,y1,x2,y2] | --object ID) --k 20``: the run's most similar objects.

The run's persistent index (:func:`~dinoscope.analysis.search_index.open_index`: built on the first search,
rows added when the store has grown since) answers the query. A query image (or a box of it) is embedded like
the run's objects: the store's own model spec (name, pooling, input size) and crop spec, through the engine
and the content cache, so searching with an image of the dataset costs no model load when its vector is
cached. Results: a table (with the ``file:line`` of each object's label) and an offline HTML page with
thumbnails in the run's ``searches/`` room.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope.config import build_config
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.options import DeviceOptions, NeighboursOptions, RunOptions, SearchQueryOptions
from dinoscope.run import Run
from dinoscope.workflows.analyze import StoreOptions

if TYPE_CHECKING:
    import pandas as pd

    from dinoscope.embed.store import EmbeddingStore

__all__ = ["SearchConfig", "SearchResult", "parse_box", "search", "search_from_config"]

#: Columns of the result table, in order.
HIT_COLUMNS = ("rank", "similarity", "object_id", "class_name", "split", "source", "frame", "label_ref")


class SearchConfig(RunOptions, StoreOptions, SearchQueryOptions, NeighboursOptions, DeviceOptions):
    """Settings of ``dinoscope search RUN``."""


@dataclass
class SearchResult:
    """What a search found.

    Attributes:
        query: Description of the query (``object <id>`` or ``<file> [box]``).
        hits: One row per result, most similar first (:data:`HIT_COLUMNS` and the box).
        page: The HTML page written in the run's ``searches/`` room.
        index: The index's info (kind, size, ``status``: read / updated / built).
        embedded: How the query vector was obtained (``store``, ``cache`` or ``model``).
    """

    query: str
    hits: pd.DataFrame
    page: Path
    index: dict[str, Any]
    embedded: str


def search(**kwargs: Any) -> SearchResult:
    """Search a run for the objects most similar to an image, a box or one of its objects.

    Keyword arguments are the fields of :class:`SearchConfig`.

    Example:
        >>> result = search(run="runs/ppe", image="query.jpg", box="10,20,120,200", k=20)  # doctest: +SKIP
        >>> result.hits[["similarity", "label_ref"]].head(3)  # doctest: +SKIP
    """
    return search_from_config(build_config(SearchConfig, **kwargs))


def search_from_config(config: SearchConfig) -> SearchResult:
    """Run a search described by a validated config (see :func:`search`)."""
    from dinoscope.analysis.search_index import open_index
    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.report.search_page import write_search_page

    if (config.image is None) == (config.object is None):
        raise ConfigError("give exactly one query: --image FILE (optionally --box x1,y1,x2,y2) or --object ID")
    if config.box is not None and config.image is None:
        raise ConfigError("--box applies to --image; give the image the box is drawn on")
    run = Run.open(config.run)
    name = run.store_name(config.store)
    store = EmbeddingStore.open(run.embeddings_dir, name)
    if config.object is not None:
        row = _row_of(store, config.object, run)
        vector, exclude, embedded = store.get([config.object]), np.array([row]), "store"
        query = f"object {config.object}"
    else:
        box = parse_box(config.box) if config.box else None
        vector, embedded = embed_query(run, store, Path(config.image), box, device=config.device)
        exclude, query = None, f"{config.image}" + (f" box {config.box}" if box else "")
    index = open_index(run, name)
    rows, sims = index.search(vector, config.k, exclude_rows=exclude)
    table = run.read_objects()
    hits = _hits(table.data, store, rows[0], sims[0])
    page = run.search_page_path(_page_name(query))
    query_image = (Path(config.image), parse_box(config.box) if config.box else None) if config.image else None
    write_search_page(page, query, hits, table.root, query_image=query_image, index_info=index.info)
    return SearchResult(query, hits, page, dict(index.info), embedded)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x1,y1,x2,y2"`` -> four floats.

    Raises:
        ConfigError: Not four numbers.

    Example:
        >>> parse_box("10,20,110,90.5")
        (10.0, 20.0, 110.0, 90.5)
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        x1, y1, x2, y2 = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--box {text!r}: expected four numbers x1,y1,x2,y2 in pixels (--box 10,20,110,90)") from None
    return x1, y1, x2, y2


def embed_query(
    run: Run, store: EmbeddingStore, image: Path, box: tuple[float, float, float, float] | None, *, device: str
) -> tuple[np.ndarray, str]:
    """(1, D) vector of an image (or a box of it) with the store's model and crop specs, and its origin
    (``cache`` or ``model``).

    The model is rebuilt from the store's spec (name, pooling, input size; a ``timm:`` model's weights file
    from the run's config) and checked to give the same spec key, so the vector is comparable to the store's.
    """
    from dinoscope.embed.cache import EmbeddingCache
    from dinoscope.embed.engine import embed_table
    from dinoscope.embed.spec import CropSpec, ModelSpec
    from dinoscope.embed.stage import EmbeddingModel, cache_root_of
    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.io.folders import read_image_file
    from dinoscope.options import CacheOptions

    if not isinstance(store.spec.get("model"), dict) or not isinstance(store.spec.get("crop"), dict):
        raise DinoscopeError(f"{store.json_path}: the store does not record its model and crop specs; re-embed the run")
    spec, crop = ModelSpec.from_dict(store.spec["model"]), CropSpec(**store.spec["crop"])
    config = run.read_yaml().get("config", {}) or {}
    cache_root = cache_root_of(CacheOptions(cache_dir=config.get("cache_dir"), no_cache=config.get("no_cache", False)))
    weights = config.get("weights") if spec.name.startswith("timm:") else None
    precision = (run.read_yaml().get("embedding") or {}).get("precision", "auto")
    model = EmbeddingModel(
        spec.name,
        pooling=spec.pooling,
        input_size=spec.input_size,
        device=device,
        precision=precision if precision in ("fp32", "bf16", "fp16") else "auto",
        allow_download=bool(config.get("allow_download", False)),
        weights=Path(weights) if weights else None,
        cache_root=cache_root,
    )
    if model.remembered is not None and model.remembered.key() != spec.key():
        raise DinoscopeError(f"{spec.name}: the model's spec changed since the run was embedded; re-embed the run")
    table = read_image_file(image, box)
    cache = None
    if cache_root is not None:
        meta = {"model": spec.to_dict(), "crop": crop.to_dict()}
        cache = EmbeddingCache(cache_root, model_key=spec.key(), crop_key=crop.key(), spec=meta)
    with tempfile.TemporaryDirectory(prefix="dinoscope-query-") as tmp:
        query_store = EmbeddingStore.create(Path(tmp), "query", list(table.object_id), spec.embed_dim, {})
        stats = embed_table(table, model.__call__, query_store, crop, cache=cache, num_workers=0)
        if stats.n_failed:
            raise DinoscopeError(f"{image}: could not be embedded ({next(iter(stats.failures.values()), '')})")
        if model.backend is not None and model.backend.spec.key() != spec.key():
            raise DinoscopeError(f"{spec.name}: the model gives other vectors than the run's store; re-embed the run")
        vector = query_store.get(list(table.object_id))
        query_store.close()
    return vector, "cache" if stats.n_cached else "model"


def _row_of(store: EmbeddingStore, object_id: str, run: Run) -> int:
    try:
        row = int(store.rows_of([object_id])[0])
    except KeyError:
        raise DinoscopeError(
            f"{run.objects_path}: no object {object_id!r}; give an object_id from objects.parquet or the report"
        ) from None
    if not store.valid_mask()[row]:
        raise DinoscopeError(f"{store.path}: object {object_id!r} has no vector (it could not be embedded)")
    return row


def _hits(data: pd.DataFrame, store: EmbeddingStore, rows: np.ndarray, sims: np.ndarray) -> pd.DataFrame:
    """The result rows joined with the object table (class, split, source, label reference, box)."""
    import pandas as pd

    keep = rows >= 0
    ids = store.object_ids[rows[keep]]
    found = data.set_index("object_id").loc[list(ids)].reset_index()
    found.insert(0, "similarity", sims[keep].astype(float))
    found.insert(0, "rank", np.arange(1, int(keep.sum()) + 1))
    return pd.DataFrame(found[[*HIT_COLUMNS, "x1", "y1", "x2", "y2"]])


def _page_name(query: str) -> str:
    """A file-name-safe stem for the page of a query."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", query).strip("_")[:80] or "query"
