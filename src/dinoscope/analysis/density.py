"""Density clustering of one class on its kNN graph: the data-driven radius ``eps``, HDBSCAN(ε̂) and DBSCAN.

Everything works from the class's within-class :class:`NeighborGraph` only (cosine distance ``1 - sim`` on the
kNN edges, symmetrised): no n×n matrix is ever built, the cost is O(n·k) per class.

One data-driven distance, ``eps``, drives both methods. An object's core distance is the distance to its
``min_samples``-th neighbour (Campello et al. 2013); ``eps = exp(median + 3.5 · s)`` of the log core
distances — the modified z-score fence of Iglewicz & Hoaglin (1993), with ``s`` the robust scale
(1.4826 · MAD), or, when smaller, the robust scale of each object's log core distance minus its neighbours'
(so a class made of groups of different density is judged by the spread within a density, not between
them). On a class without outliers almost nothing lies beyond it, whereas the original rule (eps = 90th
percentile of the 3rd-neighbour distance) calls 10 % of any class sparse by construction. The Kneedle knee
(Satopää et al. 2011) is recorded for comparison; on clean data it sits near the 95th percentile.

* :func:`hdbscan_labels`: HDBSCAN (Campello et al. 2013) on the mutual-reachability graph of the kNN edges
  with ``cluster_selection_epsilon = eps`` (HDBSCAN(ε̂), Malzer & Baum 2020): splits finer than the typical
  neighbour spacing are not sub-groups, and a class without structure stays one group instead of HDBSCAN's
  "one cluster, mostly noise". Disconnected parts of the kNN graph are joined by edges longer than any cosine
  distance, so each part is a candidate group. Members that are neither core nor border objects of their own
  group at the group's own fence become unclustered. The quality is HDBSCAN's membership probability.
* :func:`dbscan_labels`: DBSCAN (Ester et al. 1996, scikit-learn) on the sparse kNN distance graph with that
  ``eps`` — one density for the whole class. Quality: 1 for core objects, ``eps / core distance`` for border
  objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from dinoscope._deps import require
from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.outliers import Z_CUTOFF, robust_z

__all__ = [
    "clusterwise_jaccard",
    "dbscan_labels",
    "drop_stragglers",
    "estimate_eps",
    "hdbscan_labels",
    "local_distances",
    "local_log_deviation",
    "resampled_stability",
]

#: Distance given to the edges that join disconnected parts of a class graph (cosine distances are <= 2).
_BRIDGE = 3.0
_MIN_DIST = 1e-9
_SAMPLE_FRAC = 0.8


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


def _kneedle(values: np.ndarray) -> float:
    """Knee of the ascending sorted curve (Kneedle: max of x - y after scaling both to [0, 1])."""
    y = np.sort(values)
    if len(y) < 3 or y[-1] == y[0]:
        return float(y[-1])
    x = np.linspace(0.0, 1.0, len(y))
    return float(y[np.argmax(x - (y - y[0]) / (y[-1] - y[0]))])


def local_log_deviation(core: np.ndarray, local: np.ndarray) -> np.ndarray:
    """(m,) log core distance of each object minus the median log core distance of its neighbours."""
    logc = np.log(np.maximum(core, 1e-6))
    with np.errstate(invalid="ignore"):  # inf - inf where a tiny class has no core distance: NaN, ignored
        return logc - np.median(np.where(local >= 0, logc[np.maximum(local, 0)], logc[:, None]), axis=1)


def local_distances(graph: NeighborGraph, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, k) local neighbour positions (-1 = none) and cosine distances (inf = none) of a class graph.

    Args:
        graph: A within-class graph (global row numbers).
        pos: (N,) position of every global row within its class (only this class's rows are read).

    Example:
        >>> local, dist = local_distances(class_graphs[0], pos)  # doctest: +SKIP
    """
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


def hdbscan_labels(
    local: np.ndarray, dist: np.ndarray, core: np.ndarray, mgs: int, eps: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """HDBSCAN(ε̂) labels and membership probabilities from the kNN graph's mutual-reachability edges.

    Args:
        local: (m, k) neighbour positions within the class (-1 = none), from :func:`local_distances`.
        dist: (m, k) cosine distances to them (inf = none).
        core: (m,) core distances (distance to the ``min_samples``-th neighbour).
        mgs: Smallest group (HDBSCAN's ``min_cluster_size``).
        eps: ``cluster_selection_epsilon``, from :func:`estimate_eps`.

    Returns:
        (m,) labels (-1 = unclustered), (m,) membership in [0, 1] and the number of connected parts of the graph.

    Example:
        >>> labels, quality, n_parts = hdbscan_labels(local, dist, dist[:, 9], 5, eps)  # doctest: +SKIP
    """
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
    labels = drop_stragglers(np.asarray(labels, dtype=np.int64), core, local, dist)
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


def drop_stragglers(labels: np.ndarray, core: np.ndarray, local: np.ndarray, dist: np.ndarray) -> np.ndarray:
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


def dbscan_labels(
    local: np.ndarray, dist: np.ndarray, core: np.ndarray, ms: int, eps: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """DBSCAN labels on the sparse kNN distance graph; quality 1 for core objects, eps/core for border ones.

    Args:
        local, dist, core: As in :func:`hdbscan_labels`.
        ms: Neighbours that make an object a core object (``min_samples``, the object itself not counted).
        eps: The radius, from :func:`estimate_eps`.

    Returns:
        (m,) labels (-1 = noise), (m,) quality in [0, 1] and the number of connected parts of the graph.

    Example:
        >>> labels, quality, n_parts = dbscan_labels(local, dist, dist[:, 9], 10, eps)  # doctest: +SKIP
    """
    skc = require("sklearn.cluster", "analysis", "DBSCAN sub-groups", alternative='method="hdbscan"')
    g = _symmetric_graph(local, dist)
    n_comp = int(csgraph.connected_components(g, directed=False, return_labels=False))
    labels = skc.DBSCAN(eps=eps, min_samples=ms + 1, metric="precomputed").fit(g).labels_  # +1: itself
    quality = np.where(core <= eps, 1.0, eps / np.maximum(core, _MIN_DIST))
    return np.asarray(labels, dtype=np.int64), np.where(labels >= 0, quality, 0.0), n_comp


def resampled_stability(
    local: np.ndarray,
    dist: np.ndarray,
    core: np.ndarray,
    labels: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    *,
    n_resamples: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Per group of ``labels``: how well ``fit`` finds it again on random 80 % subgraphs (Hennig 2007).

    Args:
        local, dist, core: The class graph, as in :func:`hdbscan_labels`.
        labels: (m,) the groups to judge (-1 = unclustered).
        fit: ``fit(local, dist, core) -> labels`` on a subgraph (the method that found ``labels``).
        n_resamples: Random subsamples, each keeping 80 % of the objects (and the edges among them).
        seed: Seed of the subsamples.

    Returns:
        (n_groups,) mean over the resamples of each group's best Jaccard match among the resampled groups.

    Example:
        >>> refit = lambda sub, d, c: hdbscan_labels(sub, d, c, 8, eps)[0]  # doctest: +SKIP
        >>> resampled_stability(local, dist, core, labels, refit)  # doctest: +SKIP
    """
    m = len(local)
    rng = np.random.default_rng(seed)
    samples, runs = [], []
    for _ in range(n_resamples):
        keep = np.flatnonzero(rng.random(m) < _SAMPLE_FRAC)
        where = np.full(m, -1, dtype=np.int64)
        where[keep] = np.arange(len(keep))
        sub = np.where(local[keep] >= 0, where[np.maximum(local[keep], 0)], -1)
        samples.append(keep)
        runs.append(np.asarray(fit(sub, np.where(sub >= 0, dist[keep], np.inf), core[keep]), dtype=np.int64))
    return clusterwise_jaccard(labels, samples, runs)


def clusterwise_jaccard(labels: np.ndarray, samples: list[np.ndarray], runs: list[np.ndarray]) -> np.ndarray:
    """Per group: mean over resamples of its best Jaccard match among the groups of each resampled run.

    ``runs[b]`` labels the objects ``samples[b]``; -1 (unclustered) is no group on either side, but its
    objects count in the sizes, so a group the run leaves unclustered scores 0.
    """
    k = int(labels.max()) + 1 if len(labels) else 0
    out = np.zeros(max(k, 0))
    for keep, run in zip(samples, runs, strict=True):
        table = np.zeros((k + 1, max(int(run.max()) + 1, 0) + 1))  # row / column 0: unclustered
        np.add.at(table, (labels[keep] + 1, run + 1), 1)
        inter = table[1:, 1:]
        union = table.sum(1)[1:, None] + table.sum(0)[None, 1:] - inter
        if inter.shape[1]:
            out += (inter / np.maximum(union, 1)).max(axis=1)
    return out / max(len(runs), 1)
