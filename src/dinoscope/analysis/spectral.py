"""Sub-groups of one class from the bottlenecks of its kNN graph, kept only where they are stable.

Real sub-types of a class overlap: in the full embedding space there is no density gap between them (density
clustering finds one group), yet the within-class kNN graph has a bottleneck — far fewer edges cross between
two sub-types than cross any cut of a homogeneous class. This module looks for such bottlenecks:

1. The graph: the class's kNN edges, made symmetric, unweighted (an edge says "among each other's k nearest").
2. A bisection: the Fiedler vector of the normalised graph (second eigenvector of ``D^-1/2 A D^-1/2``, sparse
   Lanczos, O(edges) per iteration) orders the objects; the sweep cut along that order with the smallest
   conductance ``cut / min(vol, vol')`` and both sides >= ``min_group_size`` is the candidate split (Shi & Malik
   2000; Cheeger sweep, Chung 1997).
3. Kept only if it is a bottleneck AND stable: conductance below ``max_conductance`` (0.1: a tenth of a side's
   edges leave it; homogeneous Gaussian classes measure ~0.34, DeepPCB's single defect types 0.10-0.16, two
   merged types 0.05-0.08) and the same split found again on ``n_resamples`` random 80 % subsamples of the
   graph (adjusted Rand index between the two on the shared objects >= ``min_stability``; Ben-Hur et al. 2002,
   Lange et al. 2004). A ring or an isotropic class has no preferred cut, so resampled cuts disagree.
4. Once a class has passed, its number of groups is the largest k (up to ``max_groups``) whose spectral
   k-means partition (Ng, Jordan & Weiss 2001) agrees with the same partition of every resample (mean ARI >=
   ``min_stability``). The number of groups is therefore decided by the tests, not given.

A group's confidence (``cluster_stability``) is its clusterwise stability over those resamples (mean best-match
Jaccard, Hennig 2007; 1.0 for a class that stayed whole). :func:`refine_labels` runs all this inside each group
of a density clustering (the ``auto`` method of :mod:`dinoscope.analysis.clusters`). Members are then checked
like the other methods do (a per-group fence on the core distances,
:func:`~dinoscope.analysis.density.drop_stragglers`) so far objects become unclustered, and a member's
``cluster_quality`` is the share of its kNN edges that stay within its group.

Cost: each accepted or tried split runs ``1 + n_resamples`` sparse eigensolves on its part of the graph, so a
class costs O(edges · iterations · depth); no n×n matrix is ever built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

from dinoscope.analysis.density import clusterwise_jaccard, drop_stragglers

__all__ = ["MAX_CONDUCTANCE", "MAX_GROUPS", "MIN_STABILITY", "refine_labels", "spectral_labels"]

#: A split is a bottleneck when less than this share of the smaller side's edge ends leave it.
MAX_CONDUCTANCE = 0.1
#: A split is stable when resampled splits agree with it at least this much (adjusted Rand index).
MIN_STABILITY = 0.9
_SAMPLE_FRAC = 0.8
_DENSE_MAX = 600  # below this many nodes a dense eigendecomposition is faster than Lanczos
#: Most sub-groups tried per class.
MAX_GROUPS = 10


def spectral_labels(
    local: np.ndarray,
    dist: np.ndarray,
    core: np.ndarray,
    mgs: int,
    *,
    max_conductance: float = MAX_CONDUCTANCE,
    min_stability: float = MIN_STABILITY,
    max_groups: int = MAX_GROUPS,
    n_resamples: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """Stable spectral sub-groups of one class from its kNN graph.

    Args:
        local: (m, k) neighbour positions within the class (-1 = none), from
            :func:`~dinoscope.analysis.density.local_distances`.
        dist: (m, k) cosine distances to them (inf = none).
        core: (m,) core distances (distance to the ``min_samples``-th neighbour), for the straggler check.
        mgs: Smallest group; a split leaving a side smaller than this is not tried.
        max_conductance: Largest conductance of a bisection that says "this class has sub-groups".
        min_stability: Smallest mean agreement (ARI) between a partition and its resampled versions.
        max_groups: Most groups tried.
        n_resamples: Random 80 % subsamples each candidate partition is recomputed on.
        seed: Seed of the subsamples, the eigensolver's start vectors and k-means.

    Returns:
        (m,) labels (-1 = unclustered), (m,) quality in [0, 1] (share of a member's kNN edges inside its
        group), one record per label (``stability``: the clusterwise agreement of that group over the
        resamples, mean best-match Jaccard; 1.0 for a whole class) and the details (the bisection's
        conductance and agreement, the stability of every number of groups tried).

    Example:
        >>> labels, quality, groups, details = spectral_labels(local, dist, core, 10)  # doctest: +SKIP
    """
    m = len(local)
    graph = _adjacency(local)
    part = csgraph.connected_components(graph, directed=False)[1]
    big = np.flatnonzero(np.bincount(part) >= mgs)
    if len(big) > 1:  # parts with no edge between them are groups already: look for sub-groups in each
        kw = {"max_conductance": max_conductance, "min_stability": min_stability, "max_groups": max_groups}
        labels, quality, groups, details = _by_part(
            local, dist, core, mgs, part, big, n_resamples=n_resamples, seed=seed, **kw
        )
        return labels, quality, [{k: v for k, v in g.items() if k != "part"} for g in groups], details
    rng = np.random.default_rng(seed)
    whole = (np.zeros(m, dtype=np.int64), np.ones(m), [{"stability": 1.0}])
    found = _bisect(graph, mgs, rng) if m >= 2 * mgs else None
    details: dict[str, Any] = {"bisection_conductance": None if found is None else round(found[1], 4)}
    if found is None or found[1] >= max_conductance:
        return (*whole, details)
    details["bisection_agreement"] = agreement = _agreement(graph, found[0], mgs, n_resamples, min_stability, rng)
    if agreement < min_stability:
        return (*whole, details)
    # The class has sub-groups: their number is the largest k up to which every k-way partition is stable.
    top = int(min(max_groups, m // mgs))
    full = _embedding(graph, top, rng)
    samples = [np.flatnonzero(rng.random(m) < _SAMPLE_FRAC) for _ in range(n_resamples)]
    embedded = [_embedding(graph[keep][:, keep], top, rng) for keep in samples]
    chosen, scores = (found[0].astype(np.int64), None), {}
    for k in range(2, top + 1):
        labels = _kmeans(full, k, seed)
        runs = [_kmeans(z, k, seed + 1 + b) for b, z in enumerate(embedded)]
        scores[k] = round(float(np.mean([_ari(labels[keep], r) for keep, r in zip(samples, runs, strict=True)])), 4)
        if scores[k] < min_stability:
            break
        chosen = (labels, runs)
    details["stability_by_k"] = scores
    labels, runs = chosen
    stability = clusterwise_jaccard(labels, samples, runs) if runs is not None else np.full(2, agreement)
    labels = drop_stragglers(labels, core, local, dist)
    groups = [{"stability": round(float(v), 4)} for v in stability]
    return labels, _inside_share(local, labels), groups, details


def refine_labels(
    local: np.ndarray,
    dist: np.ndarray,
    core: np.ndarray,
    mgs: int,
    labels: np.ndarray,
    *,
    stability: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """Split every group of ``labels`` (e.g. HDBSCAN's) further where its own kNN graph has a stable bottleneck.

    Density clustering finds the groups separated by gaps and leaves far objects unclustered; this looks inside
    each group for overlapping sub-types with :func:`spectral_labels` on the group's own graph (edges to other
    groups and to unclustered objects removed). Unclustered objects stay unclustered. A group's stability is
    the smaller of its input group's ``stability[g]`` (1.0 when not given) and that of the split that made it.

    Returns:
        As :func:`spectral_labels`; ``details["groups"]`` holds the record of each input group.

    Example:
        >>> labels, quality, groups, details = refine_labels(local, dist, core, 10, hdbscan_found)  # doctest: +SKIP
    """
    parts = np.unique(labels[labels >= 0])
    found, _, groups, details = _by_part(local, dist, core, mgs, labels, parts, seed=seed)
    if stability is not None:
        for record in groups:
            record["stability"] = round(min(record["stability"], float(stability[record["part"]])), 4)
    for record in groups:
        record.pop("part")
    details = {"n_density_groups": len(parts), "density_groups": details["parts"]}
    return found, _inside_share(local, found), groups, details


def _by_part(
    local: np.ndarray,
    dist: np.ndarray,
    core: np.ndarray,
    mgs: int,
    part: np.ndarray,
    big: np.ndarray,
    **kw: Any,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """:func:`spectral_labels` of each part listed in ``big``; objects of the other parts unclustered."""
    m = len(local)
    labels = np.full(m, -1, dtype=np.int64)
    quality = np.zeros(m)
    groups: list[dict[str, Any]] = []
    details: dict[str, Any] = {"n_parts": len(big), "parts": []}
    for p in big:
        nodes = np.flatnonzero(part == p)
        where = np.full(m, -1, dtype=np.int64)
        where[nodes] = np.arange(len(nodes))
        sub = np.where(local[nodes] >= 0, where[np.maximum(local[nodes], 0)], -1)
        found, q, g, d = spectral_labels(sub, np.where(sub >= 0, dist[nodes], np.inf), core[nodes], mgs, **kw)
        labels[nodes] = np.where(found >= 0, found + len(groups), -1)
        quality[nodes] = q
        groups.extend({**record, "part": int(p)} for record in g)
        details["parts"].append(d)
    return labels, quality, groups, details


def _embedding(graph: sparse.csr_matrix, k: int, rng: np.random.Generator) -> np.ndarray:
    """(m, k) top eigenvectors of the normalised adjacency (the trivial one first), for k-means (Ng et al. 2001)."""
    deg = np.asarray(graph.sum(axis=1)).ravel()
    inv = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
    norm = sparse.diags(inv) @ graph @ sparse.diags(inv)
    if graph.shape[0] <= _DENSE_MAX:
        vals, vecs = np.linalg.eigh(norm.toarray())
    else:
        start = np.sqrt(deg) + 1e-3 * rng.standard_normal(len(deg))
        vals, vecs = eigsh(norm, k=k, which="LA", v0=start, tol=1e-4, maxiter=5000)
    return vecs[:, np.argsort(-vals)[:k]]


def _kmeans(embedded: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means labels of the first k spectral coordinates, rows scaled to unit length (Ng, Jordan & Weiss)."""
    from sklearn.cluster import KMeans

    z = embedded[:, :k]
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return KMeans(k, n_init=4, random_state=seed).fit_predict(z).astype(np.int64)


def _ari(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def _agreement(
    graph: sparse.csr_matrix, side: np.ndarray, mgs: int, n: int, bar: float, rng: np.random.Generator
) -> float:
    """Mean ARI between ``side`` and the bisections of ``n`` random 80 % subgraphs (0 where one finds none).

    Stops early once the mean can no longer reach ``bar``.
    """
    scores = []
    for _ in range(n):
        keep = np.flatnonzero(rng.random(len(side)) < _SAMPLE_FRAC)
        found = _bisect(graph[keep][:, keep], max(2, int(mgs * _SAMPLE_FRAC)), rng)
        scores.append(_ari2(side[keep], found[0]) if found is not None else 0.0)
        if sum(scores) + (n - len(scores)) < n * bar:
            break
    return float(np.mean(scores)) if scores else 0.0


def _ari2(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two boolean partitions (the 2×2 contingency table in closed form)."""
    n = len(a)
    if n < 2:
        return 0.0
    table = np.array([[np.sum(~a & ~b), np.sum(~a & b)], [np.sum(a & ~b), np.sum(a & b)]], dtype=np.float64)

    def comb(x: np.ndarray | float) -> np.ndarray | float:
        return x * (x - 1) / 2.0

    index = float(np.sum(comb(table)))
    rows, cols = float(np.sum(comb(table.sum(1)))), float(np.sum(comb(table.sum(0))))
    expected = rows * cols / comb(float(n))
    top = (rows + cols) / 2.0
    return 1.0 if top == expected else (index - expected) / (top - expected)


def _adjacency(local: np.ndarray) -> sparse.csr_matrix:
    """Unweighted symmetric (m, m) adjacency of the kNN edges (an edge where either is among the other's k)."""
    m, k = local.shape
    ok = local >= 0
    src = np.repeat(np.arange(m), k)[ok.ravel()]
    g = sparse.csr_matrix((np.ones(len(src), dtype=np.float64), (src, local[ok])), shape=(m, m))
    g = g.maximum(g.T).tocsr()
    g.setdiag(0)
    g.eliminate_zeros()
    return g


def _bisect(graph: sparse.csr_matrix, mgs: int, rng: np.random.Generator) -> tuple[np.ndarray, float] | None:
    """(side, conductance) of the best sweep cut along the Fiedler vector; None when no cut leaves mgs a side."""
    m = graph.shape[0]
    if m < 2 * mgs:
        return None
    deg = np.asarray(graph.sum(axis=1)).ravel()
    n_parts, part = csgraph.connected_components(graph, directed=False)
    if n_parts > 1:  # no edge between parts: order them largest first (each boundary has conductance 0)
        sizes = np.bincount(part)
        rank = np.empty(n_parts, dtype=np.int64)
        rank[np.lexsort((np.arange(n_parts), -sizes))] = np.arange(n_parts)
        fiedler: np.ndarray | None = rank[part].astype(np.float64)
    else:
        fiedler = _fiedler(graph, deg, rng)
    if fiedler is None:
        return None
    return _sweep(graph, fiedler, deg, mgs)


def _fiedler(graph: sparse.csr_matrix, deg: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Second eigenvector of the random-walk operator ``D^-1 A`` (via the symmetric normalised adjacency)."""
    inv = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
    norm = sparse.diags(inv) @ graph @ sparse.diags(inv)
    trivial = np.sqrt(deg) / max(np.linalg.norm(np.sqrt(deg)), 1e-12)
    if graph.shape[0] <= _DENSE_MAX:
        vals, vecs = np.linalg.eigh(norm.toarray())
        return _second(vals, vecs, trivial) * inv
    start = trivial + 1e-3 * rng.standard_normal(len(deg))
    try:
        vals, vecs = eigsh(norm, k=3, which="LA", v0=start, tol=1e-6, maxiter=3000)
    except ArpackNoConvergence as exc:  # keep what converged; rare on kNN graphs
        if exc.eigenvalues is None or len(exc.eigenvalues) < 2:
            return None
        vals, vecs = exc.eigenvalues, exc.eigenvectors
    return _second(vals, vecs, trivial) * inv


def _second(vals: np.ndarray, vecs: np.ndarray, trivial: np.ndarray) -> np.ndarray:
    """The top eigenvector after removing the trivial one (which a disconnected graph may mix in)."""
    order = np.argsort(-vals)
    top, second = vecs[:, order[0]], vecs[:, order[1]]
    # Project out the trivial direction: with several components the top eigenspace is degenerate.
    best = second - trivial * (trivial @ second)
    alt = top - trivial * (trivial @ top)
    return best if np.linalg.norm(best) >= np.linalg.norm(alt) else alt


def _sweep(graph: sparse.csr_matrix, score: np.ndarray, deg: np.ndarray, mgs: int) -> tuple[np.ndarray, float] | None:
    """The prefix of ``score``'s order with the smallest conductance, both sides >= ``mgs`` (O(edges))."""
    m = len(score)
    order = np.argsort(score, kind="stable")
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m)
    upper = sparse.triu(graph, k=1).tocoo()
    lo = np.minimum(rank[upper.row], rank[upper.col])
    hi = np.maximum(rank[upper.row], rank[upper.col])
    change = np.bincount(lo, weights=upper.data, minlength=m + 1) - np.bincount(hi, weights=upper.data, minlength=m + 1)
    cut = np.cumsum(change)[:-1]  # edges between the first t+1 objects and the rest
    vol = np.cumsum(deg[order])
    total = vol[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = cut / np.minimum(vol, total - vol)
    t = np.arange(m)
    phi[(t + 1 < mgs) | (m - t - 1 < mgs) | ~np.isfinite(phi)] = np.inf
    best = int(np.argmin(phi))
    if not np.isfinite(phi[best]):
        return None
    return rank > best, float(phi[best])


def _inside_share(local: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(m,) share of each member's kNN edges that end in its own group; 0 for unclustered objects."""
    valid = local >= 0
    same = valid & (labels[np.maximum(local, 0)] == labels[:, None])
    share = same.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    return np.where(labels >= 0, share, 0.0)
