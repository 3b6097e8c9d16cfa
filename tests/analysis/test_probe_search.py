"""The kNN probe's fold-pair search finds exactly the neighbours of the straightforward per-fold search."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.probe_eval import TRAIN_ONLY, UNUSED, EvaluationFolds, select_evaluation_folds
from dinoscope.analysis.probe_knn import knn_probabilities
from dinoscope.analysis.probe_metrics import compute_probe_metrics
from dinoscope.analysis.probe_search import search_fold_pairs, search_per_fold


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _folds(n: int, seed: int) -> EvaluationFolds:
    """Grouped 5-fold with unused rows and some train-only rows: every kind of column the search meets."""
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, 5, n)
    fold[rng.random(n) < 0.1] = UNUSED
    fold[rng.random(n) < 0.1] = TRAIN_ONLY
    return EvaluationFolds(fold, 5, "grouped k-fold")


def _assert_same_neighbours(found: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    """The same similarities (BLAS may round small products' last bit differently) and, for every k, the same
    set of k neighbours, unless the k-th and the next are a tie within that rounding (either is right)."""
    (sims, rows), (ref_sims, ref_rows) = found, expected
    assert np.array_equal(np.isfinite(sims), np.isfinite(ref_sims))
    assert np.allclose(np.nan_to_num(sims, neginf=-9), np.nan_to_num(ref_sims, neginf=-9), rtol=0, atol=1e-6)
    gap = np.abs(np.diff(np.where(np.isfinite(ref_sims), ref_sims, -9.0), axis=1))  # k-th vs next
    for k in range(1, sims.shape[1] + 1):
        tie = gap[:, k - 1] < 1e-6 if k < sims.shape[1] else np.zeros(len(sims), bool)
        same = (np.sort(rows[:, :k], axis=1) == np.sort(ref_rows[:, :k], axis=1)).all(axis=1)
        assert (same | tie).all(), k


@pytest.mark.parametrize(("n", "k", "chunk"), [(500, 50, 32), (700, 200, 64), (90, 40, 7), (1500, 30, 2048)])
def test_fold_pairs_find_the_same_neighbours_as_the_per_fold_search(n: int, k: int, chunk: int) -> None:
    """Small blocks and tiles (chunk 32: 256-column tiles) exercise every path: rows still filling their k
    (90 rows: folds of ~15 hold fewer than k = 40 training rows), running floors, both sides of a block."""
    x, folds = _unit(n, 24, seed=n), _folds(n, seed=k)
    sims, rows = search_fold_pairs(x, folds, k, chunk)
    _assert_same_neighbours((sims, rows), search_per_fold(x, folds, k, chunk))
    tested = folds.fold >= 0
    assert (rows[~tested] == -1).all() and np.isinf(sims[~tested]).all()
    for f in range(folds.n_folds):  # never a row of the query's own fold, nor an unused row
        found = rows[folds.test_rows(f)]
        assert not np.isin(found[found >= 0], np.flatnonzero(folds.fold == f)).any()
        assert (folds.fold[found[found >= 0]] >= TRAIN_ONLY).all()


def test_split_mode_searches_the_train_rows_once() -> None:
    x = _unit(400, 16, seed=1)
    labels = np.arange(400) % 3
    split = np.where(np.arange(400) % 5 == 0, "test", "train")
    folds = select_evaluation_folds(labels, np.arange(400), split)
    _assert_same_neighbours(search_fold_pairs(x, folds, 25, 32), search_per_fold(x, folds, 25, 32))


def test_knn_probe_gives_the_same_probabilities_and_metrics_on_both_schedules() -> None:
    """Planted classes (10 centres, groups of 4 near-copies): the numbers the probe reports are unchanged."""
    rng = np.random.default_rng(0)
    groups = np.arange(2000) // 4
    labels = rng.integers(0, 10, 500)[groups]
    vectors = rng.normal(size=(10, 32))[labels] + 0.8 * rng.normal(size=(500, 32))[groups]
    vectors += 0.5 * rng.normal(size=(2000, 32))
    folds = select_evaluation_folds(labels, groups, seed=0)
    new, _ = knn_probabilities(vectors, labels, folds, 10, chunk=256)
    old, _ = knn_probabilities(vectors, labels, folds, 10, chunk=256, schedule="per-fold")
    names = [str(c) for c in range(10)]
    for k in (10, 20, 100, 200):
        assert np.allclose(new[k], old[k], rtol=0, atol=1e-6), k
        m_new, m_old = (compute_probe_metrics(labels, p[k], groups, names, n_boot=50) for p in (new, old))
        assert m_new == m_old
    assert 0.5 < compute_probe_metrics(labels, new[20], groups, names, n_boot=0)["accuracy"]["value"] < 1.0
