"""The fast stratified grouped k-fold deals exactly scikit-learn's folds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from dinoscope.analysis.grouped_folds import stratified_group_kfold


def _sklearn_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    fold = np.full(len(y), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
            fold[test] = f
    return fold


@pytest.mark.parametrize("seed", range(12))
def test_same_folds_as_scikit_learn_on_random_draws(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes, n_groups = int(rng.integers(2, 8)), int(rng.integers(8, 300))
    groups = rng.integers(0, n_groups, int(rng.integers(n_groups, 6 * n_groups)))
    # mixed groups (several classes) and pure ones, skewed class shares
    y = np.where(rng.random(len(groups)) < 0.7, groups % n_classes, rng.integers(0, n_classes, len(groups)))
    y = np.where(rng.random(len(groups)) < 0.2, 0, y)
    k = int(rng.integers(2, 6))
    assert np.array_equal(stratified_group_kfold(y, groups, k, seed), _sklearn_folds(y, groups, k, seed))


def test_same_folds_on_ties_and_string_groups() -> None:
    # every group alike: each deal is a near-tie settled by the fold size
    groups = np.repeat([f"img{i:03d}" for i in range(40)], 3)
    y = np.tile([0, 1, 1], 40)
    for seed in (0, 7):
        assert np.array_equal(stratified_group_kfold(y, groups, 5, seed), _sklearn_folds(y, groups, 5, seed))


def test_groups_whole_and_folds_even() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(500), 4)
    y = np.repeat(rng.integers(0, 3, 500), 4)
    fold = stratified_group_kfold(y, groups, 5, seed=0)
    assert all(len(set(fold[groups == g])) == 1 for g in range(0, 500, 17))
    assert np.bincount(fold).min() >= 380


def test_too_many_folds_is_refused() -> None:
    with pytest.raises(ValueError, match="folds need"):
        stratified_group_kfold(np.array([0, 1, 0]), np.array([1, 2, 3]), 4, seed=0)
