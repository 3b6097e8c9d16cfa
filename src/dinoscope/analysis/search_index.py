"""The persistent similarity index of a run's vector store: built once, kept in step when the store grows.

FAISS (Douze et al., "The Faiss library", 2024) over the unit vectors, inner product = cosine:

- up to :data:`EXACT_MAX` rows an exact ``IndexFlatIP`` (a single query reads every row: memory-bound, about
  40 ms at 100 k x 384-d float32 on this project's 2 shared cores, so the bound is 50 k);
- above it an inverted file (``IndexIVFScalarQuantizer``, float16 codes: lossless for a float16 store, half
  the disk of float32; Jégou et al., "Product quantization for nearest neighbor search", TPAMI 2011, for the
  IVF): ``nlist = sqrt(N)`` k-means centroids trained on a seeded sample, ``nprobe`` grown on a sample of
  stored rows until recall@k against exact search reaches :data:`RECALL_TARGET`, or until one query would pass
  :data:`QUERY_BUDGET_MS` (nearly uniform vectors, where IVF needs every list; recorded as ``recall_limit``).
  New rows are added to the trained lists without retraining (the centroids stay those of the first build).

The index lives in the run's ``index/`` room (:meth:`~dinoscope.run.Run.index_path`): ``<store>.faiss``, the
store rows it holds (``<store>.rows.npy``, FAISS ids = store rows) and ``<store>.json`` with its key: the
store's name (model + crop spec), a digest of the object ids it was built over and a checksum of sampled
vectors. :func:`open_index` rebuilds when the key no longer matches (a store re-created with other vectors) and
only adds the rows done since (a resumed or grown store) when it does.

Example:
    >>> index = open_index(Run.open("runs/ppe"))  # doctest: +SKIP
    >>> rows, sims = index.search(store.get(["3f2a9c1d0e4b5a6c7d8e"]), k=20)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope._deps import require

if TYPE_CHECKING:
    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.run import Run

__all__ = ["EXACT_MAX", "RECALL_TARGET", "SearchIndex", "build_index", "open_index"]

logger = logging.getLogger(__name__)

#: Largest store indexed exactly (IndexFlatIP); larger stores get an IVF index.
EXACT_MAX = 50_000
#: Recall@k (against exact search, on a sample of stored rows) that the IVF's ``nprobe`` is tuned for.
RECALL_TARGET = 0.95
RECALL_K = 20
RECALL_SAMPLE = 200
NPROBE_START = 8
#: ``nprobe`` stops growing before one query would take longer than this (the command's target is <= 50 ms).
QUERY_BUDGET_MS = 25.0
_LATENCY_QUERIES = 20
_KEY_SAMPLE = 1024  # rows whose bytes make the checksum of the indexed vectors
_CHUNK = 65_536  # rows converted to float32 and added at a time
_FORMAT = 1


@dataclass
class SearchIndex:
    """A FAISS index over rows of one embedding store.

    Attributes:
        index: The FAISS index (ids = store rows).
        rows: (M,) int64 store rows it holds, in the order they were added.
        info: Kind (``flat`` / ``ivf``), its settings, the recall measured and the key (see module docs).
    """

    index: Any
    rows: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def search(self, queries: np.ndarray, k: int, *, exclude_rows: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """The ``k`` most similar store rows of each query.

        Args:
            queries: (Q, D) vectors (L2-normalised here).
            k: Results per query.
            exclude_rows: (Q,) a store row to leave out of each query's results (the query's own), or None.

        Returns:
            (Q, k) int64 store rows and float32 cosine similarities, most similar first, padded with -1 / -inf.

        Example:
            >>> rows, sims = index.search(np.eye(4, dtype=np.float32)[:1], k=2)  # doctest: +SKIP
        """
        q = _unit(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        extra = 0 if exclude_rows is None else 1
        sims, rows = self.index.search(q, k + extra)
        if exclude_rows is not None:
            keep = rows != np.asarray(exclude_rows, dtype=np.int64)[:, None]
            keep[keep.all(axis=1), -1] = False
            rows, sims = rows[keep].reshape(len(q), k), sims[keep].reshape(len(q), k)
        sims = np.where(rows >= 0, sims, -np.inf).astype(np.float32)
        return rows.astype(np.int64), sims

    def add(self, vectors: np.ndarray, rows: np.ndarray) -> None:
        """Add (m, D) vectors of store ``rows`` (float16 or float32, normalised on the way), in chunks."""
        rows = np.asarray(rows, dtype=np.int64)
        for a in range(0, len(rows), _CHUNK):
            part = rows[a : a + _CHUNK]
            self.index.add_with_ids(_unit(np.asarray(vectors[a : a + _CHUNK], dtype=np.float32)), part)
        self.rows = np.concatenate([self.rows, rows])


def build_index(
    vectors: np.ndarray, rows: np.ndarray | None = None, *, exact_max: int = EXACT_MAX, seed: int = 0
) -> SearchIndex:
    """A new index over (N, D) vectors: exact up to ``exact_max`` rows, IVF with tuned ``nprobe`` above.

    Args:
        vectors: (N, D) unit vectors (float16 or float32; a memmap is read in chunks).
        rows: (N,) ids of the vectors (store rows); default ``arange(N)``.
        exact_max: Largest N indexed exactly.
        seed: Seeds the k-means sample and the recall sample.

    Returns:
        The :class:`SearchIndex`.

    Example:
        >>> x = np.eye(3, dtype=np.float32)
        >>> build_index(x).search(x[:1], k=1)[0].tolist()
        [[0]]
    """
    faiss = require("faiss", "faiss", "the similarity index of `dinoscope search`")
    rows = np.arange(len(vectors), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    n, d = vectors.shape
    t0 = time.perf_counter()
    if n <= exact_max:
        result = SearchIndex(faiss.IndexIDMap2(faiss.IndexFlatIP(d)), np.empty(0, np.int64), {"kind": "flat"})
        result.add(vectors, rows)
    else:
        nlist = int(np.clip(round(np.sqrt(n)), 16, 65_536))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(seed)
        train_rows = np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))
        index.cp.seed = int(seed)
        index.train(_unit(np.asarray(vectors[train_rows], dtype=np.float32)))
        result = SearchIndex(index, np.empty(0, np.int64), {"kind": "ivf", "nlist": nlist, "codes": "float16"})
        result.add(vectors, rows)
        _tune_nprobe(result, vectors, seed)
    result.info.update(n_rows=n, dim=d, build_seconds=round(time.perf_counter() - t0, 3), exact_max=exact_max)
    return result


def open_index(run: Run, store: str | None = None, *, exact_max: int = EXACT_MAX, seed: int = 0) -> SearchIndex:
    """The run's index of ``store`` (its only store when None): read, updated with new rows, or built.

    Read from ``index/`` when its key matches the store; the store's valid rows not yet indexed (rows done by
    a resumed embed, objects appended by a re-embed) are added and the index written back; a store whose ids
    or vectors changed under the index, or that grew past ``exact_max`` with a flat index, is re-indexed.

    Args:
        run: The run directory.
        store: Embedding store name (None: the only one).
        exact_max: See :func:`build_index`.
        seed: See :func:`build_index`.

    Returns:
        The index, ``info["status"]`` = ``read``, ``updated`` (with ``n_added``) or ``built`` (with ``reason``).

    Example:
        >>> open_index(Run.open("runs/ppe")).info["status"]  # doctest: +SKIP
        'read'
    """
    from dinoscope.embed.store import EmbeddingStore

    st = EmbeddingStore.open(run.embeddings_dir, run.store_name(store))
    valid = np.flatnonzero(st.valid_mask())
    index, reason = _read_matching(run, st, valid)
    if index is not None and reason == "":
        new = np.setdiff1d(valid, index.rows, assume_unique=True)
        if not len(new):
            index.info["status"] = "read"
            return index
        if index.info["kind"] == "flat" and len(index) + len(new) > exact_max:
            reason = f"grew past {exact_max:,} rows: re-indexed as IVF"
        else:
            t0 = time.perf_counter()
            index.add(_gather(st.vectors, new), new)
            index.info.update(status="updated", n_added=len(new), n_rows=len(index))
            index.info["update_seconds"] = round(time.perf_counter() - t0, 3)
            _write(run, st, index)
            return index
    logger.info("%s: building the similarity index (%s)", st.name, reason)
    index = build_index(_gather(st.vectors, valid), valid, exact_max=exact_max, seed=seed)
    index.info.update(status="built", reason=reason)
    _write(run, st, index)
    return index


# --- the index on disk and its key ------------------------------------------------------------------------------
def _key(st: EmbeddingStore, rows: np.ndarray, n_ids: int) -> dict[str, Any]:
    """What the index was built from: store name, digest of its first ``n_ids`` ids, checksum of sampled rows."""
    ids = hashlib.blake2b("\n".join(str(i) for i in st.object_ids[:n_ids]).encode(), digest_size=16).hexdigest()
    sample = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), _KEY_SAMPLE)).astype(np.int64))]
    sampled = np.ascontiguousarray(st.vectors[np.sort(sample)]) if len(rows) else np.empty(0)
    checksum = hashlib.blake2b(sampled.tobytes(), digest_size=16).hexdigest()
    return {"store": st.name, "dim": st.dim, "dtype": st.dtype, "n_ids": n_ids, "ids": ids, "vectors": checksum}


def _read_matching(run: Run, st: EmbeddingStore, valid: np.ndarray) -> tuple[SearchIndex | None, str]:
    """(the stored index, "") when its key matches the store, else (None, why it must be rebuilt)."""
    meta_path, index_path, rows_path = (run.index_path(st.name, s) for s in (".json", ".faiss", ".rows.npy"))
    if not (meta_path.is_file() and index_path.is_file() and rows_path.is_file()):
        return None, "no index yet"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        rows = np.load(rows_path)
    except (OSError, ValueError) as exc:
        return None, f"unreadable index ({exc})"
    key = meta.get("key", {})
    n_ids = int(key.get("n_ids", -1))
    if meta.get("format") != _FORMAT or n_ids > len(st) or len(rows) != meta.get("info", {}).get("n_rows"):
        return None, "index written by another version or damaged"
    if key != _key(st, rows, n_ids):
        return None, "the store changed under the index (other ids or vectors)"
    if not np.isin(rows, valid).all():
        return None, "rows of the index are no longer valid in the store"
    faiss = require("faiss", "faiss", "the similarity index of `dinoscope search`")
    index = SearchIndex(faiss.read_index(str(index_path)), rows, dict(meta["info"]))
    if index.info.get("kind") == "ivf":
        index.index.nprobe = int(index.info["nprobe"])
    return index, ""


def _write(run: Run, st: EmbeddingStore, index: SearchIndex) -> None:
    """Write the index, its rows and its key (the JSON last: an index without it is rebuilt)."""
    faiss = require("faiss", "faiss", "the similarity index of `dinoscope search`")
    meta_path, index_path, rows_path = (run.index_path(st.name, s) for s in (".json", ".faiss", ".rows.npy"))
    meta_path.unlink(missing_ok=True)
    faiss.write_index(index.index, str(index_path))
    np.save(rows_path, index.rows)
    info = {k: v for k, v in index.info.items() if k not in ("status", "reason", "n_added", "update_seconds")}
    doc = {"format": _FORMAT, "key": _key(st, index.rows, len(st)), "info": info}
    meta_path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


# --- helpers ----------------------------------------------------------------------------------------------------
def _tune_nprobe(index: SearchIndex, vectors: np.ndarray, seed: int) -> None:
    """Grow ``nprobe`` (x2) on a sample of stored rows until recall@k vs exact search reaches the target, or until
    the next doubling would take a single query past :data:`QUERY_BUDGET_MS` (measured on single queries)."""
    from dinoscope.analysis.neighbors_exact import exact_search

    n = len(vectors)
    k = min(RECALL_K, n - 1)
    sample = np.sort(np.random.default_rng(seed + 1).choice(n, size=min(n, RECALL_SAMPLE), replace=False))
    queries = _unit(np.asarray(vectors[sample], dtype=np.float32))
    truth, _ = exact_search(queries, _Unit(vectors), k)
    truth_rows = index.rows[truth]
    nprobe, tried = NPROBE_START, []
    while True:
        index.index.nprobe = nprobe
        found, _ = index.search(queries, k)
        recall = float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(found, truth_rows, strict=True)]))
        t0 = time.perf_counter()
        for q in queries[:_LATENCY_QUERIES]:
            index.index.search(q[None], k)
        query_ms = (time.perf_counter() - t0) / min(len(queries), _LATENCY_QUERIES) * 1e3
        tried.append([nprobe, round(recall, 4), round(query_ms, 2)])
        if recall >= RECALL_TARGET or nprobe >= index.info["nlist"]:
            break
        if 2 * query_ms > QUERY_BUDGET_MS:
            if query_ms > QUERY_BUDGET_MS and len(tried) > 1:  # this width already passed the budget: step back
                nprobe, recall, query_ms = tried[-2]
                index.index.nprobe = nprobe
            index.info["recall_limit"] = f"query budget {QUERY_BUDGET_MS:g} ms"
            logger.warning(
                "search index: recall@%d %.3f < %.2f at nprobe=%d (a wider search would pass %g ms per query); the "
                "vectors are nearly uniform, so nearest neighbours are weakly defined",
                k,
                recall,
                RECALL_TARGET,
                nprobe,
                QUERY_BUDGET_MS,
            )
            break
        nprobe = min(2 * nprobe, index.info["nlist"])
    index.info.update(nprobe=nprobe, recall=round(recall, 4), recall_k=k, query_ms=round(query_ms, 2))
    index.info["recall_tried"] = tried


class _Unit:
    """A read-only view of (N, D) vectors whose blocks come back as float32 unit rows (for exact search)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors, self.shape, self.dtype = vectors, vectors.shape, np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, item: Any) -> np.ndarray:
        return _unit(np.asarray(self.vectors[item], dtype=np.float32))


def _gather(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The (m, D) rows of a (memmapped) store, in the storage dtype; all of them without a copy."""
    if len(rows) == len(vectors) and (len(rows) == 0 or (rows[0] == 0 and rows[-1] == len(rows) - 1)):
        return vectors
    return np.asarray(vectors[rows])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(x)
