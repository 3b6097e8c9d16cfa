from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dinoscope.embed.store import EmbeddingStore, list_stores, store_name
from dinoscope.errors import DinoscopeError, OutputExistsError

IDS = [f"obj{i:03d}" for i in range(10)]
SPEC = {"model": {"name": "dummy"}, "crop": {"policy": "pad"}}


def _make(tmp_path: Path, dtype: str = "float32", name: str = "dummy-12345678", dim: int = 8) -> EmbeddingStore:
    return EmbeddingStore.create(tmp_path / "embeddings", name, IDS, dim, SPEC, dtype=dtype)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_round_trip_normalises_and_reads_by_id(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(10, 8)) * 5
    with _make(tmp_path) as store:
        store.write(np.arange(10), vecs)
    store = EmbeddingStore.open(tmp_path / "embeddings")
    assert isinstance(store.vectors, np.memmap) and store.vectors.dtype == np.float32
    assert len(store) == 10 and store.n_done == 10 and store.valid_mask().all()
    np.testing.assert_allclose(np.linalg.norm(store.as_array(), axis=1), 1.0, rtol=1e-6)
    got = store.get(["obj007", "obj002"])
    assert got.dtype == np.float32 and got.shape == (2, 8)
    np.testing.assert_allclose(got, _unit(vecs[[7, 2]]), rtol=1e-6)
    assert store.spec == SPEC and list(store.object_ids) == IDS


def test_float16_store_is_memory_mapped_and_close(tmp_path: Path) -> None:
    vecs = np.random.default_rng(1).normal(size=(10, 8)).astype(np.float32)
    with _make(tmp_path, dtype="float16") as store:
        store.write(np.arange(10), vecs)
    store = EmbeddingStore.open(tmp_path / "embeddings")
    assert isinstance(store.vectors, np.memmap) and store.vectors.dtype == np.float16
    assert np.load(store.path, mmap_mode="r").dtype == np.float16
    np.testing.assert_allclose(store.get(IDS), _unit(vecs), atol=1e-3)
    assert store.as_array().dtype == np.float16 and store.as_array(np.float32).dtype == np.float32


def test_flush_commits_done_flags_and_json(tmp_path: Path) -> None:
    store = _make(tmp_path)
    store.write([0, 1, 2], np.ones((3, 8)))
    assert not np.asarray(store.done).any()  # on disk only after flush
    assert store.n_done == 3 and list(store.missing()) == list(range(3, 10))
    store.flush()
    assert np.asarray(store.done)[:3].all()
    assert json.loads(store.json_path.read_text())["n_done"] == 0  # JSON refreshed every few seconds, not per batch
    store.flush(json_every_s=0)
    meta = json.loads(store.json_path.read_text())
    assert meta["n_done"] == 3 and meta["dim"] == 8 and meta["dtype"] == "float32" and meta["object_ids"] == IDS
    assert meta["spec"] == SPEC and meta["dinoscope_version"] and meta["created"] > 0
    assert not list(store.json_path.parent.glob(".*tmp*"))  # atomic replace leaves no temp file


def test_killed_run_leaves_consistent_store(tmp_path: Path) -> None:
    """A process killed (SIGKILL) after a flush and a later unflushed write: only flushed rows are done."""
    directory = tmp_path / "embeddings"
    code = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from dinoscope.embed.store import EmbeddingStore
        ids = [f"obj{{i:03d}}" for i in range(10)]
        s = EmbeddingStore.create({str(directory)!r}, "run-00000000", ids, 8, {{}})
        s.write(np.arange(5), np.arange(40, dtype=float).reshape(5, 8) + 1)
        s.flush()
        s.write(np.arange(5, 8), np.ones((3, 8)))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0, proc.stderr
    store = EmbeddingStore.open(directory, mode="r+")
    assert store.n_done == 5 and np.asarray(store.done)[:5].all() and not np.asarray(store.done)[5:].any()
    assert list(store.missing()) == [5, 6, 7, 8, 9]
    expected = _unit(np.arange(40, dtype=float).reshape(5, 8) + 1)
    np.testing.assert_allclose(store.vectors[:5], expected, rtol=1e-6)
    store.write(store.missing(), np.ones((5, 8)))  # the resumed run completes the store
    store.close()
    assert EmbeddingStore.open(directory).valid_mask().all()


def test_unflushed_writes_are_not_marked_after_reopen(tmp_path: Path) -> None:
    store = _make(tmp_path)
    store.write(np.arange(5), np.ones((5, 8)))
    store.flush()
    store.write(np.arange(5, 10), np.ones((5, 8)))
    del store  # dropped without close: like a crash between writes
    again = EmbeddingStore.open(tmp_path / "embeddings")
    assert again.n_done == 5 and list(again.missing()) == [5, 6, 7, 8, 9]


def test_failed_rows_are_kept_apart_from_missing(tmp_path: Path) -> None:
    store = _make(tmp_path)
    store.write([0, 1], np.ones((2, 8)))
    store.mark_failed([2, 3], ["truncated image", "missing file"])
    store.mark_failed([4], "unreadable")
    store.close()
    store = EmbeddingStore.open(tmp_path / "embeddings", mode="r+")
    assert store.failed == {"obj002": "truncated image", "obj003": "missing file", "obj004": "unreadable"}
    assert list(store.missing()) == [5, 6, 7, 8, 9]
    assert not store.valid_mask()[2:5].any() and not np.asarray(store.done)[2:5].any()
    store.write([3], np.ones((1, 8)))  # a retry that works clears the failure
    store.close()
    store = EmbeddingStore.open(tmp_path / "embeddings")
    assert set(store.failed) == {"obj002", "obj004"} and store.valid_mask()[3]
    with pytest.raises(ValueError, match="reasons"):
        EmbeddingStore.open(tmp_path / "embeddings", mode="r+").mark_failed([5, 6], ["only one"])


def test_zero_and_non_finite_vectors_stay_zero_and_are_flagged(tmp_path: Path, caplog) -> None:
    vecs = np.ones((3, 8))
    vecs[1] = 0.0
    vecs[2, 0] = np.nan
    with _make(tmp_path) as store:
        store.write([0, 1, 2], vecs)
    assert "zero or non-finite" in caplog.text
    store = EmbeddingStore.open(tmp_path / "embeddings")
    assert (store.get(["obj001", "obj002"]) == 0).all()
    assert list(store.valid_mask()[:3]) == [True, False, False]
    assert list(store.missing()) == list(range(3, 10))  # done, just not valid


def test_existing_store_is_refused_without_overwrite(tmp_path: Path) -> None:
    _make(tmp_path).close()
    with pytest.raises(OutputExistsError, match=r"dummy-12345678\.npy.*--overwrite"):
        _make(tmp_path)
    store = EmbeddingStore.create(tmp_path / "embeddings", "dummy-12345678", IDS[:4], 8, SPEC, overwrite=True)
    assert len(store) == 4 and store.n_done == 0


def test_open_without_name_needs_exactly_one_store(tmp_path: Path) -> None:
    directory = tmp_path / "embeddings"
    with pytest.raises(DinoscopeError, match="found 0"):
        EmbeddingStore.open(directory)
    _make(tmp_path, name="alpha-00000000").close()
    assert EmbeddingStore.open(directory).name == "alpha-00000000"
    _make(tmp_path, name="beta-11111111").close()
    (directory / "notes.json").write_text("{}")  # a JSON without vectors is not a store
    assert list_stores(directory) == ["alpha-00000000", "beta-11111111"]
    with pytest.raises(DinoscopeError, match=r"found 2 .*alpha-00000000, beta-11111111"):
        EmbeddingStore.open(directory)
    assert EmbeddingStore.open(directory, "beta-11111111").name == "beta-11111111"
    with pytest.raises(DinoscopeError, match="no embedding store named 'gamma'"):
        EmbeddingStore.open(directory, "gamma")


def test_unknown_id_raises_key_error_naming_it(tmp_path: Path) -> None:
    store = _make(tmp_path)
    with pytest.raises(KeyError, match="'nope' is not in embedding store 'dummy-12345678'"):
        store.get(["obj001", "nope", "also-missing"])


def test_bad_input_is_rejected(tmp_path: Path) -> None:
    store = _make(tmp_path)
    with pytest.raises(ValueError, match=r"shape \(2, 8\); got \(2, 7\)"):
        store.write([0, 1], np.ones((2, 7)))
    with pytest.raises(IndexError, match=r"\[0, 9\]"):
        store.write([10], np.ones((1, 8)))
    with pytest.raises(ValueError, match="unique"):
        EmbeddingStore.create(tmp_path / "other", "x-00000000", ["a", "b", "a"], 4, {})
    store.close()
    with pytest.raises(DinoscopeError, match="read-only"):
        EmbeddingStore.open(tmp_path / "embeddings").write([0], np.ones((1, 8)))


def test_damaged_files_are_reported(tmp_path: Path) -> None:
    store = _make(tmp_path)
    store.close()
    np.save(store.path, np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(DinoscopeError, match="do not match the JSON"):
        EmbeddingStore.open(tmp_path / "embeddings")
    store.json_path.write_text("{not json")
    with pytest.raises(DinoscopeError, match="unreadable store description"):
        EmbeddingStore.open(tmp_path / "embeddings")


def test_empty_store(tmp_path: Path) -> None:
    EmbeddingStore.create(tmp_path, "empty-00000000", [], 4, {}).close()
    store = EmbeddingStore.open(tmp_path)
    assert len(store) == 0 and store.vectors.shape == (0, 4) and store.missing().size == 0


def test_store_name_is_a_readable_slug_plus_key() -> None:
    name = store_name("facebook/dinov2-base", "0" * 16, "1" * 16)
    assert name.startswith("dinov2-base-") and len(name.split("-")[-1]) == 8
    assert store_name("/models/My Model v2/", "0" * 16, "1" * 16).startswith("my-model-v2-")
    assert name != store_name("facebook/dinov2-base", "0" * 16, "2" * 16)
