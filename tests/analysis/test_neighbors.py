"""The shared kNN graph: exact equals brute force, HNSW recall, within-class graphs, edge cases, I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.neighbors import (
    build_class_graphs,
    build_neighbor_graph,
    load_graph,
    save_graph,
)
from dinoscope.analysis.neighbors_exact import exact_search
from dinoscope.errors import ConfigError


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: full similarity matrix, self excluded, stable sort (ties to the lower row)."""
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, 1)


def _clustered(n: int, d: int, n_clusters: int, seed: int, spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d))
    labels = rng.integers(0, n_clusters, n)
    return _unit(centers[labels] + spread * rng.standard_normal((n, d))), labels


@pytest.fixture(scope="module")
def with_ties() -> np.ndarray:
    """200 random rows where 7 and 12 copy row 3 and rows 40..49 all equal one vector (many exact ties)."""
    x = _unit(np.random.default_rng(0).standard_normal((200, 16)))
    x[7] = x[12] = x[3]
    x[40:50] = x[40]
    return x


def test_exact_equals_brute_force_with_duplicates(with_ties: np.ndarray) -> None:
    graph = build_neighbor_graph(with_ties, k=5, method="exact")
    ref_idx, ref_sims = _brute_force(with_ties, 5)
    np.testing.assert_allclose(graph.sims, ref_sims, atol=1e-5)
    # rows whose reference similarities are not near-tied must match index for index
    clear = (np.abs(np.diff(ref_sims, axis=1)) > 1e-5).all(axis=1)
    assert clear.sum() > 150
    np.testing.assert_array_equal(graph.indices[clear], ref_idx[clear])
    assert graph.indices[3, :2].tolist() == [7, 12]  # duplicates are neighbours with sim 1, self is not
    np.testing.assert_allclose(graph.sims[3, :2], 1.0, atol=1e-6)
    assert graph.indices[45].tolist() == [40, 41, 42, 43, 44]  # ties go to the lower row
    assert not (graph.indices == np.arange(200)[:, None]).any()
    assert graph.method == "exact" and graph.rows.tolist() == list(range(200))


def test_exact_search_blocks_match_one_block(with_ties: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import dinoscope.analysis.neighbors_exact as nb_exact

    whole = build_neighbor_graph(with_ties, k=6, method="exact")
    monkeypatch.setattr(nb_exact, "_BLOCK_ELEMS", 7 * 13)  # many tiny query chunks and base blocks
    blocked = build_neighbor_graph(with_ties, k=6, method="exact")
    np.testing.assert_allclose(blocked.sims, whole.sims, atol=1e-6)
    # BLAS sums differently per block shape, so exact duplicates (7 and 12) may swap by one ulp; others may not
    same = (blocked.indices == whole.indices).all(axis=1)
    assert set(np.flatnonzero(~same)) <= {i for i in range(200) if {7, 12} & set(whole.indices[i])}
    idx, _ = exact_search(with_ties[:3], with_ties, 2)
    assert idx[:, 0].tolist() == [0, 1, 2]  # without self_rows a query finds itself first


def test_hnsw_recall_on_clustered_data() -> None:
    x, _ = _clustered(5000, 64, 20, seed=1)
    graph = build_neighbor_graph(x, k=15, method="hnsw", seed=0)
    exact = build_neighbor_graph(x, k=15, method="exact")
    kth = exact.sims[:, -1:]
    recall = float((graph.sims >= kth - 1e-5).sum() / exact.indices.size)
    assert recall >= 0.95
    assert graph.method == "hnsw" and graph.info["recall"] >= 0.95
    assert abs(graph.info["recall"] - recall) < 0.03  # the sampled estimate agrees with the full measurement
    assert not (graph.indices == np.arange(5000)[:, None]).any()
    assert (np.diff(graph.sims, axis=1) <= 0).all()
    again = build_neighbor_graph(x, k=15, method="hnsw", seed=0)
    np.testing.assert_array_equal(again.indices, graph.indices)  # same input, same seed: same graph


def test_auto_switches_at_exact_max() -> None:
    x, _ = _clustered(300, 16, 3, seed=2)
    assert build_neighbor_graph(x, k=5).method == "exact"
    hnsw = build_neighbor_graph(x, k=5, exact_max=100)
    assert hnsw.method == "hnsw" and hnsw.info["exact_max"] == 100


def test_hnsw_handles_duplicates(with_ties: np.ndarray) -> None:
    graph = build_neighbor_graph(with_ties, k=5, method="hnsw")
    assert graph.info["hnsw_storage"] == "float32"
    assert graph.indices[3, :2].tolist() == [7, 12]
    np.testing.assert_allclose(graph.sims[3, :2], 1.0, atol=1e-6)  # exact similarities, not float16-rounded
    assert set(graph.indices[45].tolist()) <= set(range(40, 50)) - {45}
    assert not (graph.indices == np.arange(200)[:, None]).any()


def test_within_class_graphs_use_global_rows() -> None:
    x, _ = _clustered(400, 16, 4, seed=3)
    class_id = np.random.default_rng(4).integers(0, 3, 400)
    graphs = build_class_graphs(x, class_id, k=8)
    assert sorted(graphs) == [0, 1, 2]
    for c, graph in graphs.items():
        np.testing.assert_array_equal(graph.rows, np.flatnonzero(class_id == c))
        assert (class_id[graph.indices] == c).all()
        assert not (graph.indices == graph.rows[:, None]).any()
        ref_idx, _ = _brute_force(x[graph.rows], 8)
        np.testing.assert_array_equal(graph.indices, graph.rows[ref_idx])


@pytest.mark.parametrize("method", ["exact", "hnsw"])
def test_tiny_inputs_are_padded(method: str) -> None:
    x = _unit(np.random.default_rng(5).standard_normal((3, 4)))
    empty = build_neighbor_graph(x[:0], k=4, method=method)
    assert empty.indices.shape == (0, 4) and len(empty) == 0
    one = build_neighbor_graph(x[:1], k=4, method=method)
    assert one.indices.tolist() == [[-1] * 4] and np.isneginf(one.sims).all()
    two = build_neighbor_graph(x[:2], k=4, method=method, rows=np.array([10, 20]))
    assert two.indices.tolist() == [[20, -1, -1, -1], [10, -1, -1, -1]]
    assert np.isfinite(two.sims[:, 0]).all() and np.isneginf(two.sims[:, 1:]).all()
    three = build_neighbor_graph(x, k=4, method=method)
    assert (three.indices[:, :2] >= 0).all() and (three.indices[:, 2:] == -1).all()


def test_float16_memmap_input(tmp_path: Path) -> None:
    x, _ = _clustered(300, 32, 3, seed=6)
    mm = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float16, shape=x.shape)
    mm[:] = x
    mm.flush()
    ro = np.load(tmp_path / "v.npy", mmap_mode="r")
    graph = build_neighbor_graph(ro, k=5, method="exact")
    ref = build_neighbor_graph(ro.astype(np.float32), k=5, method="exact")
    np.testing.assert_array_equal(graph.indices, ref.indices)
    hnsw = build_neighbor_graph(ro, k=5, method="hnsw")
    assert hnsw.info["recall"] >= 0.95 and hnsw.info["hnsw_storage"] == "float16"
    same = hnsw.indices == graph.indices  # FAISS's float16 storage is lossless for float16 input
    assert same.mean() > 0.95
    np.testing.assert_allclose(hnsw.sims[same], graph.sims[same], atol=1e-5)
    classes = build_class_graphs(ro, np.arange(300) % 2, k=5)
    assert (classes[1].indices % 2 == 1).all()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    x, _ = _clustered(100, 8, 2, seed=7)
    graph = build_neighbor_graph(x, k=4, method="hnsw")
    path = save_graph(graph, tmp_path / "neighbors.npz")
    back = load_graph(path)
    assert isinstance(back, NeighborGraph) and back.method == "hnsw"
    np.testing.assert_array_equal(back.indices, graph.indices)
    np.testing.assert_array_equal(back.sims, graph.sims)
    np.testing.assert_array_equal(back.rows, graph.rows)
    assert back.info == graph.info
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_arguments() -> None:
    x = _unit(np.ones((4, 3)))
    with pytest.raises(ConfigError, match="method"):
        build_neighbor_graph(x, method="annoy")
    with pytest.raises(ConfigError, match="k must be"):
        build_neighbor_graph(x, k=0)
    with pytest.raises(ValueError, match="rows"):
        build_neighbor_graph(x, rows=np.arange(3))
    with pytest.raises(ValueError, match="class_id"):
        build_class_graphs(x, np.zeros(3))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf in 1 rows \(first: \[2\]\)"):
        build_neighbor_graph(bad, k=2)


@pytest.mark.parametrize("refill_pairs", [100_000_000, 0])
def test_class_graphs_from_candidates_equal_exact_class_graphs(
    monkeypatch: pytest.MonkeyPatch, refill_pairs: int
) -> None:
    import dinoscope.analysis.neighbors as nb
    import dinoscope.analysis.neighbors_class as nb_class

    rng = np.random.default_rng(3)
    # two overlapping classes (many rows are short of same-class candidates) and one far away
    x = np.concatenate([rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) + 0.3, rng.normal(size=(200, 16)) + 6])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    cls = np.repeat([0, 1, 2], [300, 300, 200])
    monkeypatch.setattr(nb, "EXACT_MAX", 50)  # every class takes the candidate path
    monkeypatch.setattr(nb_class, "_REFILL_EXACT_PAIRS", refill_pairs)  # 0: short rows force a class index
    candidates = nb.build_neighbor_graph(x, k=10, method="exact")
    derived = nb.build_class_graphs(x, cls, k=5, candidates=candidates, method="exact")
    direct = nb.build_class_graphs(x, cls, k=5, method="exact")
    for c in (0, 1, 2):
        np.testing.assert_array_equal(derived[c].rows, direct[c].rows)
        np.testing.assert_array_equal(derived[c].indices, direct[c].indices)
        np.testing.assert_allclose(derived[c].sims, direct[c].sims, atol=1e-6)
    assert derived[2].info["short_rows"] == 0 and derived[2].info["source"] == "all-object candidates"
    short = derived[0].info["short_rows"]
    assert short > 0 and derived[0].info["source"] == ("class index" if refill_pairs == 0 else "all-object candidates")


def test_first_k_cuts_a_sorted_graph() -> None:
    from dinoscope.analysis.neighbors import first_k

    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    wide, narrow = build_neighbor_graph(x, k=10), build_neighbor_graph(x, k=4)
    cut = first_k(wide, 4)
    np.testing.assert_array_equal(cut.indices, narrow.indices)
    assert cut.k == 4 and cut.info["searched_k"] == 10
