"""Exact and near duplicates from content keys and the shared neighbour graph, grouped, with a copy to keep.

Exact duplicates share a content key (content hash + frame + rounded box: the same pixels) or have identical
vectors (identical crops cut from different files). Near duplicates come from the vectors, with a threshold
that adapts to the data instead of a fixed cosine cut-off (fastdup's habit):

1. Every graph edge ``(i, j)`` among the first k = 10 neighbours gets a *relative distance*
   ``rho = (1 - cos_ij) / min(b_i, b_j)``, where ``b_i`` is the cosine distance from ``i`` to its k-th
   neighbour: the local scale of ordinary neighbours. A copy sits much closer than ordinary neighbours do,
   whatever the model or the region of the space (absolute cut-offs fail both ways: EfficientNet-Lite0 puts
   rotated copies of a PPE photo at cosine 0.75-0.9, while tight synthetic clusters have ordinary nearest
   neighbours above 0.95). ``b`` at rank k stays clean while a group holds fewer than k copies; the smaller
   scale of the two ends judges the pair, so an edge reads the same from both sides.
2. When duplicates exist, ``log rho`` over the edges with ``rho < 1`` is bimodal (copies near 0, ordinary
   neighbours near 1). Otsu's threshold (Otsu, "A threshold selection method from gray-level histograms",
   IEEE SMC 1979) splits the two modes; it is used when its separability ``eta`` (between-class / total
   variance) reaches :data:`ETA_MIN` and the cut lies below :data:`RHO_MAX`. Measured: data without
   duplicates gives ``eta`` 0.60-0.67 (synthetic mixtures; the PPE set with one photo per source), data with
   a duplicate mode 0.75-0.98 (PPE whole images 0.81). In an empty gap between modes the cut takes its middle.
3. Otherwise (no duplicate mode, or too few copies to move Otsu) a far-out Tukey fence on the same sample,
   ``exp(Q1 - 3 IQR)`` of ``log rho``, capped at :data:`FENCE_MAX` = 0.5, flags what lies far below ordinary
   neighbours. The sample is all edges, not each object's nearest one: edges stay dominated by ordinary
   neighbours even when most objects have a copy (PPE boxes), where nearest-neighbour statistics would
   describe the copies themselves. Exact-looking copies in otherwise clean data always pass the fence.
4. Mutual-rank evidence (:mod:`~dinoscope.analysis.duplicates_rules`): when Otsu found a duplicate mode, pairs
   that are each other's top-2 neighbours are copies up to a larger ``t_mutual``, fitted on the data and used
   only where ordinary neighbours are rarely mutual (likelihood ratio >= 20; PPE whole images ~100, mixtures
   without many copies 6-8). Their score is ``rho * t / t_mutual``. PPE whole images (truth: the ``.rf.``
   copies): pair precision / recall 0.987 / 0.899 by relative distance alone, 0.988 / 0.984 with it.

The same score is the quality: ``duplicate_quality = min(1, score)`` of an object's closest partner
(0 for exact duplicates, 1 without any), so that ``is_near_duplicate`` is exactly
``duplicate_quality <= threshold`` (cleanlab's convention: low = suspicious). cleanlab's near-duplicate check
is likewise relative to the data's median nearest-neighbour distance, with a fixed factor.

Example:
    >>> from dinoscope.analysis.neighbors import build_neighbor_graph
    >>> res = find_duplicates(vectors, build_neighbor_graph(vectors, 15), keys)  # doctest: +SKIP
    >>> res.findings.sort_values("duplicate_quality").head()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from dinoscope.analysis.base import AnalysisResult, NeighborGraph
from dinoscope.analysis.duplicates_rules import (
    ETA_MIN,
    FENCE_MAX,
    IDENTICAL_DIST,
    RHO_MAX,
    choose_threshold,
    mutual_edges,
    mutual_threshold,
)

__all__ = ["DEFAULT_K", "ETA_MIN", "FENCE_MAX", "IDENTICAL_DIST", "RHO_MAX", "find_duplicates"]

logger = logging.getLogger(__name__)

#: Neighbours read per object by default (the k-th sets the local scale).
DEFAULT_K = 10


def find_duplicates(
    vectors: np.ndarray,
    graph: NeighborGraph,
    content_key: np.ndarray,
    *,
    k: int | None = None,
    threshold: float | None = None,
    min_similarity: float | None = None,
    area: np.ndarray | None = None,
    split_rank: np.ndarray | None = None,
) -> AnalysisResult:
    """Flag exact and near duplicates, group them and choose the copy to keep.

    Args:
        vectors: (N, D) unit vectors of the run (only the row count is read; a memmap is never loaded).
        graph: The all-object neighbour graph (``indices`` and ``rows`` in global row numbers).
        content_key: (N,) str: content hash + frame + rounded box of each object; ``""`` (or None) unknown.
            Objects with equal non-empty keys are exact duplicates, neighbours or not.
        k: Neighbours per object read from the graph (default ``min(graph.k, 10)``); the k-th sets the
            local scale, so groups of up to k - 1 copies are recognised.
        threshold: Relative distance ``rho`` at or below which a pair is a near duplicate (default: chosen
            from the data, see the module docstring; the rule and value are recorded in ``info``, with the
            mutual-rank rule's ``mutual_rule``, ``mutual_threshold``, ``mutual_lr`` and ``n_mutual_pairs``).
            A user threshold turns the mutual-rank rule off.
        min_similarity: Optional absolute cosine similarity at or above which a graph pair is also a near
            duplicate (for groups larger than k, e.g. a static video scene, that the relative rule cannot see).
        area: (N,) image or box area; the largest copy of a group is kept.
        split_rank: (N,) split order (0 = train, 1 = val, 2 = test); among equal areas the earliest is kept.

    Returns:
        ``AnalysisResult("duplicates")``; findings indexed by global row with columns ``is_duplicate``
        (exact or near), ``is_exact_duplicate``, ``is_near_duplicate``, ``duplicate_quality`` (low = duplicate),
        ``nearest_duplicate`` (row of the closest partner, -1 none), ``duplicate_group`` (-1 none; 0 is the
        largest group), ``duplicate_of`` (row of the kept copy, -1 for keepers and singletons) and ``keep``.

    Example:
        >>> x = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]
        >>> g = NeighborGraph(np.array([[1], [0], [0], [0]]), np.array([[1.0], [1.0], [0], [0]], np.float32),
        ...                   np.arange(4))
        >>> find_duplicates(x, g, np.array(["a", "a", "", ""])).findings["duplicate_of"].tolist()
        [-1, 0, -1, -1]
    """
    n = int(vectors.shape[0])
    keys = _check_array(content_key, n, "content_key")
    k = min(graph.k, DEFAULT_K) if k is None else int(k)
    if not 1 <= k <= graph.k:
        raise ValueError(f"k must be in [1, {graph.k}] (the graph's neighbours per row), got {k}")
    rows, idx, graph_sims = np.asarray(graph.rows, np.int64), graph.indices[:, :k], graph.sims[:, :k]
    src, dst, sims = _edges(rows, idx, graph_sims, n)
    rho = _relative_distance(rows, graph_sims, n, src, dst, sims)
    identical = (1.0 - sims) <= IDENTICAL_DIST
    exact_src, exact_dst = _key_edges(keys)
    is_exact = np.zeros(n, dtype=bool)
    is_exact[exact_src] = is_exact[exact_dst] = True
    is_exact[src[identical]] = is_exact[dst[identical]] = True

    info: dict[str, Any] = {"k": k, "n_edges": len(src), "identical_distance": IDENTICAL_DIST}
    info.update(choose_threshold(rho[~identical]) if threshold is None else {"rule": "user", "threshold": threshold})
    t = float(info["threshold"])
    mutual = mutual_edges(rows, idx, n, src, dst)
    if info["rule"] == "otsu":
        info.update(mutual_threshold(rho, mutual, t, src, dst))
    score = _mutual_discount(rho, mutual, t, info)
    near_edge = (score <= t) | identical
    if graph.method != "exact" and (near_edge & ~identical).any():
        rho = _verify_scales(vectors, graph, k, rows, graph_sims, n, src, dst, sims, near_edge & ~identical, info)
        score = _mutual_discount(rho, mutual, t, info)
        near_edge = (score <= t) | identical
    if min_similarity is not None:
        near_edge |= sims >= min_similarity
        info["min_similarity"] = float(min_similarity)

    quality, partner = _quality(score, src, dst, n)
    quality[is_exact] = 0.0
    partner[exact_dst], partner[exact_src] = exact_src, exact_dst  # a same-content copy is the closest
    is_near = np.zeros(n, dtype=bool)
    is_near[src[near_edge]] = is_near[dst[near_edge]] = True
    group = _groups(n, np.concatenate([exact_src, src[near_edge]]), np.concatenate([exact_dst, dst[near_edge]]))
    keeper = _keepers(group, _check_optional(area, n, "area"), _check_optional(split_rank, n, "split_rank"))
    duplicate_of = np.where((group >= 0) & (keeper != np.arange(n)), keeper, -1)
    findings = pd.DataFrame(
        {
            "is_duplicate": is_exact | is_near,
            "is_exact_duplicate": is_exact,
            "is_near_duplicate": is_near,
            "duplicate_quality": quality,
            "nearest_duplicate": np.where(is_exact | is_near, partner, -1),
            "duplicate_group": group,
            "duplicate_of": duplicate_of,
            "keep": duplicate_of < 0,
        }
    )
    sizes = np.bincount(group[group >= 0]) if (group >= 0).any() else np.zeros(0, dtype=np.int64)
    counts = {
        "n_exact": int(is_exact.sum()),
        "n_near": int(is_near.sum()),
        "n_duplicates": int((is_exact | is_near).sum()),
        "n_groups": len(sizes),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
        "n_to_drop": int((duplicate_of >= 0).sum()),
    }
    info.update(counts)
    info["n_mutual_pairs"] = int(((score < rho) & near_edge & (rho > t)).sum())  # directed edges
    logger.info("duplicates: %s (rule %s, threshold %.3g)", counts, info["rule"], t)
    return AnalysisResult("duplicates", findings, info=info, summary={"all": counts})


# ------------------------------------------------------------------------------------------------- scoring


def _edges(rows: np.ndarray, idx: np.ndarray, sims: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """(E,) source row, neighbour row and similarity of every valid graph edge (self-loops dropped)."""
    idx = np.asarray(idx, dtype=np.int64)
    sims = np.asarray(sims, dtype=np.float64)
    if len(rows) and (rows.max() >= n or idx.max(initial=-1) >= n):
        raise ValueError(f"graph refers to rows beyond the {n} vectors; build it from the same run")
    ok = (idx >= 0) & np.isfinite(sims) & (idx != rows[:, None])
    src = np.broadcast_to(rows[:, None], idx.shape)[ok]
    return src, idx[ok], np.clip(sims[ok], -1.0, 1.0)


#: Most objects whose neighbourhood scale is re-measured exactly when the graph is approximate.
VERIFY_MAX = 5_000


def _verify_scales(
    vectors: np.ndarray,
    graph: NeighborGraph,
    k: int,
    rows: np.ndarray,
    graph_sims: np.ndarray,
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    sims: np.ndarray,
    near: np.ndarray,
    info: dict[str, Any],
) -> np.ndarray:
    """Relative distances with the k-th-neighbour scale of the near-duplicate candidates measured exactly.

    An approximate graph can miss most of an object's true neighbours (HNSW stuck in a neighbouring cluster);
    its k-th neighbour then looks far, and the one or two true neighbours it did find look like copies. The
    candidates' scales are re-measured by exact search (cost: candidates × N × D, bounded by VERIFY_MAX).
    """
    from dinoscope.analysis.neighbors_exact import exact_search

    order = np.argsort(-sims[near], kind="stable")  # the closest pairs first when there are too many
    ends = np.stack([src[near][order], dst[near][order]], axis=1).ravel()
    _, first = np.unique(ends, return_index=True)
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    cand = ends[np.sort(first)]
    cand = cand[position[cand] >= 0]
    info.update(n_scales_verified=min(len(cand), VERIFY_MAX), n_scale_candidates=len(cand))
    cand = np.sort(cand[:VERIFY_MAX])
    _, exact_sims = exact_search(np.asarray(vectors[cand], dtype=np.float32), vectors, k, self_rows=cand)
    corrected = np.array(graph_sims, dtype=np.float32, copy=True)
    corrected[position[cand]] = np.maximum(corrected[position[cand]], exact_sims)  # both sorted: min = exact k-th
    return _relative_distance(rows, corrected, n, src, dst, sims)


def _relative_distance(
    rows: np.ndarray, graph_sims: np.ndarray, n: int, src: np.ndarray, dst: np.ndarray, sims: np.ndarray
) -> np.ndarray:
    """(E,) cosine distance of each edge over the smaller k-th-neighbour distance of its two ends."""
    last = np.where(np.isfinite(graph_sims), graph_sims, np.inf).astype(np.float64).min(axis=1)
    scale = np.full(n, np.nan)
    scale[rows] = np.where(np.isfinite(last), 1.0 - np.clip(last, -1.0, 1.0), np.nan)
    b = np.fmin(scale[src], scale[dst])  # fmin ignores NaN: a neighbour outside the graph uses the source's
    dist = np.maximum(1.0 - sims, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(b > IDENTICAL_DIST, dist / b, np.where(dist <= IDENTICAL_DIST, 0.0, np.inf))
    return rho


def _mutual_discount(rho: np.ndarray, mutual: np.ndarray, t: float, info: dict[str, Any]) -> np.ndarray:
    """(E,) the score of each edge: ``rho``, scaled by ``t / t_mutual`` on mutual pairs (so that a mutual pair
    at ``t_mutual`` scores ``t``); ``rho`` itself when the mutual rule is off."""
    t_mutual = float(info.get("mutual_threshold", t))
    if info.get("mutual_rule") != "mutual" or t_mutual <= t or t <= 0:
        return rho
    return np.where(mutual, rho * (t / t_mutual), rho)


def _quality(rho: np.ndarray, src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(N,) smallest relative distance over the edges touching each row (clipped to 1) and that partner."""
    both = np.concatenate([src, dst])
    other = np.concatenate([dst, src])
    r = np.concatenate([rho, rho])
    order = np.lexsort((r, both))
    both, other, r = both[order], other[order], r[order]
    first = np.ones(len(both), dtype=bool)
    first[1:] = both[1:] != both[:-1]
    quality = np.ones(n)
    partner = np.full(n, -1, dtype=np.int64)
    quality[both[first]] = np.minimum(r[first], 1.0)
    partner[both[first]] = other[first]
    return quality, partner


# -------------------------------------------------------------------------------------------- groups, keep


def _key_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining every object with a non-empty content key to the first object sharing it."""
    valid = np.array([isinstance(k, str) and k != "" for k in keys], dtype=bool)
    rows = np.flatnonzero(valid)
    if len(rows) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes, _ = pd.factorize(pd.Series(keys[rows], dtype=object))
    first = np.full(codes.max() + 1, -1, dtype=np.int64)
    first[codes[::-1]] = rows[::-1]  # the lowest row of each key wins
    head = first[codes]
    dup = head != rows
    return head[dup], rows[dup]


def _groups(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) group id of every row (connected components of the pairs), -1 alone; 0 is the largest group."""
    if len(a) == 0:
        return np.full(n, -1, dtype=np.int64)
    adj = sparse.coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    sizes = np.bincount(comp)
    first_row = np.full(len(sizes), n, dtype=np.int64)
    np.minimum.at(first_row, comp, np.arange(n))
    multi = np.flatnonzero(sizes > 1)
    order = multi[np.lexsort((first_row[multi], -sizes[multi]))]
    rank = np.full(len(sizes), -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[comp]


def _keepers(group: np.ndarray, area: np.ndarray | None, split_rank: np.ndarray | None) -> np.ndarray:
    """(N,) row of the copy kept in each row's group: largest area, then earliest split, then lowest row."""
    n = len(group)
    rows = np.arange(n)
    area_key = -np.asarray(area, dtype=np.float64) if area is not None else np.zeros(n)
    split_key = np.asarray(split_rank, dtype=np.float64) if split_rank is not None else np.zeros(n)
    order = np.lexsort((rows, split_key, area_key, group))
    g = group[order]
    first = np.ones(n, dtype=bool)
    first[1:] = g[1:] != g[:-1]
    keeper_of_group = order[first]
    keeper = rows.copy()
    members = group >= 0
    keeper[members] = keeper_of_group[np.searchsorted(g[first], group[members])]
    return keeper


def _check_array(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) to match the vectors")
    return arr


def _check_optional(values: Any, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) to match the vectors")
    return arr
