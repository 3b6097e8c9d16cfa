"""Exact top-k cosine search of the kNN probe: every tested row's most similar training rows of its fold.

Two schedules give the same neighbours (tested on synthetic sets; they can differ only between training rows of
exactly equal similarity, where either is a correct answer):

- :func:`search_per_fold`, the straightforward one: each fold's test rows times its training rows in row blocks
  (a float32 product, then the top ``k`` of each row). In grouped k-fold every pair of rows is multiplied twice
  (once from each side) and every product is ranked: 100 k x 384-d, 5 folds: 6 TFLOP and 8e9 values ranked.
- :func:`search_fold_pairs`, what the probe runs: the rows sorted by fold, each block of fold ``f`` times every
  later fold (and the train-only rows) **once**, the block used both ways: its rows offer their columns to the
  block's queries and its columns offer its rows to the later folds' queries — half the products. Ranking is
  made cheap by a running floor: each query keeps its best ``k`` so far (torch's ``topk``); a block's row (or
  column) whose largest value is not above the query's current ``k``-th is skipped after one ``amax``, and of the
  others only the values above the floor (a few per block once the floor has settled) are merged.

Precision: float32 products in both (no low-precision pass: bfloat16 products are 2.5x faster on a CPU with
AVX512-BF16 but slow on AVX2-only machines, and proving the rescored candidates complete needs a margin of
~0.02 in cosine, thousands of candidates per row — measured and dropped, see ``benchmarks/probe.py``).
Both multiply with numpy's BLAS (torch's rounds the last bit differently: a 200th and 201st neighbour a few
1e-8 apart then swap), so the similarities are the same bits.

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
    """Each query row's ``k`` best (similarity, row) so far, largest first; ``-inf`` / -1 in unfilled slots."""

    def __init__(self, n: int, k: int, torch: Any) -> None:
        self.torch = torch
        self.vals = torch.full((n, k), -torch.inf, dtype=torch.float32)
        self.rows = torch.full((n, k), -1, dtype=torch.int64)

    def offer(self, sims: Any, queries: Any, candidates: Any) -> None:
        """Merge the (Q, M) similarities of ``queries`` to ``candidates`` (rows as queries; may be a view)."""
        torch = self.torch
        k = self.vals.shape[1]
        floor = self.vals[queries, -1]
        open_rows = torch.isinf(floor)  # fewer than k held yet: the row's own top k is merged
        if bool(open_rows.all()):
            top, at = torch.topk(sims.contiguous(), min(k, sims.shape[1]), dim=1, sorted=False)
            self._merge(queries, top, candidates[at])
            return
        if bool(open_rows.any()):
            at = torch.nonzero(open_rows).squeeze(1)
            top, pos = torch.topk(sims[at], min(k, sims.shape[1]), dim=1, sorted=False)
            self._merge(queries[at], top, candidates[pos])
        hit = torch.nonzero((sims.amax(dim=1) > floor) & ~open_rows).squeeze(1)  # a value above the floor
        if not len(hit):
            return
        part = sims if len(hit) == len(queries) else sims[hit]
        r, c = torch.nonzero(part > floor[hit, None]).unbind(1)  # row-major: r ascending
        counts = torch.bincount(r, minlength=len(hit))
        width = int(counts.max())
        slot = torch.arange(len(r)) - (torch.cumsum(counts, 0) - counts)[r]
        values = torch.full((len(hit), width), -torch.inf, dtype=torch.float32)
        rows = torch.full((len(hit), width), -1, dtype=torch.int64)
        values[r, slot], rows[r, slot] = part[r, c], candidates[c]
        self._merge(queries[hit], values, rows)

    def _merge(self, queries: Any, values: Any, rows: Any) -> None:
        torch = self.torch
        k = self.vals.shape[1]
        pool_v = torch.cat([self.vals[queries], values], dim=1)
        pool_r = torch.cat([self.rows[queries], rows], dim=1)
        top, at = torch.topk(pool_v, k, dim=1, largest=True, sorted=True)
        self.vals[queries], self.rows[queries] = top, torch.gather(pool_r, 1, at)


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
