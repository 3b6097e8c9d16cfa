"""``dinoscope embed`` as a library call: dataset -> run directory with the object table and its vectors."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dinoscope.config import EmbedConfig, build_config
from dinoscope.embed.base import Backend
from dinoscope.embed.engine import EmbedStats, embed_table
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.errors import DinoscopeError
from dinoscope.run import RunDir
from dinoscope.table import ObjectTable

__all__ = ["EmbedResult", "embed", "embed_from_config"]

logger = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    """What ``embed`` produced.

    Attributes:
        run_dir: The run directory.
        store_path: The ``.npy`` file of the vectors.
        spec: The model spec.
        crop: The crop spec.
        stats: Counts and throughput.
    """

    run_dir: Path
    store_path: Path
    spec: ModelSpec
    crop: CropSpec
    stats: EmbedStats


def embed(**kwargs: Any) -> EmbedResult:
    """Embed every object of a dataset; keyword arguments are the fields of :class:`EmbedConfig`.

    Example:
        >>> result = embed(dataset="datasets/ppe", out="runs/ppe", model="efficientnet-lite0")  # doctest: +SKIP
        >>> result.stats.n_computed  # doctest: +SKIP
        4625
    """
    return embed_from_config(build_config(EmbedConfig, **kwargs))


def embed_from_config(config: EmbedConfig) -> EmbedResult:
    """Run the embedding described by a validated config (see :func:`embed`)."""
    from dinoscope.embed.cache import EmbeddingCache, resolve_cache_root
    from dinoscope.embed.registry import create_backend
    from dinoscope.embed.specmemo import load_spec, save_spec
    from dinoscope.embed.store import EmbeddingStore, store_name

    started = time.perf_counter()
    run = RunDir.create(config.out, resume=config.resume, overwrite=config.overwrite)
    table = _objects(config, run)
    crop = CropSpec(policy=config.crop, context_frac=config.context, fill=config.fill, min_size_px=config.min_size)
    cache_root = resolve_cache_root(config.cache_dir)
    options = {"pooling": config.pooling, "input_size": config.input_size}
    spec = None if config.no_cache else load_spec(cache_root, config.model, options)
    built: list[Backend] = []

    def backend() -> Backend:
        """The model on its device, built on first need (never when every vector is cached)."""
        if not built:
            b = create_backend(config.model, **options, allow_download=config.allow_download)
            if hasattr(b, "to"):
                b.to(config.device, precision=config.precision, compile=config.compile)
            if spec is not None and b.spec.key() != spec.key():
                raise DinoscopeError(
                    f"model {config.model!r} changed since its spec was remembered; run "
                    "`dinoscope cache clear` and try again"
                )
            if not config.no_cache:
                save_spec(cache_root, config.model, options, b.spec)
            built.append(b)
        return built[0]

    spec = spec or backend().spec
    name = store_name(spec.name, spec.key(), crop.key())
    meta = {"model": spec.to_dict(), "crop": crop.to_dict()}
    if config.resume and (run.embeddings_dir / f"{name}.npy").is_file():
        store = EmbeddingStore.open(run.embeddings_dir, name, mode="r+")
    else:
        store = EmbeddingStore.create(
            run.embeddings_dir,
            name,
            list(table.object_id),
            spec.embed_dim,
            meta,
            dtype=config.store_dtype,
            overwrite=config.overwrite or config.resume,
        )
    cache = None
    if not config.no_cache:
        cache = EmbeddingCache(cache_root, model_key=spec.key(), crop_key=crop.key(), spec=meta)
    stats = embed_table(
        table, backend, store, crop, cache=cache, batch_size=config.batch_size, num_workers=config.workers
    )
    run.write_yaml(
        {
            "config": config.model_dump(mode="json"),
            "embedding": {
                "store": f"embeddings/{name}.npy",
                **meta,
                "precision": getattr(backend, "precision", "n/a"),
                "device": str(getattr(backend, "device", "cpu")),
            },
            "embed_stats": {**asdict(stats), "total_seconds": round(time.perf_counter() - started, 3)},
        }
    )
    run.record_versions()
    return EmbedResult(run.path, run.embeddings_dir / f"{name}.npy", spec, crop, stats)


def _objects(config: EmbedConfig, run: RunDir) -> ObjectTable:
    """The run's object table: read from the dataset (new run) or from the run itself (resume)."""
    if config.resume and run.objects_path.is_file():
        return ObjectTable.read_parquet(run.objects_path)
    from dinoscope.io.dataset import read_dataset

    table = read_dataset(config.dataset, config.format)
    if config.whole_images:
        table = table.whole_images()
    table.to_parquet(run.objects_path)
    logger.info("%d objects from %d images", len(table), len(table.images))
    return table
