from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dinoscope.embed.cache import EmbeddingCache
from dinoscope.embed.crops import crops_for_table
from dinoscope.embed.engine import embed_table
from dinoscope.embed.spec import CropSpec
from dinoscope.embed.store import EmbeddingStore
from dinoscope.errors import DinoscopeError
from dinoscope.io.yolo import read_yolo
from tests.embed.fakes import TinyCNN
from tests.helpers import write_image, write_text


def _dataset(root: Path, n: int = 6) -> Path:
    for i in range(n):
        write_image(root / "images" / f"{i}.jpg", 80, 60, seed=i)
        write_text(root / "labels" / f"{i}.txt", "0 0.5 0.5 0.4 0.4\n1 0.2 0.3 0.2 0.3\n0 0.8 0.8 0.1 0.1")
    write_text(root / "data.yaml", "path: .\ntrain: images\nnames: [a, b]\n")
    return root


def _store(tmp: Path, table, name: str = "s") -> EmbeddingStore:
    return EmbeddingStore.create(tmp / "emb", name, list(table.object_id), 8, {"model": "tiny"})


def _expected(table, backend: TinyCNN) -> np.ndarray:
    vectors = backend.embed(crops_for_table(table, backend.spec)).numpy()
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("workers", [0, 1])
def test_vectors_match_direct_computation_and_rows_stay_aligned(tmp_path: Path, workers: int) -> None:
    table = read_yolo(_dataset(tmp_path / "ds"))
    (tmp_path / "ds/images/2.jpg").write_bytes(b"corrupted after the table was read")
    backend = TinyCNN()
    store = _store(tmp_path, table)
    stats = embed_table(table, backend, store, batch_size=4, num_workers=workers)
    bad = (table.data["source"] == "images/2.jpg").to_numpy()
    assert stats.n_failed == 3 and stats.n_computed == len(table) - 3
    assert "images/2.jpg" in stats.failures and "cannot decode" in stats.failures["images/2.jpg"]
    got = store.as_array()
    expected = _expected(table[~bad], TinyCNN())
    np.testing.assert_allclose(got[~bad], expected, atol=1e-5)
    assert (got[bad] == 0).all() and store.valid_mask().tolist() == (~bad).tolist()
    assert set(store.missing()) == set()


def test_cache_hits_on_rerun_and_only_new_images_are_computed(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ds", 4)
    cache = EmbeddingCache(
        tmp_path / "cache", model_key=TinyCNN().spec.key(), crop_key=CropSpec().key(), spec={"name": "tiny"}
    )
    table = read_yolo(root)
    first = embed_table(table, TinyCNN(), _store(tmp_path, table, "a"), cache=cache, batch_size=5, num_workers=0)
    assert (first.n_computed, first.n_cached) == (12, 0)
    again = embed_table(table, TinyCNN(), _store(tmp_path, table, "b"), cache=cache, num_workers=0)
    assert (again.n_computed, again.n_cached) == (0, 12)
    write_image(root / "images" / "new.jpg", 80, 60, seed=99)
    write_text(root / "labels" / "new.txt", "1 0.5 0.5 0.3 0.3")
    grown = read_yolo(root)
    store = _store(tmp_path, grown, "c")
    third = embed_table(grown, TinyCNN(), store, cache=cache, num_workers=0)
    assert (third.n_computed, third.n_cached) == (1, 12)
    np.testing.assert_allclose(store.as_array(), _expected(grown, TinyCNN()), atol=2e-3)  # cache is float16


def test_interrupted_run_resumes_without_recomputing(tmp_path: Path) -> None:
    table = read_yolo(_dataset(tmp_path / "ds", 6))
    store = _store(tmp_path, table)
    with pytest.raises(DinoscopeError, match="--resume"):
        embed_table(table, TinyCNN(interrupt_after=2), store, batch_size=3, num_workers=0)
    reopened = EmbeddingStore.open(tmp_path / "emb", "s", mode="r+")
    assert reopened.n_done == 6
    backend = TinyCNN()
    stats = embed_table(table, backend, reopened, batch_size=3, num_workers=0)
    assert stats.n_resumed == 6 and stats.n_computed == 12 and backend.calls == 4
    np.testing.assert_allclose(reopened.as_array(), _expected(table, TinyCNN()), atol=1e-5)


def test_runs_are_deterministic(tmp_path: Path) -> None:
    table = read_yolo(_dataset(tmp_path / "ds", 3))
    a, b = _store(tmp_path, table, "a"), _store(tmp_path, table, "b")
    embed_table(table, TinyCNN(), a, num_workers=0)
    embed_table(table, TinyCNN(), b, num_workers=1)
    assert np.array_equal(a.as_array(), b.as_array())


def test_out_of_memory_halves_the_batch_and_keeps_every_row(tmp_path: Path) -> None:
    """The engine's forward loop goes through the runtime's back-off: every row is embedded once, in order."""
    import torch

    class SmallMemory(TinyCNN):
        def embed(self, images):
            if len(images) > 3:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return super().embed(images)

    table = read_yolo(_dataset(tmp_path / "ds", 4))
    store = _store(tmp_path, table)
    stats = embed_table(table, SmallMemory(), store, batch_size=8, num_workers=0)
    assert stats.n_computed == len(table) == 12 and stats.batch_size == 8
    np.testing.assert_allclose(store.as_array(), _expected(table, TinyCNN()), atol=1e-5)
