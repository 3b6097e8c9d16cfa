"""Crops already in memory go through the engine like decoded ones: same vectors, same store and cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dinoscope.embed.cache import EmbeddingCache
from dinoscope.embed.crops import crops_for_table
from dinoscope.embed.engine import embed_table
from dinoscope.embed.loader import MemoryCrops
from dinoscope.embed.spec import CropSpec
from dinoscope.errors import DinoscopeError
from dinoscope.io.yolo import read_yolo
from tests.embed.fakes import TinyCNN
from tests.embed.test_engine import _dataset, _store


class _Counting(TinyCNN):
    """TinyCNN that records how many crops it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.n_seen = 0

    def embed(self, images):
        self.n_seen += len(images)
        return super().embed(images)


def test_memory_crops_give_the_decoded_vectors_without_opening_the_files(tmp_path: Path) -> None:
    table = read_yolo(_dataset(tmp_path / "ds", 4))  # 12 objects in 4 images
    crops = crops_for_table(table, TinyCNN().spec)
    reference = _store(tmp_path, table, "ref")
    embed_table(table, TinyCNN(), reference, num_workers=0)
    for image in (tmp_path / "ds/images").iterdir():  # the engine must not need the files any more
        image.write_bytes(b"gone")
    store = _store(tmp_path, table, "mem")
    stats = embed_table(table, TinyCNN(), store, crops=MemoryCrops(np.arange(12), crops), batch_size=5, num_workers=0)
    assert (stats.n_computed, stats.n_failed) == (12, 0)
    np.testing.assert_allclose(store.as_array(), reference.as_array(), atol=1e-6)


def test_rows_without_a_memory_crop_are_decoded_and_the_cache_is_filled(tmp_path: Path) -> None:
    table = read_yolo(_dataset(tmp_path / "ds", 4))
    crops = crops_for_table(table, TinyCNN().spec)
    held = np.array([0, 5, 7, 11])
    cache = EmbeddingCache(tmp_path / "cache", model_key=TinyCNN().spec.key(), crop_key=CropSpec().key(), spec={})
    store = _store(tmp_path, table, "mixed")
    backend = _Counting()
    stats = embed_table(
        table, backend, store, cache=cache, crops=MemoryCrops(held, crops[held]), batch_size=3, num_workers=0
    )
    assert stats.n_computed == 12 and backend.n_seen == 12
    reference = _store(tmp_path, table, "ref")
    embed_table(table, TinyCNN(), reference, num_workers=0)
    np.testing.assert_allclose(store.as_array(), reference.as_array(), atol=1e-6)
    again = embed_table(
        table, _Counting(), _store(tmp_path, table, "again"), cache=cache, crops=MemoryCrops(held, crops[held])
    )
    assert (again.n_cached, again.n_computed) == (12, 0)  # keyed by content + frame + box, as decoded crops


def test_memory_crops_of_the_wrong_size_or_shape_are_refused(tmp_path: Path) -> None:
    table = read_yolo(_dataset(tmp_path / "ds", 1))
    with pytest.raises(DinoscopeError, match=r"in-memory crops are 16 px but model 'tiny-cnn' takes 32 px"):
        embed_table(
            table,
            TinyCNN(),
            _store(tmp_path, table),
            crops=MemoryCrops(np.arange(3), np.zeros((3, 16, 16, 3), np.uint8)),
        )
    with pytest.raises(ValueError, match=r"\(k, S, S, 3\) uint8"):
        MemoryCrops(np.arange(2), np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="distinct"):
        MemoryCrops(np.array([1, 1]), np.zeros((2, 16, 16, 3), np.uint8))
