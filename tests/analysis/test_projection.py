"""2-D maps: fixed layouts for tiny inputs, PCA, placement of rows left out of the fit, UMAP and PaCMAP.

UMAP's first call compiles numba code (~10 s), so UMAP runs in one module fixture (three small fits) and is
marked slow; everything else uses PCA or tests the placement directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dinoscope.analysis.neighbors import build_class_graphs, build_neighbor_graph
from dinoscope.analysis.projection import (
    MapResult,
    _local_neighbors,
    _place_from_sample,
    _spread_along_graph,
    compute_class_maps,
    compute_map,
)
from dinoscope.errors import ConfigError


def _clusters(n: int, seed: int = 0, d: int = 32, n_clusters: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors in n_clusters well separated clusters, labels in order 0, 1, 2, 0, 1, 2..."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    labels = np.arange(n) % n_clusters
    x = centers[labels] + 0.3 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def _silhouette(coords: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(coords, labels))


def _nearest_centroid_accuracy(coords: np.ndarray, labels: np.ndarray, fit_rows: np.ndarray) -> float:
    """Share of rows NOT in fit_rows whose nearest class centroid (from the fitted rows) is their own class."""
    centroids = np.stack([coords[fit_rows][labels[fit_rows] == c].mean(axis=0) for c in np.unique(labels)])
    rest = np.setdiff1d(np.arange(len(coords)), fit_rows)
    dist = np.linalg.norm(coords[rest, None, :] - centroids[None], axis=2)
    return float((dist.argmin(axis=1) == labels[rest]).mean())


@pytest.mark.parametrize("method", ["umap", "pacmap", "pca"])
def test_tiny_inputs(method: str) -> None:
    x, _ = _clusters(20)
    assert compute_map(x[:0], method=method).coords.shape == (0, 2)
    one = compute_map(x[:1], method=method)
    assert one.coords.tolist() == [[0.0, 0.0]] and one.info["method"] == "fixed"
    two = compute_map(x[:2], method=method)
    assert two.coords.tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    three = compute_map(x[:3], method=method)  # too few for UMAP / PaCMAP: PCA, and info says so
    assert three.coords.shape == (3, 2) and three.info["method"] == "pca" and np.isfinite(three.coords).all()
    assert (three.info.get("reason") is not None) == (method != "pca")
    assert compute_map(x[:16], method=method).info["method"] == "pca"  # n <= n_neighbors + 1


def test_identical_rows_do_not_crash() -> None:
    x = np.tile(np.eye(8, dtype=np.float32)[:1], (5, 1))
    coords = compute_map(x, method="pca").coords
    np.testing.assert_allclose(coords, 0.0, atol=1e-6)


def test_pca_matches_sklearn_and_is_deterministic(tmp_path: Path) -> None:
    from sklearn.decomposition import PCA

    x, labels = _clusters(300, seed=1)
    result = compute_map(x, method="pca")
    assert isinstance(result, MapResult) and result.coords.dtype == np.float32 and result.coords.shape == (300, 2)
    ref = PCA(2).fit_transform(x)
    for j in range(2):  # same components up to sign
        assert abs(np.corrcoef(result.coords[:, j], ref[:, j])[0, 1]) > 0.999
    np.testing.assert_array_equal(compute_map(x, method="pca").coords, result.coords)
    mm = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float16, shape=x.shape)
    mm[:] = x
    from_memmap = compute_map(np.load(tmp_path / "v.npy", mmap_mode="r"), method="pca").coords
    np.testing.assert_allclose(from_memmap, result.coords, atol=2e-3)
    assert _silhouette(result.coords, labels) > 0.5
    assert result.info["method"] == "pca" and result.info["seconds"] >= 0


def test_spread_along_graph_places_rows_near_their_cluster() -> None:
    x, labels = _clusters(600, seed=2)
    graph = build_neighbor_graph(x, k=10)
    fit_rows = np.sort(np.random.default_rng(0).choice(600, size=200, replace=False))
    coords = np.full((600, 2), np.nan, dtype=np.float32)
    coords[fit_rows] = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)[labels[fit_rows]]
    n_placed = _spread_along_graph(coords, graph.indices, graph.sims)
    assert n_placed == 400 and np.isfinite(coords).all()
    assert _nearest_centroid_accuracy(coords, labels, fit_rows) == 1.0


def test_spread_along_graph_reaches_rows_in_waves() -> None:
    # a chain 0-1-2-3-4: only row 0 is fitted, the rest are placed one wave at a time
    local = np.array([[1, -1], [0, 2], [1, 3], [2, 4], [3, -1]])
    sims = np.where(local >= 0, 0.9, -np.inf).astype(np.float32)
    coords = np.full((5, 2), np.nan, dtype=np.float32)
    coords[0] = [1.0, 2.0]
    assert _spread_along_graph(coords, local, sims) == 4
    np.testing.assert_allclose(coords, [[1.0, 2.0]] * 5)
    cut = local.copy()
    cut[2, 1] = cut[3, 0] = -1  # rows 3 and 4 are unreachable from row 0
    coords = np.full((5, 2), np.nan, dtype=np.float32)
    coords[0] = [1.0, 2.0]
    assert _spread_along_graph(coords, cut, sims) == 2 and np.isnan(coords[3:]).all()


def test_place_from_sample() -> None:
    x, labels = _clusters(300, seed=3)
    sample = np.arange(0, 300, 5)
    fitted = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)[labels[sample]]
    todo = np.setdiff1d(np.arange(300), sample)
    placed = _place_from_sample(x, sample, fitted, todo)
    expected = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)[labels[todo]]
    np.testing.assert_allclose(placed, expected, atol=0.5)


def test_class_maps_follow_class_rows() -> None:
    x, _ = _clusters(90, seed=4)
    class_id = np.arange(90) % 2
    maps = compute_class_maps(x, class_id, method="pca")
    assert sorted(maps) == [0, 1] and all(len(m) == 45 for m in maps.values())
    np.testing.assert_array_equal(maps[1].coords, compute_map(x[class_id == 1], method="pca").coords)
    graphs = build_class_graphs(x, class_id, k=5)
    with pytest.raises(ValueError, match="class 0"):
        compute_class_maps(x, class_id, graphs={0: graphs[1]}, method="pca")


def test_class_graph_is_read_in_the_class_row_order() -> None:
    x, _ = _clusters(60, seed=8)
    class_id = np.arange(60) % 3
    graphs = build_class_graphs(x, class_id, k=4)
    local = _local_neighbors(graphs[2])
    assert local is not None
    np.testing.assert_array_equal(graphs[2].rows[local], graphs[2].indices)  # local row -> same global row
    assert _local_neighbors(build_neighbor_graph(x[::3], k=4, rows=np.arange(1, 60, 3) + 100)) is not None
    whole = build_neighbor_graph(x, k=4)
    outside = type(whole)(whole.indices[:20], whole.sims[:20], whole.rows[:20])  # neighbours beyond row 19
    assert _local_neighbors(outside) is None


def test_bad_arguments() -> None:
    x, _ = _clusters(30)
    with pytest.raises(ConfigError, match="method"):
        compute_map(x, method="tsne")
    with pytest.raises(ValueError, match="graph has"):
        compute_map(x, graph=build_neighbor_graph(x[:10], k=3))


# ------------------------------------------------------------------------------ UMAP / PaCMAP (numba: slow)


@pytest.fixture(scope="module")
def umap_maps() -> dict[str, MapResult]:
    pytest.importorskip("umap")
    x, _ = _clusters(300, seed=5)
    big, _ = _clusters(600, seed=6)
    return {
        "plain": compute_map(x, method="umap", seed=0),
        "graph": compute_map(x, method="umap", seed=0, graph=build_neighbor_graph(x, k=15)),
        "sampled": compute_map(big, method="umap", seed=0, max_fit=200, graph=build_neighbor_graph(big, k=15)),
    }


@pytest.mark.slow
def test_umap_separates_planted_clusters(umap_maps: dict[str, MapResult]) -> None:
    _, labels = _clusters(300, seed=5)
    plain = umap_maps["plain"]
    assert plain.info["method"] == "umap" and plain.info["graph_used"] is False
    assert plain.coords.shape == (300, 2) and plain.coords.dtype == np.float32
    assert _silhouette(plain.coords, labels) > 0.5


@pytest.mark.slow
def test_umap_with_the_run_graph_is_the_same_map(umap_maps: dict[str, MapResult]) -> None:
    # without a graph compute_map builds the same exact 14-NN itself, so a second fit with the same seed and
    # the run's (exact) graph must reproduce the map exactly: this checks both the graph path and determinism
    graph_map = umap_maps["graph"]
    assert graph_map.info["graph_used"] is True
    np.testing.assert_array_equal(graph_map.coords, umap_maps["plain"].coords)


@pytest.mark.slow
def test_umap_fits_a_sample_and_places_the_rest(umap_maps: dict[str, MapResult]) -> None:
    _, labels = _clusters(600, seed=6)
    sampled = umap_maps["sampled"]
    info = sampled.info
    assert info["n_fit"] == 200 and info["placement"] == "graph" and info["n_placed_graph"] == 400
    assert np.isfinite(sampled.coords).all()
    fit_rows = np.sort(np.random.default_rng(0).choice(600, size=200, replace=False))
    assert _nearest_centroid_accuracy(sampled.coords, labels, fit_rows) > 0.95
    assert _silhouette(sampled.coords, labels) > 0.5


@pytest.mark.slow
def test_pacmap_sampled_without_graph() -> None:
    pytest.importorskip("pacmap")
    x, labels = _clusters(400, seed=7)
    result = compute_map(x, method="pacmap", seed=0, max_fit=200)
    assert result.info["method"] == "pacmap" and result.info["placement"] == "nearest-sample"
    assert result.info["n_placed_search"] == 200
    assert _silhouette(result.coords, labels) > 0.5
    np.testing.assert_array_equal(compute_map(x, method="pacmap", seed=0, max_fit=200).coords, result.coords)
    small = compute_map(x[:20], method="pacmap", seed=0)  # PaCMAP needs n > 3.5 n_neighbors: fewer pairs
    assert small.info["method"] == "pacmap" and small.info["n_neighbors"] == 5
    assert np.isfinite(small.coords).all()
