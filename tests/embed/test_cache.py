from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dinoscope.embed.cache import EmbeddingCache
from dinoscope.embed.cache_files import cache_info, clear, resolve_cache_root
from dinoscope.embed.cache_keys import cache_key, cache_keys

MODEL_KEY, CROP_KEY = "0123456789abcdef", "fedcba9876543210"
SPEC = {"model": {"name": "dinov2-small"}, "crop": {"policy": "pad"}}


def _cache(root: Path, dtype: str = "float16", **kw) -> EmbeddingCache:
    kw = {"model_key": MODEL_KEY, "crop_key": CROP_KEY, "spec": SPEC, **kw}
    return EmbeddingCache(root, dtype=dtype, **kw)


def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _keys(n: int, prefix: str = "k") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# --- keys -------------------------------------------------------------------------------------------
def test_key_depends_on_content_frame_and_box_only() -> None:
    base = cache_key("abc", -1, 10, 20, 30, 40)
    assert base == cache_key("abc", -1, 10.004, 20, 30, 40.001)  # 0.01 px rounding
    assert base == cache_key("abc", -1, np.float32(10), 20, 30, 40)
    assert len({base, cache_key("abd", -1, 10, 20, 30, 40), cache_key("abc", 0, 10, 20, 30, 40)}) == 3
    assert base != cache_key("abc", -1, 10.02, 20, 30, 40)
    assert cache_key("abc", -1, -0.001, 0, 1, 1) == cache_key("abc", -1, 0, 0, 1, 1)  # no "-0"


def test_cache_keys_of_a_table_ignore_path_and_class() -> None:
    data = pd.DataFrame(
        {
            "source": ["a/img.jpg", "renamed/copy.jpg", "a/img.jpg"],
            "class_id": [0, 3, 0],
            "content_hash": ["h1", "h1", "h1"],
            "frame": [-1, -1, 5],
            "x1": [1.0, 1.0, 1.0],
            "y1": [2.0, 2.0, 2.0],
            "x2": [3.0, 3.0, 3.0],
            "y2": [4.0, 4.0, 4.0],
        }
    )
    keys = cache_keys(data)
    assert keys.shape == (3,) and keys[0] == keys[1] != keys[2]
    assert keys[2] == cache_key("h1", 5, 1, 2, 3, 4)


def test_unknown_content_is_never_cached(tmp_path: Path) -> None:
    """Unreadable images have content_hash "": two of them with the same box must not share a vector."""
    data = pd.DataFrame({"content_hash": ["", None, "h"], "frame": -1, "x1": 0.0, "y1": 0.0, "x2": 5.0, "y2": 5.0})
    keys = cache_keys(data)
    assert list(keys[:2]) == ["", ""] and keys[2]
    cache = _cache(tmp_path)
    assert cache.put_many(keys, _vectors(3)) == 1
    assert list(cache.get_many(keys)[0]) == [False, False, True]


def test_root_from_argument_env_or_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DINOSCOPE_CACHE", str(tmp_path / "env"))
    assert resolve_cache_root() == tmp_path / "env"
    assert resolve_cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("DINOSCOPE_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert resolve_cache_root() == Path.home() / ".cache" / "dinoscope"
    cache = EmbeddingCache(tmp_path / "arg", model_key=MODEL_KEY, crop_key=CROP_KEY, spec=SPEC)
    assert cache.path == tmp_path / "arg" / "embeddings" / f"{MODEL_KEY}-{CROP_KEY}.sqlite" and cache.path.is_file()


# --- lookups ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "atol"), [("float32", 1e-7), ("float16", 1e-3)])
def test_round_trip_in_request_order(tmp_path: Path, dtype: str, atol: float) -> None:
    cache = _cache(tmp_path, dtype=dtype)
    vecs = _vectors(50)
    assert cache.put_many(_keys(50), vecs) == 50
    found, got = cache.get_many(["k7", "nope", "k3", "k7"])
    assert list(found) == [True, False, True, True]
    assert got.dtype == np.float32 and got.shape == (3, 16)
    np.testing.assert_allclose(got, vecs[[7, 3, 7]], atol=atol)
    itemsize = sqlite3.connect(cache.path).execute("SELECT length(vector), dim FROM vectors LIMIT 1").fetchone()
    assert itemsize == (16 * np.dtype(dtype).itemsize, 16)


def test_hits_and_misses_are_counted(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    found, got = cache.get_many(_keys(5))
    assert not found.any() and got.shape == (0, 0)
    cache.put_many(_keys(3), _vectors(3))
    found, got = cache.get_many(_keys(5))
    assert list(found) == [True, True, True, False, False] and got.shape == (3, 16)
    stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses) == (3, 3, 7)
    assert stats.bytes > 0 and stats.name == "dinov2-small" and stats.model_key == MODEL_KEY
    assert _cache(tmp_path).get_many(["k9"])[1].shape == (0, 16)  # dim known from the database


def test_put_is_an_upsert(tmp_path: Path) -> None:
    cache = _cache(tmp_path, dtype="float32")
    first, second = _vectors(4, seed=1), _vectors(4, seed=2)
    cache.put_many(_keys(4), first)
    cache.put_many(_keys(4)[2:], second[2:])
    _, got = cache.get_many(_keys(4))
    np.testing.assert_allclose(got, np.concatenate([first[:2], second[2:]]))
    assert cache.stats().entries == 4


def test_non_finite_vectors_are_not_cached_and_bad_shapes_refused(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    vecs = _vectors(3)
    vecs[1, 0] = np.nan
    assert cache.put_many(_keys(3), vecs) == 2
    assert list(cache.get_many(_keys(3))[0]) == [True, False, True]
    with pytest.raises(ValueError, match="holds 16-d vectors; got 8-d"):
        cache.put_many(["x"], np.ones((1, 8)))
    with pytest.raises(ValueError, match=r"shape \(2, D\)"):
        cache.put_many(["x", "y"], np.ones((3, 16)))


def test_many_keys_use_chunked_queries(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    vecs = _vectors(5000, dim=4)
    cache.put_many(_keys(5000), vecs)
    found, got = cache.get_many(_keys(5000)[::-1])
    assert found.all()
    np.testing.assert_allclose(got, vecs[::-1], atol=1e-3)


# --- maintenance ------------------------------------------------------------------------------------
class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_prune_by_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(1_000_000.0)
    monkeypatch.setattr(time, "time", clock)
    cache = _cache(tmp_path)
    cache.put_many(_keys(10, "old"), _vectors(10))
    clock.now += 20 * 86400
    cache.put_many(_keys(5, "new"), _vectors(5))
    clock.now += 5 * 86400
    cache.get_many(["old0"])  # used recently: survives
    clock.now += 1 * 86400
    assert cache.prune(older_than_days=10) == 9
    assert list(cache.get_many(["old0", "old1", "new0"])[0]) == [True, False, True]
    assert cache.prune(older_than_days=10) == 0


def test_prune_to_size_removes_least_recently_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(1_000_000.0)
    monkeypatch.setattr(time, "time", clock)
    cache = _cache(tmp_path, dtype="float32")
    for batch in range(4):  # batch 0 oldest
        cache.put_many(_keys(500, f"b{batch}-"), _vectors(500, dim=64, seed=batch))
        clock.now += 7200
    cache.get_many(_keys(500, "b0-"))  # batch 0 becomes the most recently used
    sqlite3.connect(cache.path).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # size = the data, no WAL
    before = cache.stats().bytes
    removed = cache.prune(max_bytes=before // 2)
    after = cache.stats()
    assert after.bytes <= before // 2 and removed == 2000 - after.entries and 700 < removed < 1300
    assert cache.get_many(_keys(500, "b0-"))[0].all()  # recently used kept
    assert not cache.get_many(_keys(500, "b1-"))[0].any()  # least recently used gone first
    assert cache.prune(max_bytes=10**12) == 0


def test_info_and_clear_touch_only_cache_files(tmp_path: Path) -> None:
    _cache(tmp_path).put_many(_keys(3), _vectors(3))
    other = EmbeddingCache(tmp_path, model_key="aaaaaaaaaaaaaaaa", crop_key=CROP_KEY, spec={"name": "clip"})
    other.put_many(_keys(2), _vectors(2))
    other.close()
    folder = tmp_path / "embeddings"
    unrelated = [
        tmp_path / "notes.txt",
        folder / "mine.sqlite",
        folder / "0123456789abcdef.sqlite",
        folder / "0123456789abcdef-fedcba9876543210.sqlite.bak",
        folder / "README",
    ]
    for path in unrelated:
        path.write_text("keep me")
    (folder / "sub").mkdir()
    info = {i.name: i for i in cache_info(tmp_path)}
    assert set(info) == {"dinov2-small", "clip"}
    assert info["dinov2-small"].entries == 3 and info["clip"].entries == 2 and info["clip"].bytes > 0
    assert info["clip"].model_key == "aaaaaaaaaaaaaaaa" and info["clip"].error is None
    assert clear(tmp_path, model_key="aaaaaaaaaaaaaaaa") >= 1
    assert [i.name for i in cache_info(tmp_path)] == ["dinov2-small"]
    assert clear(tmp_path) >= 1 and cache_info(tmp_path) == []
    assert all(p.read_text() == "keep me" for p in unrelated) and (folder / "sub").is_dir()
    assert clear(tmp_path / "missing") == 0


# --- concurrency and failures -----------------------------------------------------------------------
def test_two_connections_write_concurrently(tmp_path: Path) -> None:
    caches = [_cache(tmp_path), _cache(tmp_path)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for batch in range(20):
                caches[i].put_many(_keys(100, f"w{i}-{batch}-"), _vectors(100, seed=batch))
                caches[i].get_many(_keys(100, f"w{1 - i}-{batch}-"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(c.enabled for c in caches)
    assert caches[0].stats().entries == 4000


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import numpy as np
        from dinoscope.embed.cache import EmbeddingCache
        c = EmbeddingCache({str(tmp_path)!r}, model_key={MODEL_KEY!r}, crop_key={CROP_KEY!r}, spec={{}})
        for b in range(40):
            c.put_many([f"p{{b}}-{{i}}" for i in range(100)], np.ones((100, 16), dtype=np.float32))
        assert c.enabled
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    cache = _cache(tmp_path)
    n_batches = 0
    while proc.poll() is None or n_batches < 30:  # keep writing while the other process does
        cache.put_many(_keys(100, f"m{n_batches}-"), _vectors(100))
        n_batches += 1
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert cache.enabled and cache.stats().entries == 4000 + 100 * n_batches


def test_locked_database_is_skipped_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = _cache(tmp_path, timeout_s=0.1)
    cache.put_many(["a"], _vectors(1))
    blocker = sqlite3.connect(cache.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with caplog.at_level(logging.WARNING):
        assert cache.put_many(["b"], _vectors(1)) == 0
    assert "going on without it" in caplog.text and cache.enabled
    cache.touch_interval_s = -1.0  # every hit wants a last_used update, which the lock refuses
    assert cache.get_many(["a"])[0].all()  # reads still work under a writer (WAL); hits stay hits
    blocker.execute("ROLLBACK")
    assert cache.put_many(["b"], _vectors(1)) == 1


def test_corrupt_file_is_moved_aside_and_run_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _cache(tmp_path).path
    path.write_bytes(b"this is not a database" * 500)
    with caplog.at_level(logging.WARNING, logger="dinoscope.embed.cache"):
        cache = _cache(tmp_path)
    assert not cache.enabled and "corrupt" in caplog.text
    found, got = cache.get_many(["k0"])
    assert not found.any() and got.shape[0] == 0
    assert cache.put_many(["k0"], _vectors(1)) == 0 and cache.prune(max_bytes=0) == 0
    moved = list(path.parent.glob(f"{path.name}.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not")
    fresh = _cache(tmp_path)  # the next run starts a new database
    assert fresh.enabled and fresh.put_many(["k0"], _vectors(1)) == 1
    assert [i.entries for i in cache_info(tmp_path)] == [1]


def test_damaged_pages_found_during_a_lookup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = _cache(tmp_path, dtype="float32")
    cache.put_many(_keys(3000), _vectors(3000, dim=64))
    cache.close()
    raw = bytearray(cache.path.read_bytes())
    raw[8192:] = np.random.default_rng(0).integers(0, 256, len(raw) - 8192, dtype=np.uint8).tobytes()
    cache.path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="dinoscope.embed.cache"):
        again = _cache(tmp_path, dtype="float32")
        found, _ = again.get_many(_keys(3000))
    assert not again.enabled and not found.any() and "corrupt" in caplog.text
    assert list(cache.path.parent.glob("*.corrupt-*"))
