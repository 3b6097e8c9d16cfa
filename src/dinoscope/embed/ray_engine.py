"""The embedding engine on Ray Data (``dinoscope embed --engine ray``): one machine or a cluster.

The object table is cut into shards of whole source files (stable over a run: a resumed run finds the same
shards). Ray Data runs the pipeline (Moritz et al., "Ray: A Distributed Framework for Emerging AI
Applications", OSDI 2018) in one of two layouts (:func:`~dinoscope.embed.ray_layout.plan_layout`):

- ``split`` (a cluster with GPUs): each shard is decoded and cropped by a CPU task with the local engine's own
  code (:mod:`~dinoscope.embed.loader` — the same crops, so the same vectors); the crops (uint8) stream through
  Ray's object store to an actor pool that holds the model, one actor per GPU. Decoding runs on every node's
  CPUs, the GPUs only run the model.
- ``fused`` (CPU only): each CPU actor holds the model and decodes, crops and embeds whole pieces of shards
  (a few source files) in-process, the local engine's ``replicas`` split with Ray as the scheduler: no pixels
  cross the object store, no decoding task competes with the actors for the cores, and each actor runs torch
  on the cores Ray gives it (default: one actor per CPU of the cluster).

In both, the vectors come back to the driver, which writes each finished shard as a file beside the store
(``RUN/embeddings/<store>.shards/``), then into the store, the content cache and the done flags, aligned by
table row (so by ``object_id``). On ``--resume`` rows already done are skipped, shard files not yet in the
store are assembled first, and finished shards are not sent again.

dinoscope does the sharding, the layout, the resume bookkeeping and the store; Ray does the scheduling, the
transfers (its object store) and the actor pool. ``ray`` is an optional extra (``pip install
"dinoscope[ray]"``), imported only here. On a cluster, every node needs dinoscope, the model and the dataset at
the same path.

Example:
    >>> shards = run.store_shards_dir(name)  # doctest: +SKIP
    >>> stats = embed_table_ray(table, recipe, store, CropSpec(), spec=spec, shard_dir=shards)  # doctest: +SKIP
    >>> stats.split  # doctest: +SKIP
    'fused: 2 actors x 1 CPU, 1 thread each (decode + crop + forward in each actor)'
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope._deps import require
from dinoscope.embed.engine import EmbedStats, take_cached
from dinoscope.embed.ray_layout import DECODE_CPUS, Layout, pieces, plan_layout
from dinoscope.embed.spec import CropSpec, ModelSpec

if TYPE_CHECKING:
    from dinoscope.embed.cache import EmbeddingCache
    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.table import ObjectTable

__all__ = [
    "LOCAL_CPUS",
    "PIECE_OBJECTS",
    "SHARD_OBJECTS",
    "ModelRecipe",
    "connect",
    "embed_table_ray",
    "shard_rows",
]

logger = logging.getLogger(__name__)

#: Objects per shard (whole source files are kept together, so a shard may hold a few more).
SHARD_OBJECTS = 512
#: CPUs of the local Ray started when no address is given.
LOCAL_CPUS = 2
#: Objects per work item of a fused actor (whole source files; a shard is sent as several pieces so that the
#: actors stay busy to the end: at ~25 crops/s per core a piece is a few seconds of work).
PIECE_OBJECTS = 64
#: Force a layout (``split`` or ``fused``; None: :func:`~dinoscope.embed.ray_layout.plan_layout` chooses).
#: For benchmarks and tests.
LAYOUT: str | None = None


@dataclass(frozen=True)
class ModelRecipe:
    """What an actor needs to build the model itself (a model object is not shipped to the cluster).

    Attributes:
        model: Registry name, ``timm:<name>``, ``onnx:<file>``, a folder or a ``.pth`` (as ``--model``).
        options: Keyword options of :func:`~dinoscope.embed.registry.create_backend` (pooling, input size).
        device: Device of each actor (``auto``: its GPU when it has one).
        precision: As ``--precision``.
        allow_download: Allow fetching weights from the hub.
    """

    model: str
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    precision: str = "auto"
    allow_download: bool = False


def connect(address: str | None = None, num_cpus: int = LOCAL_CPUS) -> Any:
    """Connect to Ray (``auto``, ``ray://HOST:PORT``) or, without an address, start a local one; returns ``ray``.

    A local Ray runs ``num_cpus`` CPUs, no dashboard, on this machine only. An already initialised Ray is kept.

    Example:
        >>> ray = connect(None)  # doctest: +SKIP
    """
    ray = require("ray", "ray", "embedding with --engine ray", "use the default --engine local")
    require("ray.data", "ray", "embedding with --engine ray", "use the default --engine local")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no INFO line per dataset on the console
    return ray


def shard_rows(table: ObjectTable, shard_objects: int = SHARD_OBJECTS) -> list[np.ndarray]:
    """The table's rows cut into shards of about ``shard_objects``, whole source files each, in source order.

    Example:
        >>> [len(s) for s in shard_rows(table, 2)]  # doctest: +SKIP
        [3, 3]
    """
    sources = table.data["source"].to_numpy().astype(str)
    order = np.argsort(sources, kind="stable")
    sorted_sources = sources[order]
    new_source = np.r_[True, sorted_sources[1:] != sorted_sources[:-1]]
    shards, start = [], 0
    for i in [*np.flatnonzero(new_source)[1:].tolist(), len(order)]:
        if i - start >= shard_objects or i == len(order):
            shards.append(order[start:i].astype(np.int64))
            start = i
    return [s for s in shards if len(s)]


def embed_table_ray(
    table: ObjectTable,
    recipe: ModelRecipe,
    store: EmbeddingStore,
    crop: CropSpec | None = None,
    *,
    spec: ModelSpec,
    shard_dir: Path,
    cache: EmbeddingCache | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    address: str | None = None,
    shard_objects: int | None = None,
) -> EmbedStats:
    """Fill ``store`` with the model's vectors of every object of ``table``, computed on Ray Data.

    Args:
        table: The objects (``table.root`` must be readable at the same path on every node).
        recipe: How each actor builds the model.
        store: The run's store (rows aligned with ``table``).
        crop: Crop policy.
        spec: The model spec (input size, interpolation, mean: the crops are cut by it).
        shard_dir: Folder of the finished shard files.
        cache: Content cache, or None.
        batch_size: Crops per forward pass (default 32).
        workers: Model actors (default: one per GPU of the cluster, else one per CPU;
            :func:`~dinoscope.embed.ray_layout.plan_layout`).
        address: Ray address (``auto``, ``ray://HOST:PORT``); None starts a local Ray.
        shard_objects: Objects per shard (default :data:`SHARD_OBJECTS`).

    Returns:
        Counts and throughput, as the local engine's.
    """
    crop = crop or CropSpec()
    stats = EmbedStats(n_objects=len(table), batch_size=batch_size or 32)
    shard_dir.mkdir(parents=True, exist_ok=True)
    _assemble_finished(shard_dir, store)
    todo = store.missing()
    stats.n_resumed = len(table) - len(todo) - len(store.failed)
    todo, keys = take_cached(table, store, cache, todo, stats)
    if not len(todo):
        return stats
    pending = np.zeros(len(table), dtype=bool)
    pending[todo] = True
    shards = [(k, rows[pending[rows]]) for k, rows in enumerate(shard_rows(table, shard_objects or SHARD_OBJECTS))]
    shards = [(k, rows) for k, rows in shards if len(rows) and not (shard_dir / f"{k:06d}.npz").is_file()]
    ray = connect(address)
    resources = ray.cluster_resources()
    layout = plan_layout(resources.get("CPU", 1), resources.get("GPU", 0), recipe.device, workers, LAYOUT)
    stats.split = layout.describe()
    logger.info("ray layout: %s", stats.split)
    dataset = _pipeline(ray, table, shards, recipe, spec, crop, stats.batch_size, layout)
    remaining = {k: len(rows) for k, rows in shards}
    parts: dict[int, list[dict[str, np.ndarray]]] = {k: [] for k, _ in shards}
    sources = table.data["source"].to_numpy().astype(str)
    start = time.perf_counter()
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for k in np.unique(batch["shard"]).tolist():
            mine = batch["shard"] == k
            parts[k].append({name: batch[name][mine] for name in ("row", "vector", "error")})
            remaining[k] -= int(mine.sum())
            if remaining[k] == 0:
                _finish_shard(shard_dir, k, parts.pop(k), store, cache, keys, stats, sources)
    stats.seconds = time.perf_counter() - start
    stats.objects_per_s = stats.n_computed / stats.seconds if stats.seconds else 0.0
    for source, reason in stats.failures.items():
        logger.warning("%s: not embedded (%s)", source, reason)
    return stats


def _pipeline(
    ray: Any,
    table: ObjectTable,
    shards: list[tuple[int, np.ndarray]],
    recipe: ModelRecipe,
    spec: ModelSpec,
    crop: CropSpec,
    batch_size: int,
    layout: Layout,
) -> Any:
    """The Ray Data pipeline of ``layout``: shards -> (row, shard, vector, error) batches."""
    from dinoscope.embed.ray_tasks import Embedder, ShardEmbedder, decode_shard

    d = table.data
    sources, frames = d["source"].to_numpy().astype(str), d["frame"].to_numpy()
    boxes = d[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    work = shards if layout.name == "split" else pieces(shards, sources, PIECE_OBJECTS)
    items = [
        {"shard": k, "row": rows, "source": sources[rows], "frame": frames[rows], "box": boxes[rows]}
        for k, rows in work
    ]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    tasks = {"root": str(table.root or "."), "spec": spec, "crop": crop, "batch_size": batch_size}
    if layout.name == "fused":
        # one piece at a time per actor: no actor idles at the end while another still holds a queue (a round
        # trip between pieces costs milliseconds against the seconds of a piece)
        pool = ray.data.ActorPoolStrategy(size=min(layout.actors, len(items)), max_tasks_in_flight_per_actor=1)
        return dataset.map_batches(
            ShardEmbedder,
            batch_size=1,
            fn_constructor_kwargs={"recipe": recipe, "threads": layout.threads, **tasks},
            compute=pool,
            num_cpus=layout.actor_cpus,
        )
    # different CPU requests keep Ray from fusing the decoding into the actors: decoding stays in CPU tasks
    decode_cpus = DECODE_CPUS if layout.actor_cpus != DECODE_CPUS else DECODE_CPUS / 2
    dataset = dataset.map_batches(decode_shard, batch_size=1, fn_kwargs=tasks, num_cpus=decode_cpus)
    return dataset.map_batches(
        Embedder,
        fn_constructor_kwargs={"recipe": recipe, "threads": layout.threads},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=layout.actors),
        num_gpus=1 if layout.gpu else 0,
        num_cpus=layout.actor_cpus,
    )


def _finish_shard(
    shard_dir: Path,
    k: int,
    parts: list[dict[str, np.ndarray]],
    store: EmbeddingStore,
    cache: EmbeddingCache | None,
    keys: np.ndarray | None,
    stats: EmbedStats,
    sources: np.ndarray,
) -> None:
    """Write shard ``k`` (atomically), then put it in the store, the cache and the counts."""
    rows = np.concatenate([p["row"] for p in parts]).astype(np.int64)
    vectors = np.concatenate([p["vector"] for p in parts]).astype(np.float32)
    errors = np.concatenate([p["error"] for p in parts]).astype(str)
    tmp = shard_dir / f"{k:06d}.tmp.npz"
    np.savez(tmp, row=rows, vector=vectors, error=errors)
    tmp.replace(shard_dir / f"{k:06d}.npz")
    ok = errors == ""
    _into_store(store, rows, vectors, errors)
    if cache is not None and keys is not None and ok.any():
        cache.put_many(list(keys[rows[ok]]), vectors[ok])
    stats.n_computed += int(ok.sum())
    stats.n_failed += int((~ok).sum())
    stats.failures.update(zip(sources[rows[~ok]].tolist(), errors[~ok].tolist(), strict=True))


def _into_store(store: EmbeddingStore, rows: np.ndarray, vectors: np.ndarray, errors: np.ndarray) -> None:
    ok = errors == ""
    if ok.any():
        store.write(rows[ok], vectors[ok])
    if (~ok).any():
        store.mark_failed(rows[~ok], errors[~ok].tolist())
    store.flush()


def _assemble_finished(shard_dir: Path, store: EmbeddingStore) -> None:
    """Put the shard files whose rows the store does not have yet into it (a run stopped between the two)."""
    missing = np.zeros(len(store.object_ids), dtype=bool)
    missing[store.missing()] = True
    for path in sorted(shard_dir.glob("[0-9]*.npz")):
        if path.name.endswith(".tmp.npz"):
            continue
        with np.load(path, allow_pickle=False) as z:
            rows, vectors, errors = z["row"], z["vector"], z["error"]
        if missing[rows].any():
            _into_store(store, rows, vectors, errors)
            missing[rows] = False
