"""The run's k-nearest-neighbour graph by cosine similarity, built once and shared by every analysis.

Small inputs get the exact graph (blocked float32 matrix products, never an N×N matrix: memory is
O(chunk × N)); large inputs get an HNSW index (Malkov & Yashunin, "Efficient and robust approximate nearest
neighbor search using Hierarchical Navigable Small World graphs", IEEE TPAMI 2018) from FAISS (Douze et al.,
"The Faiss library", 2024) on inner products of the unit vectors, stored as float16. The HNSW search width
``efSearch`` is tuned on a seeded sample of queries until the recall against the exact answer reaches a target,
and the measured recall is recorded in ``graph.info``. On both paths the returned similarities are float32 dot
products of the vectors as given, exact up to summation order (the index stores float16 input as float16 and
float32 input as float32).

Ties are broken the same way everywhere: higher similarity first, then the lower row number, so the same
input always gives the same graph. A row's exact duplicate at another index is a neighbour with similarity 1;
the row itself never is.

Past the memory the in-memory HNSW needs (one float32 copy and FAISS's own, N·D·8 bytes with the links), the
``disk`` path (:mod:`~dinoscope.analysis.neighbors_disk`) reads the ``.npy`` store in chunks and keeps only
compressed codes; ``auto`` takes it when the in-memory index would need more than half of the free memory.

This module chooses the path and keeps the graph's I/O; the search itself lives in
:mod:`~dinoscope.analysis.neighbors_exact` (blocked exact search), :mod:`~dinoscope.analysis.neighbors_hnsw`
(the FAISS index and its recall tuning), :mod:`~dinoscope.analysis.neighbors_disk` (the on-disk index) and
:mod:`~dinoscope.analysis.neighbors_class` (within-class graphs taken from the all-object candidates).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.neighbors_class import class_graph_from_candidates
from dinoscope.analysis.neighbors_exact import exact_graph
from dinoscope.analysis.neighbors_hnsw import RECALL_TARGET, hnsw_graph, limit_threads
from dinoscope.errors import ConfigError

__all__ = [
    "EXACT_MAX",
    "build_class_graphs",
    "build_neighbor_graph",
    "choose_method",
    "first_k",
    "load_graph",
    "save_graph",
]

logger = logging.getLogger(__name__)

#: Default crossover: exact up to this many rows, HNSW above. Measured on 2 cores, 768-d (exact / HNSW with the
#: recall check): 5 k 1.0 / 0.8 s, 10 k 2.2 / 2.4-3.5 s, 15 k 8.1 / 4.8 s, 20 k 14 / 6.7 s, 30 k 30 / 11 s.
EXACT_MAX = 10_000
METHODS = ("auto", "exact", "hnsw", "disk")
#: Bytes per vector value the in-memory HNSW path holds (a float32 copy + FAISS's float32 copy).
IN_MEMORY_BYTES = 8
#: ``auto`` goes to disk when the in-memory path would need more than this share of the free memory.
MEMORY_SHARE = 0.5


def build_neighbor_graph(
    vectors: np.ndarray,
    k: int = 15,
    *,
    rows: np.ndarray | None = None,
    method: str = "auto",
    exact_max: int | None = None,
    seed: int = 0,
    n_threads: int | None = None,
    recall_target: float = RECALL_TARGET,
    recall_k: int | None = None,
    store: str | Path | None = None,
    workdir: str | Path | None = None,
) -> NeighborGraph:
    """Find the k most cosine-similar other rows of every row.

    Args:
        vectors: (N, D) float32 or float16 L2-normalised vectors, possibly a ``np.memmap``. Memory: one float32
            copy (N·D·4 bytes; none if already float32) plus, for HNSW, FAISS's own copy; never N×N.
        k: Neighbours per row; rows with fewer than k other rows are padded with -1 / -inf.
        rows: (N,) global row numbers of ``vectors`` (default ``arange(N)``); the graph's indices use them, so
            a within-class graph built from a class's vectors points into the run's global numbering.
        method: ``"exact"``, ``"hnsw"`` (FAISS, extra ``faiss``), ``"disk"`` (FAISS IVF-PQ on disk) or ``"auto"``
            (:func:`choose_method`).
        exact_max: Crossover for ``"auto"`` (default :data:`EXACT_MAX`).
        seed: Seeds the HNSW level assignment and the recall sample.
        n_threads: Threads for FAISS and BLAS (default: all cores).
        recall_target: HNSW only: ``efSearch`` grows (×1.5) until the recall measured on a sample reaches this.
        recall_k: HNSW only: measure that recall on the first ``recall_k`` neighbours (default k) - for a graph
            searched wider than the part that must be accurate (the extra columns are candidates).
        store: Disk only: an ``.npy`` file holding exactly ``vectors`` (else they are written to a temporary one).
        workdir: Disk only: folder for the temporary index files (default: the system's temporary folder).

    Returns:
        A :class:`NeighborGraph` with (N, k) ``indices`` (global rows, most similar first) and ``sims``;
        ``info`` holds k, the index settings, seconds and, for HNSW, the measured recall.

    Example:
        >>> x = np.eye(4, dtype=np.float32)[[0, 0, 1, 2]]
        >>> build_neighbor_graph(x, k=1).indices[:, 0].tolist()
        [1, 0, 0, 0]
    """
    n, d = _check_vectors(vectors)
    if k < 1:
        raise ConfigError(f"k must be >= 1 neighbours, got {k}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    if not 0.0 < recall_target <= 1.0:
        raise ConfigError(f"recall_target must be in (0, 1], got {recall_target}")
    rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.shape != (n,):
        raise ValueError(f"rows has shape {rows.shape}, expected ({n},) to match vectors {vectors.shape}")
    limit = EXACT_MAX if exact_max is None else exact_max
    used = choose_method(n, d, method, exact_max=limit)
    if n <= 1:
        used = "exact"
    start = time.perf_counter()
    info: dict[str, Any] = {"k": k, "n": n, "dim": d, "method": used, "exact_max": limit}
    with limit_threads(n_threads):
        if used == "exact":
            local, sims = exact_graph(vectors, k)
        elif used == "disk":
            local, sims, disk_info = _disk(vectors, k, seed, recall_target, store=store, workdir=workdir)
            info.update({key: value for key, value in disk_info.items() if key not in info})
        else:
            local, sims = hnsw_graph(
                vectors, k, seed=seed, recall_target=recall_target, recall_k=min(k, recall_k or k), info=info
            )
    indices = np.where(local >= 0, rows[np.maximum(local, 0)], -1)
    info["seconds"] = round(time.perf_counter() - start, 3)
    logger.info("neighbour graph: %d rows, k=%d, %s, %.1f s", n, k, used, info["seconds"])
    return NeighborGraph(indices=indices, sims=sims, rows=rows, method=used, info=info)


def choose_method(n: int, d: int, method: str = "auto", *, exact_max: int | None = None) -> str:
    """The graph path for N rows of D values: ``method`` unless it is ``"auto"``, then exact up to ``exact_max``
    rows, the in-memory HNSW while it needs at most half the free memory (N·D·8 bytes), else disk.

    Example:
        >>> choose_method(5_000, 768), choose_method(10**6, 768, "disk")
        ('exact', 'disk')
    """
    if method != "auto":
        return method
    if n <= (EXACT_MAX if exact_max is None else exact_max):
        return "exact"
    return "disk" if n * d * IN_MEMORY_BYTES > MEMORY_SHARE * available_memory() else "hnsw"


def available_memory() -> int:
    """Bytes of memory free for new allocations (Linux ``MemAvailable``; else half the physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _disk(
    vectors: np.ndarray,
    k: int,
    seed: int,
    recall_target: float,
    *,
    store: str | Path | None,
    workdir: str | Path | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The on-disk graph of ``vectors`` (read from ``store``, or written chunk by chunk to a temporary ``.npy``);
    the graph is copied into memory (N·k·12 bytes) and the index files deleted."""
    from dinoscope.analysis.neighbors_disk import disk_graph

    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="knn-") as tmp:
        path = Path(store) if store is not None else _write_npy(vectors, Path(tmp) / "vectors.npy")
        graph = disk_graph(path, k, workdir=Path(tmp), seed=seed, recall_target=recall_target)
        indices, sims, info = np.array(graph.indices), np.array(graph.sims), graph.info
        del graph
    return indices, sims, info


def _write_npy(vectors: np.ndarray, path: Path, chunk: int = 65_536) -> Path:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=vectors.dtype, shape=vectors.shape)
    for a in range(0, len(vectors), chunk):
        out[a : a + chunk] = vectors[a : a + chunk]
    out.flush()
    del out
    return path


def build_class_graphs(
    vectors: np.ndarray,
    class_id: np.ndarray,
    k: int = 15,
    *,
    candidates: NeighborGraph | None = None,
    **kw: Any,
) -> dict[int, NeighborGraph]:
    """Build one within-class graph per class: neighbours are searched among the rows of the same class only.

    With ``candidates`` (the all-object graph searched with more neighbours than ``k``, e.g. 2k), a row whose
    candidate list holds at least k rows of its own class takes those (they ARE its within-class top k, up to
    the candidates' own recall); only the rows short of same-class candidates (objects near other classes,
    outliers) are searched again - exactly against their class when that is cheap, else through a class
    index (:mod:`~dinoscope.analysis.neighbors_class`). On separable data this skips almost all of the
    per-class index builds.

    Args:
        vectors: (N, D) unit vectors of the whole run (a memmap is read one class at a time).
        class_id: (N,) integer class of every row.
        k: Neighbours per row (small classes are padded with -1 / -inf).
        candidates: Optional all-object graph over the same N rows (``rows == arange(N)``), most similar first.
        **kw: Passed to :func:`build_neighbor_graph` (method, exact_max, seed, n_threads, recall_target,
            workdir).

    Returns:
        {class id: graph}; each graph's ``rows`` and ``indices`` are global row numbers of that class.

    Example:
        >>> x = np.eye(3, dtype=np.float32)[[0, 1, 0, 1]]
        >>> build_class_graphs(x, np.array([0, 1, 0, 1]), k=1)[1].indices.ravel().tolist()
        [3, 1]
    """
    class_id = np.asarray(class_id)
    if class_id.shape != (len(vectors),):
        raise ValueError(f"class_id has shape {class_id.shape}, expected ({len(vectors)},) to match vectors")
    if candidates is not None and (len(candidates.rows) != len(vectors) or candidates.rows[-1] != len(vectors) - 1):
        raise ValueError("candidates must be the all-object graph of the same vectors (rows 0..N-1)")

    def search_class(rows: np.ndarray) -> NeighborGraph:
        return build_neighbor_graph(np.asarray(vectors[rows]), k, rows=rows, **kw)

    graphs: dict[int, NeighborGraph] = {}
    for c in np.unique(class_id):
        rows = np.flatnonzero(class_id == c)
        if candidates is None or len(rows) <= EXACT_MAX:
            graphs[int(c)] = search_class(rows)
        else:
            graphs[int(c)] = class_graph_from_candidates(
                vectors, class_id, rows, k, candidates, search_class=search_class
            )
    return graphs


def first_k(graph: NeighborGraph, k: int) -> NeighborGraph:
    """The graph cut to its k nearest neighbours per row (rows are sorted most similar first)."""
    if k >= graph.k:
        return graph
    info = {**graph.info, "k": k, "searched_k": graph.k}
    return NeighborGraph(
        np.ascontiguousarray(graph.indices[:, :k]),
        np.ascontiguousarray(graph.sims[:, :k]),
        graph.rows,
        graph.method,
        info,
    )


def save_graph(graph: NeighborGraph, path: str | Path) -> Path:
    """Write a graph to an ``.npz`` file (written beside and renamed into place, so never half-written).

    Example:
        >>> save_graph(graph, run_dir / "neighbors.npz")  # doctest: +SKIP
    """
    path = Path(path)
    buf = io.BytesIO()
    np.savez(
        buf,
        indices=graph.indices,
        sims=graph.sims,
        rows=graph.rows,
        method=np.array(graph.method),
        info=np.array(json.dumps(graph.info)),
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path


def load_graph(path: str | Path) -> NeighborGraph:
    """Read a graph written by :func:`save_graph`.

    Example:
        >>> graph = load_graph(run_dir / "neighbors.npz")  # doctest: +SKIP
    """
    with np.load(Path(path), allow_pickle=False) as z:
        return NeighborGraph(
            indices=z["indices"],
            sims=z["sims"],
            rows=z["rows"],
            method=str(z["method"]),
            info=json.loads(str(z["info"])),
        )


def _check_vectors(vectors: np.ndarray) -> tuple[int, int]:
    if not hasattr(vectors, "shape") or len(vectors.shape) != 2:
        raise ValueError(f"vectors must be an (N, D) array, got shape {getattr(vectors, 'shape', None)}")
    if np.dtype(vectors.dtype).kind != "f":
        raise ValueError(f"vectors must be float16/float32 unit vectors, got dtype {vectors.dtype}")
    return int(vectors.shape[0]), int(vectors.shape[1])
