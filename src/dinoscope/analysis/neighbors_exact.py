"""Exact k-nearest-neighbour search by cosine similarity: blocked float32 matrix products, never an N×N matrix.

Memory is O(chunk × N): queries and base rows are processed in blocks of about 64 MiB of similarities, and a
memmapped base is read one block at a time. Ties go to the lower row, so the same input always gives the same
answer. This is the exact path of :func:`~dinoscope.analysis.neighbors.build_neighbor_graph` and the reference
the HNSW recall is measured against.
"""

from __future__ import annotations

import numpy as np

__all__ = ["exact_graph", "exact_search"]

_BLOCK_ELEMS = 1 << 24  # floats per similarity block (64 MiB)


def exact_graph(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) local indices and sims of the exact graph, self excluded, padded with -1 / -inf.

    Example:
        >>> idx, sims = exact_graph(np.eye(3, dtype=np.float32)[[0, 0, 1]], k=1)
        >>> idx.ravel().tolist()
        [1, 0, 0]
    """
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


def _float32(vectors: np.ndarray) -> np.ndarray:
    """The vectors as a C-contiguous float32 array (no copy when they already are one), checked finite."""
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    finite = np.isfinite(out.sum(axis=1))  # NaN/inf propagate through the row sum; no (N, D) temporary
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"vectors have NaN/inf in {len(bad)} rows (first: {bad[:5].tolist()}); drop them first")
    return out
