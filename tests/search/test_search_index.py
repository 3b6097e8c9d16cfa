"""The persistent similarity index: built once, rows added when the store grows, rebuilt when it changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

from dinoscope.analysis.neighbors_exact import exact_search
from dinoscope.analysis.search_index import build_index, open_index
from dinoscope.embed.store import EmbeddingStore
from dinoscope.run import Run


def _blobs(n: int, dim: int = 32, n_centres: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_centres, dim))
    x = centres[rng.integers(0, n_centres, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _run_with_store(tmp_path: Path, vectors: np.ndarray, done: int, dtype: str = "float32") -> tuple[Run, str]:
    run = Run.create(tmp_path / "run")
    ids = [f"o{i:05d}" for i in range(len(vectors))]
    with EmbeddingStore.create(run.embeddings_dir, "m-00000001", ids, vectors.shape[1], {}, dtype=dtype) as st:
        st.write(np.arange(done), vectors[:done])
    return run, "m-00000001"


def _fill(run: Run, name: str, vectors: np.ndarray, rows: np.ndarray) -> None:
    with EmbeddingStore.open(run.embeddings_dir, name, mode="r+") as st:
        st.write(rows, vectors[rows])


def test_flat_index_is_exact_and_excludes_the_query(tmp_path: Path) -> None:
    x = _blobs(500)
    x[7] = x[3]  # a planted copy: row 3's nearest other row is 7
    index = build_index(x)
    assert index.info["kind"] == "flat"
    rows, sims = index.search(x[[3]], k=5, exclude_rows=np.array([3]))
    assert rows[0, 0] == 7 and sims[0, 0] == pytest.approx(1.0, abs=1e-6)
    truth, truth_sims = exact_search(x[:50], x, 10)
    found, found_sims = index.search(x[:50], 10)
    np.testing.assert_allclose(found_sims, truth_sims, atol=1e-5)  # exact: the same similarities
    assert (found == truth).mean() > 0.95  # the same rows, up to the planted tie


def test_index_is_built_once_then_kept_in_step_with_the_store(tmp_path: Path) -> None:
    x = _blobs(400)
    run, name = _run_with_store(tmp_path, x, done=250)
    first = open_index(run)
    assert first.info["status"] == "built" and len(first) == 250
    assert run.index_path(name).is_file() and run.index_path(name, ".json").is_file()
    assert open_index(run).info["status"] == "read"

    _fill(run, name, x, np.arange(250, 400))  # a resumed embed finished the other rows
    grown = open_index(run)
    assert grown.info["status"] == "updated" and grown.info["n_added"] == 150 and len(grown) == 400
    rows, _ = grown.search(x[[390]], k=1)
    assert rows[0, 0] == 390  # a new row is found
    again = open_index(run)
    assert again.info["status"] == "read" and len(again) == 400


def test_a_store_recreated_with_other_vectors_is_reindexed(tmp_path: Path) -> None:
    x = _blobs(300)
    run, name = _run_with_store(tmp_path, x, done=300)
    open_index(run)
    y = _blobs(300, seed=1)
    ids = [f"o{i:05d}" for i in range(300)]
    with EmbeddingStore.create(run.embeddings_dir, name, ids, 32, {}, overwrite=True) as st:
        st.write(np.arange(300), y)
    index = open_index(run)
    assert index.info["status"] == "built" and "changed" in index.info["reason"]
    rows, _ = index.search(y[[5]], k=1)
    assert rows[0, 0] == 5


def test_ivf_above_the_exact_bound_reaches_its_recall_and_grows(tmp_path: Path) -> None:
    x = _blobs(3000, dim=32, n_centres=30)
    run, name = _run_with_store(tmp_path, x, done=2500, dtype="float16")
    index = open_index(run, exact_max=1000)
    assert index.info["kind"] == "ivf" and index.info["recall"] >= 0.95
    assert index.info["nlist"] == 50 and index.info["nprobe"] >= 8
    _fill(run, name, x, np.arange(2500, 3000))
    grown = open_index(run, exact_max=1000)
    assert grown.info["status"] == "updated" and grown.info["kind"] == "ivf" and len(grown) == 3000
    truth, _ = exact_search(x[2900:], x, 20)
    found, _ = grown.search(x[2900:], 20)
    recall = np.mean([len(np.intersect1d(a, b)) / 20 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.9


def test_a_flat_index_that_grows_past_the_bound_becomes_ivf(tmp_path: Path) -> None:
    x = _blobs(1500)
    run, name = _run_with_store(tmp_path, x, done=900)
    assert open_index(run, exact_max=1000).info["kind"] == "flat"
    _fill(run, name, x, np.arange(900, 1500))
    index = open_index(run, exact_max=1000)
    assert index.info["status"] == "built" and index.info["kind"] == "ivf" and "grew past" in index.info["reason"]


def test_nprobe_stops_at_the_query_budget_on_uniform_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    from dinoscope.analysis import search_index

    monkeypatch.setattr(search_index, "QUERY_BUDGET_MS", 1e-9)  # any width passes it: stay at the first
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    index = build_index(x / np.linalg.norm(x, axis=1, keepdims=True), exact_max=1000)
    assert index.info["nprobe"] == search_index.NPROBE_START and index.info["recall"] < 0.95
    assert index.info["recall_limit"].startswith("query budget") and index.index.nprobe == search_index.NPROBE_START
