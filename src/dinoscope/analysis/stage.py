"""The analysis stage: every analysis over a run's vectors, one neighbour graph, one summary.

Reads ``objects.parquet`` and the run's embedding store, builds the all-object kNN graph and the
within-class graphs once, runs every registered analysis the run meets the needs of
(:mod:`~dinoscope.analysis.registry`: sub-groups, outliers, near-duplicates, label errors, class overlap,
leakage, image quality, and any registered later) and the 2-D maps, then writes ``findings/<name>.parquet``,
``map.parquet``, ``summary.json`` (per-class headline numbers and recommendations) and the thresholds to
``run.yaml``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.base import AnalysisResult
from dinoscope.analysis.recommend import recommend
from dinoscope.analysis.registry import AnalysisContext, registered_analyses
from dinoscope.errors import DinoscopeError
from dinoscope.options import AnalysisOptions
from dinoscope.progress import Clock
from dinoscope.run import Run
from dinoscope.table import ObjectTable

__all__ = ["AnalysisRun", "analyze_into_run", "run_analyses"]

logger = logging.getLogger(__name__)
UNLABELLED = "(unlabelled)"
#: Rows fitted per class map (the others are placed along the class graph): a per-class map is read next to
#: a gallery, and 5 k fitted points show its structure; fitting 10 k-row classes in full cost 2x the time.
CLASS_MAP_MAX_FIT = 5_000


@dataclass
class AnalysisRun:
    """What ``analyze`` produced: the summary (as written to summary.json) and the findings by analysis."""

    run_dir: Path
    summary: dict[str, Any]
    results: dict[str, AnalysisResult] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def analyze_into_run(
    run: Run,
    options: AnalysisOptions,
    *,
    seed: int = 0,
    table: ObjectTable | None = None,
    store: str | None = None,
) -> AnalysisRun:
    """Every analysis over a run's vectors, written into the run (findings, map, summary, run.yaml).

    Args:
        run: The run (its store holds the vectors).
        options: Neighbours, clustering and map methods.
        seed: Seed of every randomised step.
        table: The run's object table when the caller holds it (else read from the run).
        store: Which embedding store (default: the only one).

    Returns:
        The :class:`AnalysisRun`.
    """
    table, vectors, store_name, graph_store, method = _load(
        run, table if table is not None else run.read_objects(), store, options
    )
    names = list(table.class_names) or [UNLABELLED]
    class_id = np.where(table.class_id >= 0, table.class_id, 0) if table.class_names else np.zeros(len(table), int)
    timings: dict[str, float] = {}
    context = _context(
        vectors,
        class_id,
        names=names,
        labelled=bool(table.class_names) and bool((table.class_id >= 0).all()),
        split=table.data["split"].to_numpy(),
        content_keys=_content_keys(table),
        area=_areas(table),
        split_rank=_split_rank(table),
        options=options,
        seed=seed,
        table=table,
        timings=timings,
        graph_store=graph_store,
        workdir=run.room("index"),
        method=method,
    )
    results, maps = _run_registered(context, timings)
    summary = _write(run, table, names, class_id, results, maps, timings, store_name, options, seed)
    return AnalysisRun(run.path, summary, results, timings)


def run_analyses(
    vectors: np.ndarray,
    class_id: np.ndarray,
    *,
    names: list[str],
    labelled: bool,
    split: np.ndarray,
    content_keys: np.ndarray | None = None,
    area: np.ndarray | None = None,
    split_rank: np.ndarray | None = None,
    options: AnalysisOptions,
    seed: int = 0,
) -> tuple[dict[str, AnalysisResult], pd.DataFrame | None, dict[str, float]]:
    """Every registered analysis over in-memory vectors (what ``analyze`` runs between loading and writing).

    Without the object table, analyses that measure the images (``quality``) do not run.

    Args:
        vectors: (N, D) float32 unit vectors.
        class_id: (N,) class of every row (0 for unlabelled runs).
        names: Class names indexed by class id.
        labelled: Whether every row carries a real label (label errors and overlap need it).
        split: (N,) split names (for leakage).
        content_keys: (N,) exact-content keys ("" unknown); default none known.
        area: (N,) image or box areas (the largest duplicate is kept).
        split_rank: (N,) split order among duplicates.
        options: The analysis settings (k, clustering and map methods).
        seed: Seed of every randomised step.

    Returns:
        (results by analysis name, the map frame or None, seconds per step).
    """
    timings: dict[str, float] = {}
    context = _context(
        vectors,
        class_id,
        names=names,
        labelled=labelled,
        split=split,
        content_keys=content_keys,
        area=area,
        split_rank=split_rank,
        options=options,
        seed=seed,
        table=None,
        timings=timings,
    )
    results, maps = _run_registered(context, timings)
    return results, maps, timings


def _context(
    vectors: np.ndarray,
    class_id: np.ndarray,
    *,
    names: list[str],
    labelled: bool,
    split: np.ndarray,
    content_keys: np.ndarray | None,
    area: np.ndarray | None,
    split_rank: np.ndarray | None,
    options: AnalysisOptions,
    seed: int,
    table: ObjectTable | None,
    timings: dict[str, float],
    graph_store: Path | None = None,
    workdir: Path | None = None,
    method: str | None = None,
) -> AnalysisContext:
    """The shared context: the all-object and within-class graphs built once (timed) and the run's arrays.

    ``graph_store``: the ``.npy`` file holding exactly ``vectors`` (the on-disk graph reads it); ``workdir``:
    where the on-disk graph keeps its temporary files; ``method``: the all-object graph's path when the caller
    chose it already (default ``options.neighbor_method``; within-class graphs always choose per class).
    """
    from dinoscope.analysis.neighbors import EXACT_MAX, build_class_graphs, build_neighbor_graph, first_k

    clock = Clock(timings, logger=logger, prefix="analysis: ")

    # Large runs search 2k candidates once: the first k are the all-object graph (its recall is what the
    # HNSW search is tuned for), and the same-class ones among all 2k give most rows their within-class
    # neighbours without a second index per class.
    # One class: its within-class graph IS the all-object graph.
    classes = np.unique(class_id)
    wide = len(vectors) > EXACT_MAX and len(classes) > 1
    method = method or options.neighbor_method
    with clock("neighbors"):
        candidates = build_neighbor_graph(
            vectors,
            k=2 * options.k if wide else options.k,
            seed=seed,
            recall_k=options.k,
            method=method,
            store=graph_store,
            workdir=workdir,
        )
        graph = first_k(candidates, options.k)
    with clock("class_neighbors"):
        if len(classes) == 1:
            class_graphs = {int(classes[0]): graph}
        else:
            class_graphs = build_class_graphs(
                vectors, class_id, k=options.k, seed=seed, candidates=candidates if wide else None,
                method=options.neighbor_method, workdir=workdir,
            )  # fmt: skip
    del candidates
    return AnalysisContext(
        vectors=vectors,
        class_id=class_id,
        names=names,
        labelled=labelled,
        graph=graph,
        class_graphs=class_graphs,
        split=split,
        content_keys=np.full(len(vectors), "", dtype=object) if content_keys is None else content_keys,
        options=options,
        area=area,
        split_rank=split_rank,
        seed=seed,
        table=table,
    )


def _run_registered(
    context: AnalysisContext, timings: dict[str, float]
) -> tuple[dict[str, AnalysisResult], pd.DataFrame | None]:
    """Every registered analysis the run meets the needs of, in registry order (timed), then the maps."""
    clock = Clock(timings, logger=logger, prefix="analysis: ")
    for analysis in registered_analyses():
        if analysis.applies(context):
            with clock(analysis.name):
                context.results[analysis.name] = analysis.run(context)
    maps = None
    if context.options.map_method != "none":
        with clock("maps"):
            maps = _maps(
                context.vectors, context.class_id, context.graph, context.class_graphs, context.options, context.seed
            )
    return context.results, maps


def _load(
    run: Run, table: ObjectTable, store: str | None, options: AnalysisOptions
) -> tuple[ObjectTable, np.ndarray, str, Path | None, str]:
    """(valid rows of the table, their vectors, the store's name, the ``.npy`` the on-disk graph may read, the
    graph's path chosen before loading: :func:`~dinoscope.analysis.neighbors.choose_method`).

    When the graph goes to disk the vectors stay the store's memmap (never a float32 copy of N·D) if every
    row has a vector, else the valid rows are copied in the store's dtype.
    """
    from dinoscope.analysis.neighbors import choose_method
    from dinoscope.embed.store import EmbeddingStore

    st = EmbeddingStore.open(run.embeddings_dir, run.store_name(store))
    if list(st.object_ids) != list(table.object_id):
        raise DinoscopeError(f"{st.path}: rows do not match {run.objects_path}; re-run `dinoscope embed --resume`")
    valid = st.valid_mask()
    missing = int((~valid).sum())
    if missing:
        logger.warning("%d objects have no vector (unreadable or not yet embedded); they are left out", missing)
    if not valid.any():
        raise DinoscopeError(f"{st.path}: no object has a vector yet; finish `dinoscope embed` (--resume)")
    method = choose_method(int(valid.sum()), st.vectors.shape[1], options.neighbor_method)
    if method == "disk":
        if valid.all():
            return table, st.vectors, st.name, st.path, method
        return table[valid], np.ascontiguousarray(st.vectors[valid]), st.name, None, method
    vectors = np.ascontiguousarray(st.vectors[valid], dtype=np.float32)
    _renormalise(vectors)
    return table[valid], vectors, st.name, None, method


def _renormalise(vectors: np.ndarray, chunk: int = 65536) -> None:
    """Make float32 rows unit length again in place (a float16 store is off by up to ~1e-4)."""
    for start in range(0, len(vectors), chunk):
        block = vectors[start : start + chunk]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        block /= np.where(norms > 0, norms, 1.0)


def _content_keys(table: ObjectTable) -> np.ndarray:
    from dinoscope.embed.cache_keys import cache_keys

    keys = cache_keys(table.data)
    return np.where(table.data["content_hash"].fillna("").to_numpy() == "", "", keys)


def _areas(table: ObjectTable) -> np.ndarray:
    return ((table.data["x2"] - table.data["x1"]) * (table.data["y2"] - table.data["y1"])).to_numpy()


def _split_rank(table: ObjectTable) -> np.ndarray:
    order = {"train": 0, "val": 1, "test": 2}
    return table.data["split"].map(lambda s: order.get(s, 3)).to_numpy()


def _maps(
    vectors: np.ndarray,
    class_id: np.ndarray,
    graph: Any,
    class_graphs: dict[int, Any],
    options: AnalysisOptions,
    seed: int,
) -> pd.DataFrame:
    from dinoscope.analysis.projection import compute_class_maps, compute_map

    global_map = compute_map(vectors, method=options.map_method, seed=seed, graph=graph)
    frame = pd.DataFrame({"x": global_map.coords[:, 0], "y": global_map.coords[:, 1]})
    frame["class_x"], frame["class_y"] = np.nan, np.nan
    class_maps = compute_class_maps(
        vectors, class_id, graphs=class_graphs, method=options.map_method, seed=seed, max_fit=CLASS_MAP_MAX_FIT
    )
    for c, result in class_maps.items():
        rows = np.flatnonzero(class_id == c)
        frame.loc[rows, "class_x"] = result.coords[:, 0]
        frame.loc[rows, "class_y"] = result.coords[:, 1]
    frame.attrs["info"] = global_map.info
    return frame


def _write(
    run: Run,
    table: ObjectTable,
    names: list[str],
    class_id: np.ndarray,
    results: dict[str, AnalysisResult],
    maps: pd.DataFrame | None,
    timings: dict[str, float],
    store_name: str,
    options: AnalysisOptions,
    seed: int,
) -> dict[str, Any]:
    ids = table.object_id
    for name, result in results.items():
        frame = result.findings.reset_index(drop=True)
        frame.insert(0, "object_id", ids[result.findings.index.to_numpy()])
        run.write_findings(name, frame)
    if maps is not None:
        maps.insert(0, "object_id", ids)
        run.write_map(maps)
    summary = recommend(table, names, class_id, results)
    summary.update({"store": store_name, "n_objects": len(table), "timings_s": timings})
    run.write_summary(summary)
    run.write_yaml(
        {
            "analysis": {
                "config": {**options.model_dump(mode="json"), "seed": seed, "store": store_name},
                **{name: r.info for name, r in results.items()},
                **({"maps": maps.attrs.get("info", {})} if maps is not None else {}),
                "timings_s": timings,
            }
        }
    )
    return summary
