"""Exact top-k cosine search of the kNN probe: every tested row's most similar training rows of its fold.

Two schedules give the same neighbours (tested on synthetic sets: the same set of ``k`` for every ``k``; rows of
exactly equal similarity may come in either order, and where the BLAS rounds a small product's last bit
differently, a k-th and next neighbour within 1e-7 of each other may swap — either is a correct answer):

- :func:`search_per_fold`, the straightforward one: each fold's test rows times its training rows in row blocks
  (a float32 product, then the top ``k`` of each row). In grouped k-fold every pair of rows is multiplied twice
  (once from each side) and every product is ranked: 100 k x 384-d, 5 folds: 6 TFLOP and 8e9 values ranked.
- :func:`search_fold_pairs`, what the probe runs: the rows sorted by fold, each block of fold ``f`` times every
  later fold (and the train-only rows) **once**, the block used both ways: its rows offer their columns to the
  block's queries and its columns offer its rows to the later folds' queries — half the products. Ranking is
  made cheap by a running floor: each query keeps its best ``k`` so far; a block is scanned once for the maxima
  of its runs of 16 values, and only the runs that reach the query's floor are read again and merged (torch's
  ``topk`` over the few survivors).

Precision: float32 products in both, on every CPU. A bfloat16 candidate pass was measured and not used: its
products are 2.5x faster where the CPU has AVX512-BF16 (slow on AVX2-only machines), but proving the exactly
rescored candidates complete needs a cosine margin of ~0.02 (bf16 rounding of both inputs and the output),
hundreds to thousands of candidates per query to rescore from scattered rows. Both schedules multiply with
numpy's BLAS (torch's rounds the last bit differently from it), so at scale the similarities are the same bits.

Example:
    >>> sims, rows = search_fold_pairs(unit_vectors, folds, 200)  # doctest: +SKIP
    >>> rows[folds.test_rows(0)[0], :3]  # doctest: +SKIP
    array([ 5012, 88410,   731])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dinoscope.analysis.probe_eval import TRAIN_ONLY, EvaluationFolds

__all__ = ["search_fold_pairs", "search_per_fold", "top_k"]

#: Columns per product tile of :func:`search_fold_pairs`, as a multiple of the row block (2048 x 16384: 128 MB).
_TILE = 8
#: Values per run whose maximum decides whether the run is read again (a block's 2048 rows: 128 runs per column).
_RUN = 16


def search_per_fold(x: np.ndarray, folds: EvaluationFolds, k: int, chunk: int = 2048) -> tuple[np.ndarray, ...]:
    """(N, k) similarities and row numbers of each tested row's ``k`` most similar training rows, largest first
    (``-inf`` / -1 past the fold's training rows, and for rows not tested): one product per fold.

    Example:
        >>> sims, rows = search_per_fold(unit_vectors, folds, 200)  # doctest: +SKIP
    """
    sims = np.full((len(x), k), -np.inf, dtype=np.float32)
    rows = np.full((len(x), k), -1, dtype=np.int64)
    for f in range(folds.n_folds):
        train, test = folds.train_rows(f), folds.test_rows(f)
        if not len(train) or not len(test):
            continue
        xt = x[train]
        kk = min(k, len(train))
        for a in range(0, len(test), chunk):
            block = test[a : a + chunk]
            values, idx = top_k(x[block] @ xt.T, kk)
            sims[block, :kk], rows[block, :kk] = values, train[idx]
    return sims, rows


def search_fold_pairs(x: np.ndarray, folds: EvaluationFolds, k: int, chunk: int = 2048) -> tuple[np.ndarray, ...]:
    """The same as :func:`search_per_fold`, each pair of folds multiplied once (torch; without torch: per fold).

    Args:
        x: (N, D) float32 unit rows.
        folds: Which rows train and test.
        k: Neighbours kept per tested row.
        chunk: Rows per product block (columns per tile: 8x as many).

    Returns:
        ((N, k) float32 similarities, (N, k) int64 row numbers), largest first.

    Example:
        >>> sims, rows = search_fold_pairs(unit_vectors, folds, 200)  # doctest: +SKIP
    """
    try:
        import torch
    except ImportError:
        return search_per_fold(x, folds, k, chunk)
    order = np.argsort(folds.fold, kind="stable")
    order = order[folds.fold[order] >= TRAIN_ONLY]  # train-only rows first, then fold 0, 1, ...
    fold = folds.fold[order]
    xs = np.ascontiguousarray(x[order], dtype=np.float32)
    ids = torch.from_numpy(order.astype(np.int64))
    best = _Running(len(x), k, torch)
    start = {f: int(np.searchsorted(fold, f)) for f in range(TRAIN_ONLY, folds.n_folds + 1)}
    tile = np.empty(chunk * chunk * _TILE, dtype=np.float32)  # numpy's BLAS, as the per-fold search: same bits
    for f in range(folds.n_folds):
        lo, hi = start[f], start[f + 1]
        for a in range(lo, hi, chunk):
            rows = slice(a, min(a + chunk, hi))
            # Columns: the train-only rows (they only train: one way) and the later folds (both ways).
            for c0, c1, both in ((start[TRAIN_ONLY], start[0], False), (hi, len(order), True)):
                for b in range(c0, c1, chunk * _TILE):
                    cols = slice(b, min(b + chunk * _TILE, c1))
                    sims = tile[: (rows.stop - rows.start) * (cols.stop - cols.start)].reshape(-1, cols.stop - b)
                    np.matmul(xs[rows], xs[cols].T, out=sims)
                    best.offer(torch.from_numpy(sims), ids[rows], ids[cols])
                    if both:
                        best.offer(torch.from_numpy(sims).T, ids[cols], ids[rows])
    return best.vals.numpy(), best.rows.numpy()


class _Running:
    """Each query row's ``k`` best (similarity, row) so far, largest first; ``-inf`` / -1 in unfilled slots.

    A query still holding fewer than ``k`` merges its row's own top ``k``; afterwards a block is searched through
    the maxima of its runs of :data:`_RUN` values: only the runs whose maximum reaches the query's floor (its
    current ``k``-th value) are read again, and their values at or above it merged.
    """

    def __init__(self, n: int, k: int, torch: Any) -> None:
        self.torch = torch
        self.vals = torch.full((n, k), -torch.inf, dtype=torch.float32)
        self.rows = torch.full((n, k), -1, dtype=torch.int64)

    def offer(self, sims: Any, queries: Any, candidates: Any) -> None:
        """Merge the (Q, M) similarities of ``queries`` to ``candidates`` (rows as queries; may be a view)."""
        torch = self.torch
        k, width = self.vals.shape[1], sims.shape[1]
        floor = self.vals[queries, -1]
        open_rows = torch.isinf(floor)
        if bool(open_rows.any()):  # fewer than k held yet: the row's own top k, merged whole
            at = torch.nonzero(open_rows).squeeze(1)
            top, pos = torch.topk(sims[at], min(k, width), dim=1, sorted=False)
            self._merge(queries[at], top, candidates[pos])
            floor[open_rows] = torch.inf
        full = width // _RUN * _RUN
        runs = sims[:, :full].unflatten(1, (-1, _RUN))  # (Q, R, _RUN) view
        r, j = torch.nonzero(_run_max(sims, runs) >= floor[:, None]).unbind(1)  # runs reaching the floor
        if not len(r):
            return
        values = torch.full((len(r), _RUN), -torch.inf, dtype=torch.float32)
        body = j < full // _RUN
        values[body] = runs[r[body], j[body]]
        if not bool(body.all()):  # the row's last, shorter run
            values[~body, : width - full] = sims[r[~body], full:]
        i, pos = torch.nonzero(values >= floor[r, None]).unbind(1)  # i ascending, so r too
        r, col, val = r[i], j[i] * _RUN + pos, values[i, pos]
        hit, counts = torch.unique_consecutive(r, return_counts=True)
        slot = torch.arange(len(r)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        local = torch.repeat_interleave(torch.arange(len(hit)), counts)
        pool_v = torch.full((len(hit), int(counts.max())), -torch.inf, dtype=torch.float32)
        pool_r = torch.full((len(hit), int(counts.max())), -1, dtype=torch.int64)
        pool_v[local, slot], pool_r[local, slot] = val, candidates[col]
        self._merge(queries[hit], pool_v, pool_r)

    def _merge(self, queries: Any, values: Any, rows: Any) -> None:
        torch = self.torch
        k = self.vals.shape[1]
        pool_v = torch.cat([self.vals[queries], values], dim=1)
        pool_r = torch.cat([self.rows[queries], rows], dim=1)
        top, at = torch.topk(pool_v, k, dim=1, largest=True, sorted=True)
        self.vals[queries], self.rows[queries] = top, torch.gather(pool_r, 1, at)


def _run_max(sims: Any, runs: Any) -> Any:
    """(Q, ceil(M / _RUN)) maxima of each row's runs of :data:`_RUN` values (the last run may be shorter)."""
    parts = [runs.amax(dim=2)] if runs.shape[1] else []
    if runs.shape[1] * _RUN < sims.shape[1]:
        parts.append(sims[:, runs.shape[1] * _RUN :].amax(dim=1, keepdim=True))
    return parts[0] if len(parts) == 1 else parts[0].new_empty(0) if not parts else _cat(parts)


def _cat(parts: list[Any]) -> Any:
    import torch

    return torch.cat(parts, dim=1)


def top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of each row's ``k`` largest entries, largest first (torch's top-k when installed:
    4x faster than ``np.argpartition`` on 80 k columns).

    Example:
        >>> top_k(np.array([[0.1, 0.9, 0.5]]), 2)[1].tolist()
        [[1, 2]]
    """
    try:
        import torch
    except ImportError:
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        return np.take_along_axis(vals, order, axis=1), np.take_along_axis(part, order, axis=1)
    vals, idx = torch.topk(torch.from_numpy(np.ascontiguousarray(sims)), k, dim=1, largest=True, sorted=True)
    return vals.numpy(), idx.numpy()
