"""The kNN probe's FAISS search gives the neighbours of the BLAS + torch top-k search it replaced (issue 16)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from dinoscope.analysis.probe_eval import select_evaluation_folds
from dinoscope.analysis.probe_knn import _search, knn_probabilities


def _per_fold_search(x: np.ndarray, folds, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """The previous schedule: each fold's test rows against all its training rows, one top-k per row block."""
    sims = np.full((len(x), k_max), -np.inf, dtype=np.float32)
    rows = np.full((len(x), k_max), -1, dtype=np.int64)
    for f in range(folds.n_folds):
        train, test = folds.train_rows(f), folds.test_rows(f)
        k = min(k_max, len(train))
        values, idx = torch.topk(torch.from_numpy(x[test] @ x[train].T), k, dim=1)
        sims[test, :k], rows[test, :k] = values.numpy(), train[idx.numpy()]
    return sims, rows


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    x = rng.normal(size=(n, 24)).astype(np.float32) + 0.8 * np.eye(24, dtype=np.float32)[labels]
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels, np.arange(n) // 3


@pytest.mark.parametrize(("split", "with_faiss"), [(False, True), (True, True), (False, False)])
def test_faiss_finds_the_same_neighbours_and_accuracies(
    split: bool, with_faiss: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if with_faiss:
        pytest.importorskip("faiss")
    else:
        monkeypatch.setitem(sys.modules, "faiss", None)  # the fallback path
    x, labels, groups = _data(1500, seed=4)
    names = np.where(np.random.default_rng(0).random(groups[-1] + 1) < 0.75, "train", "test")[groups]
    folds = select_evaluation_folds(labels, groups, names if split else None, seed=2)
    k_max = 200
    sims = np.full((len(x), k_max), -np.inf, dtype=np.float32)
    rows = np.full((len(x), k_max), -1, dtype=np.int64)
    _search(x, folds, sims, rows, chunk=256)
    ref_sims, ref_rows = _per_fold_search(x, folds, k_max)
    tested = folds.fold >= 0
    np.testing.assert_allclose(sims[tested], ref_sims[tested], atol=1e-6)
    same = np.mean([set(a) == set(b) for a, b in zip(rows[tested, :20], ref_rows[tested, :20], strict=True)])
    assert same > 0.99  # the same neighbours (a set may differ only at a float tie of the k-th)
    probs, _ = knn_probabilities(x, labels, folds, 4, ks=(10, 20, 100, 200))
    for k, p in probs.items():
        ref = np.full_like(p, np.nan)
        from dinoscope.analysis.probe_knn import vote_shares

        t = np.flatnonzero(tested)
        ref[t] = vote_shares(ref_sims[t, :k], labels[ref_rows[t, :k]], 4, 0.07)
        assert (p[t].argmax(1) == labels[t]).mean() == (ref[t].argmax(1) == labels[t]).mean(), k
        np.testing.assert_allclose(p[t], ref[t], atol=1e-4)
