"""Sub-groups within each class from the within-class kNN graph, thresholds from the data.

Every class is clustered on its own, from its within-class :class:`NeighborGraph` only, by one of:

* ``method="auto"`` (default): both kinds of structure, one after the other. HDBSCAN(ε̂) first finds the groups
  separated by density gaps and leaves far objects unclustered; then each of those groups is split further
  where its own kNN graph has a bottleneck that is stable over resamples (:func:`~dinoscope.analysis.spectral.
  refine_labels`), which finds sub-types that overlap (real ones do: on DeepPCB's merged defect types HDBSCAN
  alone finds one group per class, ARI 0.00) and none in a homogeneous class. Every group carries a stability
  (its confidence): the mean best-match Jaccard with the groups found again on 4 random 80 % subgraphs, the
  smaller of the density step's and the split's.
* ``method="spectral"``: the bottleneck step alone on the whole class; far objects stay in their group and
  density-separated groups are counted by spectral k-means (it over-splits the planted 20 k mixture with
  outliers into 5, 5, 2, 5 groups instead of 4 each, at ~15x HDBSCAN's cost).
* ``method="hdbscan"``: HDBSCAN(ε̂), or ``method="dbscan"``: DBSCAN, with one data-driven radius ``eps``
  (:mod:`dinoscope.analysis.density`): density gaps only; on real embeddings, where sub-types overlap, they
  usually report one group per class.

Known limit of the bottleneck test: a long thin continuum (a class whose appearance varies smoothly along one
direction, many times longer than wide) has a low-conductance cut in its middle that resamples agree on, so
``auto`` and ``spectral`` report its two halves as sub-groups (HDBSCAN keeps it whole).

This module turns their labels into the findings: groups ordered by size, medoids, representatives and a
homogeneity figure per class.

Groups smaller than ``min_group_size`` (default ``max(5, 1 % of the class)``, at most 100) are not sub-types
— three consecutive frames of one video are not a group — so their members become unclustered
(``cluster = -1``) in both methods. Classes with fewer than ``2 · min_group_size`` objects are not split.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from dinoscope.analysis.base import AnalysisResult, NeighborGraph
from dinoscope.analysis.density import (
    dbscan_labels,
    estimate_eps,
    hdbscan_labels,
    local_distances,
    local_log_deviation,
    resampled_stability,
)
from dinoscope.analysis.outliers import check_class_graphs, dot_rows, mean_vector
from dinoscope.analysis.spectral import MAX_CONDUCTANCE, MIN_STABILITY, refine_labels, spectral_labels

__all__ = ["default_min_group_size", "find_subgroups"]

logger = logging.getLogger(__name__)

_FPS_MAX = 20000
_METHODS = ("auto", "spectral", "hdbscan", "dbscan")


def default_min_group_size(n: int) -> int:
    """Smallest sub-group worth reporting in a class of ``n`` objects: ``max(5, ceil(1 % of n))``, at most 100.

    Example:
        >>> default_min_group_size(300), default_min_group_size(5000), default_min_group_size(10**6)
        (5, 50, 100)
    """
    return int(min(100, max(5, math.ceil(0.01 * n))))


def find_subgroups(
    vectors: np.ndarray,
    class_id: np.ndarray,
    class_graphs: Mapping[int, NeighborGraph],
    *,
    method: Literal["auto", "spectral", "hdbscan", "dbscan"] = "auto",
    min_group_size: int | None = None,
    min_samples: int = 10,
    n_representatives: int = 6,
    seed: int = 0,
) -> AnalysisResult:
    """Find the sub-groups (sub-types) of every class, with medoids, representatives and a homogeneity figure.

    Args:
        vectors: (N, D) L2-normalised vectors, rows in the run's global order.
        class_id: (N,) class of every row.
        class_graphs: {class: within-class kNN graph} for every class in ``class_id`` (global row numbers).
        method: ``auto``, ``spectral``, ``hdbscan`` or ``dbscan`` (see the module docstring).
        min_group_size: Smallest reported group; default :func:`default_min_group_size` per class.
        min_samples: Neighbours that make an object a core object (capped by the graph's k and the group
            size); its distance to that neighbour is its core distance.
        n_representatives: Objects per group chosen to cover it (the medoid first, then farthest points).
        seed: Seed of the resamples (auto, spectral); the result is deterministic for a given seed.

    Returns:
        ``AnalysisResult("clusters")``; findings indexed by global row: ``cluster`` (per-class id by size,
        0 = largest, -1 = unclustered), ``cluster_size``, ``is_medoid``, ``is_representative``,
        ``cluster_quality`` (membership in [0, 1], low = weakly attached), ``cluster_stability`` (the group's
        stability over resamples, auto and spectral; NaN for the density methods and unclustered objects),
        ``is_unclustered``; ``summary`` per class (n, n_clusters, cluster_sizes, unclustered_share, homogeneity
        = mean resultant length of the class, largest_cluster_share, eps); ``info`` (method, rules, parameters
        per class with each group's stability, seconds).

    Example:
        >>> result = find_subgroups(vectors, class_id, build_class_graphs(vectors, class_id, k=15))  # doctest: +SKIP
        >>> result.findings.groupby("cluster").size()  # doctest: +SKIP
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
    t0 = time.perf_counter()
    class_id = np.asarray(class_id)
    pos = np.full(len(class_id), -1, dtype=np.int64)
    frames, summary, per_class = [], {}, {}
    for c in check_class_graphs(class_id, class_graphs):
        graph = class_graphs[c]
        rows = np.asarray(graph.rows, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        mgs = min_group_size if min_group_size is not None else default_min_group_size(len(rows))
        frame, numbers, params = _cluster_class(
            vectors, graph, pos, method, int(mgs), min_samples, n_representatives, seed
        )
        frames.append(frame)
        summary[str(c)] = numbers
        per_class[str(c)] = params
    findings = pd.concat(frames).sort_index() if frames else _describe(vectors, np.empty(0, np.int64), {}, 1)[0]
    info = {
        "method": method,
        "eps_rule": "exp(median + 3.5 * 1.4826 * MAD) of log core distances, MAD of the class or of the deviations "
        "from neighbours, whichever is smaller (Iglewicz & Hoaglin 1993)",
        "min_group_size_rule": ("given" if min_group_size is not None else "max(5, ceil(1% of class)), at most 100")
        + "; members of smaller groups are unclustered (-1)",
        "spectral_rule": f"a group (the class for spectral, each density group for auto) is split when the best "
        f"Fiedler sweep cut of its unweighted kNN graph has conductance < {MAX_CONDUCTANCE} and mean ARI >= "
        f"{MIN_STABILITY} with the cuts of 4 random 80% subgraphs; it is then cut into the largest number of "
        f"spectral k-means groups whose partition stays that stable; stability of a group = mean best-match "
        f"Jaccard over the resamples (auto: the smaller of the density step's and the split's)",
        "homogeneity": "mean resultant length |mean of unit vectors| = mean similarity to the class mean direction",
        "n_representatives": n_representatives,
        "seed": seed,
        "classes": per_class,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    logger.info("clusters: %d classes in %.1f s (%s)", len(per_class), info["seconds"], method)
    return AnalysisResult(name="clusters", findings=findings, info=info, summary=summary)


def _cluster_class(
    vectors: np.ndarray,
    graph: NeighborGraph,
    pos: np.ndarray,
    method: str,
    mgs: int,
    min_samples: int,
    n_reps: int,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    t0 = time.perf_counter()
    rows = np.asarray(graph.rows, dtype=np.int64)
    m = len(rows)
    local, dist = local_distances(graph, pos)
    ms = int(max(1, min(min_samples, mgs, graph.k, m - 1)))
    core = dist[:, ms - 1] if m > 1 and graph.k else np.full(m, np.inf)
    eps, details = estimate_eps(core, local_log_deviation(core, local))
    params: dict[str, Any] = {"n": m, "min_group_size": mgs, "min_samples": ms, "eps": eps, **details}
    groups: list[dict[str, Any]] = [{"stability": 1.0, "conductance": None, "depth": 0}]
    if m < 2 * mgs or not np.isfinite(core).any():
        labels, quality = np.zeros(m, dtype=np.int64), np.ones(m)
        params["split"] = False
    elif method == "spectral":
        labels, quality, groups, found = spectral_labels(local, dist, core, mgs, seed=seed)
        params.update(found)
        params["split"] = True
    elif method == "auto":
        dense, _, params["n_components"] = hdbscan_labels(local, dist, core, mgs, eps)
        stability = None
        if dense.max() >= 1:  # several density groups: how stable is each (one group is the class itself)

            def refit(sub: np.ndarray, d: np.ndarray, c: np.ndarray) -> np.ndarray:
                return hdbscan_labels(sub, d, c, max(2, int(0.8 * mgs)), eps)[0]

            stability = resampled_stability(local, dist, core, dense, refit, seed=seed)
        labels, quality, groups, found = refine_labels(local, dist, core, mgs, dense, stability=stability, seed=seed)
        params.update(found)
        params["split"] = True
    else:
        fit = hdbscan_labels if method == "hdbscan" else dbscan_labels
        args = (mgs, eps) if method == "hdbscan" else (ms, eps)
        labels, quality, params["n_components"] = fit(local, dist, core, *args)
        params["split"] = True
    raw = labels
    labels = _order_by_size(labels, rows, mgs if params["split"] else 1)
    quality = np.where(labels >= 0, np.clip(quality, 0.0, 1.0), 0.0)
    stability = np.full(m, np.nan)
    if method in ("auto", "spectral"):  # the record of each final group, found through its members' raw label
        params["groups"] = [{"size": 0, **groups[int(raw[labels == j][0])]} for j in range(int(labels.max()) + 1)]
        for j, record in enumerate(params["groups"]):
            record["size"] = int(np.sum(labels == j))
            stability[labels == j] = record["stability"]
    found = {"cluster": labels, "cluster_quality": quality, "cluster_stability": stability}
    frame, sizes = _describe(vectors, rows, found, n_reps)
    numbers = {
        "n": m,
        "n_clusters": len(sizes),
        "cluster_sizes": [int(s) for s in sizes],
        "unclustered_share": float(np.mean(labels < 0)) if m else 0.0,
        "homogeneity": float(np.linalg.norm(mean_vector(vectors, rows))) if m else 0.0,
        "largest_cluster_share": float(sizes[0] / m) if len(sizes) else 0.0,
        "eps": eps,
    }
    params["seconds"] = round(time.perf_counter() - t0, 3)
    return frame, numbers, params


def _describe(
    vectors: np.ndarray, rows: np.ndarray, found: dict[str, np.ndarray], n_reps: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Findings of one class (sizes, medoids, representatives) from its ``cluster``, ``cluster_quality`` and
    ``cluster_stability``."""
    labels = found.get("cluster", np.empty(0, dtype=np.int64))
    quality = found.get("cluster_quality", np.empty(0))
    stability = found.get("cluster_stability", np.full(len(labels), np.nan))
    member = labels >= 0
    sizes = np.bincount(labels[member]) if member.any() else np.zeros(0, dtype=np.int64)
    is_medoid, is_rep = np.zeros(len(rows), dtype=bool), np.zeros(len(rows), dtype=bool)
    by_cluster = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[by_cluster], np.arange(len(sizes) + 1))
    for cl in range(len(sizes)):
        members = by_cluster[starts[cl] : starts[cl + 1]]
        medoid, reps = _medoid_and_representatives(vectors, rows[members], quality[members], n_reps)
        is_medoid[members[medoid]] = True
        is_rep[members[reps]] = True
    frame = pd.DataFrame(
        {
            "cluster": labels.astype(np.int64),
            "cluster_size": np.where(member, sizes[np.maximum(labels, 0)] if len(sizes) else 0, 0).astype(np.int64),
            "is_medoid": is_medoid,
            "is_representative": is_rep,
            "cluster_quality": quality.astype(np.float64),
            "cluster_stability": stability.astype(np.float64),
            "is_unclustered": ~member,
        },
        index=pd.Index(rows, name="row"),
    )
    return frame, sizes


def _order_by_size(labels: np.ndarray, rows: np.ndarray, mgs: int) -> np.ndarray:
    """Relabel: groups under ``mgs`` become -1, the rest 0.. by size (desc), ties by their first global row."""
    out = np.full(len(labels), -1, dtype=np.int64)
    member = labels >= 0
    if not member.any():
        return out
    ids, inverse, counts = np.unique(labels[member], return_inverse=True, return_counts=True)
    first = np.full(len(ids), np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, rows[member])
    order = np.lexsort((first, -counts))  # by size desc, then first row
    order = order[counts[order] >= mgs]
    new_id = np.full(len(ids), -1, dtype=np.int64)
    new_id[order] = np.arange(len(order))
    out[member] = new_id[inverse]
    return out


def _medoid_and_representatives(
    vectors: np.ndarray, rows: np.ndarray, quality: np.ndarray, n_reps: int
) -> tuple[int, np.ndarray]:
    """Medoid and farthest-point representatives of one group (positions into ``rows``).

    The medoid maximises the mean similarity to the other members; for unit vectors that is the dot product
    with the group's mean vector, so it is exact in O(n·D). Representatives: farthest-point sampling
    (Gonzalez 1985) from the medoid, among members at least as well attached as the median member (evenly
    thinned to 20,000 in huge groups), so the picks span the group without being its stragglers.
    """
    medoid = int(np.argmax(dot_rows(vectors, rows, mean_vector(vectors, rows))))
    cand = np.flatnonzero(quality >= np.median(quality))
    cand = np.union1d(cand[np.linspace(0, len(cand) - 1, min(len(cand), _FPS_MAX)).astype(np.int64)], [medoid])
    x = np.asarray(vectors[rows[cand]], dtype=np.float32)
    chosen = [int(np.searchsorted(cand, medoid))]
    nearest = np.full(len(cand), -np.inf, dtype=np.float32)  # highest similarity to the chosen set
    for _ in range(min(n_reps, len(cand)) - 1):
        nearest = np.maximum(nearest, x @ x[chosen[-1]])
        nearest[chosen] = np.inf
        chosen.append(int(np.argmin(nearest)))
    return medoid, cand[chosen[: max(n_reps, 0)]]
