"""Sub-groups within each class: density clustering on the within-class kNN graph, thresholds from the data.

Every class is clustered on its own, from its within-class :class:`NeighborGraph` only (cosine distance
``1 - sim`` on the kNN edges, symmetrised): no n×n matrix is ever built, the cost is O(n·k) per class.

One data-driven distance, ``eps``, drives both methods. An object's core distance is the distance to its
``min_samples``-th neighbour (Campello et al. 2013); ``eps = exp(median + 3.5 · s)`` of the log core
distances — the modified z-score fence of Iglewicz & Hoaglin (1993), with ``s`` the robust scale
(1.4826 · MAD), or, when smaller, the robust scale of each object's log core distance minus its neighbours'
(so a class made of groups of different density is judged by the spread within a density, not between
them). On a class without outliers almost nothing lies beyond it, whereas the original rule (eps = 90th
percentile of the 3rd-neighbour distance) calls 10 % of any class sparse by construction. The Kneedle knee
(Satopää et al. 2011) is recorded for comparison; on clean data it sits near the 95th percentile.

* ``method="hdbscan"`` (default): HDBSCAN (Campello et al. 2013) on the mutual-reachability graph of the
  kNN edges with ``cluster_selection_epsilon = eps`` (HDBSCAN(ε̂), Malzer & Baum 2020): splits finer than the
  typical neighbour spacing are not sub-groups, and a class without structure stays one group instead of
  HDBSCAN's "one cluster, mostly noise". Disconnected parts of the kNN graph are joined by edges longer than
  any cosine distance, so each part is a candidate group. Members that are neither core nor border objects
  of their own group at the group's own fence become unclustered. ``cluster_quality`` is HDBSCAN's
  membership probability.
* ``method="dbscan"``: DBSCAN (Ester et al. 1996, scikit-learn) on the sparse kNN distance graph with that
  ``eps`` — one density for the whole class. ``cluster_quality``: 1 for core objects, ``eps / core distance``
  for border objects.

Groups smaller than ``min_group_size`` (default ``max(5, 1 % of the class)``, at most 100) are not sub-types
— three consecutive frames of one video are not a group — so their members become unclustered
(``cluster = -1``) in both methods. Classes with fewer than ``2 · min_group_size`` objects are not split.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from dinoscope._deps import require
from dinoscope.analysis.base import AnalysisResult, NeighborGraph
from dinoscope.analysis.outliers import Z_CUTOFF, check_class_graphs, dot_rows, mean_vector, robust_z

__all__ = ["default_min_group_size", "estimate_eps", "find_subgroups"]

logger = logging.getLogger(__name__)

#: Distance given to the edges that join disconnected parts of a class graph (cosine distances are <= 2).
_BRIDGE = 3.0
_MIN_DIST = 1e-9
_FPS_MAX = 20000


def default_min_group_size(n: int) -> int:
    """Smallest sub-group worth reporting in a class of ``n`` objects: ``max(5, ceil(1 % of n))``, at most 100.

    Example:
        >>> default_min_group_size(300), default_min_group_size(5000), default_min_group_size(10**6)
        (5, 50, 100)
    """
    return int(min(100, max(5, math.ceil(0.01 * n))))


def estimate_eps(core_distances: np.ndarray, local_deviation: np.ndarray | None = None) -> tuple[float, dict[str, Any]]:
    """Data-driven DBSCAN radius: the upper robust fence of the core distances, with the Kneedle knee beside it.

    Args:
        core_distances: (n,) distance of every object to its ``min_samples``-th neighbour; non-finite values
            (objects with too few neighbours) are ignored.
        local_deviation: Optional (n,) log core distance minus the median of the neighbours'; when the robust
            scale of these is smaller than that of the log core distances, it is used instead.

    Returns:
        ``(eps, details)`` where eps = ``exp(median + 3.5 · scale)`` of the log distances (Iglewicz & Hoaglin
        1993: scale = 1.4826 · MAD, see :func:`~dinoscope.analysis.outliers.robust_z`) and details records
        the median, the scale, the Kneedle knee (Satopää et al. 2011) and the share of objects beyond eps.

    Example:
        >>> eps, details = estimate_eps(np.random.default_rng(0).uniform(0.2, 0.3, 1000))
        >>> round(eps, 2) > 0.3, details["rule"]
        (True, 'median + 3.5 robust sd of log core distance')
    """
    d = np.asarray(core_distances, dtype=np.float64)[np.isfinite(core_distances)]
    if len(d) == 0:
        return 0.0, {"rule": "no finite core distance"}
    _, med, scale = robust_z(np.log(np.maximum(d, 1e-6)))
    source = "class"
    if local_deviation is not None:
        ld = np.abs(np.asarray(local_deviation, dtype=np.float64))
        local_scale = 1.4826 * float(np.median(ld[np.isfinite(ld)])) if np.isfinite(ld).any() else scale
        scale, source = (local_scale, "neighbourhood") if 0.0 < local_scale < scale else (scale, source)
    eps = float(np.exp(med + Z_CUTOFF * scale))
    details = {
        "rule": "median + 3.5 robust sd of log core distance",
        "median_core_distance": float(np.exp(med)),
        "log_scale": scale,
        "scale_from": source,
        "eps_knee": _kneedle(d),
        "share_beyond_eps": float(np.mean(d > eps)),
    }
    return eps, details


def _local_log_deviation(core: np.ndarray, local: np.ndarray) -> np.ndarray:
    """(m,) log core distance of each object minus the median log core distance of its neighbours."""
    logc = np.log(np.maximum(core, 1e-6))
    with np.errstate(invalid="ignore"):  # inf - inf where a tiny class has no core distance: NaN, ignored
        return logc - np.median(np.where(local >= 0, logc[np.maximum(local, 0)], logc[:, None]), axis=1)


def _kneedle(values: np.ndarray) -> float:
    """Knee of the ascending sorted curve (Kneedle: max of x - y after scaling both to [0, 1])."""
    y = np.sort(values)
    if len(y) < 3 or y[-1] == y[0]:
        return float(y[-1])
    x = np.linspace(0.0, 1.0, len(y))
    return float(y[np.argmax(x - (y - y[0]) / (y[-1] - y[0]))])


def find_subgroups(
    vectors: np.ndarray,
    class_id: np.ndarray,
    class_graphs: Mapping[int, NeighborGraph],
    *,
    method: Literal["hdbscan", "dbscan"] = "hdbscan",
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
        method: ``hdbscan`` or ``dbscan`` (see the module docstring; both use the data-driven eps).
        min_group_size: Smallest reported group; default :func:`default_min_group_size` per class.
        min_samples: Neighbours that make an object a core object (capped by the graph's k and the group
            size); its distance to that neighbour is its core distance.
        n_representatives: Objects per group chosen to cover it (the medoid first, then farthest points).
        seed: Recorded for provenance; the analysis is deterministic.

    Returns:
        ``AnalysisResult("clusters")``; findings indexed by global row: ``cluster`` (per-class id by size,
        0 = largest, -1 = unclustered), ``cluster_size``, ``is_medoid``, ``is_representative``,
        ``cluster_quality`` (membership in [0, 1], low = weakly attached), ``is_unclustered``; ``summary`` per
        class (n, n_clusters, cluster_sizes, unclustered_share, homogeneity = mean resultant length of the
        class, largest_cluster_share, eps); ``info`` (method, rules, parameters per class, seconds).

    Example:
        >>> result = find_subgroups(vectors, class_id, build_class_graphs(vectors, class_id, k=15))  # doctest: +SKIP
        >>> result.findings.groupby("cluster").size()  # doctest: +SKIP
    """
    if method not in ("hdbscan", "dbscan"):
        raise ValueError(f"method must be 'hdbscan' or 'dbscan', got {method!r}")
    t0 = time.perf_counter()
    class_id = np.asarray(class_id)
    pos = np.full(len(class_id), -1, dtype=np.int64)
    frames, summary, per_class = [], {}, {}
    for c in check_class_graphs(class_id, class_graphs):
        graph = class_graphs[c]
        rows = np.asarray(graph.rows, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        mgs = min_group_size if min_group_size is not None else default_min_group_size(len(rows))
        frame, numbers, params = _cluster_class(vectors, graph, pos, method, int(mgs), min_samples, n_representatives)
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
        "homogeneity": "mean resultant length |mean of unit vectors| = mean similarity to the class mean direction",
        "n_representatives": n_representatives,
        "seed": seed,
        "classes": per_class,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    logger.info("clusters: %d classes in %.1f s (%s)", len(per_class), info["seconds"], method)
    return AnalysisResult(name="clusters", findings=findings, info=info, summary=summary)


def _local_distances(graph: NeighborGraph, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, k) local neighbour positions (-1 = none) and cosine distances (inf = none) of a class graph."""
    valid = np.asarray(graph.indices) >= 0
    local = np.where(valid, pos[np.where(valid, graph.indices, 0)], -1)
    return local, np.where(valid, np.maximum(1.0 - np.asarray(graph.sims, dtype=np.float64), _MIN_DIST), np.inf)


def _symmetric_graph(local: np.ndarray, weight: np.ndarray) -> sparse.csr_matrix:
    """Sparse (m, m) graph of the kNN edges made symmetric, keeping the smaller weight of i→j and j→i."""
    m, k = local.shape
    ok = local >= 0
    big = 2.0 * _BRIDGE  # max of (big - w) = min of w; absent edges count as 0
    g = sparse.csr_matrix((big - weight[ok], (np.repeat(np.arange(m), k)[ok.ravel()], local[ok])), shape=(m, m))
    g = g.maximum(g.T).tocsr()
    g.data = big - g.data
    return g


def _bridge_components(g: sparse.csr_matrix) -> tuple[sparse.csr_matrix, int]:
    """Join the connected components of ``g`` by a chain of edges of length _BRIDGE."""
    n_comp, comp = csgraph.connected_components(g, directed=False)
    if n_comp == 1:
        return g, 1
    first = np.unique(comp, return_index=True)[1]
    bridge = sparse.csr_matrix((np.full(n_comp - 1, _BRIDGE), (first[:-1], first[1:])), shape=g.shape)
    return (g + bridge + bridge.T).tocsr(), int(n_comp)


def _hdbscan(
    local: np.ndarray, dist: np.ndarray, core: np.ndarray, mgs: int, eps: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """HDBSCAN(ε̂) labels and membership probabilities from the kNN graph's mutual-reachability edges."""
    hdbscan = require("hdbscan", "analysis", "HDBSCAN sub-groups", alternative='method="dbscan"')
    core = np.where(np.isfinite(core), core, 2.0)
    mreach = np.maximum(dist, np.maximum(core[:, None], core[np.maximum(local, 0)]))
    g, n_comp = _bridge_components(_symmetric_graph(local, mreach))
    try:  # fast path: our MST and linkage, then hdbscan's own tree condensing and cluster selection
        from hdbscan.hdbscan_ import _tree_to_labels

        mst = sparse.coo_matrix(csgraph.minimum_spanning_tree(g))
        order = np.argsort(mst.data, kind="stable")
        tree = _single_linkage(mst.row[order], mst.col[order], mst.data[order].astype(np.float64))
        labels, probs = _tree_to_labels(
            None, tree, min_cluster_size=mgs, allow_single_cluster=True, cluster_selection_epsilon=eps
        )[:2]
    except ImportError:  # public API, same result (min_samples=1 keeps mreach)
        kw = {"min_cluster_size": mgs, "min_samples": 1, "cluster_selection_epsilon": eps}
        model = hdbscan.HDBSCAN(metric="precomputed", allow_single_cluster=True, **kw).fit(g)
        labels, probs = model.labels_, model.probabilities_
    labels = _drop_stragglers(np.asarray(labels, dtype=np.int64), core, local, dist)
    return labels, np.where(labels >= 0, np.asarray(probs, dtype=np.float64), 0.0), n_comp


def _single_linkage(a_rows: np.ndarray, b_rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n-1, 4) single-linkage tree (scipy layout) from MST edges sorted by weight: union-find, path halving.

    Same output as ``hdbscan._hdbscan_linkage.label``, ~15× faster (that one indexes numpy arrays per step).
    """
    n = len(weights) + 1
    parent, size = list(range(2 * n - 1)), [1] * n + [0] * (n - 1)
    left, right = [0] * (n - 1), [0] * (n - 1)
    for t, (a, b) in enumerate(zip(a_rows.tolist(), b_rows.tolist(), strict=True)):
        while parent[a] != a:
            parent[a] = a = parent[parent[a]]
        while parent[b] != b:
            parent[b] = b = parent[parent[b]]
        parent[a] = parent[b] = n + t
        size[n + t] = size[a] + size[b]
        left[t], right[t] = a, b
    return np.column_stack([left, right, weights, size[n:]]).astype(np.float64)


def _drop_stragglers(labels: np.ndarray, core: np.ndarray, local: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Unclustered: members that are neither core nor border objects of their own group (DBSCAN per group).

    HDBSCAN keeps in a group every object still attached when the group is born, so an object far from
    everything can be swept in at that coarse scale. Each group gets its own fence (:func:`estimate_eps` on
    its members' core distances, so a sparse group is judged by its own spacing): members within it are
    core, members with a core neighbour of the same group within it are border, the rest are unclustered.
    """
    member = labels >= 0
    if not member.any():
        return labels
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(int(labels.max()) + 2))
    fence = np.array([estimate_eps(core[order[a:b]])[0] for a, b in itertools.pairwise(bounds)])
    own = np.where(member, fence[np.maximum(labels, 0)], -np.inf)
    is_core = member & (core <= own)
    nb = np.maximum(local, 0)
    border = (local >= 0) & is_core[nb] & (labels[nb] == labels[:, None]) & (dist <= own[:, None])
    return np.where(is_core | border.any(axis=1), labels, -1)


def _dbscan(
    local: np.ndarray, dist: np.ndarray, core: np.ndarray, ms: int, eps: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """DBSCAN labels on the sparse kNN distance graph; quality 1 for core objects, eps/core for border ones."""
    skc = require("sklearn.cluster", "analysis", "DBSCAN sub-groups", alternative='method="hdbscan"')
    g = _symmetric_graph(local, dist)
    n_comp = int(csgraph.connected_components(g, directed=False, return_labels=False))
    labels = skc.DBSCAN(eps=eps, min_samples=ms + 1, metric="precomputed").fit(g).labels_  # +1: itself
    quality = np.where(core <= eps, 1.0, eps / np.maximum(core, _MIN_DIST))
    return np.asarray(labels, dtype=np.int64), np.where(labels >= 0, quality, 0.0), n_comp


def _cluster_class(
    vectors: np.ndarray, graph: NeighborGraph, pos: np.ndarray, method: str, mgs: int, min_samples: int, n_reps: int
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    t0 = time.perf_counter()
    rows = np.asarray(graph.rows, dtype=np.int64)
    m = len(rows)
    local, dist = _local_distances(graph, pos)
    ms = int(max(1, min(min_samples, mgs, graph.k, m - 1)))
    core = dist[:, ms - 1] if m > 1 and graph.k else np.full(m, np.inf)
    eps, details = estimate_eps(core, _local_log_deviation(core, local))
    params: dict[str, Any] = {"n": m, "min_group_size": mgs, "min_samples": ms, "eps": eps, **details}
    if m < 2 * mgs or not np.isfinite(core).any():
        labels, quality = np.zeros(m, dtype=np.int64), np.ones(m)
        params["split"] = False
    else:
        fit = _hdbscan if method == "hdbscan" else _dbscan
        args = (mgs, eps) if method == "hdbscan" else (ms, eps)
        labels, quality, params["n_components"] = fit(local, dist, core, *args)
        params["split"] = True
    labels = _order_by_size(labels, rows, mgs if params["split"] else 1)
    quality = np.where(labels >= 0, np.clip(quality, 0.0, 1.0), 0.0)
    frame, sizes = _describe(vectors, rows, {"cluster": labels, "cluster_quality": quality}, n_reps)
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
    """Findings of one class (sizes, medoids, representatives) from its ``cluster`` and ``cluster_quality``."""
    labels = found.get("cluster", np.empty(0, dtype=np.int64))
    quality = found.get("cluster_quality", np.empty(0))
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
