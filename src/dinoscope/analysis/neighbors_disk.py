"""The kNN graph past memory: the vector store read in chunks, a compressed FAISS IVF index kept on disk.

:func:`build_neighbor_graph`'s in-memory HNSW holds a float32 copy of the vectors and FAISS's own (N·D·8
bytes: 6 GB at 1 M × 768); past a few million rows that no longer fits. :func:`disk_graph` never holds the
vectors: it reads the store's ``.npy`` (float16 or float32, the run's ``embeddings/<name>.npy``) one chunk at a
time, trains an IVF index (Jégou et al., "Product quantization for nearest neighbor search", TPAMI 2011; its
coarse quantizer searched with HNSW, Malkov & Yashunin 2018; FAISS, Douze et al. 2024) on a seeded sample and
adds the chunks as 4-bit product-quantisation codes scanned with SIMD ("fast-scan", André et al., "Cache
locality is not enough", VLDB 2015): ``D / 16`` bytes a row (48 B for 768-d, 1/32 of float16). The index is
written to disk. The ``4k + 1`` candidates of each row are re-scored exactly against the stored vectors
(re-normalised: the similarities are the cosines the in-memory paths give), so the codes only choose
candidates. Queries run inverted list by inverted list: a block's rows are near each other, probe the same
lists and share most candidates, so the re-scoring reads ~8x fewer distinct rows of the store than in row
order. ``nprobe`` (lists visited) and then the candidates per neighbour double on a seeded sample until the
recall@k of the re-scored graph against the exact answer reaches the target.

Measured here (768-d, 100 k rows, under load): 4-bit SQ codes (the first version: 384 B a row) searched
3.5x slower than these and gave the same recall after re-scoring; row-order re-scoring read 46 k distinct
rows per 1,024 queries against 5-7 k in list order. On a machine busier than its cores FAISS runs one thread
(:func:`busy_threads`). The graph is written to ``.npy`` files and returned memory-mapped. Resident memory:
the codes (N·D/16 bytes), the chunk and re-scoring buffers (a few hundred MB) and the store pages the OS keeps
cached — never a copy of the vectors.

Example:
    >>> graph = disk_graph(run.store_path(name), k=15, workdir=run.path / "cache/knn")  # doctest: +SKIP
    >>> graph.indices.shape  # doctest: +SKIP
    (2000000, 15)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dinoscope._deps import require
from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.neighbors_exact import exact_search
from dinoscope.analysis.neighbors_hnsw import RECALL_TARGET, limit_threads

__all__ = ["CHUNK_ROWS", "METHOD", "busy_threads", "disk_graph", "iter_chunks"]

logger = logging.getLogger(__name__)

METHOD = "ivf-disk"
#: Rows read, added or searched at a time (32 k × 768 float32 = 100 MB).
CHUNK_ROWS = 32_768
_RESCORE_QUERIES = 512  # queries re-scored at a time, as long as their distinct candidates are at most
_RESCORE_MAX_ROWS = 65_536  # 192 MB of float32 rows at 768-d (a random 500-row sample at 961 candidates: 480 k)
#: Candidates per neighbour taken from the compressed index and re-scored exactly.
CANDIDATES = 4
_TRAIN_PER_LIST = 30  # training rows per inverted list (FAISS asks for >= 30-39)
_NPROBE_START, _NPROBE_MAX = 4, 256
_NPROBE_GAIN = 0.01  # a doubling of nprobe that gains less has stalled
_CANDIDATES_MAX = 128  # 32 left recall@15 at 0.84 at 2 M (1,000 rows per planted group)
_RECALL_SAMPLE = 500


def iter_chunks(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, (c, D) float32 rows) of an ``.npy`` matrix, read one chunk at a time (mapped only meanwhile).

    Example:
        >>> sum(len(c) for _, c in iter_chunks(path))  # doctest: +SKIP
        2000000
    """
    n = len(np.load(path, mmap_mode="r"))
    for start in range(0, n, chunk_rows):
        yield start, _read_rows(path, np.arange(start, min(n, start + chunk_rows)))


def busy_threads() -> int | None:
    """1 while the 1-minute load average exceeds the cores, else None (all cores).

    FAISS's OpenMP threads spin-wait at every barrier: on 2 cores shared with other jobs (load 11-13), training
    the IVF-PQ index on 20 k rows took 44-67 s with 2 threads and 5-8 s with 1; adding and searching 1.5-2x
    longer with 2.

    Example:
        >>> busy_threads() in (1, None)
        True
    """
    try:
        return 1 if os.getloadavg()[0] > (os.cpu_count() or 1) else None
    except OSError:  # no load average on this platform
        return None


def _read_rows(path: Path, rows: np.ndarray) -> np.ndarray:
    """``rows`` (sorted or not) of an ``.npy`` matrix as float32, the file mapped only for this read."""
    mapped = np.load(path, mmap_mode="r")
    try:
        if len(rows) and np.all(np.diff(rows) == 1):
            return np.asarray(mapped[rows[0] : rows[-1] + 1], dtype=np.float32)
        return np.asarray(mapped[rows], dtype=np.float32)
    finally:
        del mapped


def disk_graph(
    path: str | Path,
    k: int = 15,
    *,
    workdir: str | Path,
    seed: int = 0,
    recall_target: float = RECALL_TARGET,
    chunk_rows: int = CHUNK_ROWS,
    n_threads: int | None = None,
) -> NeighborGraph:
    """The k most cosine-similar other rows of every row of an ``.npy`` store, in bounded memory.

    Args:
        path: (N, D) float16/float32 unit vectors in an ``.npy`` file (a run's store).
        k: Neighbours per row.
        workdir: Folder for the index and the graph's ``indices.npy`` / ``sims.npy`` (created).
        seed: Seeds the training sample and the recall sample.
        recall_target: ``nprobe`` doubles until the re-scored recall on a sample reaches this.
        chunk_rows: Rows read, added and searched at a time.
        n_threads: FAISS/BLAS threads (default: all cores, or 1 while the machine is busier than its cores:
            see :func:`busy_threads`).

    Returns:
        A :class:`NeighborGraph` (method ``ivf-disk``) whose ``indices`` and ``sims`` are read-only memmaps
        of the files in ``workdir``; ``info`` holds the index settings, recall, seconds per stage.
    """
    faiss = require(
        "faiss", "faiss", "the on-disk neighbour graph", "use build_neighbor_graph below a few million rows"
    )
    path, workdir = Path(path), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    n, d = np.load(path, mmap_mode="r").shape
    if n < 2 or k < 1:
        raise ValueError(f"need at least 2 rows and k >= 1; got {n} rows, k={k}")
    k = min(k, n - 1)
    nlist = int(np.clip(2 * math.sqrt(n), 1, n // _TRAIN_PER_LIST or 1))
    codes = f"PQ{d // 8 if d >= 256 else d // 4}x4fs" if d % 16 == 0 else "SQ4"
    info: dict[str, Any] = {"k": k, "n": n, "dim": d, "method": METHOD, "nlist": nlist, "codes": codes}
    n_threads = busy_threads() if n_threads is None else n_threads
    info["threads"] = n_threads or os.cpu_count()
    t0 = time.perf_counter()
    with limit_threads(n_threads):
        index = faiss.index_factory(d, f"IVF{nlist}_HNSW32,{codes}", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, nlist * _TRAIN_PER_LIST + 256 * 4), replace=False))
        index.train(_read_rows(path, sample))
        info["train_seconds"] = round(time.perf_counter() - t0, 3)
        for _, chunk in iter_chunks(path, chunk_rows):
            index.add(chunk)
        index_path = workdir / "ivf.index"
        faiss.write_index(index, str(index_path))
        del index
        index = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP)
        info["code_bytes"] = int(index.code_size)
        info["build_seconds"] = round(time.perf_counter() - t0, 3)
        t1 = time.perf_counter()
        index.nprobe, factor = _tune(index, path, n, k, rng, recall_target, info)
        info["tune_seconds"] = round(time.perf_counter() - t1, 3)
        t2 = time.perf_counter()
        indices_path, sims_path = workdir / "indices.npy", workdir / "sims.npy"
        out_idx = np.lib.format.open_memmap(indices_path, mode="w+", dtype=np.int64, shape=(n, k))
        out_sims = np.lib.format.open_memmap(sims_path, mode="w+", dtype=np.float32, shape=(n, k))
        # queries in inverted-list order: a block's rows are near each other, so they probe the same lists and
        # share most of their candidates (the re-scoring reads far fewer distinct rows of the store)
        order = _list_order(faiss, index)
        for a in range(0, n, chunk_rows):
            rows = order[a : a + chunk_rows]
            out_idx[rows], out_sims[rows] = _search(index, path, _read_rows(path, rows), rows, k, factor)
        out_idx.flush()
        out_sims.flush()
        del out_idx, out_sims
        info["search_seconds"] = round(time.perf_counter() - t2, 3)
    info["seconds"] = round(time.perf_counter() - t0, 3)
    logger.info("on-disk neighbour graph: %d rows, k=%d, nprobe %d, %.1f s", n, k, info["nprobe"], info["seconds"])
    return NeighborGraph(
        indices=np.load(indices_path, mmap_mode="r"),
        sims=np.load(sims_path, mmap_mode="r"),
        rows=np.arange(n, dtype=np.int64),
        method=METHOD,
        info=info,
    )


def _list_order(faiss: Any, index: Any) -> np.ndarray:
    """Every row id of the index, inverted list by inverted list."""
    lists = faiss.extract_index_ivf(index).invlists
    parts = [np.empty(0, np.int64)]
    for i in range(lists.nlist):
        size = lists.list_size(i)
        if size:
            parts.append(faiss.rev_swig_ptr(lists.get_ids(i), size).copy())
    return np.concatenate(parts)


def _search(
    index: Any, path: Path, queries: np.ndarray, rows: np.ndarray, k: int, factor: int = CANDIDATES
) -> tuple[np.ndarray, np.ndarray]:
    """Top k of each query: ``factor·k + 1`` candidates from the index, re-scored exactly, its own row dropped.

    Queries come in blocks of rows that are near each other (see :func:`disk_graph`), so a block's distinct
    candidates are few: they are read from the store once (sorted rows), multiplied with the block's queries in
    one float32 product and each query's candidates picked from it (gathering a (queries, candidates, D) copy
    instead took 2.0x the search time: 188 s against 94.5 s at 200 k rows with 961 candidates a row).
    """
    _, cand = index.search(queries, factor * k + 1)
    idx = np.empty((len(queries), k), np.int64)
    sims = np.empty((len(queries), k), np.float32)
    slot = np.zeros(index.ntotal, dtype=np.int32)  # a candidate's column in the block's product
    a, step = 0, _RESCORE_QUERIES
    while a < len(queries):
        b = min(len(queries), a + step)
        c = cand[a:b]
        wanted = np.unique(c[c >= 0])
        if len(wanted) > _RESCORE_MAX_ROWS and b - a > 1:  # scattered queries (the tuning sample): fewer at a time
            step = max(1, (b - a) // 2)
            continue
        step = min(_RESCORE_QUERIES, 2 * step)
        if not len(wanted):  # no candidate at all (a tiny index)
            idx[a:b], sims[a:b] = -1, -np.inf
            a = b
            continue
        slot[wanted] = np.arange(len(wanted), dtype=np.int32)
        product = _unit(queries[a:b]) @ _unit(_read_rows(path, wanted), inplace=True).T
        s = np.take_along_axis(product, slot[np.maximum(c, 0)], axis=1)
        s[(c < 0) | (c == rows[a:b, None])] = -np.inf
        key = np.where(c >= 0, c, np.iinfo(np.int64).max)
        order = np.lexsort((key, -s), axis=1)[:, :k]  # higher similarity first, then the lower row
        top_s = np.take_along_axis(s, order, 1)
        top_i = np.take_along_axis(c, order, 1)
        idx[a:b] = np.where(np.isfinite(top_s), top_i, -1)
        sims[a:b] = top_s
        a = b
    return idx, sims


def _unit(x: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Rows scaled to unit length (a float16 store's norms are up to ~1e-4 off 1; an exact copy must score 1);
    ``inplace`` scales ``x`` itself (a fresh array read for this)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # 4x faster than np.linalg.norm on (U, 768)
    norms = np.where(norms > 0, norms, 1.0)
    return np.divide(x, norms, out=x) if inplace else x / norms


def _tune(
    index: Any, path: Path, n: int, k: int, rng: np.random.Generator, target: float, info: dict[str, Any]
) -> tuple[int, int]:
    """(nprobe, candidates per neighbour) whose re-scored recall@k on a sample reaches ``target``.

    ``nprobe`` doubles while that raises the recall (the true neighbours sit in lists not visited); when a
    doubling stops helping it is undone and the candidates per neighbour double instead (the 4-bit codes rank
    the true neighbours too low to be re-scored). Undoing matters in dense groups: there the lists first
    visited hold the neighbours and only the candidates count (at 200 k rows in groups of 1,000 the old
    tuner ended at nprobe 64 where 4 gives the same recall).
    """
    sample = np.sort(rng.choice(n, size=min(n, _RECALL_SAMPLE), replace=False))
    queries = _read_rows(path, sample)
    truth = _exact_truth(path, queries, sample, k)
    nprobe, factor, tried = _NPROBE_START, CANDIDATES, []
    nprobe_max = min(_NPROBE_MAX, index.nlist)
    while True:
        index.nprobe = nprobe
        found = _search(index, path, queries, sample, k, factor)[0]
        recall = float(np.mean([len(np.intersect1d(f, t)) / k for f, t in zip(found, truth, strict=True)]))
        tried.append([nprobe, factor, round(recall, 4)])
        stalled = len(tried) > 1 and tried[-2][1] == factor and recall - tried[-2][2] < _NPROBE_GAIN
        if stalled:  # that doubling of nprobe bought nothing: keep the cheaper nprobe
            nprobe, recall = tried[-2][0], tried[-2][2]
        if recall >= target or (factor >= _CANDIDATES_MAX and (stalled or nprobe >= nprobe_max)):
            break
        if (stalled or nprobe >= nprobe_max) and factor < _CANDIDATES_MAX:
            factor *= 2
        else:
            nprobe = min(2 * nprobe, nprobe_max)
    if recall < target:
        logger.warning("on-disk graph: recall %.3f < %.2f after trying %s", recall, target, tried)
    info.update(nprobe=nprobe, candidates=factor, recall=round(recall, 4), recall_target=target)
    info.update(recall_sample=len(sample), recall_tried=tried)
    return nprobe, factor


def _exact_truth(path: Path, queries: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) exact neighbours of ``queries`` (rows ``rows`` of the store, excluded), read chunk by chunk."""
    best_i = np.empty((len(queries), 0), np.int64)
    best_s = np.empty((len(queries), 0), np.float32)
    for start, chunk in iter_chunks(path):
        idx, sims = exact_search(queries, chunk, k, self_rows=rows - start)
        cat_i = np.concatenate([best_i, np.where(idx >= 0, idx + start, -1)], axis=1)
        cat_s = np.concatenate([best_s, sims], axis=1)
        order = np.argsort(-cat_s, axis=1, kind="stable")[:, :k]
        best_i, best_s = np.take_along_axis(cat_i, order, 1), np.take_along_axis(cat_s, order, 1)
    return best_i
