"""Outliers within each class: continuous ``outlier_quality`` and a flag whose threshold comes from the data.

Two distances describe how unusual an object is for its class, both from data already at hand (the
within-class kNN graph and one pass over the class's vectors):

* isolation — ``1 - mean similarity to its k within-class neighbours`` (the kNN-distance outlier score of
  Ramaswamy et al. 2000 / Angiulli & Pizzuti 2002). It is deliberately global within the class rather than
  LOF's ratio to the neighbours' own density (Breunig et al. 2000): LOF calls a tight clump of odd objects
  normal because they are dense among themselves, while the kNN distance still sees them far from the rest
  once k exceeds the clump.
* distance to the class — ``1 - similarity to the class's mean direction``; the mean is computed once, then
  again without the objects that the first pass put beyond the cut-off, so scattered outliers do not pull it.

Each distance is turned into a robust z-score on the log scale, ``(log d - median) / (1.4826 · MAD)``; the
log tames the long right tail of distances, the median and MAD ignore the outliers themselves (Iglewicz &
Hoaglin 1993; the mean absolute deviation · 1.2533 stands in for a zero MAD). An object is flagged when
either z exceeds 3.5, the cut-off Iglewicz & Hoaglin recommend for modified z-scores — so the number flagged
follows the data: ~0 on a clean Gaussian class, about the planted share when there are planted outliers,
never a fixed percentile. With ``z = max(isolation z, class z)``::

    outlier_quality = 1 / (1 + exp(z - 3.5))      # in [0, 1], low = unusual; < 0.5 exactly when flagged

``outlier_reason`` is ``isolated`` (few close neighbours in its class), ``far from its class`` (unlike the
class mean, yet with neighbours: typically a member of a rare sub-type — see the clusters analysis) or
``both``; empty when not flagged. Classes with fewer than ``min_class_size`` objects are not scored
(quality 1, never flagged) and are listed in ``info``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from dinoscope.analysis.base import AnalysisResult, NeighborGraph

__all__ = ["Z_CUTOFF", "check_class_graphs", "dot_rows", "find_outliers", "mean_vector", "robust_z"]

logger = logging.getLogger(__name__)

#: Modified z-score beyond which an object is flagged (Iglewicz & Hoaglin 1993).
Z_CUTOFF = 3.5
_CHUNK = 65536
_COLUMNS = {
    "is_outlier": bool,
    "outlier_quality": np.float64,
    "outlier_reason": object,
    "outlier_z": np.float64,
    "isolation_z": np.float64,
    "class_distance_z": np.float64,
    "knn_similarity": np.float64,
    "class_similarity": np.float64,
}


def robust_z(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Modified z-scores ``(x - median) / (1.4826 · MAD)`` (Iglewicz & Hoaglin 1993).

    Args:
        values: (n,) numbers; non-finite entries get z = 0 and are left out of the statistics.

    Returns:
        ``(z, median, scale)``; when the MAD is 0 the scale is 1.2533 × the mean absolute deviation, and when
        that is 0 too (all values equal) every z is 0.

    Example:
        >>> z, med, scale = robust_z(np.array([1.0, 1.1, 0.9, 1.0, 5.0]))
        >>> bool(z[-1] > 3.5), bool(abs(z[0]) < 1)
        (True, True)
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.any():
        return np.zeros(len(x)), 0.0, 0.0
    med = float(np.median(x[finite]))
    dev = np.abs(x[finite] - med)
    scale = 1.4826 * float(np.median(dev))
    if scale == 0.0:
        scale = 1.2533 * float(np.mean(dev))
    z = np.zeros(len(x))
    if scale > 0.0:
        z[finite] = (x[finite] - med) / scale
    return z, med, scale


def find_outliers(
    vectors: np.ndarray,
    class_id: np.ndarray,
    class_graphs: Mapping[int, NeighborGraph],
    *,
    k: int = 10,
    min_class_size: int = 3,
) -> AnalysisResult:
    """Score how unusual every object is for its class and flag the outliers (cleanlab convention).

    Args:
        vectors: (N, D) L2-normalised vectors, rows in the run's global order.
        class_id: (N,) class of every row.
        class_graphs: {class: within-class kNN graph} for every class in ``class_id`` (global row numbers).
        k: Neighbours used for isolation (at most the graph's k; fewer in small classes).
        min_class_size: Classes smaller than this are not scored (quality 1, no flags).

    Returns:
        ``AnalysisResult("outliers")`` whose findings are indexed by global row, with ``is_outlier``,
        ``outlier_quality`` (in [0, 1], low = unusual), ``outlier_reason`` (``isolated`` / ``far from its
        class`` / ``both`` / empty), ``outlier_z``, ``isolation_z``, ``class_distance_z``,
        ``knn_similarity`` and ``class_similarity``; ``summary`` per class (n, n_outliers, outlier_rate,
        n_isolated, n_far, similarity thresholds) and ``info`` (rule, cut-off, per-class statistics).

    Example:
        >>> result = find_outliers(vectors, class_id, build_class_graphs(vectors, class_id, k=10))  # doctest: +SKIP
        >>> result.findings.sort_values("outlier_quality").head()  # doctest: +SKIP
    """
    if k < 1 or min_class_size < 1:
        raise ValueError(f"k and min_class_size must be >= 1, got k={k}, min_class_size={min_class_size}")
    t0 = time.perf_counter()
    class_id = np.asarray(class_id)
    frames, summary, per_class, unscored = [], {}, {}, []
    for c in check_class_graphs(class_id, class_graphs):
        graph = class_graphs[c]
        rows = np.asarray(graph.rows, dtype=np.int64)
        if len(rows) < min_class_size:
            frames.append(_unscored(rows))
            unscored.append(c)
            summary[str(c)] = {"n": len(rows), "n_outliers": 0, "outlier_rate": 0.0, "scored": False}
            continue
        frame, numbers, stats = _score_class(vectors, graph, rows, k)
        frames.append(frame)
        summary[str(c)] = numbers
        per_class[str(c)] = stats
    findings = pd.concat(frames).sort_index() if frames else _unscored(np.empty(0, dtype=np.int64))
    info = {
        "rule": "flag when max(robust z of log isolation, robust z of log class distance) > z_cutoff",
        "robust_z": "(log d - median) / (1.4826 * MAD) (Iglewicz & Hoaglin 1993)",
        "quality": "1 / (1 + exp(z - z_cutoff)); < 0.5 exactly when flagged",
        "isolation": "1 - mean similarity to the k within-class neighbours",
        "class_distance": "1 - similarity to the class mean direction (recomputed without first-pass outliers)",
        "z_cutoff": Z_CUTOFF,
        "k": k,
        "min_class_size": min_class_size,
        "unscored_classes": unscored,
        "classes": per_class,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    n_flag = int(findings["is_outlier"].sum())
    logger.info("outliers: %d flagged of %d in %.1f s", n_flag, len(findings), info["seconds"])
    return AnalysisResult(name="outliers", findings=findings, info=info, summary=summary)


def check_class_graphs(class_id: np.ndarray, class_graphs: Mapping[int, NeighborGraph]) -> list[int]:
    """Classes of ``class_id`` (sorted), after checking each has a within-class graph covering exactly its rows.

    Raises:
        ValueError: A class has no graph, a graph's rows are not its class's rows, or a graph links to rows of
            another class.
    """
    classes = [int(c) for c in np.unique(class_id)]
    missing = [c for c in classes if c not in class_graphs]
    if missing:
        raise ValueError(f"class_graphs has no graph for classes {missing[:10]}; build them with build_class_graphs")
    for c in classes:
        rows, idx = np.asarray(class_graphs[c].rows), np.asarray(class_graphs[c].indices)
        if len(rows) != int(np.sum(class_id == c)) or np.any(class_id[rows] != c):
            raise ValueError(f"the graph of class {c} does not cover exactly the rows of class {c}")
        if np.any(class_id[idx[idx >= 0]] != c):
            raise ValueError(f"the graph of class {c} links to rows of other classes; pass within-class graphs")
    return classes


def mean_vector(vectors: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(D,) float64 mean of ``vectors[rows]`` (weighted if ``weights`` (n,) is given), read in chunks."""
    total = np.zeros(vectors.shape[1], dtype=np.float64)
    for s in range(0, len(rows), _CHUNK):
        block = np.asarray(vectors[rows[s : s + _CHUNK]], dtype=np.float64)
        total += block.sum(axis=0) if weights is None else weights[s : s + _CHUNK] @ block
    return total / max(len(rows) if weights is None else float(np.sum(weights)), 1e-12)


def dot_rows(vectors: np.ndarray, rows: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(n,) float64 dot products ``vectors[rows] @ v``, read in chunks (no copy of the whole selection)."""
    out = np.empty(len(rows), dtype=np.float64)
    for s in range(0, len(rows), _CHUNK):
        out[s : s + _CHUNK] = np.asarray(vectors[rows[s : s + _CHUNK]], dtype=np.float64) @ v
    return out


def _unscored(rows: np.ndarray) -> pd.DataFrame:
    n = len(rows)
    data = {
        "is_outlier": np.zeros(n, dtype=bool),
        "outlier_quality": np.ones(n),
        "outlier_reason": np.full(n, "", dtype=object),
        "outlier_z": np.zeros(n),
        "isolation_z": np.zeros(n),
        "class_distance_z": np.zeros(n),
        "knn_similarity": np.full(n, np.nan),
        "class_similarity": np.full(n, np.nan),
    }
    return pd.DataFrame(data, index=pd.Index(rows, name="row")).astype(_COLUMNS)


def _class_similarity(vectors: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row to the (weighted) mean direction of ``rows``."""
    total = mean_vector(vectors, rows, weights)
    return dot_rows(vectors, rows, total / max(float(np.linalg.norm(total)), 1e-12))


def _log_distance(similarity: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(1.0 - similarity, 1e-6))


def _score_class(
    vectors: np.ndarray, graph: NeighborGraph, rows: np.ndarray, k: int
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    kk = min(k, graph.k)
    sims = np.asarray(graph.sims[:, :kk], dtype=np.float64)
    valid = np.asarray(graph.indices[:, :kk]) >= 0
    n_valid = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        knn_sim = np.where(n_valid > 0, np.where(valid, sims, 0.0).sum(axis=1) / n_valid, np.nan)
    iso_z, iso_med, iso_scale = robust_z(_log_distance(knn_sim))

    cls_sim = _class_similarity(vectors, rows)
    first_z = robust_z(_log_distance(cls_sim))[0]
    keep = (first_z <= Z_CUTOFF).astype(np.float64)
    if 0 < keep.sum() < len(keep):
        cls_sim = _class_similarity(vectors, rows, keep)
    cls_z, cls_med, cls_scale = robust_z(_log_distance(cls_sim))

    z = np.maximum(iso_z, cls_z)
    isolated, far = iso_z > Z_CUTOFF, cls_z > Z_CUTOFF
    reason = np.full(len(rows), "", dtype=object)
    reason[isolated] = "isolated"
    reason[far] = "far from its class"
    reason[isolated & far] = "both"
    frame = pd.DataFrame(
        {
            "is_outlier": isolated | far,
            "outlier_quality": expit(Z_CUTOFF - z),
            "outlier_reason": reason,
            "outlier_z": z,
            "isolation_z": iso_z,
            "class_distance_z": cls_z,
            "knn_similarity": knn_sim,
            "class_similarity": cls_sim,
        },
        index=pd.Index(rows, name="row"),
    ).astype(_COLUMNS)
    # Thresholds in similarity units: z > cut-off  <=>  similarity < 1 - exp(median + cut-off * scale).
    iso_thr = 1.0 - float(np.exp(iso_med + Z_CUTOFF * iso_scale)) if iso_scale > 0 else None
    cls_thr = 1.0 - float(np.exp(cls_med + Z_CUTOFF * cls_scale)) if cls_scale > 0 else None
    n_flag = int(frame["is_outlier"].sum())
    numbers = {
        "n": len(rows),
        "n_outliers": n_flag,
        "outlier_rate": n_flag / len(rows),
        "n_isolated": int(isolated.sum()),
        "n_far": int(far.sum()),
        "knn_similarity_threshold": iso_thr,
        "class_similarity_threshold": cls_thr,
        "scored": True,
    }
    stats = {
        "n": len(rows),
        "k_used": kk,
        "isolation_log_median": iso_med,
        "isolation_log_scale": iso_scale,
        "class_log_median": cls_med,
        "class_log_scale": cls_scale,
        "knn_similarity_threshold": iso_thr,
        "class_similarity_threshold": cls_thr,
        "mean_direction_refit_without": int(len(keep) - keep.sum()),
    }
    return frame, numbers, stats
