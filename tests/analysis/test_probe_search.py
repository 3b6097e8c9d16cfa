"""The kNN probe's search: the reused product buffer finds exactly the neighbours of a fresh product per block,
and those are the brute-force top k of each fold."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.probe_eval import TRAIN_ONLY, UNUSED, EvaluationFolds, select_evaluation_folds
from dinoscope.analysis.probe_knn import knn_probabilities
from dinoscope.analysis.probe_metrics import compute_probe_metrics
from dinoscope.analysis.probe_search import search_per_fold


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _folds(n: int, seed: int) -> EvaluationFolds:
    """5 folds with unused rows and some train-only rows: every kind of row the search meets."""
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, 5, n)
    fold[rng.random(n) < 0.1] = UNUSED
    fold[rng.random(n) < 0.1] = TRAIN_ONLY
    return EvaluationFolds(fold, 5, "grouped k-fold")


@pytest.mark.parametrize(("n", "k", "chunk"), [(700, 200, 64), (90, 40, 7), (1500, 30, 2048)])
def test_reused_buffer_finds_the_brute_force_neighbours(n: int, k: int, chunk: int) -> None:
    """Blocks smaller than the fold (the buffer's last block is partial), folds with fewer training rows than
    k (90 rows), train-only and unused rows: the same similarities and rows as a fresh product per block, and
    the same top-k sets as sorting every product."""
    x, folds = _unit(n, 24, seed=n), _folds(n, seed=k)
    sims, rows = search_per_fold(x, folds, k, chunk)
    old_sims, old_rows = search_per_fold(x, folds, k, chunk, reuse_buffer=False)
    assert np.array_equal(sims, old_sims) and np.array_equal(rows, old_rows)
    tested = folds.fold >= 0
    assert (rows[~tested] == -1).all() and np.isinf(sims[~tested]).all()
    for f in range(folds.n_folds):
        train, test = folds.train_rows(f), folds.test_rows(f)
        order = np.argsort(-(x[test] @ x[train].T), axis=1, kind="stable")[:, :k]
        kk = min(k, len(train))
        assert (np.sort(rows[test, :kk], axis=1) == np.sort(train[order], axis=1)).all()
        assert (rows[test, kk:] == -1).all() and not np.isin(rows[test, :kk], np.flatnonzero(folds.fold == f)).any()


def test_knn_probe_gives_the_same_probabilities_and_metrics_as_the_session_5_search() -> None:
    """Planted classes (10 centres, groups of 4 near-copies): the numbers the probe reports are unchanged."""
    rng = np.random.default_rng(0)
    groups = np.arange(2000) // 4
    labels = rng.integers(0, 10, 500)[groups]
    vectors = rng.normal(size=(10, 32))[labels] + 0.8 * rng.normal(size=(500, 32))[groups]
    vectors += 0.5 * rng.normal(size=(2000, 32))
    folds = select_evaluation_folds(labels, groups, seed=0)
    new, _ = knn_probabilities(vectors, labels, folds, 10, chunk=256)
    old, _ = knn_probabilities(vectors, labels, folds, 10, chunk=256, reuse_buffer=False)
    names = [str(c) for c in range(10)]
    for k in (10, 20, 100, 200):
        assert np.array_equal(new[k], old[k], equal_nan=True), k
    m_new, m_old = (compute_probe_metrics(labels, p[20], groups, names, n_boot=50) for p in (new, old))
    assert m_new == m_old and 0.5 < m_new["accuracy"]["value"] < 1.0


def test_threads_do_not_change_the_logistic_regression_or_the_bootstrap() -> None:
    """The folds' logistic regressions on threads and the bootstrap chunks two at a time: the same numbers as
    one after the other."""
    from dinoscope.analysis.probe_eval import logistic_probabilities

    rng = np.random.default_rng(1)
    groups = np.arange(600) // 3
    labels = rng.integers(0, 3, 200)[groups]
    vectors = rng.normal(size=(3, 16))[labels] + rng.normal(size=(600, 16))
    folds = select_evaluation_folds(labels, groups, seed=0)
    serial, info_1 = logistic_probabilities(vectors, labels, folds, groups, 3, n_jobs=1)
    threaded, info_2 = logistic_probabilities(vectors, labels, folds, groups, 3, n_jobs=2)
    assert np.array_equal(serial, threaded, equal_nan=True) and info_1 == info_2
    m_1, m_2 = (compute_probe_metrics(labels, serial, groups, ["a", "b", "c"], n_jobs=j, n_boot=300) for j in (1, 2))
    assert m_1 == m_2 and m_1["accuracy"]["low"] < m_1["accuracy"]["value"] < m_1["accuracy"]["high"]
