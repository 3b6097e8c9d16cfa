"""The on-disk kNN graph: the exact graph's neighbours on planted clusters, from a float16 store in chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

from dinoscope.analysis.neighbors import build_neighbor_graph
from dinoscope.analysis.neighbors_disk import disk_graph, iter_chunks


def _store(path: Path, n: int = 3_000, d: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, d))
    x = centres[rng.integers(0, 30, n)] + 0.5 * rng.normal(size=(n, d))
    x[7] = x[3]  # a planted exact duplicate
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    np.save(path, x)
    return x


def test_chunks_cover_every_row_once(tmp_path: Path) -> None:
    x = _store(tmp_path / "v.npy", n=1000)
    starts, parts = zip(*iter_chunks(tmp_path / "v.npy", chunk_rows=300), strict=True)
    assert list(starts) == [0, 300, 600, 900]
    np.testing.assert_array_equal(np.concatenate(parts), x.astype(np.float32))


def test_disk_graph_matches_the_exact_graph(tmp_path: Path) -> None:
    x = _store(tmp_path / "v.npy")
    graph = disk_graph(tmp_path / "v.npy", k=10, workdir=tmp_path / "knn", chunk_rows=700, seed=0, n_threads=1)
    exact = build_neighbor_graph(x, k=10, method="exact")
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(graph.indices, exact.indices, strict=True)])
    assert recall >= 0.95 and graph.info["recall"] >= 0.95, (recall, graph.info)
    assert graph.indices[3, 0] == 7 and graph.indices[7, 0] == 3 and graph.sims[3, 0] == pytest.approx(1.0, abs=1e-3)
    assert not (graph.indices == np.arange(len(x))[:, None]).any()  # never its own neighbour
    # similarities are exact cosines of the stored vectors (re-normalised: float16 norms are ~1e-4 off), sorted
    rows = np.arange(len(x))[:, None]
    unit = x.astype(np.float32) / np.linalg.norm(x.astype(np.float32), axis=1, keepdims=True)
    expected = (unit[rows] * unit[graph.indices]).sum(-1)
    np.testing.assert_allclose(graph.sims, expected, atol=1e-5)
    assert (np.diff(graph.sims, axis=1) <= 1e-6).all()
    assert isinstance(graph.indices, np.memmap) and (tmp_path / "knn/ivf.index").is_file()


def test_tuner_undoes_an_nprobe_doubling_that_bought_nothing(tmp_path: Path) -> None:
    """Dense groups (2 groups of 1,500 near-uniform rows): the first lists visited already hold the neighbours,
    only the candidates count, so every doubling of nprobe stalls and is undone before the candidates double."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 64))[rng.integers(0, 2, 3_000)] + 0.4 * rng.normal(size=(3_000, 64))
    np.save(tmp_path / "v.npy", (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16))
    graph = disk_graph(tmp_path / "v.npy", k=10, workdir=tmp_path / "knn", seed=0, n_threads=1)
    tried, info = graph.info["recall_tried"], graph.info
    for (p1, f1, r1), (p2, f2, r2), (p3, _, _) in zip(tried, tried[1:], tried[2:], strict=False):
        if f1 == f2 and p2 == 2 * p1 and r2 - r1 < 0.01:  # a stalled doubling: the next try starts from p1
            assert p3 == p1, tried
    assert info["recall"] >= 0.95 and info["candidates"] > 4, info
    assert [info["nprobe"], info["candidates"]] in [t[:2] for t in tried]


def test_rescoring_fewer_queries_at_a_time_gives_the_same_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cap on the distinct candidates re-scored at once (scattered queries read fewer rows at a time) changes
    nothing in the graph."""
    import dinoscope.analysis.neighbors_disk as disk

    _store(tmp_path / "v.npy", n=1_500)
    args = {"k": 8, "seed": 0, "n_threads": 1}
    whole = disk.disk_graph(tmp_path / "v.npy", workdir=tmp_path / "a", **args)
    monkeypatch.setattr(disk, "_RESCORE_MAX_ROWS", 40)
    capped = disk.disk_graph(tmp_path / "v.npy", workdir=tmp_path / "b", **args)
    np.testing.assert_array_equal(np.asarray(capped.indices), np.asarray(whole.indices))
    np.testing.assert_allclose(np.asarray(capped.sims), np.asarray(whole.sims), atol=1e-6)
