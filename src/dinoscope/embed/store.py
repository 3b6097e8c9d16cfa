"""The embedding store of a run: one memory-mapped ``(N, D)`` array per (model spec, crop spec).

Three files in ``RUN/embeddings/``: ``<name>.npy`` (L2-normalised vectors, float32 or float16, row ``i`` for
``object_ids[i]``; read through ``np.memmap``, so 1 M x 768 rows never need to fit in memory), ``<name>.done.npy``
((N,) bool: rows whose vectors are on disk) and ``<name>.json`` (spec, ids, dtype, failures, provenance).

Crash safety: :meth:`EmbeddingStore.write` only fills vectors; :meth:`EmbeddingStore.flush` flushes them to
disk, only then sets and flushes their done flags, then replaces the JSON atomically. A run killed at any point
leaves done rows that all hold their vectors; a resumed run computes :meth:`EmbeddingStore.missing`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dinoscope._version import __version__
from dinoscope.errors import DinoscopeError
from dinoscope.outputs import prepare_output_files

__all__ = ["EmbeddingStore", "list_stores", "store_name"]

logger = logging.getLogger(__name__)

StoreDtype = Literal["float32", "float16"]
_DTYPES = ("float32", "float16")
_FORMAT = 1


def store_name(model_name: str, model_key: str, crop_key: str) -> str:
    """Readable file stem of a store: slug of the model name + 8 hex chars of the combined spec key.

    Args:
        model_name: Registry name or path the user gave (only its last path component is used).
        model_key: :meth:`ModelSpec.key` of the model.
        crop_key: :meth:`CropSpec.key` of the crop settings.

    Returns:
        A name such as ``dinov2-base-3f2a9c1d``.

    Example:
        >>> store_name("/models/My DINOv2", "a" * 16, "b" * 16)[:10]
        'my-dinov2-'
    """
    base = Path(str(model_name).rstrip("/\\")).name or "model"
    slug = re.sub(r"[^a-z0-9._]+", "-", base.lower()).strip("-._")[:48] or "model"
    digest = hashlib.blake2b(f"{model_key}|{crop_key}".encode(), digest_size=4).hexdigest()
    return f"{slug}-{digest}"


def list_stores(directory: str | Path) -> list[str]:
    """Names of the stores in ``directory`` (a ``<name>.json`` with its ``<name>.npy`` beside it), sorted."""
    stores = Path(directory).glob("*.json") if Path(directory).is_dir() else []
    return sorted(p.stem for p in stores if p.with_suffix(".npy").is_file())


class EmbeddingStore:
    """Vectors of one run for one (model spec, crop spec), rows aligned to a sequence of object ids.

    Build with :meth:`create` or :meth:`open`, not the constructor.

    Attributes:
        directory: Folder holding the files (usually ``RUN/embeddings``).
        name: File stem.
        mode: ``r`` (read only) or ``r+``.
        object_ids: (N,) object ids, row order of the vectors.
        spec: The spec dict recorded at creation (model and crop spec, ...).
        dim: Vector length D.
        dtype: ``float32`` or ``float16`` (storage; arithmetic is always float32).
        failed: object_id -> reason for rows that could not be embedded.
        path, done_path, json_path: The ``.npy`` vectors, the ``.done.npy`` flags and the ``.json`` description.
    """

    def __init__(self, directory: Path, name: str, meta: dict[str, Any], mode: Literal["r", "r+"]) -> None:
        self.directory, self.name, self.mode = Path(directory), name, mode
        self.path, self.done_path, self.json_path = (self.directory / n for n in _file_names(name))
        self._meta = meta
        self.object_ids: np.ndarray = np.asarray(meta["object_ids"], dtype=object)
        self.spec: dict[str, Any] = meta["spec"]
        self.dim = int(meta["dim"])
        self.dtype: StoreDtype = meta["dtype"]
        self.failed: dict[str, str] = dict(meta.get("failed", {}))
        self._index: dict[str, int] | None = None
        self._zero: set[int] = self._rows_set(meta.get("zero", []))
        self._failed_rows: set[int] = self._rows_set(list(self.failed))
        self._pending: list[np.ndarray] = []
        self._vectors: np.memmap | None = None
        self._done: np.memmap | None = None
        self._ids_json: str | None = None
        self._json_written, self._json_dirty = time.monotonic(), False

    @classmethod
    def create(
        cls,
        directory: str | Path,
        name: str,
        object_ids: Sequence[str],
        dim: int,
        spec: dict[str, Any],
        dtype: StoreDtype = "float32",
        overwrite: bool = False,
    ) -> EmbeddingStore:
        """Preallocate an empty store (all rows not done) and open it for writing.

        Args:
            directory: Folder of the files, created if needed (``RUN/embeddings``).
            name: File stem, e.g. from :func:`store_name`.
            object_ids: (N,) unique ids; row ``i`` of the vectors belongs to ``object_ids[i]``.
            dim: Vector length D.
            spec: JSON-ready description of the vectors (model spec, crop spec dicts).
            dtype: Storage dtype, ``float32`` or ``float16`` (half the disk, ~1e-3 error on unit vectors).
            overwrite: Replace an existing store of that name.

        Returns:
            The store in mode ``r+``; ``vectors`` is an ``(N, D)`` memmap of zeros.

        Raises:
            OutputExistsError: A file of the store exists and ``overwrite`` is False.

        Example:
            >>> store = EmbeddingStore.create(run / "embeddings", "m-1", ["a", "b"], 4, {})  # doctest: +SKIP
        """
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}; got {dtype!r}")
        if int(dim) <= 0:
            raise ValueError(f"dim must be a positive vector length; got {dim}")
        ids = [str(i) for i in object_ids]
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))
            raise ValueError(f"object_ids must be unique; {dup!r} appears more than once")
        npy, done, _ = prepare_output_files(Path(directory), _file_names(name), overwrite=overwrite)
        np.lib.format.open_memmap(npy, mode="w+", dtype=np.dtype(dtype), shape=(len(ids), int(dim))).flush()
        np.lib.format.open_memmap(done, mode="w+", dtype=np.bool_, shape=(len(ids),)).flush()
        meta = dict(format=_FORMAT, name=name, spec=spec, dim=int(dim), dtype=dtype, n_objects=len(ids), n_done=0)
        meta.update(created=time.time(), dinoscope_version=__version__, failed={}, zero=[], object_ids=ids)
        store = cls(Path(directory), name, meta, "r+")
        store._write_json()
        return store

    @classmethod
    def open(cls, directory: str | Path, name: str | None = None, mode: Literal["r", "r+"] = "r") -> EmbeddingStore:
        """Open a store; vectors are memory-mapped on first access, never read whole.

        Args:
            directory: Folder of the files (``RUN/embeddings``).
            name: File stem; None picks the only store in the folder.
            mode: ``r`` to read, ``r+`` to resume writing.

        Raises:
            DinoscopeError: No such store, several stores and no name, or files that do not match.

        Example:
            >>> store = EmbeddingStore.open("runs/ppe/embeddings")  # doctest: +SKIP
            >>> store.get(["3f2a9c1d0e4b5a6c7d8e"]).shape  # doctest: +SKIP
            (1, 768)
        """
        directory = Path(directory)
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+'; got {mode!r}")
        names = list_stores(directory)
        if name is None:
            if len(names) != 1:
                raise DinoscopeError(
                    f"{directory}: expected exactly one embedding store, found {len(names)} ({', '.join(names)}); "
                    "name the one to use (e.g. --embeddings NAME)"
                )
            name = names[0]
        js = directory / f"{name}.json"
        if name not in names:
            raise DinoscopeError(
                f"{js}: no embedding store named {name!r} (stores there: {', '.join(names) or 'none'})"
            )
        try:
            meta = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DinoscopeError(f"{js}: unreadable store description ({exc}); recompute the embeddings") from exc
        missing = [k for k in ("spec", "dim", "dtype", "object_ids") if k not in meta]
        if missing:
            raise DinoscopeError(f"{js}: store description lacks {missing}; recompute the embeddings")
        store = cls(directory, name, meta, mode)
        n, vec, done = len(store), store.vectors, store.done
        if vec.shape != (n, store.dim) or vec.dtype != np.dtype(store.dtype) or done.shape != (n,):
            raise DinoscopeError(
                f"{store.path}: vectors {vec.dtype}{vec.shape} and flags {done.shape} do not match the JSON "
                f"({store.dtype}, {n} objects, dim {store.dim}); the store is damaged, recompute the embeddings"
            )
        return store

    @property
    def vectors(self) -> np.memmap:
        """(N, D) memory-mapped vectors in the storage dtype (rows not done are zero)."""
        if self._vectors is None:
            self._vectors = np.load(self.path, mmap_mode=self.mode)
        return self._vectors

    @property
    def done(self) -> np.memmap:
        """(N,) bool flags of rows whose vectors were flushed to disk (see :meth:`flush`)."""
        if self._done is None:
            self._done = np.load(self.done_path, mmap_mode=self.mode)
        return self._done

    # --- writing ----------------------------------------------------------------------------------
    def write(self, rows: np.ndarray | Sequence[int], vectors: np.ndarray) -> None:
        """L2-normalise and store vectors; the rows count as done in this process, on disk after :meth:`flush`.

        Zero or non-finite vectors are stored as zeros and flagged (excluded by :meth:`valid_mask`).

        Args:
            rows: (k,) row indices.
            vectors: (k, D) vectors, any float dtype.

        Example:
            >>> store.write(np.arange(2), np.random.rand(2, store.dim)); store.flush()  # doctest: +SKIP
        """
        self._require_writable()
        rows = self._check_rows(rows)
        vectors = np.asarray(vectors)
        if vectors.shape != (len(rows), self.dim):
            raise ValueError(f"vectors must have shape ({len(rows)}, {self.dim}); got {vectors.shape}")
        unit, bad = _normalise(vectors)
        if bad.any():
            logger.warning("%s: %d zero or non-finite vectors stored as zeros and flagged", self.name, int(bad.sum()))
        self.vectors[rows] = unit.astype(self.dtype, copy=False)
        self._zero.update(rows[bad].tolist())
        self._json_dirty |= bool(bad.any())
        if self._zero:
            self._zero.difference_update(rows[~bad].tolist())
        if self._failed_rows:  # a retry that succeeded
            self._failed_rows.difference_update(rows.tolist())
            for r in rows.tolist():
                self._json_dirty |= self.failed.pop(str(self.object_ids[r]), None) is not None
        self._pending.append(rows)

    def mark_failed(self, rows: np.ndarray | Sequence[int], reasons: str | Sequence[str]) -> None:
        """Record rows that could not be embedded (unreadable image, ...); they stay not done.

        Args:
            rows: (k,) row indices.
            reasons: One reason for all rows or (k,) reasons.
        """
        self._require_writable()
        rows = self._check_rows(rows)
        reasons = [reasons] * len(rows) if isinstance(reasons, str) else [str(r) for r in reasons]
        if len(reasons) != len(rows):
            raise ValueError(f"reasons must be one string or {len(rows)} strings; got {len(reasons)}")
        self.done[rows] = False  # clearing a flag is always safe to do first
        self._pending = [p[~np.isin(p, rows)] for p in self._pending]
        self._zero.difference_update(rows.tolist())
        for r, why in zip(rows.tolist(), reasons, strict=True):
            self.failed[str(self.object_ids[r])] = why
            self._failed_rows.add(r)
        self._json_dirty = True

    def flush(self, json_every_s: float = 10.0) -> None:
        """Make writes durable: vectors to disk, then their done flags, then the JSON (atomic replace).

        The JSON (and its ``n_done``) is rewritten when failures changed, ``json_every_s`` after its last write
        (rewriting 1 M ids per batch would cost ~0.1 s) and at :meth:`close`; the done file is the truth."""
        self._require_writable()
        self.vectors.flush()
        if self._pending:
            self.done[np.concatenate(self._pending)] = True
            self._pending = []
        self.done.flush()
        if self._json_dirty or time.monotonic() - self._json_written >= json_every_s:
            self._write_json()

    def close(self) -> None:
        """Flush (in mode ``r+``) and drop the memory maps."""
        if self.mode == "r+":
            self.flush(json_every_s=0.0)
        self._vectors = self._done = None

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.object_ids)

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.name!r}, n={len(self)}, dim={self.dim}, dtype={self.dtype}, done={self.n_done})"

    @property
    def n_done(self) -> int:
        """Rows holding vectors (flushed or written in this process)."""
        return int(self._done_mask().sum())

    def rows_of(self, object_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """(k,) int64 row indices of ``object_ids``; KeyError names the first unknown id."""
        if self._index is None:
            self._index = {str(o): i for i, o in enumerate(self.object_ids)}
        index = self._index
        try:
            return np.fromiter((index[str(o)] for o in object_ids), dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"object id {exc.args[0]!r} is not in embedding store {self.name!r}") from None

    def get(self, object_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """(k, D) float32 vectors of ``object_ids`` (zeros for rows not done).

        Example:
            >>> store.get(table.object_id[:5]).shape  # doctest: +SKIP
            (5, 768)
        """
        rows = self.rows_of(object_ids)
        return np.asarray(self.vectors[rows], dtype=np.float32)

    def as_array(self, dtype: str | np.dtype | None = None) -> np.ndarray:
        """(N, D) in-memory copy of all vectors (``dtype`` None keeps the storage dtype). Loads everything."""
        return np.array(self.vectors, dtype=self.vectors.dtype if dtype is None else dtype)

    def valid_mask(self) -> np.ndarray:
        """(N,) bool: rows that hold a usable unit vector (done, not failed, not a zero vector)."""
        mask = self._done_mask()
        if self._zero:
            mask[np.fromiter(self._zero, dtype=np.int64)] = False
        return mask

    def missing(self) -> np.ndarray:
        """(m,) int64 rows still to compute: not done and not failed."""
        mask = ~self._done_mask()
        if self._failed_rows:
            mask[np.fromiter(self._failed_rows, dtype=np.int64)] = False
        return np.flatnonzero(mask)

    # --- helpers ----------------------------------------------------------------------------------
    def _done_mask(self) -> np.ndarray:
        mask = np.array(self.done, dtype=bool)
        for rows in self._pending:
            mask[rows] = True
        return mask

    def _rows_set(self, object_ids: list[str]) -> set[int]:
        return set(self.rows_of(object_ids).tolist()) if object_ids else set()

    def _check_rows(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows must be in [0, {len(self) - 1}]; got range [{rows.min()}, {rows.max()}]")
        return rows

    def _require_writable(self) -> None:
        if self.mode != "r+":
            raise DinoscopeError(f"{self.path}: store opened read-only; open it with mode='r+' to write")

    def _write_json(self) -> None:
        """Replace the JSON atomically; the (large) id list is serialised once and reused."""
        if self._ids_json is None:
            self._ids_json = json.dumps([str(i) for i in self.object_ids])
        done = np.asarray(self.done, dtype=bool)
        meta = {k: v for k, v in self._meta.items() if k != "object_ids"}
        meta.update(
            n_done=int(done.sum()),
            n_failed=len(self.failed),
            updated=time.time(),
            failed=self.failed,
            zero=sorted(str(self.object_ids[r]) for r in self._zero if done[r]),
        )
        head = json.dumps(meta, indent=1)
        text = head[:-2] + f',\n "object_ids": {self._ids_json}\n}}\n'
        tmp = self.json_path.with_name(f".{self.json_path.name}.tmp-{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.json_path)
        self._json_written, self._json_dirty = time.monotonic(), False


def _file_names(name: str) -> list[str]:
    return [f"{name}.npy", f"{name}.done.npy", f"{name}.json"]


def _normalise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, D) -> (unit vectors float32 (k, D), bad (k,) bool); bad rows (zero or non-finite) become zeros."""
    v = np.array(vectors, dtype=np.float32)
    bad = ~np.isfinite(v).all(axis=1)
    v[bad] = 0.0
    norms = np.linalg.norm(v, axis=1)
    bad |= norms == 0.0
    ok = ~bad
    v[ok] /= norms[ok, None]
    return v, bad
