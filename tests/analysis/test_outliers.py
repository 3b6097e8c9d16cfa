"""Outliers per class: planted outliers rank first, the flag rate follows the data, tiny classes are safe."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dinoscope.analysis.outliers import Z_CUTOFF, find_outliers, robust_z
from tests.analysis.synthetic import exact_class_graphs, make_vectors, normalize

K = 10


def _run(syn, graph_k: int = 15, **kwargs):
    return find_outliers(syn.vectors, syn.class_id, exact_class_graphs(syn.vectors, syn.class_id, graph_k), **kwargs)


def test_planted_outliers_rank_first() -> None:
    syn = make_vectors([1500, 1000, 500], n_subgroups_per_class=[3, 2, 1], n_outliers=30, seed=1)
    frame = _run(syn).findings
    lowest = frame["outlier_quality"].nsmallest(len(syn.outliers)).index
    assert set(lowest) == set(syn.outliers)
    assert frame.loc[syn.outliers, "outlier_reason"].isin(["both", "isolated", "far from its class"]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_data_flags_almost_nothing(seed: int) -> None:
    syn = make_vectors([2000, 1200, 600], n_subgroups_per_class=[3, 2, 1], seed=seed)
    result = _run(syn)
    assert result.findings["is_outlier"].mean() <= 0.01
    assert all(result.summary[str(c)]["outlier_rate"] <= 0.01 for c in range(3))


@pytest.mark.parametrize("noise", [0.05, 0.1])
def test_planted_share_is_found(noise: float) -> None:
    """5 % planted outliers: the flag rate follows them (recall >= 0.9, precision >= 0.8)."""
    syn = make_vectors([2000, 1200, 600], n_subgroups_per_class=[3, 2, 1], n_outliers=190, noise=noise, seed=3)
    flag = _run(syn).findings["is_outlier"]
    planted = flag.index.isin(syn.outliers)
    recall = (flag & planted).sum() / planted.sum()
    precision = (flag & planted).sum() / flag.sum()
    assert recall >= 0.9 and precision >= 0.8, f"recall {recall:.3f} precision {precision:.3f}"


def test_quality_convention() -> None:
    syn = make_vectors([800, 400], n_subgroups_per_class=2, n_outliers=20, seed=4)
    result = _run(syn)
    frame = result.findings
    assert result.name == "outliers"
    assert frame.index.equals(frame.index.sort_values()) and len(frame) == len(syn.vectors)
    assert frame["outlier_quality"].between(0, 1).all()
    assert ((frame["outlier_quality"] < 0.5) == frame["is_outlier"]).all()
    assert ((frame["outlier_z"] > Z_CUTOFF) == frame["is_outlier"]).all()
    assert (frame.loc[~frame["is_outlier"], "outlier_reason"] == "").all()
    # Lower quality <=> larger z, within and across classes.
    order = frame.sort_values("outlier_quality").index
    assert frame.loc[order, "outlier_z"].is_monotonic_decreasing
    thr = result.summary["0"]["knn_similarity_threshold"]
    isolated = frame.loc[syn.rows_of(0), "isolation_z"] > Z_CUTOFF
    assert ((frame.loc[syn.rows_of(0), "knn_similarity"] < thr) == isolated).all()


def test_reason_tells_a_rare_clump_from_lone_objects() -> None:
    """A tight clump of 25 odd objects is far from its class but not isolated (k < 25); lone ones are both."""
    rng = np.random.default_rng(12)
    syn = make_vectors([2000], n_outliers=10, seed=5)
    away = normalize(syn.class_centres[0] + 1.2 * normalize(rng.standard_normal(64)))
    clump = normalize(away + 0.04 * rng.standard_normal((25, 64)))
    vectors = np.concatenate([syn.vectors, clump])
    class_id = np.zeros(len(vectors), dtype=np.int64)
    frame = find_outliers(vectors, class_id, exact_class_graphs(vectors, class_id, K)).findings
    clump_rows = np.arange(len(syn.vectors), len(vectors))
    assert (frame.loc[clump_rows, "outlier_reason"] == "far from its class").all()
    assert (frame.loc[syn.outliers, "outlier_reason"] == "both").all()
    assert frame["is_outlier"].sum() == 35


@pytest.mark.parametrize("sizes", [[1], [2], [3], [1, 2, 3, 200]])
def test_tiny_classes(sizes: list[int]) -> None:
    syn = make_vectors(sizes, seed=6)
    result = _run(syn)
    frame = result.findings
    assert len(frame) == len(syn.vectors)
    for c, n in enumerate(sizes):
        part = frame.loc[syn.rows_of(c)]
        if n < 3:
            assert (part["outlier_quality"] == 1.0).all() and not part["is_outlier"].any()
            assert c in result.info["unscored_classes"] and result.summary[str(c)]["scored"] is False
        else:
            assert part["outlier_quality"].between(0, 1).all() and result.summary[str(c)]["scored"]


def test_parameters_are_recorded_and_validated() -> None:
    syn = make_vectors([300, 40], seed=7)
    result = _run(syn, graph_k=8, k=12, min_class_size=50)
    assert result.info["k"] == 12 and result.info["unscored_classes"] == [1]
    assert result.info["classes"]["0"]["k_used"] == 8  # never more than the graph has
    with pytest.raises(ValueError, match="k and min_class_size"):
        _run(syn, k=0)
    with pytest.raises(ValueError, match="no graph"):
        find_outliers(syn.vectors, syn.class_id, {})


def test_robust_z() -> None:
    z, med, scale = robust_z(np.array([1.0, 1.0, 1.0, 1.0, 9.0]))  # MAD = 0: mean absolute deviation used
    assert med == 1.0 and scale > 0 and z[-1] > Z_CUTOFF and (z[:4] == 0).all()
    assert (robust_z(np.full(5, 2.0))[0] == 0).all()
    z, _, _ = robust_z(np.array([np.nan, 1.0, 2.0, 3.0]))
    assert z[0] == 0.0


def test_runtime_20k() -> None:
    syn = make_vectors([8000, 6000, 4000, 2000], n_subgroups_per_class=4, n_outliers=200, seed=9)
    graphs = exact_class_graphs(syn.vectors, syn.class_id, K)
    start = time.perf_counter()
    flag = find_outliers(syn.vectors, syn.class_id, graphs).findings["is_outlier"]
    assert time.perf_counter() - start < 2.0
    assert set(np.flatnonzero(flag.to_numpy())) >= set(syn.outliers)
