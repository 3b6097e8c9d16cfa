"""Sub-groups per class: planted sub-groups recovered, thresholds adapt, ids and representatives behave."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dinoscope.analysis.clusters import default_min_group_size, find_subgroups
from dinoscope.analysis.density import estimate_eps
from tests.analysis.synthetic import exact_class_graphs, exact_graph, make_vectors, normalize

pytest.importorskip("hdbscan")
sk_cluster = pytest.importorskip("sklearn.cluster")
from sklearn.metrics import adjusted_rand_score  # noqa: E402

METHODS = ["auto", "spectral", "hdbscan", "dbscan"]
K = 15


@pytest.fixture(scope="module")
def planted():
    """Three classes with 4, 3 and 1 well-separated sub-groups (unequal sizes), no outliers."""
    syn = make_vectors([1500, 900, 600], n_subgroups_per_class=[4, 3, 1], seed=3)
    return syn, exact_class_graphs(syn.vectors, syn.class_id, K)


def _joint(class_id: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One label per (class, group); every unclustered object is its own singleton."""
    out = class_id.astype(np.int64) * 10_000 + labels
    noise = labels < 0
    out[noise] = -1 - np.arange(int(noise.sum()))
    return out


@pytest.mark.parametrize("method", METHODS)
def test_planted_subgroups_are_recovered(planted, method: str) -> None:
    syn, graphs = planted
    result = find_subgroups(syn.vectors, syn.class_id, graphs, method=method)
    labels = result.findings["cluster"].reindex(np.arange(len(syn.vectors))).to_numpy()
    ari = adjusted_rand_score(_joint(syn.class_id, syn.subgroup), _joint(syn.class_id, labels))
    assert ari >= 0.9, f"{method}: ARI {ari:.3f}"
    assert [result.summary[str(c)]["n_clusters"] for c in (0, 1, 2)] == [4, 3, 1]
    assert all(result.summary[str(c)]["unclustered_share"] < 0.01 for c in (0, 1, 2))


def _original_rule(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """The rule dinoscope replaces: cosine DBSCAN, eps = 90th percentile of the 3rd-neighbour distance."""
    graph = exact_graph(vectors, np.arange(len(vectors)), 3)
    third = 1.0 - graph.sims[:, 2].astype(np.float64)
    eps = float(np.percentile(third, 90))
    labels = sk_cluster.DBSCAN(eps=eps, min_samples=3, metric="cosine").fit(vectors).labels_
    return labels, float(np.mean(third > eps))


@pytest.mark.parametrize("method", METHODS)
def test_clean_data_has_almost_no_noise_unlike_the_percentile_rule(method: str) -> None:
    syn = make_vectors([2000], n_subgroups_per_class=3, seed=5)
    old_labels, old_sparse = _original_rule(syn.vectors)
    # The percentile rule calls 10 % of any class sparse by construction; some are rescued as border points.
    assert old_sparse == pytest.approx(0.10, abs=0.005)
    assert np.mean(old_labels < 0) > 0.02
    result = find_subgroups(syn.vectors, syn.class_id, exact_class_graphs(syn.vectors, syn.class_id, K), method=method)
    assert result.findings["is_unclustered"].mean() <= 0.005
    assert result.info["classes"]["0"]["share_beyond_eps"] <= 0.005


def test_consecutive_frame_triplets_are_not_groups() -> None:
    """1000 triplets of near-identical frames from 4 sub-types: the old rule reports dozens of tiny clusters."""
    rng = np.random.default_rng(0)
    base = make_vectors([1000], n_subgroups_per_class=4, seed=2)
    vectors = normalize(np.repeat(base.vectors, 3, axis=0) + 0.005 * rng.standard_normal((3000, 64)))
    truth = np.repeat(base.subgroup, 3)
    old_labels, _ = _original_rule(vectors)
    assert np.sum(np.bincount(old_labels[old_labels >= 0]) < 10) > 20
    class_id = np.zeros(3000, dtype=np.int64)
    for method in METHODS:
        result = find_subgroups(vectors, class_id, exact_class_graphs(vectors, class_id, K), method=method)
        assert result.summary["0"]["n_clusters"] == 4
        assert min(result.summary["0"]["cluster_sizes"]) >= default_min_group_size(3000)
        assert adjusted_rand_score(truth, result.findings["cluster"].to_numpy()) >= 0.95


@pytest.mark.parametrize("method", METHODS)
def test_planted_outliers_are_unclustered(method: str) -> None:
    syn = make_vectors([1200, 800], n_subgroups_per_class=2, n_outliers=60, seed=7)
    result = find_subgroups(syn.vectors, syn.class_id, exact_class_graphs(syn.vectors, syn.class_id, K), method=method)
    unclustered = result.findings["is_unclustered"]
    assert unclustered.loc[syn.outliers].mean() >= 0.9
    assert unclustered.drop(index=syn.outliers).mean() <= 0.01
    assert (result.findings.loc[unclustered, "cluster_quality"] == 0).all()


def test_hdbscan_finds_groups_of_different_density_that_dbscan_cannot() -> None:
    """One global eps is single-density (DBSCAN); HDBSCAN(eps) keeps a sparse sub-group as a group."""
    rng = np.random.default_rng(1)
    centre = normalize(rng.standard_normal(64))
    parts, truth = [], []
    for j, (noise, m) in enumerate([(0.03, 800), (0.05, 800), (0.08, 800)]):
        sub_centre = normalize(centre + 0.8 * normalize(rng.standard_normal(64)))
        parts.append(sub_centre + noise * rng.standard_normal((m, 64)))
        truth.append(np.full(m, j))
    vectors, truth = normalize(np.concatenate(parts)), np.concatenate(truth)
    class_id = np.zeros(len(vectors), dtype=np.int64)
    graphs = exact_class_graphs(vectors, class_id, K)
    labels = find_subgroups(vectors, class_id, graphs, method="hdbscan").findings["cluster"].to_numpy()
    assert adjusted_rand_score(truth, labels) >= 0.95


def test_cluster_ids_are_ordered_by_size_and_stable(planted) -> None:
    syn, graphs = planted
    first = find_subgroups(syn.vectors, syn.class_id, graphs)
    again = find_subgroups(syn.vectors, syn.class_id, graphs)
    assert first.findings.equals(again.findings)
    for c in (0, 1, 2):
        part = first.findings.loc[syn.rows_of(c)]
        sizes = part.loc[part["cluster"] >= 0, "cluster"].value_counts().sort_index()
        assert list(sizes.index) == list(range(len(sizes)))
        assert sizes.is_monotonic_decreasing
        assert first.summary[str(c)]["cluster_sizes"] == sizes.tolist()
        assert (part["cluster_size"] == part["cluster"].map(sizes).fillna(0)).all()


@pytest.mark.parametrize("method", METHODS)
def test_medoid_and_representatives(planted, method: str) -> None:
    syn, graphs = planted
    frame = find_subgroups(syn.vectors, syn.class_id, graphs, method=method, n_representatives=6).findings
    for c in (0, 1, 2):
        part = frame.loc[syn.rows_of(c)]
        for _, group in part[part["cluster"] >= 0].groupby("cluster"):
            members = group.index.to_numpy()
            medoid = group.index[group["is_medoid"]].to_numpy()
            reps = group.index[group["is_representative"]].to_numpy()
            assert len(medoid) == 1 and medoid[0] in reps
            assert len(reps) == min(6, len(members)) and len(np.unique(reps)) == len(reps)
            x = syn.vectors[members].astype(np.float64)
            assert medoid[0] == members[np.argmax((x @ x.T).sum(axis=1))]  # highest mean similarity
            # Farthest-point picks cover the group better than random picks: members are closer to them.
            rng = np.random.default_rng(0)
            random_cover = [
                (x @ x[rng.choice(len(x), len(reps), replace=False)].T).max(axis=1).mean() for _ in range(20)
            ]
            assert (x @ syn.vectors[reps].T).max(axis=1).mean() > np.mean(random_cover)
        assert not part.loc[part["cluster"] < 0, ["is_medoid", "is_representative"]].any().any()


def test_groups_smaller_than_min_group_size_are_unclustered() -> None:
    rng = np.random.default_rng(44)
    base = make_vectors([2000], seed=4)
    far_small = normalize(normalize(rng.standard_normal(64)) + 0.05 * rng.standard_normal((8, 64)))
    far_big = normalize(normalize(rng.standard_normal(64)) + 0.05 * rng.standard_normal((40, 64)))
    vectors = np.concatenate([base.vectors, far_small, far_big])
    class_id = np.zeros(len(vectors), dtype=np.int64)
    graphs = exact_class_graphs(vectors, class_id, K)
    for method in ("auto", "hdbscan", "dbscan"):  # spectral keeps the 8 far objects in the big group (known gap)
        result = find_subgroups(vectors, class_id, graphs, method=method, min_group_size=20)
        frame = result.findings
        assert result.summary["0"]["cluster_sizes"] == [2000, 40]
        assert frame.loc[2000:2007, "is_unclustered"].all()
        assert (frame.loc[2008:, "cluster"] == 1).all()
        assert result.info["classes"]["0"]["min_group_size"] == 20


def test_default_min_group_size() -> None:
    assert [default_min_group_size(n) for n in (1, 100, 501, 5000, 10**6)] == [5, 5, 6, 50, 100]


@pytest.mark.parametrize("method", METHODS)
def test_tiny_classes_do_not_crash(method: str) -> None:
    syn = make_vectors({0: 1, 1: 2, 2: 3, 3: 300}, n_subgroups_per_class=1, seed=0)
    result = find_subgroups(syn.vectors, syn.class_id, exact_class_graphs(syn.vectors, syn.class_id, K), method=method)
    frame = result.findings
    assert len(frame) == len(syn.vectors) and frame.index.is_monotonic_increasing
    for c in (0, 1, 2):
        part = frame.loc[syn.rows_of(c)]
        assert (part["cluster"] == 0).all() and part["is_medoid"].sum() == 1
        assert result.summary[str(c)]["n_clusters"] == 1
        assert result.info["classes"][str(c)]["split"] is False
    assert result.summary["3"]["n_clusters"] == 1


def test_summary_and_info(planted) -> None:
    syn, graphs = planted
    result = find_subgroups(syn.vectors, syn.class_id, graphs, method="dbscan")
    assert result.name == "clusters" and result.info["method"] == "dbscan"
    homogeneity = {c: result.summary[str(c)]["homogeneity"] for c in (0, 1, 2)}
    assert all(0.0 < h <= 1.0 for h in homogeneity.values())
    assert homogeneity[2] > homogeneity[1] > homogeneity[0]  # 1 sub-group is tighter than 3, than 4
    params = result.info["classes"]["0"]
    assert params["eps"] > 0 and params["eps_knee"] > 0 and params["min_samples"] <= K
    assert result.summary["0"]["largest_cluster_share"] == pytest.approx(
        max(result.summary["0"]["cluster_sizes"]) / 1500
    )
    assert set(result.findings.columns) == {
        "cluster",
        "cluster_size",
        "is_medoid",
        "is_representative",
        "cluster_quality",
        "cluster_stability",
        "is_unclustered",
    }
    assert result.findings["cluster_quality"].between(0, 1).all()


def test_estimate_eps_is_robust_to_outlying_core_distances() -> None:
    rng = np.random.default_rng(0)
    clean = rng.lognormal(np.log(0.1), 0.1, 2000)
    eps_clean, details = estimate_eps(clean)
    assert details["share_beyond_eps"] < 0.005 and details["eps_knee"] < eps_clean
    eps_dirty, _ = estimate_eps(np.concatenate([clean, rng.uniform(0.6, 0.9, 100)]))
    assert eps_dirty < 0.2  # 5 % far objects barely move the fence
    assert estimate_eps(np.full(10, 0.3))[0] == pytest.approx(0.3)


def test_bad_input_is_reported(planted) -> None:
    syn, graphs = planted
    with pytest.raises(ValueError, match="no graph for classes"):
        find_subgroups(syn.vectors, syn.class_id, {0: graphs[0]})
    with pytest.raises(ValueError, match="method"):
        find_subgroups(syn.vectors, syn.class_id, graphs, method="kmeans")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not cover"):
        find_subgroups(syn.vectors, syn.class_id, {0: graphs[1], 1: graphs[0], 2: graphs[2]})


@pytest.fixture(scope="module")
def big():
    """20,200 objects in 4 classes of 4 sub-groups, 1 % outliers."""
    syn = make_vectors([8000, 6000, 4000, 2000], n_subgroups_per_class=4, n_outliers=200, seed=9)
    return syn, exact_class_graphs(syn.vectors, syn.class_id, K)


@pytest.mark.parametrize("method", ["auto", "hdbscan", "dbscan"])  # spectral: 30 s and [5, 5, 2, 5] groups here (open)
def test_runtime_20k(big, method: str) -> None:
    syn, graphs = big
    start = time.perf_counter()
    result = find_subgroups(syn.vectors, syn.class_id, graphs, method=method)
    # auto runs HDBSCAN 5 times where a class has several density groups (the fit and 4 resamples)
    assert time.perf_counter() - start < (10.0 if method == "auto" else 5.0)
    assert [result.summary[str(c)]["n_clusters"] for c in range(4)] == [4, 4, 4, 4]


def test_hdbscan_public_api_fallback_gives_the_same_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path runs hdbscan's tree routines on our own MST and linkage; the public estimator must agree."""
    import sys

    syn = make_vectors([900], n_subgroups_per_class=3, n_outliers=20, seed=11)
    graphs = exact_class_graphs(syn.vectors, syn.class_id, K)
    fast = find_subgroups(syn.vectors, syn.class_id, graphs, method="hdbscan").findings
    import hdbscan

    calls, fit = [], hdbscan.HDBSCAN.fit
    monkeypatch.setattr(hdbscan.HDBSCAN, "fit", lambda self, x, y=None: calls.append(x.shape) or fit(self, x, y))
    monkeypatch.setitem(sys.modules, "hdbscan.hdbscan_", None)  # makes the fast-path import fail
    slow = find_subgroups(syn.vectors, syn.class_id, graphs, method="hdbscan").findings
    assert calls == [(920, 920)]
    assert (fast["cluster"] == slow["cluster"]).all()
    np.testing.assert_allclose(fast["cluster_quality"], slow["cluster_quality"], atol=1e-9)


def test_single_linkage_matches_hdbscan_label() -> None:
    from scipy import sparse
    from scipy.sparse import csgraph

    from dinoscope.analysis.density import _single_linkage

    label = pytest.importorskip("hdbscan._hdbscan_linkage").label
    rng = np.random.default_rng(0)
    n = 500
    graph = sparse.random(n, n, density=0.05, random_state=1, format="csr") + sparse.eye(n, k=1)
    mst = sparse.coo_matrix(csgraph.minimum_spanning_tree(graph + graph.T))
    order = np.argsort(mst.data + 1e-9 * rng.random(len(mst.data)), kind="stable")
    edges = np.column_stack([mst.row[order], mst.col[order], mst.data[order]]).astype(np.float64)
    expected = label(edges)
    np.testing.assert_array_equal(_single_linkage(mst.row[order], mst.col[order], mst.data[order]), expected)


# --- spectral: sub-types that overlap, and none in one homogeneous shape ----------------------------------------
def _shape_class(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vectors = normalize(np.concatenate(parts))
    truth = np.concatenate([np.full(len(p), j) for j, p in enumerate(parts)])
    return vectors, truth, np.zeros(len(vectors), dtype=np.int64)


def _spectral(vectors: np.ndarray, class_id: np.ndarray, method: str = "spectral", seed: int = 0):
    return find_subgroups(vectors, class_id, exact_class_graphs(vectors, class_id, K), method=method, seed=seed)


@pytest.mark.parametrize("method", ["auto", "spectral"])
def test_spectral_splits_two_overlapping_anisotropic_blobs(method: str) -> None:
    """Two elongated blobs whose tails overlap (no density gap in 64-d): two groups, each stable."""
    rng = np.random.default_rng(3)
    centre, shift = normalize(rng.standard_normal(64)), normalize(rng.standard_normal(64))
    parts = []
    for j, axis in enumerate((0, 1)):
        noise = 0.04 * rng.standard_normal((600, 64))
        noise[:, axis] *= 3.0
        parts.append(centre + 0.2 * j * shift + noise)
    vectors, truth, class_id = _shape_class(parts)
    result = _spectral(vectors, class_id, method)
    labels = result.findings["cluster"].to_numpy()
    assert result.summary["0"]["n_clusters"] == 2
    assert adjusted_rand_score(truth, labels) >= 0.8
    stability = result.findings.loc[labels >= 0, "cluster_stability"]
    assert stability.between(0.9, 1.0).all()
    assert len(result.info["classes"]["0"]["groups"]) == 2


@pytest.mark.parametrize("method", ["auto", "spectral"])
@pytest.mark.parametrize("shape", ["ring", "gaussian", "anisotropic"])
def test_spectral_keeps_one_homogeneous_shape_whole(shape: str, method: str) -> None:
    """A ring (no preferred cut: resampled cuts disagree) and Gaussian blobs (no bottleneck) are one group."""
    rng = np.random.default_rng(5)
    n = 1500
    if shape == "ring":
        theta = rng.uniform(0, 2 * np.pi, n)
        points = 0.08 * rng.standard_normal((n, 64))
        points[:, 0] += np.cos(theta)
        points[:, 1] += np.sin(theta)
        points[:, 5] += 3.0
    else:
        points = 0.04 * rng.standard_normal((n, 64))
        if shape == "anisotropic":
            points[:, :2] *= (4.0, 2.0)
        points += normalize(rng.standard_normal(64))
    vectors, _, class_id = _shape_class([points])
    result = _spectral(vectors, class_id, method)
    assert result.summary["0"]["n_clusters"] == 1
    assert result.findings["is_unclustered"].mean() <= 0.01
    assert (result.findings.loc[result.findings["cluster"] == 0, "cluster_stability"] == 1.0).all()


def test_spectral_stability_is_nan_for_density_methods(planted) -> None:
    syn, graphs = planted
    frame = find_subgroups(syn.vectors, syn.class_id, graphs, method="hdbscan").findings
    assert frame["cluster_stability"].isna().all()


def test_auto_stability_of_density_groups(planted) -> None:
    """auto: well-separated planted groups are found again on every resample (stability ~1), each group has one."""
    syn, graphs = planted
    result = find_subgroups(syn.vectors, syn.class_id, graphs)
    assert result.info["method"] == "auto"
    members = result.findings[result.findings["cluster"] >= 0]
    assert members["cluster_stability"].between(0.95, 1.0).all()
    assert [len(result.info["classes"][str(c)]["groups"]) for c in (0, 1, 2)] == [4, 3, 1]


def test_clusterwise_jaccard() -> None:
    """A group found again scores 1, one merged with an equal group 0.5, one left unclustered 0."""
    from dinoscope.analysis.density import clusterwise_jaccard

    labels = np.repeat([0, 1, 2], 10)
    keep = np.arange(30)
    same = clusterwise_jaccard(labels, [keep], [labels.copy()])
    np.testing.assert_allclose(same, [1.0, 1.0, 1.0])
    merged = clusterwise_jaccard(labels, [keep], [np.repeat([0, 0, 1], 10)])
    np.testing.assert_allclose(merged, [0.5, 0.5, 1.0])
    lost = clusterwise_jaccard(labels, [keep], [np.repeat([0, 1, -1], 10)])
    np.testing.assert_allclose(lost, [1.0, 1.0, 0.0])
    half = clusterwise_jaccard(labels, [keep[::2], keep], [labels[::2], labels])  # a subsample: sizes shrink too
    np.testing.assert_allclose(half, [1.0, 1.0, 1.0])
