"""Class overlap (neighbour-share matrix, centroids, confused pairs) and cross-split leakage (analysis/leakage)."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.duplicates import find_duplicates
from dinoscope.analysis.leakage import find_leakage, split_rank
from dinoscope.analysis.neighbors import build_neighbor_graph
from dinoscope.analysis.overlap import compute_class_overlap
from tests.analysis.synthetic import make_vectors

K = 15
NAMES = ["a", "b", "c", "d", "a2"]


def _merged() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four separated classes, then half of class 0 relabelled 4: classes 0 and 4 are one cluster."""
    syn = make_vectors([300, 300, 300, 300], n_subgroups_per_class=2, seed=12)
    labels = syn.class_id.copy()
    rows = syn.rows_of(0)
    labels[rows[np.random.default_rng(0).random(len(rows)) < 0.5]] = 4
    return syn.vectors, labels, syn.class_id


def test_merged_classes_overlap_and_rows_sum_to_one() -> None:
    vectors, labels, _ = _merged()
    res = compute_class_overlap(build_neighbor_graph(vectors, K), labels, vectors, NAMES)
    share = np.array(res.info["neighbor_share"], dtype=float)
    assert share.shape == (5, 5)
    np.testing.assert_allclose(share.sum(axis=1), 1.0, atol=1e-5)
    assert share[0, 4] > 0.3 and share[4, 0] > 0.3  # the merged pair: a coin flip between the two labels
    off = share.copy()
    off[[0, 0, 4, 4], [0, 4, 0, 4]] = 0.0
    np.fill_diagonal(off, 0.0)
    assert off.max() < 0.02  # every other pair is separated
    top = res.info["confused_pairs"][0]
    assert (top["a"], top["b"]) == ("a", "a2") and top["overlap"] > 0.3
    assert top["centroid_cosine"] > 0.99
    assert res.info["separability"]["b"] > 0.98 and res.info["separability"]["a"] < 0.7
    assert res.summary["a2"]["most_confused_with"] == "a"
    cos = np.array(res.info["centroid_cosine"], dtype=float)
    np.testing.assert_allclose(np.diag(cos), 1.0, atol=1e-6)
    np.testing.assert_allclose(cos, cos.T, atol=1e-9)


def test_per_object_shares_flag_objects_among_other_classes() -> None:
    syn = make_vectors([300, 300, 300], n_swapped=15, seed=13)
    graph = build_neighbor_graph(syn.vectors, K)
    res = compute_class_overlap(graph, syn.class_id, syn.vectors, ["x", "y", "z"])
    f = res.findings
    assert f["separability_quality"].between(0, 1).all()
    np.testing.assert_allclose(f["separability_quality"] + f["other_class_share"], 1.0)
    assert set(np.flatnonzero(f["is_overlapping"])) == set(syn.swapped)
    assert (f.loc[syn.swapped, "nearest_other_class"].to_numpy() == syn.swapped_true_class).all()
    clean = np.setdiff1d(np.arange(len(f)), syn.swapped)
    sees_swap = np.isin(graph.indices[clean], syn.swapped).any(axis=1)  # a swapped row is the only other class
    assert ((f.loc[clean, "nearest_other_class"] >= 0).to_numpy() == sees_swap).all()


def test_unlabelled_objects_and_empty_classes() -> None:
    vectors, labels, _ = _merged()
    labels = labels.copy()
    labels[labels == 3] = -1  # class d unlabelled: no row, not counted as a neighbour
    res = compute_class_overlap(build_neighbor_graph(vectors, K), labels, vectors, [*NAMES, "empty"])
    f = res.findings
    assert f.loc[labels == -1, "separability_quality"].isna().all() and not f.loc[labels == -1, "is_overlapping"].any()
    assert res.info["neighbor_share"][3] is None and res.info["neighbor_share"][5] is None
    assert res.summary["d"]["n"] == 0 and res.info["n_counted"]["empty"] == 0
    rows = [r for r in res.info["neighbor_share"] if r is not None]
    np.testing.assert_allclose(np.array(rows).sum(axis=1), 1.0, atol=1e-5)


def test_overlap_rejects_bad_input() -> None:
    vectors, labels, _ = _merged()
    graph = build_neighbor_graph(vectors, 5)
    with pytest.raises(ValueError, match="class_id has shape"):
        compute_class_overlap(graph, labels[:-1], vectors, NAMES)
    with pytest.raises(ValueError, match="k must be in"):
        compute_class_overlap(graph, labels, vectors, NAMES, k=6)


# ------------------------------------------------------------------------------------------------- leakage


def test_leakage_counts_per_split_pair_exact() -> None:
    group = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, -1, -1, 5])
    split = np.array(
        ["train", "val", "train", "train", "test", "val", "val", "train", "val", "test", "test", "val", "val", "train",
         "test"]
    )  # fmt: skip
    res = find_leakage(group, split)
    f = res.findings
    assert f["is_leaked"].tolist() == [True] * 5 + [False, False] + [True] * 5 + [False] * 3
    assert (
        f["leak_pair"].tolist()[:12]
        == ["train-val"] * 2 + ["train-test"] * 3 + [""] * 2 + ["train-val-test"] * 3 + ["val-test"] * 2
    )
    assert res.info["pairs"] == {
        "train-val": {"n_groups": 2, "n_objects": 4, "n_train": 2, "n_val": 2},
        "train-test": {"n_groups": 2, "n_objects": 5, "n_train": 3, "n_test": 2},
        "val-test": {"n_groups": 2, "n_objects": 4, "n_val": 2, "n_test": 2},
    }
    assert res.summary == res.info["pairs"]
    assert (
        res.info["n_leaked"] == 10
        and res.info["n_leaked_groups"] == 4
        and res.info["splits"] == ["train", "val", "test"]
    )
    assert f["leaked_with"].tolist()[:12] == [1, 0, 4, 4, 2, -1, -1, 8, 7, 7, 11, 10]  # earliest other split first
    assert (f.loc[f["is_leaked"], "leakage_quality"] == 0).all() and (
        f.loc[~f["is_leaked"], "leakage_quality"] == 1
    ).all()


def test_leakage_from_planted_duplicates_across_splits() -> None:
    syn = make_vectors([300, 300], n_duplicates=10, duplicate_noise=0.01, seed=14)
    n = len(syn.vectors)
    split = np.full(n, "train", dtype=object)
    originals, copies = syn.duplicate_pairs[:, 0], syn.duplicate_pairs[:, 1]
    split[copies[:6]] = "val"
    split[copies[6:8]] = "test"  # the last two pairs stay inside train
    dup = find_duplicates(
        syn.vectors, build_neighbor_graph(syn.vectors, K), np.array([""] * n), split_rank=split_rank(split)
    )
    res = find_leakage(dup, split)
    assert set(np.flatnonzero(res.findings["is_leaked"])) == set(originals[:8]) | set(copies[:8])
    assert res.info["pairs"] == {
        "train-val": {"n_groups": 6, "n_objects": 12, "n_train": 6, "n_val": 6},
        "train-test": {"n_groups": 2, "n_objects": 4, "n_train": 2, "n_test": 2},
    }
    assert (res.findings.loc[copies[:6], "leaked_with"].to_numpy() == originals[:6]).all()
    leaked_q = res.findings.loc[res.findings["is_leaked"], "leakage_quality"]
    assert (leaked_q == dup.findings.loc[leaked_q.index, "duplicate_quality"]).all() and (leaked_q < 0.5).all()
    assert (dup.findings.loc[copies[:8], "keep"] == False).all()  # noqa: E712 - the train copy is the keeper


def test_split_rank_and_bad_shapes() -> None:
    assert split_rank(np.array(["val", "train", "zzz", "test", "aaa"])).tolist() == [1, 0, 4, 2, 3]
    with pytest.raises(ValueError, match="split has shape"):
        find_leakage(np.array([0, 0, -1]), np.array(["train", "val"]))
