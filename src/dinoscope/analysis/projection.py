"""2-D maps of the vectors for the report: UMAP (default), PaCMAP or PCA, for all objects and per class.

- UMAP: McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection for Dimension
  Reduction", arXiv:1802.03426 (2018), cosine metric. UMAP always gets its k nearest neighbours from us
  (``precomputed_knn``): the run's graph when it covers the fitted rows, else one built with
  :func:`~dinoscope.analysis.neighbors.build_neighbor_graph`. UMAP's own search (pynndescent) then never runs,
  which saves its numba compilation, ~50 s per process on this 2-core machine (a 20 k-row fit takes ~13 s).
- PaCMAP: Wang, Huang, Rudin & Shaposhnik, "Understanding How Dimension Reduction Tools Work", JMLR 22 (2021),
  angular distance; its neighbour pairs are the same plain cosine kNN (PaCMAP's own scaled-distance choice
  among 50 extra candidates is skipped), its mid-near and far pairs are its own, seeded.
- PCA: exact, from the D×D covariance accumulated in chunks (works on a memmap; no N×N matrix).

Large inputs (N > ``max_fit``) are fitted on a seeded random sample; every other row is placed at the
similarity-weighted mean of the 2-D positions of its already placed neighbours, spreading out from the sample
along the run's graph in waves (O(N k)). Rows the graph cannot reach, or all rows when no graph is given, are
placed from their 10 nearest sample rows (FAISS HNSW on the sample). UMAP's ``transform`` is not used: after
~50 s of compilation it places ~2,500 rows/s here, 7 minutes for 1 M rows.
Very small inputs get fixed layouts (N = 0, 1, 2) or PCA (N <= n_neighbors + 1); ``info["method"]`` always
says what was done. This module decides what is fitted and places the rest; the fits themselves are in
:mod:`~dinoscope.analysis.projection_methods`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.neighbors_exact import exact_search
from dinoscope.analysis.projection_methods import _CHUNK, fit_neighbor_embedding, pca_coords
from dinoscope.errors import ConfigError

__all__ = ["MapResult", "compute_class_maps", "compute_map"]

logger = logging.getLogger(__name__)

METHODS = ("umap", "pacmap", "pca")
_SMALL_FIT = 2_000  # UMAP fits of up to this many rows get 500 epochs, larger ones 200
_N_NEAREST = 10  # sample rows averaged when a row is placed by search instead of the graph


@dataclass(frozen=True)
class MapResult:
    """A 2-D map of N rows.

    Attributes:
        coords: (N, 2) float32 map positions, in the row order of the input vectors.
        info: What was done: ``method`` actually used, ``requested``, parameters, ``n_fit`` (rows fitted),
            ``placement`` of the others, ``seconds`` (JSON-ready, for run.yaml).
    """

    coords: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.coords.ndim != 2 or self.coords.shape[1] != 2:
            raise ValueError(f"coords must have shape (N, 2), got {self.coords.shape}")

    def __len__(self) -> int:
        return len(self.coords)


def compute_map(
    vectors: np.ndarray,
    *,
    method: str = "umap",
    seed: int = 0,
    graph: NeighborGraph | None = None,
    max_fit: int = 20_000,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int | None = None,
) -> MapResult:
    """Map (N, D) unit vectors to 2-D.

    Args:
        vectors: (N, D) float32/float16 L2-normalised vectors, possibly a memmap (PCA and placement read it in
            chunks; the fitted rows are loaded as float32).
        method: ``"umap"`` (cosine; extra ``umap``), ``"pacmap"`` (angular; extra ``umap``) or ``"pca"``.
        seed: Seeds the sample and the embedding: the same seed gives the same map.
        graph: The neighbour graph of exactly these rows (row i of the graph is row i of ``vectors``, e.g. the
            run's graph, or a within-class graph with that class's vectors). Used as UMAP's ``precomputed_knn``
            / PaCMAP's neighbour pairs and to place the rows left out of the fit.
        max_fit: Fit on at most this many rows (a seeded random sample); the others are placed (see module doc).
        n_neighbors: UMAP / PaCMAP neighbourhood size (UMAP counts the row itself, so it uses n_neighbors - 1
            graph neighbours).
        min_dist: UMAP ``min_dist``.
        n_epochs: UMAP epochs (default: 500 up to 2,000 fitted rows, 200 above; UMAP's own rule switches at
            10,000, which makes a 10 k-row class cost 12 s instead of 5 s here).

    Returns:
        A :class:`MapResult` with (N, 2) float32 ``coords`` and ``info``.

    Example:
        >>> x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
        >>> compute_map(x / np.linalg.norm(x, axis=1, keepdims=True), method="pca").coords.shape
        (50, 2)
    """
    if method not in METHODS:
        raise ConfigError(f"map method must be one of {METHODS}, got {method!r}")
    if n_neighbors < 2 or max_fit < 3:
        raise ConfigError(f"n_neighbors must be >= 2 and max_fit >= 3, got {n_neighbors} and {max_fit}")
    if len(getattr(vectors, "shape", ())) != 2:
        raise ValueError(f"vectors must be an (N, D) array, got shape {getattr(vectors, 'shape', None)}")
    n = len(vectors)
    if graph is not None and len(graph) != n:
        raise ValueError(f"graph has {len(graph)} rows but vectors has {n}: pass the graph of exactly these rows")
    start = time.perf_counter()
    info: dict[str, Any] = {"requested": method, "n": n, "seed": seed, "n_fit": n, "placement": None}
    if n <= 2:
        coords = np.array([[0.0, 0.0]] if n == 1 else [[-1.0, 0.0], [1.0, 0.0]][:n], dtype=np.float32)
        info["method"] = "fixed"
    elif method == "pca" or n <= n_neighbors + 1:
        coords = pca_coords(vectors)
        info["method"] = "pca"
    else:
        if method == "pacmap":  # PaCMAP needs n > 3.5 n_neighbors (neighbours + mid-near + far pairs)
            n_neighbors = min(n_neighbors, int(min(n, max_fit) / 3.5))
        info.update(method=method, n_neighbors=n_neighbors)
        if method == "umap":
            if n_epochs is None:
                n_epochs = 500 if min(n, max_fit) <= _SMALL_FIT else 200
            info.update(min_dist=min_dist, n_epochs=n_epochs)
        coords = _fit_and_place(vectors, method, seed, graph, max_fit, n_neighbors, min_dist, n_epochs, info)
    if info["method"] != method:
        info["reason"] = f"{n} rows: too few for {method}"
    info["seconds"] = round(time.perf_counter() - start, 3)
    logger.info("2-D map: %d rows, %s, %.1f s", n, info["method"], info["seconds"])
    return MapResult(coords=coords.reshape(n, 2).astype(np.float32), info=info)


def compute_class_maps(
    vectors: np.ndarray,
    class_id: np.ndarray,
    *,
    graphs: dict[int, NeighborGraph] | None = None,
    **kw: Any,
) -> dict[int, MapResult]:
    """One 2-D map per class (each class's rows only, loaded from a memmap one class at a time).

    Args:
        vectors: (N, D) unit vectors of the whole run.
        class_id: (N,) integer class of every row.
        graphs: Optional within-class graphs ({class id: graph}, as from ``build_class_graphs``).
        **kw: Passed to :func:`compute_map` (method, seed, max_fit, n_neighbors, min_dist, n_epochs).

    Returns:
        {class id: MapResult}; ``coords`` follow the order of ``np.flatnonzero(class_id == c)``.

    Example:
        >>> maps = compute_class_maps(x, np.array([0, 1] * 25), method="pca")  # doctest: +SKIP
    """
    class_id = np.asarray(class_id)
    if class_id.shape != (len(vectors),):
        raise ValueError(f"class_id has shape {class_id.shape}, expected ({len(vectors)},) to match vectors")
    maps: dict[int, MapResult] = {}
    for c in np.unique(class_id):
        rows = np.flatnonzero(class_id == c)
        graph = None if graphs is None else graphs.get(int(c))
        if graph is not None and not np.array_equal(graph.rows, rows):
            raise ValueError(f"the graph given for class {c} does not cover exactly that class's rows")
        whole = len(rows) == len(vectors)  # one class: no copy of a memmap store
        maps[int(c)] = compute_map(vectors if whole else np.asarray(vectors[rows]), graph=graph, **kw)
    return maps


# ---------------------------------------------------------------------------------------------- fit + place


def _fit_and_place(
    vectors: np.ndarray,
    method: str,
    seed: int,
    graph: NeighborGraph | None,
    max_fit: int,
    n_neighbors: int,
    min_dist: float,
    n_epochs: int | None,
    info: dict[str, Any],
) -> np.ndarray:
    """Fit UMAP/PaCMAP on all rows or a seeded sample and place the rest; fills ``info``."""
    n = len(vectors)
    m = n_neighbors - 1 if method == "umap" else n_neighbors  # UMAP counts the row itself as a neighbour
    local = _local_neighbors(graph) if graph is not None else None
    graph_sims = graph.sims if graph is not None else np.empty((n, 0), dtype=np.float32)
    if n <= max_fit:
        x = np.asarray(vectors, dtype=np.float32)
        if local is not None and _covers(local, m):
            info["graph_used"] = True
            knn, sims = local, graph_sims
        else:
            info["graph_used"] = False
            knn, sims = _own_knn(x, m, seed)
        return fit_neighbor_embedding(x, method, seed, n_neighbors, min_dist, n_epochs, knn, sims)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=max_fit, replace=False))
    info.update(n_fit=max_fit, graph_used=local is not None)
    x = np.asarray(vectors[sample], dtype=np.float32)
    fitted = fit_neighbor_embedding(x, method, seed, n_neighbors, min_dist, n_epochs, *_own_knn(x, m, seed))
    coords = np.full((n, 2), np.nan, dtype=np.float32)
    coords[sample] = fitted
    if local is not None:
        n_graph = _spread_along_graph(coords, local, graph_sims)
        info.update(placement="graph", n_placed_graph=n_graph)
    todo = np.flatnonzero(np.isnan(coords[:, 0]))
    if len(todo):
        info["placement"] = info["placement"] or "nearest-sample"
        coords[todo] = _place_from_sample(vectors, sample, fitted, todo)
    info["n_placed_search"] = len(todo)
    return coords


def _own_knn(x: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, m) neighbours of the fitted rows from our own graph: UMAP then never runs pynndescent, whose numba
    compilation alone costs ~50 s per process here (the fit itself: 20 k rows in ~13 s)."""
    from dinoscope.analysis.neighbors import build_neighbor_graph

    graph = build_neighbor_graph(x, k=m, seed=seed)
    return graph.indices, graph.sims


def _local_neighbors(graph: NeighborGraph) -> np.ndarray | None:
    """The graph's (non-empty) neighbour indices in its own row order (-1 kept), or None if they leave its rows."""
    rows, indices = graph.rows, graph.indices
    if np.array_equal(rows, np.arange(len(rows))):
        pos, ok = indices, (indices >= 0) & (indices < len(rows))
    else:
        order = np.argsort(rows, kind="stable")
        pos = order[np.minimum(np.searchsorted(rows, indices, sorter=order), len(rows) - 1)]
        ok = (indices >= 0) & (rows[pos] == indices)
    if not np.array_equal(ok, indices >= 0):
        logger.info("neighbour graph points outside its own rows: not used for the map")
        return None
    return np.where(ok, pos, -1).astype(np.int64)


def _covers(local: np.ndarray, m: int) -> bool:
    return local.shape[1] >= m and bool((local[:, :m] >= 0).all())


def _spread_along_graph(coords: np.ndarray, local: np.ndarray, sims: np.ndarray) -> int:
    """Place NaN rows of ``coords`` in waves at the weighted mean of their placed neighbours; returns count."""
    weights = np.clip(sims, 1e-6, None)
    n_placed = 0
    while True:
        todo = np.flatnonzero(np.isnan(coords[:, 0]))
        if not len(todo):
            return n_placed
        nb = local[todo]
        ok = (nb >= 0) & ~np.isnan(coords[np.maximum(nb, 0), 0])
        has = ok.any(axis=1)
        if not has.any():
            return n_placed
        w = np.where(ok, weights[todo], 0.0)[has]
        pos = np.nan_to_num(coords[np.maximum(nb[has], 0)])
        coords[todo[has]] = (w[..., None] * pos).sum(axis=1) / w.sum(axis=1, keepdims=True)
        n_placed += int(has.sum())


def _place_from_sample(vectors: np.ndarray, sample: np.ndarray, fitted: np.ndarray, todo: np.ndarray) -> np.ndarray:
    """Weighted mean of the 2-D positions of each row's nearest sample rows (HNSW when FAISS is installed)."""
    base = np.asarray(vectors[sample], dtype=np.float32)
    k = min(_N_NEAREST, len(sample))
    out = np.empty((len(todo), 2), dtype=np.float32)
    try:
        import faiss

        index = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
        index.add(base)
        index.hnsw.efSearch = 64
    except ImportError:
        index = None
    for c0 in range(0, len(todo), _CHUNK):
        q = np.asarray(vectors[todo[c0 : c0 + _CHUNK]], dtype=np.float32)
        if index is not None:
            sims, idx = index.search(q, k)
        else:
            idx, sims = exact_search(q, base, k)
        w = np.where(idx >= 0, np.clip(sims, 1e-6, None), 0.0)
        out[c0 : c0 + len(q)] = (w[..., None] * fitted[np.maximum(idx, 0)]).sum(1) / w.sum(1, keepdims=True)
    return out
