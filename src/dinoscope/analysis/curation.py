"""What selection, pruning and re-splitting share: k-means regions, typicality and copy groups.

- :func:`fit_kmeans`: spherical k-means (FAISS when installed, else scikit-learn's mini-batch k-means), the
  regions of TypiClust, ProbCover's purity and the prototype metric of Sorscher et al. 2022.
- :func:`compute_typicality`: TypiClust's typicality (Hacohen et al., "Active learning on a budget: opposite
  strategies suit high and low budgets", ICML 2022): the inverse mean distance to a point's nearest neighbours.
  **Deviation**: the neighbours are those of the shared kNN graph (k = 10), not a k = 20 search inside each
  cluster, so the one graph serves every step and scales to 1 M rows.
- :func:`find_copy_groups`: near-duplicate groups by the rule and data-driven threshold of
  :func:`~dinoscope.analysis.duplicates.find_duplicates` (relative distance, Otsu or fence, mutual rank), so
  "a copy" means the same thing in ``analyze``, ``select``, ``prune`` and ``split``.
- :func:`find_view_copy_groups`: the same rule run on each view of the rows (the plain embedding and, from
  ``select`` and ``split``, the denoised one of :mod:`~dinoscope.embed.views`), groups merged: two rows are
  copies when they are in any one view.

Example:
    >>> x = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2, 3]]
    >>> labels, centroids = fit_kmeans(x, 2, seed=0)
    >>> labels.shape, centroids.shape
    ((6,), (2, 4))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from dinoscope.analysis.base import NeighborGraph

__all__ = [
    "build_curation_graph",
    "compute_typicality",
    "find_copy_groups",
    "find_exact_copies",
    "find_view_copy_groups",
    "fit_kmeans",
    "merge_groups",
    "nearest_centroid",
    "neighbour_scale",
]

logger = logging.getLogger(__name__)

#: Neighbours per row of the curation graph: the duplicate rule's own k (its k-th neighbour sets the scale).
CURATION_K = 10


def build_curation_graph(vectors: np.ndarray, *, seed: int = 0, k: int = CURATION_K) -> NeighborGraph:
    """The kNN graph every curation step reads (exact up to 10 k rows, HNSW above; see ``build_neighbor_graph``)."""
    from dinoscope.analysis.neighbors import build_neighbor_graph

    return build_neighbor_graph(vectors, k=k, seed=seed)


def fit_kmeans(vectors: np.ndarray, n_clusters: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit vectors.

    Args:
        vectors: (N, D) float32 unit vectors.
        n_clusters: Clusters wanted (capped at N).
        seed: Seed of the initialisation.

    Returns:
        ((N,) int64 cluster of every row, (K, D) float32 unit centroids).

    Example:
        >>> sorted(fit_kmeans(np.eye(3, dtype=np.float32)[[0, 0, 1, 1]], 2)[0].tolist())
        [0, 0, 1, 1]
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    k = int(max(1, min(n_clusters, len(x))))
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None and len(x) > k:
        km = faiss.Kmeans(x.shape[1], k, niter=10, seed=int(seed) + 1, spherical=True, verbose=False)
        km.cp.max_points_per_centroid = 64
        km.cp.min_points_per_centroid = 1
        km.train(x)
        centroids = np.asarray(km.centroids, dtype=np.float32)
    else:
        from sklearn.cluster import MiniBatchKMeans

        fit = MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096).fit(x)
        centroids = fit.cluster_centers_.astype(np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    labels, _ = nearest_centroid(x, centroids)
    return labels, centroids


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """((N,) nearest centroid, (N,) its cosine distance ``1 - cos``): Sorscher et al.'s prototype metric.

    Example:
        >>> nearest_centroid(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32))[0].tolist()
        [0, 1]
    """
    n = len(vectors)
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    for start in range(0, n, chunk):
        sims = np.asarray(vectors[start : start + chunk], dtype=np.float32) @ c.T
        best = sims.argmax(axis=1)
        labels[start : start + len(best)] = best
        dist[start : start + len(best)] = 1.0 - sims[np.arange(len(best)), best]
    return labels, np.maximum(dist, 0.0)


def compute_typicality(graph: NeighborGraph, n: int) -> np.ndarray:
    """(N,) typicality ``1 / (mean cosine distance to the graph neighbours + 1e-6)``; high = typical.

    Example:
        >>> g = NeighborGraph(np.array([[1], [0], [0]]), np.array([[0.9], [0.9], [0.1]], np.float32), np.arange(3))
        >>> compute_typicality(g, 3).round(1).tolist()
        [10.0, 10.0, 1.1]
    """
    sims = np.where(graph.indices >= 0, graph.sims, np.nan).astype(np.float64)
    mean_dist = np.nanmean(1.0 - np.clip(sims, -1.0, 1.0), axis=1)
    out = np.zeros(n, dtype=np.float64)
    out[graph.rows] = 1.0 / (np.nan_to_num(mean_dist, nan=2.0) + 1e-6)
    return out


def find_copy_groups(
    vectors: np.ndarray, graph: NeighborGraph, content_key: np.ndarray | None = None, *, attach: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """(N,) near-duplicate group of every row (-1: none) and the duplicate rule's info (threshold, counts).

    With ``attach``, and only where the duplicate rule found that rank is strong evidence of copies (its
    mutual-rank rule fired: a duplicate mode and mutual neighbours >= 20x likelier among copies), a row outside
    every group whose nearest neighbour is in a group, at a relative distance up to the mutual-rank rule's
    ceiling (:data:`~.duplicates_rules.MUTUAL_RHO_MAX`), joins that group: a third copy that ranks a sibling
    first but is not ranked back (measured on PPE whole images: 5 of the 6 copies the
    rule leaves out). Curation uses it because choosing two copies costs more than passing over a neighbour.

    Example:
        >>> x = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]
        >>> g = build_curation_graph(x, k=2)
        >>> find_copy_groups(x, g)[0].tolist()
        [0, 0, -1, -1]
    """
    from dinoscope.analysis.duplicates import find_duplicates
    from dinoscope.analysis.duplicates_rules import MUTUAL_RHO_MAX

    n = len(vectors)
    keys = np.full(n, "", dtype=object) if content_key is None else np.asarray(content_key, dtype=object)
    result = find_duplicates(vectors, graph, keys)
    info = {k: v for k, v in result.info.items() if isinstance(v, (int, float, str))}
    groups = result.findings["duplicate_group"].to_numpy(dtype=np.int64).copy()
    if attach and n > 1 and info.get("mutual_rule") == "mutual":
        k = min(graph.k, 10)
        valid = graph.indices[:, :k] >= 0
        scale = np.where(valid, 1.0 - graph.sims[:, :k], np.nan)
        b = np.zeros(n)
        b[graph.rows] = np.nan_to_num(np.nanmax(scale, axis=1), nan=0.0)  # distance to the k-th neighbour
        first = graph.indices[:, 0]
        rows = graph.rows[first >= 0]
        first = first[first >= 0]
        dist = 1.0 - graph.sims[graph.indices[:, 0] >= 0, 0]
        rho = dist / np.maximum(np.minimum(b[rows], b[first]), 1e-12)
        join = (groups[rows] < 0) & (groups[first] >= 0) & (rho <= MUTUAL_RHO_MAX)
        groups[rows[join]] = groups[first[join]]
        info["n_attached"] = int(join.sum())
    return groups, info


def find_view_copy_groups(
    vectors: np.ndarray,
    graph: NeighborGraph,
    views: Sequence[np.ndarray] = (),
    content_key: np.ndarray | None = None,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any], list[tuple[np.ndarray, NeighborGraph, dict[str, Any]]]]:
    """:func:`find_copy_groups` on ``vectors`` and on each extra view of the same rows (its own graph and
    data-driven threshold), merged: rows linked in any view share a group.

    Returns:
        ((N,) merged group, -1 none; the first view's info with ``n_groups``, ``n_duplicates`` of the merge and
        ``views``, the extra views' infos; per extra view (its vectors, graph, info), for the exact check).

    Example:
        >>> x = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3, 3]]
        >>> y = np.eye(4, dtype=np.float32)[[0, 1, 2, 2, 3, 3]]
        >>> find_copy_groups(x, build_curation_graph(x, k=2))[0].tolist()
        [0, 0, -1, -1, 1, 1]
        >>> find_view_copy_groups(x, build_curation_graph(x, k=2), [y])[0].tolist()
        [0, 0, 1, 1, 2, 2]
    """
    groups, info = find_copy_groups(vectors, graph, content_key)
    extra = []
    for view in views:
        view_graph = build_curation_graph(view, seed=seed, k=graph.k)
        view_groups, view_info = find_copy_groups(view, view_graph, content_key)
        groups = merge_groups(groups, view_groups)
        extra.append((view, view_graph, view_info))
    if extra:
        sizes = np.bincount(groups[groups >= 0]) if (groups >= 0).any() else np.zeros(0, np.int64)
        info.update(views=[e[2] for e in extra], n_groups=len(sizes), n_duplicates=int(sizes.sum()),
                    largest_group=int(sizes.max(initial=0)))  # fmt: skip
    return groups, info, extra


def merge_groups(*groupings: np.ndarray) -> np.ndarray:
    """(N,) groups of the union of several groupings of the same rows (-1: in no group), renumbered 0..G-1.

    Example:
        >>> merge_groups(np.array([0, 0, -1, 1, 1]), np.array([-1, 0, 0, -1, -1])).tolist()
        [0, 0, 0, 1, 1]
    """
    from dinoscope.analysis.resplit import linked_components

    n = len(groupings[0])
    comp, grouped = linked_components(n, *groupings)
    out = np.full(n, -1, dtype=np.int64)
    out[grouped] = np.unique(comp[grouped], return_inverse=True)[1]
    return out


def neighbour_scale(graph: NeighborGraph, n: int, k: int = CURATION_K) -> np.ndarray:
    """(N,) cosine distance from each row to its k-th graph neighbour: the local scale of the duplicate rule."""
    k = min(k, graph.k)
    sims = np.where(graph.indices[:, :k] >= 0, graph.sims[:, :k], np.nan)
    out = np.zeros(n)
    out[graph.rows] = np.nan_to_num(1.0 - np.nanmin(sims, axis=1), nan=0.0)
    return out


def find_exact_copies(
    vectors: np.ndarray, rows: np.ndarray, others: np.ndarray, scale: np.ndarray, threshold: float, chunk: int = 65536
) -> np.ndarray:
    """(len(rows),) bool: the row is a copy, by the duplicate rule's relative distance computed exactly, of an
    earlier row of ``rows`` or of any row of ``others`` (``(1 - cos) / min(scale_i, scale_j) <= threshold``, or
    identical).

    Example:
        >>> x = np.eye(3, dtype=np.float32)[[0, 1, 0, 2]]
        >>> find_exact_copies(x, np.array([0, 1, 2]), np.array([3]), np.ones(4), 0.1).tolist()
        [False, False, True]
    """
    from dinoscope.analysis.duplicates_rules import IDENTICAL_DIST

    chosen = np.asarray(vectors[rows], dtype=np.float32)
    bad = np.zeros(len(rows), dtype=bool)
    if not len(rows):
        return bad
    dist = 1.0 - chosen @ chosen.T
    rho = dist / np.maximum(np.minimum(scale[rows][:, None], scale[rows][None, :]), 1e-12)
    hit = (rho <= threshold) | (dist <= IDENTICAL_DIST)
    bad |= np.tril(hit, k=-1).any(axis=1)  # a copy of an earlier choice
    for start in range(0, len(others), chunk):
        part = others[start : start + chunk]
        dist = 1.0 - chosen @ np.asarray(vectors[part], dtype=np.float32).T
        rho = dist / np.maximum(np.minimum(scale[rows][:, None], scale[part][None, :]), 1e-12)
        bad |= ((rho <= threshold) | (dist <= IDENTICAL_DIST)).any(axis=1)
    return bad
