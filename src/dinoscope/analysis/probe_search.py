"""Exact top-k cosine search of the kNN probe: every tested row's most similar training rows of its fold.

Each fold's test rows times its training rows in row blocks: a float32 product (numpy's BLAS) written into one
buffer reused by every block of every fold, then torch's top ``k`` of each row. A fresh array per block (the
session-5 search, ``reuse_buffer=False``) or per fold costs page faults: on a VM with transparent huge pages
on ``madvise`` (numpy asks for them), a fresh 655 MB buffer stalled 3-4.6 s in the kernel's compaction, so the
whole kNN step at 100 k took 107 s against 60 s with the one buffer (``benchmarks/probe.py``, quiet, session
7); the products themselves run at 185-194 GFLOP/s on these 2 cores, 33 s of the 60.

Measured and dropped (``benchmarks/probe.py``, README Performance), none beating the float32 products' cost:

- multiplying each pair of folds once (half the products), the block ranked from both sides against each
  query's running ``k``-th value with the maxima of runs of 16 values deciding what is read again: the same
  neighbours, but the ranking and merges cost more than the products saved (31.8 CPU-s against about 10 at
  30 k; session 5's simpler merge: 170 against 101 at 100 k). Session 7's plainest form (each 2048 x 20 k
  block ranked along its rows, then copied transposed and ranked along its columns, one merge per query and
  fold) took 137 s against 74 s at 100 k: per block the transposed copy costs 105 ms and each 20 k-wide
  top-200 120 ms (half the rate of an 80 k-wide one), more than the 162 ms product it saves;
- the top ``k`` through run maxima (the ``k`` runs with the largest maxima hold every top-``k`` value): the same
  neighbours, 425-640 CPU-ms per 2048 x 80 k block against 450 for torch's top-k of the whole row;
- FAISS's exact ``IndexFlatIP`` (the same neighbours, no faster: ``benchmarks/probe_knn.py``);
- a bfloat16 candidate pass: its products are 2.5x faster where the CPU has AVX512-BF16 (slow on AVX2-only
  machines), but proving the exactly rescored candidates complete needs a cosine margin of ~0.02 (bf16 rounding
  of both inputs and the output): hundreds to thousands of candidates per query to rescore from scattered rows.

Precision: float32 products, on every CPU.

Example:
    >>> sims, rows = search_per_fold(unit_vectors, folds, 200)  # doctest: +SKIP
    >>> rows[folds.test_rows(0)[0], :3]  # doctest: +SKIP
    array([ 5012, 88410,   731])
"""

from __future__ import annotations

import numpy as np

from dinoscope.analysis.probe_eval import EvaluationFolds

__all__ = ["search_per_fold", "top_k"]


def search_per_fold(
    x: np.ndarray, folds: EvaluationFolds, k: int, chunk: int = 2048, *, reuse_buffer: bool = True
) -> tuple[np.ndarray, ...]:
    """(N, k) similarities and row numbers of each tested row's ``k`` most similar training rows, largest first
    (``-inf`` / -1 past the fold's training rows, and for rows not tested).

    Args:
        x: (N, D) float32 unit rows.
        folds: Which rows train and test.
        k: Neighbours kept per tested row.
        chunk: Rows per product block.
        reuse_buffer: Write every block's product into one buffer (False: a new array per block, as in
            session 5; the same numbers).

    Returns:
        ((N, k) float32 similarities, (N, k) int64 row numbers).

    Example:
        >>> sims, rows = search_per_fold(unit_vectors, folds, 200)  # doctest: +SKIP
    """
    sims = np.full((len(x), k), -np.inf, dtype=np.float32)
    rows = np.full((len(x), k), -1, dtype=np.int64)
    parts = [(folds.train_rows(f), folds.test_rows(f)) for f in range(folds.n_folds)]
    size = max((len(train) * min(chunk, len(test)) for train, test in parts), default=0)
    flat = np.empty(size, dtype=np.float32) if reuse_buffer else None
    for train, test in parts:
        if not len(train) or not len(test):
            continue
        xt = x[train]
        kk = min(k, len(train))
        # One buffer for every fold: its pages are touched once (a fresh 655 MB buffer per fold cost 3 s of page
        # faults each on this VM).
        shape = (min(chunk, len(test)), len(train))
        out = None if flat is None else flat[: shape[0] * shape[1]].reshape(shape)
        for a in range(0, len(test), chunk):
            block = test[a : a + chunk]
            product = x[block] @ xt.T if out is None else np.matmul(x[block], xt.T, out=out[: len(block)])
            values, idx = top_k(product, kk)
            sims[block, :kk], rows[block, :kk] = values, train[idx]
    return sims, rows


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
