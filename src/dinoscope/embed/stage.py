"""The embedding stage: a run's object table -> its vector store, through the content cache.

:class:`EmbeddingModel` gives the model's spec without loading the model when the cache remembers it;
:func:`embed_into_run` fills the run's store for a table held in memory (workflows compose it after reading
or detecting the objects; nothing is re-read from disk).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope.embed.base import Backend
from dinoscope.embed.engine import EmbedStats, embed_table
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.run import Run
from dinoscope.table import ObjectTable

if TYPE_CHECKING:
    from dinoscope.embed.loader import MemoryCrops
    from dinoscope.options import CacheOptions, CropOptions, ModelOptions, PoolingOptions, RuntimeOptions

__all__ = ["EmbedResult", "EmbeddingModel", "cache_root_of", "crop_spec", "embed_into_run", "embedding_model"]

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


class EmbeddingModel:
    """The embedding model of a run: its spec at once, the model itself only when a vector must be computed.

    A spec remembered in the cache (:mod:`dinoscope.embed.specmemo`) answers :attr:`spec` without loading the
    model, so a fully cached run never builds it; calling the object builds it once, on its device.

    Args:
        model: Registry name, ``timm:<name>``, ``onnx:<file>``, a local folder or a DINOv2 ``.pth``.
        pooling: Pooled vector (None: the model's default).
        input_size: Model input side (None: the model's).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the model.
        allow_download: Allow fetching weights from the hub.
        weights: Local weights file of a ``timm:<name>`` model.
        cache_root: Cache root holding remembered specs (None: never remember, always build).

    Example:
        >>> model = EmbeddingModel("efficientnet-lite0", device="cpu")  # doctest: +SKIP
        >>> model.spec.input_size  # doctest: +SKIP
        224
    """

    def __init__(
        self,
        model: str,
        *,
        pooling: str | None = None,
        input_size: int | None = None,
        device: str = "auto",
        precision: str = "auto",
        compile: bool = False,
        allow_download: bool = False,
        weights: Path | None = None,
        cache_root: Path | None = None,
    ) -> None:
        from dinoscope.embed.specmemo import load_spec

        self.model, self.device, self.precision, self.compile = model, device, precision, compile
        self.allow_download, self.cache_root = allow_download, cache_root
        self.options: dict[str, Any] = {"pooling": pooling, "input_size": input_size}
        if weights is not None:
            if not model.startswith("timm:"):
                raise ConfigError(
                    f"--weights applies to timm:<name> models; for {model!r} pass the weights file or folder as --model"
                )
            self.options["weights"] = str(weights)
        self.remembered = None if cache_root is None else load_spec(cache_root, model, self.options)
        self.backend: Backend | None = None

    @property
    def spec(self) -> ModelSpec:
        """The model spec (remembered, or from the built model)."""
        return self.remembered if self.remembered is not None else self().spec

    def __call__(self) -> Backend:
        """The model on its device, built on first call."""
        if self.backend is None:
            from dinoscope.embed.registry import create_backend
            from dinoscope.embed.specmemo import save_spec

            b = create_backend(self.model, **self.options, allow_download=self.allow_download)
            if hasattr(b, "to"):
                b.to(self.device, precision=self.precision, compile=self.compile)
            if self.remembered is not None and b.spec.key() != self.remembered.key():
                raise DinoscopeError(
                    f"model {self.model!r} changed since its spec was remembered; run `dinoscope cache clear` and "
                    "try again"
                )
            if self.cache_root is not None:
                save_spec(self.cache_root, self.model, self.options, b.spec)
            self.backend = b
        return self.backend


def embedding_model(
    model: ModelOptions, pooling: PoolingOptions, runtime: RuntimeOptions, cache: CacheOptions
) -> tuple[EmbeddingModel, str]:
    """The run's :class:`EmbeddingModel` from the option groups, and the note on what ``auto`` chose ("" if
    nothing was chosen)."""
    from dinoscope.embed.registry import resolve_model

    name, note = resolve_model(model.model)
    built = EmbeddingModel(
        name,
        pooling=pooling.pooling,
        input_size=model.input_size,
        device=runtime.device,
        precision=runtime.precision,
        compile=runtime.compile,
        allow_download=model.allow_download,
        weights=model.weights,
        cache_root=cache_root_of(cache),
    )
    return built, note


def cache_root_of(cache: CacheOptions) -> Path | None:
    """The content cache folder, None with ``no_cache``."""
    from dinoscope.embed.cache_files import resolve_cache_root

    return None if cache.no_cache else resolve_cache_root(cache.cache_dir)


def crop_spec(crop: CropOptions) -> CropSpec:
    """The :class:`CropSpec` of the crop options."""
    return CropSpec(policy=crop.crop, context_frac=crop.context, fill=crop.fill, min_size_px=crop.min_size)


def embed_into_run(
    run: Run,
    table: ObjectTable,
    model: EmbeddingModel,
    crop: CropSpec,
    *,
    cache_root: Path | None,
    store_dtype: str = "float32",
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
    crops: MemoryCrops | None = None,
    engine: str = "local",
    address: str | None = None,
) -> EmbedResult:
    """Fill the run's store for ``table`` (opened again on ``resume``) and record the embedding in ``run.yaml``.

    Args:
        run: The run directory (``table`` is already its ``objects.parquet``).
        table: The objects to embed.
        model: The embedding model.
        crop: The crop policy.
        cache_root: Content cache root, or None for no cache.
        store_dtype: ``float32`` or ``float16`` vectors on disk.
        resume: Continue the store of an interrupted run.
        overwrite: Replace an existing store.
        batch_size: Crops per batch (default: from free memory).
        workers: Decode worker processes.
        crops: Crops already in memory (see :func:`~dinoscope.embed.engine.embed_table`).
        engine: ``local`` or ``ray`` (:func:`~dinoscope.embed.ray_engine.embed_table_ray`; ``workers`` are then
            its model actors).
        address: Ray address for ``ray`` (None: a local Ray).

    Returns:
        The :class:`EmbedResult`.
    """
    from dinoscope.embed.cache import EmbeddingCache
    from dinoscope.embed.store import EmbeddingStore, store_name

    if address and engine != "ray":
        raise ConfigError(f"--address {address} is for --engine ray; add --engine ray or drop --address")
    spec = model.spec
    name = store_name(spec.name, spec.key(), crop.key())
    meta = {"model": spec.to_dict(), "crop": crop.to_dict()}
    resumed = resume and run.store_path(name).is_file()
    if resumed:
        store = EmbeddingStore.open(run.embeddings_dir, name, mode="r+")
    else:
        store = EmbeddingStore.create(
            run.embeddings_dir,
            name,
            list(table.object_id),
            spec.embed_dim,
            meta,
            dtype=store_dtype,
            overwrite=overwrite or resume,
        )
    cache = None
    if cache_root is not None:
        cache = EmbeddingCache(cache_root, model_key=spec.key(), crop_key=crop.key(), spec=meta)
    if engine == "ray":
        from dinoscope.embed.ray_engine import ModelRecipe, embed_table_ray

        recipe = ModelRecipe(model.model, dict(model.options), model.device, model.precision, model.allow_download)
        shards = run.store_shards_dir(name)
        if not resumed:  # a new store: shards of an earlier store are not its own
            shutil.rmtree(shards, ignore_errors=True)
        stats = embed_table_ray(
            table, recipe, store, crop, spec=spec, shard_dir=shards, cache=cache, batch_size=batch_size,
            workers=workers, address=address,
        )  # fmt: skip
    else:
        stats = embed_table(  # a plain function, so that the engine builds the model only if it must compute
            table, model.__call__, store, crop, cache=cache, batch_size=batch_size, num_workers=workers, crops=crops
        )
    built = model.backend
    run.write_yaml(
        {
            "embedding": {
                "store": run.store_path(name).relative_to(run.path).as_posix(),
                **meta,
                "precision": getattr(built, "precision", "n/a"),
                "device": str(getattr(built, "device", "cpu")),
            },
            "embed_stats": asdict(stats),
        }
    )
    run.record_versions()
    return EmbedResult(run.path, run.store_path(name), spec, crop, stats)
