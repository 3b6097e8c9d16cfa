"""Global content cache of embeddings, so that a re-run computes only crops it has never seen.

One SQLite database per (model spec, crop spec), ``<root>/embeddings/<model_key>-<crop_key>.sqlite``, one row
per crop keyed by :func:`~dinoscope.embed.cache_keys.cache_key` (source content, frame, box; not the path or
class, so renamed files and relabelled boxes still hit). WAL mode and a busy timeout let several processes
share it. A corrupt file is renamed aside with a warning and the run goes on without the cache: a cache
problem never stops a run. The cache root, listing and clearing of the databases:
:mod:`~dinoscope.embed.cache_files`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from dinoscope._version import __version__
from dinoscope.embed.cache_files import CacheInfo, _disk_bytes, _spec_name, resolve_cache_root

__all__ = ["EmbeddingCache"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

_CHUNK = 900  # host parameters per IN (...) query, below SQLite's historical limit of 999
_WRITE_CHUNK = 4096  # rows per write transaction, so that other processes interleave
_KEY_RE = re.compile(r"^[0-9a-f]{8,64}$")
# 8 KiB pages suit ~1.5 KB float16 rows (inserts ~30% faster than with 4 KiB); the WAL is cut back to 64 MiB.
_SCHEMA = """PRAGMA page_size=8192; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
PRAGMA journal_size_limit=67108864; CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL, dim INTEGER NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL);"""
_SIZE = (  # entries and bytes in use (pages not on the free list)
    "SELECT (SELECT COUNT(*) FROM vectors), page_size * (page_count - freelist_count) "
    "FROM pragma_page_size, pragma_page_count, pragma_freelist_count"
)
_UPSERT = (
    "INSERT INTO vectors (key, vector, dim, created, last_used) VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) "
    "DO UPDATE SET vector = excluded.vector, dim = excluded.dim, last_used = excluded.last_used"
)


class EmbeddingCache:
    """Vectors by crop identity for one (model spec, crop spec), shared by every run on this machine.

    Args:
        root: Cache root (see :func:`~dinoscope.embed.cache_files.resolve_cache_root`).
        model_key: :meth:`ModelSpec.key` (hex).
        crop_key: :meth:`CropSpec.key` (hex).
        spec: JSON-ready description recorded in the database (``{"model": ..., "crop": ...}``; a ``name``
            in ``spec["model"]`` or ``spec`` names the database in
            :func:`~dinoscope.embed.cache_files.cache_info`).
        dtype: Storage of new vectors; ``float16`` halves the disk for ~1e-3 error on unit vectors.
        timeout_s: How long to wait for another process's write lock.

    Attributes:
        path: The database file.
        enabled: False once the database proved unusable; then every lookup misses and writes are dropped.
        touch_interval_s: ``last_used`` is refreshed on a hit only if older than this (saves writes on re-runs).

    Example:
        >>> cache = EmbeddingCache(model_key=mspec.key(), crop_key=cspec.key(), spec={})  # doctest: +SKIP
        >>> found, vectors = cache.get_many(cache_keys(table.data))  # doctest: +SKIP
    """

    touch_interval_s: float = 3600.0

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        model_key: str,
        crop_key: str,
        spec: dict[str, Any],
        dtype: Literal["float16", "float32"] = "float16",
        timeout_s: float = 60.0,
    ) -> None:
        for what, key in (("model_key", model_key), ("crop_key", crop_key)):
            if not _KEY_RE.match(key):
                raise ValueError(f"{what} must be 8-64 lowercase hex characters (a spec .key()); got {key!r}")
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32'; got {dtype!r}")
        self.root = resolve_cache_root(root)
        self.model_key, self.crop_key, self.spec, self.dtype = model_key, crop_key, spec, dtype
        self.path = self.root / "embeddings" / f"{model_key}-{crop_key}.sqlite"
        self.timeout_s, self.enabled = timeout_s, True
        self.hits = self.misses = 0
        self._dim: int | None = None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._call("open", self._connect, None)

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        self._conn = conn
        conn.executescript(_SCHEMA)
        meta = dict(format="1", spec=json.dumps(self.spec, sort_keys=True, default=str), dtype=self.dtype)
        meta.update(model_key=self.model_key, crop_key=self.crop_key, created=repr(time.time()), version=__version__)
        conn.executemany("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", meta.items())
        row = conn.execute("SELECT value FROM meta WHERE name = 'dim'").fetchone()
        self._dim = int(row[0]) if row else None

    def get_many(self, keys: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Look crops up by their (k,) ``keys`` (:func:`~dinoscope.embed.cache_keys.cache_keys`).

        Returns:
            ``found`` (k,) bool and ``vectors`` (n_found, D) float32, in the order of the found keys.

        Example:
            >>> found, vectors = cache.get_many(keys); todo = np.flatnonzero(~found)  # doctest: +SKIP
        """
        keys = [str(k) for k in keys]
        rows = self._call("read", lambda: self._select(keys), {})
        if rows and self._dim is not None:  # a length other than the spec's is a stale entry: miss
            rows = {k: r for k, r in rows.items() if r[1] == self._dim}
        found = np.fromiter((k in rows for k in keys), dtype=bool, count=len(keys))
        self.hits += int(found.sum())
        self.misses += len(keys) - int(found.sum())
        dim = self._dim or (next(iter(rows.values()))[1] if rows else 0)
        return found, _decode([rows[k][0] for k, f in zip(keys, found, strict=True) if f], dim)

    def put_many(self, keys: Sequence[str] | np.ndarray, vectors: np.ndarray) -> int:
        """Insert or replace ``vectors`` (k, D), L2-normalised by the caller, under ``keys`` (k,).

        Rows with non-finite values are skipped. Returns the number of rows written.

        Example:
            >>> cache.put_many(keys[todo], new_vectors)  # doctest: +SKIP
        """
        keys = [str(k) for k in keys]
        vectors = np.asarray(vectors)
        if not self.enabled:
            return 0
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"vectors must have shape ({len(keys)}, D) for {len(keys)} keys; got {vectors.shape}")
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise ValueError(f"{self.path} holds {self._dim}-d vectors; got {vectors.shape[1]}-d (same spec keys?)")
        ok = np.isfinite(vectors).all(axis=1)
        if not ok.all():
            logger.warning("%s: %d non-finite vectors not cached", self.path.name, int((~ok).sum()))
        ok &= np.fromiter(map(bool, keys), dtype=bool, count=len(keys))  # "": content unknown, never cached
        data = np.ascontiguousarray(vectors[ok], dtype=self.dtype)
        dim, now = int(vectors.shape[1]), time.time()
        kept = [k for k, o in zip(keys, ok.tolist(), strict=True) if o]
        rows = [(k, v.tobytes(), dim, now, now) for k, v in zip(kept, data, strict=True)]
        return self._call("write", lambda: self._insert(rows, dim), 0)

    def _select(self, keys: list[str]) -> dict[str, tuple[bytes, int]]:
        assert self._conn is not None
        out: dict[str, tuple[bytes, int]] = {}
        stale: list[str] = []
        now = time.time()
        cutoff = now - self.touch_interval_s
        unique = list(dict.fromkeys(keys))
        for chunk in (unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)):
            sql = f"SELECT key, vector, dim, last_used FROM vectors WHERE key IN ({','.join('?' * len(chunk))})"
            for key, blob, dim, last_used in self._conn.execute(sql, chunk):
                out[key] = (blob, dim)
                if last_used < cutoff:
                    stale.append(key)
        for i in range(0, len(stale), _WRITE_CHUNK):  # best effort: a busy database must not turn hits into misses
            touch = [(now, k) for k in stale[i : i + _WRITE_CHUNK]]
            with contextlib.suppress(sqlite3.OperationalError):
                self._transaction(lambda c, t=touch: c.executemany("UPDATE vectors SET last_used = ? WHERE key = ?", t))
        return out

    def _insert(self, rows: list[tuple[str, bytes, int, float, float]], dim: int) -> int:
        if self._dim is None and rows:
            self._transaction(lambda c: c.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(dim),)))
            self._dim = dim
        for i in range(0, len(rows), _WRITE_CHUNK):
            self._transaction(lambda c, i=i: c.executemany(_UPSERT, rows[i : i + _WRITE_CHUNK]))
        return len(rows)

    def _transaction(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``fn`` in a write transaction taken up front (BEGIN IMMEDIATE waits for other writers)."""
        assert self._conn is not None
        self._conn.execute("BEGIN IMMEDIATE")
        with self._conn:  # COMMIT, or ROLLBACK on an exception
            fn(self._conn)

    def stats(self) -> CacheInfo:
        """Entries and bytes on disk of this database, and hits/misses since this object was made."""
        n = int(self._call("count", lambda: self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0], 0))
        keys = (self.model_key, self.crop_key)
        return CacheInfo(self.path, _spec_name(self.spec), *keys, n, _disk_bytes(self.path), self.hits, self.misses)

    def prune(self, max_bytes: int | None = None, older_than_days: float | None = None) -> int:
        """Remove entries unused for ``older_than_days``, then least recently used ones until the file fits.

        Args:
            max_bytes: Largest size of the database file on disk (it is vacuumed after removals).
            older_than_days: Remove entries whose last use is older than this.

        Returns:
            Number of entries removed.

        Example:
            >>> cache.prune(max_bytes=2 * 1024**3, older_than_days=90)  # doctest: +SKIP
        """
        return int(self._call("prune", lambda: self._prune(max_bytes, older_than_days), 0))

    def _prune(self, max_bytes: int | None, older_than_days: float | None) -> int:
        conn, removed = self._conn, 0
        assert conn is not None
        if older_than_days is not None:
            cutoff = time.time() - older_than_days * 86400.0
            removed += conn.execute("DELETE FROM vectors WHERE last_used < ?", (cutoff,)).rowcount
        for _ in range(4 if max_bytes is not None else 0):
            n, used = conn.execute(_SIZE).fetchone()
            if n == 0 or used <= max_bytes:
                break
            n_drop = max(1, n - int(n * max_bytes / used * 0.98))
            sql = "DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors ORDER BY last_used, created LIMIT ?)"
            removed += conn.execute(sql, (n_drop,)).rowcount
        if removed:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def close(self) -> None:
        """Close the connection (the object then behaves as a disabled cache)."""
        with self._lock:
            self._close_quietly()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # sqlite3 does not close (checkpoint the WAL) on garbage collection
        with contextlib.suppress(Exception):
            self._close_quietly()

    def _call(self, what: str, fn: Callable[[], T], default: T) -> T:
        """Run a database operation; on a database error warn and return ``default`` instead of raising."""
        with self._lock:
            if not self.enabled or (self._conn is None and what != "open"):
                return default
            try:
                return fn()
            except (sqlite3.DatabaseError, OSError) as exc:
                if type(exc) is sqlite3.DatabaseError or "malformed" in str(exc) or "not a database" in str(exc):
                    self._quarantine(exc)
                    return default
                if not isinstance(exc, (sqlite3.OperationalError, OSError)):
                    raise  # IntegrityError, ProgrammingError: a bug, not a cache problem
                logger.warning("%s: embedding cache %s failed (%s); going on without it", self.path, what, exc)
                self.enabled = what != "open"  # a locked or full disk skips one call; a failed open, the run
                return default

    def _close_quietly(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _quarantine(self, exc: Exception) -> None:
        """Rename a corrupt database aside (``<name>.corrupt-<timestamp>``) and disable the cache."""
        self.enabled = False
        self._close_quietly()
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for path in (p for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists()):
            with contextlib.suppress(OSError):  # moved or not, this run goes on without the cache
                path.rename(path.with_name(f"{path.name}.corrupt-{stamp}"))
        msg = "%s: embedding cache is corrupt (%s); moved aside as *.corrupt-%s, going on without the cache"
        logger.warning(msg, self.path, exc, stamp)


def _decode(blobs: list[bytes], dim: int) -> np.ndarray:
    """Vector blobs (float16 or float32 bytes, told apart by length) -> (n, dim) float32."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    if len({len(b) for b in blobs}) == 1:  # one dtype: decode in one go
        dtype = np.float16 if len(blobs[0]) == 2 * dim else np.float32
        return np.frombuffer(b"".join(blobs), dtype=dtype).reshape(len(blobs), dim).astype(np.float32)
    return np.stack([np.frombuffer(b, dtype=np.float16 if len(b) == 2 * dim else np.float32) for b in blobs])
