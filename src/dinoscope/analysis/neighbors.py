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
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dinoscope._deps import require
from dinoscope.analysis.base import NeighborGraph
from dinoscope.errors import ConfigError

__all__ = [
    "EXACT_MAX",
    "build_class_graphs",
    "build_neighbor_graph",
    "exact_search",
    "first_k",
    "load_graph",
    "save_graph",
]

logger = logging.getLogger(__name__)

#: Default crossover: exact up to this many rows, HNSW above. Measured on 2 cores, 768-d (exact / HNSW with the
#: recall check): 5 k 1.0 / 0.8 s, 10 k 2.2 / 2.4-3.5 s, 15 k 8.1 / 4.8 s, 20 k 14 / 6.7 s, 30 k 30 / 11 s.
EXACT_MAX = 10_000
METHODS = ("auto", "exact", "hnsw")
# Float16 input is indexed in float16 (IndexHNSWSQ, QT_fp16: lossless for it, half the memory traffic), float32
# input in float32 (IndexHNSWFlat), so FAISS's similarities are exact either way. 300 k × 768-d synthetic
# mixture, float16 storage, build + search all, recall@15 at efSearch=32: M=16/efC=40 70 s, 0.969;
# M=16/efC=60 91 s, 0.977; M=24/efC=60 95 s, 0.980 (float32 storage: 126 s); M=32/efC=40 111 s, 0.991.
# The recall check below raises efSearch when the data is harder.
HNSW_M = 16  # links per node (2·M on the bottom layer)
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH_START = 32
HNSW_EF_SEARCH_MAX = 1024
RECALL_TARGET = 0.95
RECALL_SAMPLE = 500
#: Smallest recall gain of a 1.5x wider search worth paying for (below it the recall has plateaued).
RECALL_PLATEAU = 0.005
#: efSearch stops growing when searching every row would take longer than this many times the index build
#: (or SEARCH_BUDGET_MIN_S): on data whose neighbours are nearly equidistant (dense high-dimensional blobs) the
#: exact-identity recall climbs slowly while the neighbours found are already as close as the true ones
#: (``kth_similarity_ratio`` in info), and an unbounded search took hours at 1 M rows.
SEARCH_BUDGET_BUILD_RATIO = 1.0
SEARCH_BUDGET_MIN_S = 60.0
_BLOCK_ELEMS = 1 << 24  # floats per similarity block (64 MiB)
_QUERY_CHUNK = 65_536  # rows converted to float32 and searched at a time


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
) -> NeighborGraph:
    """Find the k most cosine-similar other rows of every row.

    Args:
        vectors: (N, D) float32 or float16 L2-normalised vectors, possibly a ``np.memmap``. Memory: one float32
            copy (N·D·4 bytes; none if already float32) plus, for HNSW, FAISS's own copy; never N×N.
        k: Neighbours per row; rows with fewer than k other rows are padded with -1 / -inf.
        rows: (N,) global row numbers of ``vectors`` (default ``arange(N)``); the graph's indices use them, so
            a within-class graph built from a class's vectors points into the run's global numbering.
        method: ``"exact"``, ``"hnsw"`` (FAISS, extra ``faiss``) or ``"auto"`` (exact when N <= exact_max).
        exact_max: Crossover for ``"auto"`` (default :data:`EXACT_MAX`).
        seed: Seeds the HNSW level assignment and the recall sample.
        n_threads: Threads for FAISS and BLAS (default: all cores).
        recall_target: HNSW only: ``efSearch`` grows (×1.5) until the recall measured on a sample reaches this.
        recall_k: HNSW only: measure that recall on the first ``recall_k`` neighbours (default k) - for a graph
            searched wider than the part that must be accurate (the extra columns are candidates).

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
    used = ("exact" if n <= limit else "hnsw") if method == "auto" else method
    if n <= 1:
        used = "exact"
    start = time.perf_counter()
    info: dict[str, Any] = {"k": k, "n": n, "dim": d, "method": used, "exact_max": limit}
    with _limit_threads(n_threads):
        if used == "exact":
            local, sims = _exact_graph(vectors, k)
        else:
            local, sims = _hnsw_graph(
                vectors, k, seed=seed, recall_target=recall_target, recall_k=min(k, recall_k or k), info=info
            )
    indices = np.where(local >= 0, rows[np.maximum(local, 0)], -1)
    info["seconds"] = round(time.perf_counter() - start, 3)
    logger.info("neighbour graph: %d rows, k=%d, %s, %.1f s", n, k, used, info["seconds"])
    return NeighborGraph(indices=indices, sims=sims, rows=rows, method=used, info=info)


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
    index. On separable data this skips almost all of the per-class index builds.

    Args:
        vectors: (N, D) unit vectors of the whole run (a memmap is read one class at a time).
        class_id: (N,) integer class of every row.
        k: Neighbours per row (small classes are padded with -1 / -inf).
        candidates: Optional all-object graph over the same N rows (``rows == arange(N)``), most similar first.
        **kw: Passed to :func:`build_neighbor_graph` (method, exact_max, seed, n_threads, recall_target).

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
    graphs: dict[int, NeighborGraph] = {}
    for c in np.unique(class_id):
        rows = np.flatnonzero(class_id == c)
        if candidates is None or len(rows) <= EXACT_MAX:
            graphs[int(c)] = build_neighbor_graph(np.asarray(vectors[rows]), k, rows=rows, **kw)
        else:
            graphs[int(c)] = _class_graph_from_candidates(vectors, class_id, rows, k, candidates, **kw)
    return graphs


#: Largest (short rows × class rows) product searched exactly; beyond it the class gets its own index.
_REFILL_EXACT_PAIRS = 100_000_000


def _class_graph_from_candidates(
    vectors: np.ndarray, class_id: np.ndarray, rows: np.ndarray, k: int, candidates: NeighborGraph, **kw: Any
) -> NeighborGraph:
    """Within-class graph of one class from the all-object candidates, re-searching the rows short of them."""
    start = time.perf_counter()
    c = class_id[rows[0]]
    cand = candidates.indices[rows]
    same = (cand >= 0) & (class_id[np.maximum(cand, 0)] == c)
    need = min(k, len(rows) - 1)
    short = np.flatnonzero(same.sum(axis=1) < need)
    if len(short) * len(rows) > _REFILL_EXACT_PAIRS:  # many rows mixed with other classes: a class index
        graph = build_neighbor_graph(np.asarray(vectors[rows]), k, rows=rows, **kw)
        graph.info.update(source="class index", short_rows=len(short))
        return graph
    order = np.argsort(~same, axis=1, kind="stable")[:, :k]  # same-class candidates first, in similarity order
    keep = np.take_along_axis(same, order, 1)
    indices = np.where(keep, np.take_along_axis(cand, order, 1), -1)
    sims = np.where(keep, np.take_along_axis(candidates.sims[rows], order, 1), -np.inf).astype(np.float32)
    if len(short):
        base = np.asarray(vectors[rows])
        local, s = exact_search(base[short], base, k, self_rows=short)
        indices[short] = np.where(local >= 0, rows[np.maximum(local, 0)], -1)
        sims[short] = s
    info = {"k": k, "n": len(rows), "method": candidates.method, "source": "all-object candidates"}
    info.update(candidates_k=candidates.k, short_rows=len(short), seconds=round(time.perf_counter() - start, 3))
    return NeighborGraph(indices=indices, sims=sims, rows=rows, method=candidates.method, info=info)


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


# --------------------------------------------------------------------------------------------- exact search


def _exact_graph(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) local indices and sims of the exact graph, self excluded, padded with -1 / -inf."""
    base = _float32(vectors)
    n = len(base)
    idx = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    step = max(1, min(n, _BLOCK_ELEMS // max(n, 1)))
    for q0 in range(0, n, step):
        q1 = min(n, q0 + step)
        i, s = exact_search(base[q0:q1], base, k, self_rows=np.arange(q0, q1))
        idx[q0:q1], sims[q0:q1] = i, s
    return idx, sims


def exact_search(
    queries: np.ndarray, base: np.ndarray, k: int, *, self_rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of ``queries`` (Q, D) against ``base`` (N, D), blocked over the base.

    Args:
        queries: (Q, D) unit vectors.
        base: (N, D) unit vectors (a memmap is read one block at a time; memory O(Q × block)).
        k: Results per query.
        self_rows: (Q,) base rows to exclude per query (the queries' own rows).

    Returns:
        (Q, k) int64 base rows and float32 sims, highest first, ties to the lower row, padded with -1 / -inf
        when fewer than k rows qualify.

    Example:
        >>> idx, sims = exact_search(x_val, x_train, k=1)  # doctest: +SKIP
    """
    q = np.asarray(queries, dtype=np.float32)
    n = len(base)
    best_i = np.full((len(q), k), -1, dtype=np.int64)
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    block = max(1, _BLOCK_ELEMS // max(len(q), 1))
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        s = q @ np.asarray(base[b0:b1], dtype=np.float32).T
        if self_rows is not None:
            hit = np.flatnonzero((self_rows >= b0) & (self_rows < b1))
            s[hit, self_rows[hit] - b0] = -np.inf
        cand_i, cand_s = _top_k(s, k)
        cand_i = np.where(cand_i >= 0, cand_i + b0, -1)
        best_i, best_s = _merge(best_i, best_s, cand_i, cand_s, k)
    return best_i, best_s


def _top_k(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row top-k of a (Q, B) block, highest first, ties to the lower column; -inf entries become -1."""
    n_q, n_b = s.shape
    kk = min(k, n_b)
    if kk < n_b:
        thr = np.partition(s, n_b - kk, axis=1)[:, n_b - kk]  # k-th largest value (values only: 2x faster)
        r, c = np.nonzero(s >= thr[:, None])  # every row has >= kk candidates; more only on ties at thr
    else:
        r, c = np.divmod(np.arange(n_q * n_b), n_b)
    v = s[r, c]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, np.arange(n_q))
    take = starts[:, None] + np.arange(kk)
    idx = np.full((n_q, k), -1, dtype=np.int64)
    sims = np.full((n_q, k), -np.inf, dtype=np.float32)
    idx[:, :kk], sims[:, :kk] = c[take], v[take]
    idx[~np.isfinite(sims)] = -1
    return idx, sims


def _merge(i1: np.ndarray, s1: np.ndarray, i2: np.ndarray, s2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge two (Q, k) candidate lists into the top k, ties to the lower row, padding (-1) last."""
    idx = np.concatenate([i1, i2], axis=1)
    sims = np.concatenate([s1, s2], axis=1)
    key_row = np.where(idx >= 0, idx, np.iinfo(np.int64).max)
    order = np.lexsort((key_row, -sims), axis=1)[:, :k]
    return np.take_along_axis(idx, order, 1), np.take_along_axis(sims, order, 1)


# ---------------------------------------------------------------------------------------------- HNSW search


def _hnsw_graph(
    vectors: np.ndarray, k: int, *, seed: int, recall_target: float, recall_k: int, info: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) local indices and sims from a FAISS HNSW index, efSearch tuned on a sample for the recall."""
    faiss = require("faiss", "faiss", "approximate nearest neighbours (HNSW) on large inputs", "method='exact'")
    n, d = vectors.shape
    t0 = time.perf_counter()
    half = np.dtype(vectors.dtype) == np.float16
    if half:
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.rng = faiss.RandomGenerator(int(seed))
    # one add() call: adding in chunks lowers the recall (20 k-row chunks: 0.89 instead of 0.95 at 100 k).
    # FAISS >= 1.15 builds deterministically with any number of threads; older FAISS only with one.
    serial = 1 if not hasattr(faiss, "hnsw_add_vertices_deterministic") else None
    with _limit_threads(serial):
        index.add(_float32(vectors))
    info.update(hnsw_m=HNSW_M, hnsw_ef_construction=HNSW_EF_CONSTRUCTION, hnsw_storage="float16" if half else "float32")
    info["build_seconds"] = _since(t0)

    t0 = time.perf_counter()
    sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, RECALL_SAMPLE), replace=False))
    queries = np.asarray(vectors[sample], dtype=np.float32)
    truth, truth_sims = exact_search(queries, vectors, recall_k, self_rows=sample)
    ef, tried = max(HNSW_EF_SEARCH_START, k + 1), []
    budget = max(SEARCH_BUDGET_MIN_S, SEARCH_BUDGET_BUILD_RATIO * info["build_seconds"])
    while True:
        index.hnsw.efSearch = ef
        t1 = time.perf_counter()
        found, found_sims = _search_excluding_self(index, queries, sample, k)
        projected = (time.perf_counter() - t1) / len(sample) * n  # seconds to search every row at this ef
        recall = _recall(found[:, :recall_k], found_sims[:, :recall_k], truth, truth_sims)
        sim_ratio = _kth_similarity_ratio(found_sims[:, :recall_k], truth_sims)
        tried.append([ef, round(recall, 4)])
        if recall >= recall_target or ef >= HNSW_EF_SEARCH_MAX:
            break
        if len(tried) > 1 and recall - tried[-2][1] < RECALL_PLATEAU:
            # the index's construction limits the recall: a wider search costs time and buys nothing
            ef, recall = tried[-2][0], tried[-2][1]
            info["recall_limit"] = "plateau"
            break
        if projected * 1.5 > budget:  # the next, wider search would cost more than the budget
            info["recall_limit"] = f"search budget {budget:.0f} s"
            break
        ef = int(ef * 1.5)
    index.hnsw.efSearch = ef
    info.update(hnsw_ef_search=ef, recall=round(recall, 4), recall_k=recall_k, recall_sample=len(sample))
    info["kth_similarity_ratio"] = round(sim_ratio, 4)
    info["recall_tried"] = tried
    info["recall_seconds"] = _since(t0)
    if recall < recall_target:
        logger.warning(
            "HNSW recall %.3f < %.2f at efSearch=%d (%s; tried %s); the k-th neighbours found are %.4f as similar "
            "as the true ones",
            recall,
            recall_target,
            ef,
            info.get("recall_limit", "efSearch limit"),
            tried,
            sim_ratio,
        )

    t0 = time.perf_counter()
    idx = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    for c0 in range(0, n, _QUERY_CHUNK):
        c1 = min(n, c0 + _QUERY_CHUNK)
        q = np.ascontiguousarray(vectors[c0:c1], dtype=np.float32)
        idx[c0:c1], sims[c0:c1] = _search_excluding_self(index, q, np.arange(c0, c1), k)
    info["search_seconds"] = _since(t0)
    return idx, sims


def _search_excluding_self(index: Any, queries: np.ndarray, self_rows: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Search k+1, drop the query's own row (or the last hit when the row is absent) and sort canonically.

    (Re-scoring hits against the vectors instead of storing them losslessly costs 30-90 s per 1 M rows here:
    gathering 15 M random rows is slow.)
    """
    sims, idx = index.search(queries, k + 1)
    keep = idx != self_rows[:, None]
    keep[keep.all(axis=1), -1] = False
    idx = idx[keep].reshape(len(queries), k)
    sims = sims[keep].reshape(len(queries), k).astype(np.float32)
    sims[idx < 0] = -np.inf
    key_row = np.where(idx >= 0, idx, np.iinfo(np.int64).max)
    order = np.lexsort((key_row, -sims), axis=1)
    return np.take_along_axis(idx, order, 1), np.take_along_axis(sims, order, 1)


def _kth_similarity_ratio(found_sims: np.ndarray, truth_sims: np.ndarray) -> float:
    """Mean over queries of (similarity of the k-th neighbour found) / (that of the true k-th): 1 = as close."""
    ok = np.isfinite(truth_sims[:, -1]) & np.isfinite(found_sims[:, -1]) & (truth_sims[:, -1] > 0)
    if not ok.any():
        return 1.0
    return float(np.mean(found_sims[ok, -1] / truth_sims[ok, -1]))


def _recall(found: np.ndarray, found_sims: np.ndarray, truth: np.ndarray, truth_sims: np.ndarray) -> float:
    """Share of the true neighbours matched; a found row counts when it is as similar as the true k-th, so
    tied rows are interchangeable."""
    kth = np.where(truth >= 0, truth_sims, np.inf).min(axis=1, keepdims=True)
    n_true = (truth >= 0).sum(axis=1)
    hits = np.minimum(((found_sims >= kth - 1e-5) & (found >= 0)).sum(axis=1), n_true)
    return float(hits.sum() / max(n_true.sum(), 1))


# -------------------------------------------------------------------------------------------------- helpers


def _float32(vectors: np.ndarray) -> np.ndarray:
    """The vectors as a C-contiguous float32 array (no copy when they already are one), checked finite."""
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    finite = np.isfinite(out.sum(axis=1))  # NaN/inf propagate through the row sum; no (N, D) temporary
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"vectors have NaN/inf in {len(bad)} rows (first: {bad[:5].tolist()}); drop them first")
    return out


def _check_vectors(vectors: np.ndarray) -> tuple[int, int]:
    if not hasattr(vectors, "shape") or len(vectors.shape) != 2:
        raise ValueError(f"vectors must be an (N, D) array, got shape {getattr(vectors, 'shape', None)}")
    if np.dtype(vectors.dtype).kind != "f":
        raise ValueError(f"vectors must be float16/float32 unit vectors, got dtype {vectors.dtype}")
    return int(vectors.shape[0]), int(vectors.shape[1])


@contextlib.contextmanager
def _limit_threads(n_threads: int | None) -> Iterator[None]:
    """Limit FAISS (OpenMP) and BLAS threads inside the block, restoring them afterwards."""
    if n_threads is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n_threads))
        with contextlib.suppress(ImportError):
            import faiss

            before = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(n_threads)
            stack.callback(faiss.omp_set_num_threads, before)
        yield


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)
