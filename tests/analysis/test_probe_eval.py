"""Probe protocols and group-aware folds: planted answers (a group leak, hand-computed kNN votes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dinoscope.analysis.probe_eval import TRAIN_ONLY, UNUSED, logistic_probabilities, select_evaluation_folds
from dinoscope.analysis.probe_knn import knn_probabilities, vote_shares
from dinoscope.analysis.probe_metrics import compute_probe_metrics
from dinoscope.errors import DinoscopeError


def _leaky(n_groups: int = 200, per_group: int = 5, dim: int = 256, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Near-copies within a group, a random class per group: the vectors say which group, never which class
    (``dim`` > groups: a linear model can memorise every group too)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    labels = np.repeat(rng.permutation(np.arange(n_groups) % 2), per_group)
    vectors = rng.normal(size=(n_groups, dim))[groups] + 0.05 * rng.normal(size=(len(groups), dim))
    return vectors, labels, groups


def test_knn_votes_match_a_hand_computation() -> None:
    # Test row (1, 0); training rows at cosines 1.0 (class 0), 0.8 (class 1), 0.0 (class 0).
    angle = math.acos(0.8)
    vectors = np.array([[1, 0], [1, 0], [math.cos(angle), math.sin(angle)], [0, 1]], dtype=np.float64)
    labels = np.array([0, 0, 1, 0])
    split = np.array(["test", "train", "train", "train"])
    folds = select_evaluation_folds(labels, np.arange(4), split)
    probs, info = knn_probabilities(3 * vectors, labels, folds, 2, ks=(2, 3, 10))  # scaled: cosine, not dot
    t = 0.07
    w0, w1, w2 = math.exp(1.0 / t), math.exp(0.8 / t), math.exp(0.0 / t)
    assert probs[2][0] == pytest.approx([w0 / (w0 + w1), w1 / (w0 + w1)], rel=1e-5)
    assert probs[3][0] == pytest.approx([(w0 + w2) / (w0 + w1 + w2), w1 / (w0 + w1 + w2)], rel=1e-5)
    assert probs[10][0] == pytest.approx(probs[3][0])  # k capped at the 3 training rows
    assert info["k"]["10"] == [3] and np.isnan(probs[2][1:]).all()  # training rows are not tested
    assert vote_shares(np.array([[0.5, 0.5]]), np.array([[0, 1]]), 2, t)[0] == pytest.approx([0.5, 0.5])


def test_group_aware_folds_give_the_honest_number_where_row_folds_overestimate() -> None:
    vectors, labels, groups = _leaky()
    names = ["a", "b"]
    rows = np.arange(len(labels))  # each row its own group: plain stratified k-fold
    for grouping, expect_high in ((rows, True), (groups, False)):
        folds = select_evaluation_folds(labels, grouping, seed=0)
        knn, _ = knn_probabilities(vectors, labels, folds, 2, ks=(10,))
        logreg, _ = logistic_probabilities(vectors, labels, folds, grouping, 2)
        for probs in (knn[10], logreg):
            acc = compute_probe_metrics(labels, probs, groups, names, n_boot=0)["accuracy"]["value"]
            # The class is a coin flip per group: an honest evaluation is near 0.5; siblings in training leak it.
            assert acc > 0.9 if expect_high else 0.3 < acc < 0.7, (folds.mode, acc)


def test_dataset_split_is_used_and_leaked_test_groups_are_left_out() -> None:
    labels = np.array([0, 1, 0, 1, 0, 1, -1])
    groups = np.array(["a", "b", "c", "d", "a", "e", "f"])
    split = np.array(["train", "train", "val", "test", "test", "test", "test"])
    folds = select_evaluation_folds(labels, groups, split)
    assert folds.mode == "split" and folds.n_folds == 1
    # train rows only train; val is unused (test exists); test row 4 shares group 'a' with train row 0.
    assert folds.fold.tolist() == [TRAIN_ONLY, TRAIN_ONLY, UNUSED, 0, UNUSED, 0, UNUSED]
    assert folds.info["n_leaked"] == 1 and folds.info["test_split"] == "test"
    assert folds.train_rows(0).tolist() == [0, 1] and folds.test_rows(0).tolist() == [3, 5]
    no_test = select_evaluation_folds(labels, groups, np.where(split == "test", "val", split))
    assert no_test.info["test_split"] == "val"
    other = select_evaluation_folds(labels, groups, np.full(7, "all"), n_folds=3)
    assert other.mode == "grouped k-fold" and set(other.fold[labels >= 0]) == {0, 1, 2}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.tuples(st.integers(0, 12), st.integers(-1, 2)), min_size=4, max_size=60),
    with_split=st.booleans(),
    seed=st.integers(0, 5),
)
def test_a_group_never_straddles_train_and_test(data: list[tuple[int, int]], with_split: bool, seed: int) -> None:
    groups = np.array([g for g, _ in data])
    labels = np.array([c for _, c in data])
    split = np.where(groups % 3 == 0, "test", "train") if with_split else None
    if split is not None:
        split[::5] = "train"  # some groups land on both sides of the dataset's split
    try:
        folds = select_evaluation_folds(labels, groups, split, n_folds=4, seed=seed)
    except DinoscopeError as exc:  # nothing to hold out: one group, or a split whose every test group trains
        labelled = labels >= 0
        few = len(np.unique(groups[labelled])) < 2 or np.bincount(labels[labelled], minlength=1).max() < 2
        assert few or "leaks every group" in str(exc)
        return
    for f in range(folds.n_folds):
        train, test = folds.train_rows(f), folds.test_rows(f)
        assert not set(groups[train]) & set(groups[test])
        assert (labels[test] >= 0).all()
    assert (folds.fold[labels < 0] == UNUSED).all()


def test_logistic_regression_chooses_c_inside_each_fold() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(60), 3)
    labels = np.repeat(np.arange(60) % 3, 3)
    vectors = 2.0 * np.eye(3)[labels] @ rng.normal(size=(3, 16)) + rng.normal(size=(len(labels), 16))
    folds = select_evaluation_folds(labels, groups, seed=0)
    probs, info = logistic_probabilities(vectors, labels, folds, groups, 3)
    assert len(info["C"]) == folds.n_folds == 5 and set(info["C"]) <= set(info["c_grid"])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == labels).mean() > 0.9


def test_a_single_group_cannot_be_evaluated() -> None:
    message = r"form 1 group\(s\), the largest class has 2; a grouped evaluation needs at least two"
    with pytest.raises(DinoscopeError, match=message):
        select_evaluation_folds(np.array([0, 1, 0, 1]), np.zeros(4, int))


def test_knn_over_fold_pairs_equals_brute_force_per_fold() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(230, 8))
    labels = rng.integers(0, 3, 230)
    folds = select_evaluation_folds(labels, np.arange(230) // 2, seed=1)
    probs, _ = knn_probabilities(vectors, labels, folds, 3, ks=(5, 60), chunk=17)  # blocks smaller than k
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for f in range(folds.n_folds):
        train, test = folds.train_rows(f), folds.test_rows(f)
        s = x[test] @ x[train].T
        for k in (5, 60):
            order = np.argsort(-s, axis=1)[:, :k]
            expected = vote_shares(np.take_along_axis(s, order, axis=1), labels[train][order], 3, 0.07)
            assert np.allclose(probs[k][test], expected, atol=1e-5), (f, k)
