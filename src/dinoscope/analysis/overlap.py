"""Class overlap from the shared neighbour graph: which classes sit inside each other in the embedding space.

For every labelled object, the share of its k nearest labelled neighbours that carry another class is the
kNN estimate of its local class overlap (the neighbourhood-based separability measures of dataset-complexity
analysis, Ho & Basu, "Complexity measures of supervised classification problems", IEEE TPAMI 2002, N3/kDN;
cleanlab's ``class overlap`` report is built the same way from the same kind of kNN graph). Averaged per
class this gives a class × class matrix whose row ``a`` says where the neighbours of class ``a`` objects come
from (rows sum to 1); its diagonal is the per-class separability. The class centroids' cosine similarity
is reported beside it: two classes can have close centroids and still be separable, or the reverse.

Example:
    >>> res = compute_class_overlap(graph, class_id, vectors, names)  # doctest: +SKIP
    >>> res.info["confused_pairs"][0]  # doctest: +SKIP
    {'a': 'capacete', 'b': 'sem_capacete', 'overlap': 0.08, ...}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from dinoscope.analysis.base import AnalysisResult, NeighborGraph

__all__ = ["compute_class_overlap", "share_matrix"]

logger = logging.getLogger(__name__)

_CHUNK = 65_536


def compute_class_overlap(
    graph: NeighborGraph,
    class_id: np.ndarray,
    vectors: np.ndarray,
    class_names: Sequence[str],
    *,
    k: int | None = None,
    max_pairs: int = 20,
) -> AnalysisResult:
    """Per-object neighbour class shares, the class × class overlap matrix and the most confused pairs.

    Args:
        graph: The all-object neighbour graph (global row numbers).
        class_id: (N,) int class of every object; -1 (unlabelled) objects neither count nor are counted.
        vectors: (N, D) unit vectors of the run, read in chunks for the class centroids (memmap is fine).
        class_names: (C,) names indexed by class id.
        k: Neighbours per object (default: all of the graph's).
        max_pairs: Most-confused pairs kept in ``info``.

    Returns:
        ``AnalysisResult("overlap")``; findings indexed by global row with ``is_overlapping`` (most of the
        object's labelled neighbours belong to other classes), ``separability_quality`` (share of neighbours
        from its own class; low = sits among other classes; NaN when unlabelled or without labelled
        neighbours), ``other_class_share`` and ``nearest_other_class`` (the other class most represented among
        its neighbours, -1 none). ``info`` holds ``classes``, ``neighbor_share`` (C × C, row ``a`` = where the
        neighbours of class ``a`` come from, rows sum to 1, None rows for classes without objects),
        ``centroid_cosine`` (C × C), ``separability`` ({class: own-class share}) and ``confused_pairs``
        (sorted by the mean of the two directed shares). ``summary`` has per-class numbers.

    Example:
        >>> x = np.eye(2, dtype=np.float32)[[0, 0, 1, 1]]
        >>> g = NeighborGraph(np.array([[1], [0], [3], [1]]), np.ones((4, 1), np.float32), np.arange(4))
        >>> res = compute_class_overlap(g, np.array([0, 0, 1, 1]), x, ["a", "b"])
        >>> res.info["neighbor_share"]
        [[1.0, 0.0], [0.5, 0.5]]
    """
    n = int(vectors.shape[0])
    labels = np.asarray(class_id).astype(np.int64)
    if labels.shape != (n,):
        raise ValueError(f"class_id has shape {labels.shape}, expected ({n},) to match the vectors")
    names = [str(c) for c in class_names]
    n_classes = max(len(names), int(labels.max(initial=-1)) + 1)
    names += [str(c) for c in range(len(names), n_classes)]
    k = graph.k if k is None else int(k)
    if not 1 <= k <= graph.k:
        raise ValueError(f"k must be in [1, {graph.k}] (the graph's neighbours per row), got {k}")

    rows = np.asarray(graph.rows, dtype=np.int64)
    idx = np.asarray(graph.indices[:, :k], dtype=np.int64)
    own = labels[rows]
    nb = np.where(idx >= 0, labels[np.maximum(idx, 0)], -1)
    valid = (nb >= 0) & (own[:, None] >= 0) & np.isfinite(graph.sims[:, :k])
    n_valid = valid.sum(axis=1)
    same = (valid & (nb == own[:, None])).sum(axis=1)
    has = n_valid > 0

    quality = np.full(n, np.nan)
    quality[rows[has]] = same[has] / n_valid[has]
    share_matrix, counts = _share_matrix(own, nb, valid, n_valid, n_classes)
    other = _most_common_other(own, nb, valid)
    nearest_other = np.full(n, -1, dtype=np.int64)
    nearest_other[rows] = other
    findings = pd.DataFrame(
        {
            "is_overlapping": np.nan_to_num(quality, nan=1.0) < 0.5,
            "separability_quality": quality,
            "other_class_share": 1.0 - quality,
            "nearest_other_class": nearest_other,
        }
    )
    centroid = _centroid_cosine(vectors, labels, n_classes)
    pairs = _confused_pairs(share_matrix, centroid, names, max_pairs)
    sep = np.diag(share_matrix)
    summary = {}
    for c, name in enumerate(names):
        row = np.where(np.arange(n_classes) == c, -1.0, np.nan_to_num(share_matrix[c], nan=-1.0))
        j = int(np.argmax(row))
        summary[name] = {
            "n": int((labels == c).sum()),
            "separability": _num(sep[c]),
            "n_overlapping": int((findings["is_overlapping"].to_numpy() & (labels == c)).sum()),
            "most_confused_with": names[j] if n_classes > 1 and row[j] > 0 else None,
            "confused_share": _num(row[j]) if n_classes > 1 and row[j] > 0 else 0.0,
        }
    info = {
        "k": k,
        "classes": names,
        "neighbor_share": _matrix(share_matrix),
        "centroid_cosine": _matrix(centroid),
        "separability": {name: _num(sep[c]) for c, name in enumerate(names)},
        "n_counted": {name: int(counts[c]) for c, name in enumerate(names)},
        "confused_pairs": pairs,
        "overlapping_rule": "own-class share of labelled neighbours < 0.5 (the neighbours outvote the label)",
    }
    logger.info("class overlap: %d classes, top pair %s", n_classes, pairs[0] if pairs else None)
    return AnalysisResult("overlap", findings, info=info, summary=summary)


def _share_matrix(
    own: np.ndarray, nb: np.ndarray, valid: np.ndarray, n_valid: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(C, C) mean neighbour class shares per class (NaN rows for classes with no counted object), (C,) counts."""
    r, j = np.nonzero(valid)
    w = 1.0 / n_valid[r]
    sums = np.bincount(own[r] * n_classes + nb[r, j], weights=w, minlength=n_classes * n_classes)
    counts = np.bincount(own[n_valid > 0], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = sums.reshape(n_classes, n_classes) / counts[:, None]
    matrix[counts == 0] = np.nan
    return matrix, counts


def _most_common_other(own: np.ndarray, nb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(R,) the other class most frequent among each row's neighbours (ties: nearer first), -1 when none."""
    out = np.full(len(own), -1, dtype=np.int64)
    step = max(1, _CHUNK // max(1, nb.shape[1]))  # keeps the (rows, k, k) mask near 64 k x k entries
    for a in range(0, len(own) if nb.shape[1] else 0, step):
        other = valid[a : a + step] & (nb[a : a + step] != own[a : a + step, None])
        lab = np.where(other, nb[a : a + step], -1)
        count = ((lab[:, :, None] == lab[:, None, :]) & other[:, :, None]).sum(axis=1)
        count[~other] = -1
        j = np.argmax(count, axis=1)  # the first (nearest) column among the most frequent classes
        out[a : a + step] = np.where(other.any(axis=1), lab[np.arange(len(lab)), j], -1)
    return out


def _centroid_cosine(vectors: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) cosine similarity of the class mean vectors, read in chunks (NaN for empty classes)."""
    sums = np.zeros((n_classes, int(vectors.shape[1])))
    for a in range(0, len(labels), _CHUNK):
        lab = labels[a : a + _CHUNK]
        ok = np.flatnonzero(lab >= 0)
        if len(ok) == 0:
            continue
        onehot = sparse.csr_matrix((np.ones(len(ok)), (lab[ok], ok)), shape=(n_classes, len(lab)))
        sums += onehot @ np.asarray(vectors[a : a + _CHUNK], dtype=np.float64)
    norms = np.linalg.norm(sums, axis=1)
    unit = np.divide(sums, norms[:, None], out=np.zeros_like(sums), where=norms[:, None] > 0)
    cos = unit @ unit.T
    cos[norms == 0] = np.nan
    cos[:, norms == 0] = np.nan
    return cos


def _confused_pairs(share: np.ndarray, centroid: np.ndarray, names: list[str], max_pairs: int) -> list[dict[str, Any]]:
    """Unordered class pairs by the mean of their two directed neighbour shares, highest first."""
    c = len(names)
    a, b = np.triu_indices(c, 1)
    s = np.nan_to_num(share)
    score = (s[a, b] + s[b, a]) / 2
    keep = np.flatnonzero(score > 0)
    keep = keep[np.lexsort((b[keep], a[keep], -score[keep]))][:max_pairs]
    return [
        {
            "a": names[a[i]],
            "b": names[b[i]],
            "overlap": _num(score[i]),
            "share_a_to_b": _num(s[a[i], b[i]]),
            "share_b_to_a": _num(s[b[i], a[i]]),
            "centroid_cosine": _num(centroid[a[i], b[i]]),
        }
        for i in keep
    ]


def _num(x: float) -> float | None:
    """A JSON-ready float (None for NaN), rounded to 6 decimals."""
    return None if not np.isfinite(x) else round(float(x), 6)


def _matrix(m: np.ndarray) -> list[list[float | None] | None]:
    """A JSON-ready nested list; an all-NaN row becomes None."""
    return [None if np.isnan(row).all() else [_num(v) for v in row] for row in m]


def share_matrix(neighbor_share: Any, n_classes: int) -> np.ndarray | None:
    """``info["neighbor_share"]`` (as stored in run.yaml: None rows for classes without objects) as a float
    (C, C) array with NaN rows for those classes; None when absent or of another shape.

    Example:
        >>> share_matrix([[1.0, 0.0], None], 2).tolist()
        [[1.0, 0.0], [nan, nan]]
    """
    if neighbor_share is None or len(neighbor_share) != n_classes:
        return None
    blank = [None] * n_classes
    rows = [[np.nan if v is None else float(v) for v in (row or blank)] for row in neighbor_share]
    return np.array(rows, dtype=float) if all(len(r) == n_classes for r in rows) else None
