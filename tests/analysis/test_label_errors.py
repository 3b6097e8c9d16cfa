"""Label-error candidates from neighbour votes: planted swaps come first with the right suggested class."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.duplicates import find_duplicates
from dinoscope.analysis.label_errors import find_label_errors
from dinoscope.analysis.neighbors import build_neighbor_graph
from dinoscope.analysis.probe import ProbeSettings, cross_validated_probabilities, group_folds
from tests.analysis.synthetic import make_vectors, normalize

K = 15
NAMES = ["hat", "vest", "no_hat", "no_vest"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kw", [{}, {"n_subgroups_per_class": 3, "noise": 0.1}, {"n_outliers": 20, "n_duplicates": 20}])
def test_swapped_labels_top_the_ranking_with_the_true_class(seed: int, kw: dict) -> None:
    syn = make_vectors([400, 300, 200, 100], n_swapped=25, seed=seed, **kw)
    res = find_label_errors(syn.vectors, build_neighbor_graph(syn.vectors, K), syn.class_id, class_names=NAMES)
    f = res.findings
    n = len(syn.swapped)
    top = f.sort_values("label_quality", kind="stable").index[:n].to_numpy()
    precision_at_n = np.isin(top, syn.swapped).mean()
    assert precision_at_n >= 0.8
    right = f.loc[syn.swapped, "suggested_class"].to_numpy() == syn.swapped_true_class
    assert right.mean() >= 0.9
    flagged = np.flatnonzero(f["is_label_error"])
    assert np.isin(flagged, syn.swapped).mean() >= 0.9  # flags are precise ...
    assert np.isin(syn.swapped, flagged).mean() >= 0.6  # ... and catch most swaps
    assert f["label_quality"].between(0, 1).all()
    copies = np.isin(np.arange(len(f)), syn.duplicate_pairs)  # an identical copy never votes
    assert (f.loc[~copies, "n_votes"] == K).all() and (f.loc[copies, "n_votes"] == K - 1).all()


def test_clean_labels_flag_nothing() -> None:
    syn = make_vectors([300, 300, 200], n_subgroups_per_class=2, seed=7)
    res = find_label_errors(syn.vectors, build_neighbor_graph(syn.vectors, K), syn.class_id)
    assert res.findings["is_label_error"].sum() == 0
    assert res.info["n_label_errors"] == 0


def test_destinations_are_counted_per_class() -> None:
    """Swap 8 objects of class 3 (no_vest) to class 1 (vest): the summary says 'mostly to no_vest'."""
    syn = make_vectors([300, 300, 300, 300], seed=8)
    labels = syn.class_id.copy()
    moved = syn.rows_of(3)[:8]
    labels[moved] = 1
    res = find_label_errors(syn.vectors, build_neighbor_graph(syn.vectors, K), labels, class_names=NAMES)
    assert set(np.flatnonzero(res.findings["is_label_error"])) == set(moved)
    assert res.summary["vest"]["n_label_errors"] == 8
    assert res.summary["vest"]["suggested"] == {"no_vest": 8}
    assert res.info["destinations"] == {"vest": {"no_vest": 8}}
    assert 0.5 < res.info["class_threshold"]["vest"] <= 1.0
    assert (res.findings.loc[moved, "suggested_class"] == 3).all()


def test_copies_of_a_mislabelled_object_do_not_vouch_for_it() -> None:
    """Three near copies share one wrong label. As plain neighbours they outvote the truth; as members of the
    duplicate group they are left out of the vote and the copies are flagged."""
    syn = make_vectors([300, 300], seed=9)
    rng = np.random.default_rng(0)
    src = syn.rows_of(0)[0]
    copies = normalize(syn.vectors[src] + 0.01 * rng.standard_normal((3, syn.vectors.shape[1])))
    vectors = np.concatenate([syn.vectors, copies])
    labels = np.concatenate([syn.class_id, [1, 1, 1]])
    labels[src] = 1  # the original and its three copies all say class 1; their neighbourhood is class 0
    group_rows = [src, *range(len(syn.vectors), len(vectors))]
    graph = build_neighbor_graph(vectors, K)
    plain = find_label_errors(vectors, graph, labels).findings
    assert not plain.loc[group_rows, "is_label_error"].any()

    dup = find_duplicates(vectors, graph, np.array([""] * len(vectors)))
    groups = dup.findings["duplicate_group"].to_numpy()
    assert len(set(groups[group_rows])) == 1 and groups[src] >= 0
    res = find_label_errors(vectors, graph, labels, duplicate_group=groups)
    assert res.findings.loc[group_rows, "is_label_error"].all()
    assert (res.findings.loc[group_rows, "suggested_class"] == 0).all()
    assert "same duplicate group" in res.info["excluded_votes"]


def test_unlabelled_objects_and_small_classes_get_no_flags() -> None:
    syn = make_vectors([300, 300], seed=10)
    labels = syn.class_id.copy()
    unlabelled = syn.rows_of(0)[:20]
    labels[unlabelled] = -1
    small = syn.rows_of(1)[:5]
    labels[small] = 2  # a 5-object class inside class 1: fewer members than votes (k)
    res = find_label_errors(syn.vectors, build_neighbor_graph(syn.vectors, K), labels, k=10)
    f = res.findings
    assert f.loc[unlabelled, "label_quality"].isna().all() and not f.loc[unlabelled, "is_label_error"].any()
    assert (f.loc[unlabelled, "suggested_class"] == 0).all()  # a suggestion is still given from the votes
    assert not f.loc[small, "is_label_error"].any()
    assert res.summary["2"]["n"] == 5 and res.info["min_class_size"] == 10
    assert (f.loc[labels >= 0, "n_votes"] <= 10).all()


def test_bad_arguments_are_reported() -> None:
    syn = make_vectors([30, 30], seed=11)
    graph = build_neighbor_graph(syn.vectors, 5)
    with pytest.raises(ValueError, match="class_id has shape"):
        find_label_errors(syn.vectors, graph, syn.class_id[:-1])
    with pytest.raises(ValueError, match="k must be in"):
        find_label_errors(syn.vectors, graph, syn.class_id, k=6)
    with pytest.raises(ValueError, match="temperature"):
        find_label_errors(syn.vectors, graph, syn.class_id, temperature=0)


# --- with the cross-validated probe (what the pipeline runs) -------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kw", [{}, {"n_subgroups_per_class": 3, "noise": 0.1}, {"n_outliers": 20, "n_duplicates": 20}])
def test_probe_keeps_planted_swaps_first_with_the_true_class(seed: int, kw: dict) -> None:
    syn = make_vectors([400, 300, 200, 100], n_swapped=25, seed=seed, **kw)
    graph = build_neighbor_graph(syn.vectors, K)
    res = find_label_errors(syn.vectors, graph, syn.class_id, class_names=NAMES, probe=ProbeSettings())
    f = res.findings
    top = f.sort_values("label_quality", kind="stable").index[: len(syn.swapped)].to_numpy()
    assert np.isin(top, syn.swapped).mean() >= 0.8
    assert (f.loc[syn.swapped, "suggested_class"].to_numpy() == syn.swapped_true_class).mean() >= 0.9
    flagged = np.flatnonzero(f["is_label_error"])
    assert np.isin(flagged, syn.swapped).mean() >= 0.9
    assert np.isin(syn.swapped, flagged).mean() >= 0.6
    assert f["label_quality"].between(0, 1).all() and f["suggested_share"].between(0, 1).all()
    assert set(f.columns) == {"is_label_error", "label_quality", "suggested_class", "suggested_share", "n_votes"}


def test_probe_on_clean_labels_flags_nothing_and_records_its_settings() -> None:
    syn = make_vectors([300, 300, 200], n_subgroups_per_class=2, seed=7)
    settings = ProbeSettings(folds=4, seed=3)
    res = find_label_errors(syn.vectors, build_neighbor_graph(syn.vectors, K), syn.class_id, probe=settings)
    assert res.findings["is_label_error"].sum() == 0 and res.info["n_label_errors"] == 0
    probe = res.info["probe"]
    assert {k: probe[k] for k in settings.as_info()} == settings.as_info()
    assert probe["cv_accuracy"] == 1.0 and probe["left_out_of_second_round"] == 0
    assert "cleanlab" in res.info["rule"]


def test_probe_leaves_unlabelled_objects_unjudged() -> None:
    syn = make_vectors([300, 300], n_swapped=10, seed=10)
    labels = syn.class_id.copy()
    unlabelled = np.setdiff1d(syn.rows_of(0), syn.swapped)[:20]
    labels[unlabelled] = -1
    f = find_label_errors(syn.vectors, build_neighbor_graph(syn.vectors, K), labels, probe=ProbeSettings()).findings
    assert f.loc[unlabelled, "label_quality"].isna().all() and not f.loc[unlabelled, "is_label_error"].any()
    assert (f.loc[unlabelled, "suggested_class"] == 0).all()
    assert np.isin(syn.swapped, np.flatnonzero(f["is_label_error"])).mean() >= 0.8


def test_probe_flags_copies_of_a_mislabelled_object_kept_in_one_fold() -> None:
    syn = make_vectors([300, 300], seed=9)
    rng = np.random.default_rng(0)
    src = syn.rows_of(0)[0]
    copies = normalize(syn.vectors[src] + 0.01 * rng.standard_normal((3, syn.vectors.shape[1])))
    vectors = np.concatenate([syn.vectors, copies])
    labels = np.concatenate([syn.class_id, [1, 1, 1]])
    labels[src] = 1
    group_rows = [src, *range(len(syn.vectors), len(vectors))]
    graph = build_neighbor_graph(vectors, K)
    groups = find_duplicates(vectors, graph, np.array([""] * len(vectors))).findings["duplicate_group"].to_numpy()
    res = find_label_errors(vectors, graph, labels, duplicate_group=groups, probe=ProbeSettings())
    assert res.findings.loc[group_rows, "is_label_error"].all()
    assert (res.findings.loc[group_rows, "suggested_class"] == 0).all()
    folds = group_folds(len(vectors), 5, None, groups)
    assert len(set(folds[group_rows])) == 1


def test_group_folds_keep_images_and_duplicate_groups_whole() -> None:
    n = 1000
    image = np.arange(n) // 4  # four boxes per image
    dup = np.full(n, -1)
    dup[[3, 400, 999]] = 7  # one duplicate group across three images
    folds = group_folds(n, 5, image, dup, seed=1)
    for g in np.unique(image):
        assert len(set(folds[image == g])) == 1
    linked = np.isin(image, image[[3, 400, 999]])
    assert len(set(folds[linked])) == 1
    assert set(np.bincount(folds, minlength=5)) <= set(range(150, 251))  # about n / 5 rows each
    assert (group_folds(n, 5, image, dup, seed=1) == folds).all()
    with pytest.raises(ValueError, match="n_folds"):
        group_folds(n, 1)


def test_probe_probabilities_are_out_of_fold() -> None:
    """A row's probabilities come from a fit that never saw it: a label that contradicts its cluster is not
    learned back (an in-sample fit would memorise it in 64-d with 50 rows)."""
    syn = make_vectors([25, 25], seed=12, dim=64)
    labels = syn.class_id.copy()
    odd = syn.rows_of(0)[0]
    labels[odd] = 1
    folds = group_folds(len(labels), 5)
    fit = cross_validated_probabilities(syn.vectors, labels, folds, settings=ProbeSettings(l2=1e-6))
    assert fit.probabilities[odd, 0] > 0.9
    assert np.allclose(fit.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert len(fit.iterations) == 5 and fit.weights is not None and fit.weights.shape == (5, 65, 2)
