"""Approximate k-nearest neighbours for large inputs: a FAISS HNSW index with ``efSearch`` tuned for recall.

HNSW: Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
Navigable Small World graphs", IEEE TPAMI 2018; FAISS: Douze et al., "The Faiss library", 2024. The index holds
inner products of the unit vectors, float16 input as float16 (``IndexHNSWSQ``, lossless for it) and float32
input as float32 (``IndexHNSWFlat``), so the similarities FAISS returns are exact dot products. The search width
``efSearch`` grows on a seeded sample of queries until the recall against the exact answer
(:func:`~dinoscope.analysis.neighbors_exact.exact_search`) reaches a target, the recall stops improving, or a
wider search would cost more than a time budget; what happened is recorded in the graph's ``info``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from dinoscope._deps import require
from dinoscope.analysis.neighbors_exact import _float32, exact_search

__all__ = ["RECALL_TARGET", "hnsw_graph", "limit_threads"]

logger = logging.getLogger(__name__)

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
_QUERY_CHUNK = 65_536  # rows converted to float32 and searched at a time


def hnsw_graph(
    vectors: np.ndarray, k: int, *, seed: int, recall_target: float, recall_k: int, info: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) local indices and sims from a FAISS HNSW index, efSearch tuned on a sample for the recall.

    Args:
        vectors: (N, D) float16/float32 unit vectors, N >= 2.
        k: Neighbours per row (the row itself excluded).
        seed: Seeds the HNSW level assignment and the recall sample.
        recall_target: ``efSearch`` grows (×1.5) until the recall measured on the sample reaches this.
        recall_k: Measure the recall on the first ``recall_k`` neighbours (<= k).
        info: Filled with the index settings, the recall reached, what was tried and the seconds spent.

    Returns:
        (N, k) int64 row numbers and float32 sims, most similar first, ties to the lower row.

    Example:
        >>> info = {}
        >>> idx, sims = hnsw_graph(x, 15, seed=0, recall_target=0.95, recall_k=15, info=info)  # doctest: +SKIP
        >>> info["recall"], info["hnsw_ef_search"]  # doctest: +SKIP
        (0.97, 32)
    """
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
    with limit_threads(serial):
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


@contextlib.contextmanager
def limit_threads(n_threads: int | None) -> Iterator[None]:
    """Limit FAISS (OpenMP) and BLAS threads inside the block, restoring them afterwards (None: no limit).

    Example:
        >>> with limit_threads(1):  # doctest: +SKIP
        ...     graph = build_neighbor_graph(x)
    """
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


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)
