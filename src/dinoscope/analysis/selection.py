"""Which unlabelled rows to label next: typicality, coverage and loss-weighted selection on one kNN graph.

At small budgets, typicality and coverage on self-supervised features beat random and uncertainty sampling:

- ``typicality`` — TypiClust (Hacohen et al., ICML 2022): k-means into ``min(n_labelled + budget, 1000)``
  regions over labelled + pool; repeatedly take the region with the fewest labelled or chosen members (the
  largest first among equals) and choose its most typical pool row (:func:`~.curation.compute_typicality`).
- ``coverage`` — ProbCover (Yehuda et al., "Active learning through a covering lens", NeurIPS 2022): balls of
  radius ``delta`` around every row (its graph neighbours closer than ``delta``); ``delta`` is the largest
  candidate radius whose balls stay pure (>= 95 % of rows' balls hold one k-means region, k = ``n_purity``);
  greedy max coverage: labelled rows cover their balls first, then each pick is the pool row whose ball holds
  the most uncovered rows. When everything is covered the remaining picks follow typicality.
- ``loss`` — loss-weighted: coarse k-means regions holding about :data:`LABELLED_PER_REGION` labelled rows
  each; a region's loss is the mean loss of its labelled rows, shrunk towards the global mean by
  :data:`LOSS_PRIOR` pseudo-rows; budget goes to regions in proportion to ``loss x pool rows`` (D'Hondt: the
  next pick goes to the region with the highest ``need / (picks + 1)``), and inside a region in TypiClust's
  order over the fine regions. Needs per-row losses (``dinoscope errors``).

Never near-duplicates: a pool row in the same copy group (:func:`~.curation.find_copy_groups`) as a labelled
row is never chosen, and once a row is chosen the rest of its group is out. Because an approximate (HNSW) graph
can miss a copy's partner, the chosen rows are then checked exactly against each other and against every
labelled row with the same rule (:func:`~.curation.find_exact_copies`); a copy found is dropped and replaced.
Extra ``views`` of the rows (the denoised embedding of :mod:`~dinoscope.embed.views`, given by ``dinoscope
select``) widen "copy" to a copy in any view, in the groups and in the exact check alike.
When too few rows remain, fewer than ``budget`` are returned (``info["n_short"]``).

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 8)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> sel = select_to_label(x, np.zeros(200, bool), 10, "typicality")
    >>> len(sel.rows), sel.strategy
    (10, 'typicality')
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import sparse

from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.curation import (
    build_curation_graph,
    compute_typicality,
    find_exact_copies,
    find_view_copy_groups,
    fit_kmeans,
    neighbour_scale,
)

__all__ = ["MAX_REGIONS", "STRATEGIES", "Selection", "select_to_label"]

logger = logging.getLogger(__name__)

Strategy = Literal["typicality", "coverage", "loss"]
STRATEGIES = ("typicality", "coverage", "loss")
#: Most k-means regions (TypiClust's own cap is 500; 1,000 keeps budgets of a few thousand diverse).
MAX_REGIONS = 1000
#: ProbCover's purity target.
PURITY = 0.95
#: Pseudo-rows at the global mean loss added to each region (shrinks regions with few labelled rows).
LOSS_PRIOR = 2.0
#: Rounds of the exact check of the chosen rows (each drops the copies it finds and chooses again).
_CHECK_ROUNDS = 3
#: Labelled rows per loss region (the loss strategy's coarse k-means), so that a region's mean loss is measured.
LABELLED_PER_REGION = 10


@dataclass
class Selection:
    """Rows chosen to label.

    Attributes:
        rows: (B,) int64 chosen rows, in the order chosen.
        score: (B,) what chose each: typicality (``typicality``), rows newly covered (``coverage``) or the
            region's loss relative to the mean (``loss``).
        strategy: The strategy used.
        region: (N,) k-means region of every row.
        info: Regions, radius and purity, the duplicate rule, blocked rows, counts.
    """

    rows: np.ndarray
    score: np.ndarray
    strategy: str
    region: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def select_to_label(
    vectors: np.ndarray,
    is_labelled: np.ndarray,
    budget: int,
    strategy: Strategy,
    *,
    loss: np.ndarray | None = None,
    n_purity: int = 10,
    graph: NeighborGraph | None = None,
    views: Sequence[np.ndarray] = (),
    seed: int = 0,
) -> Selection:
    """Choose ``budget`` pool rows (``~is_labelled``) to label next.

    Args:
        vectors: (N, D) float32 unit vectors of labelled and pool rows.
        is_labelled: (N,) bool.
        budget: Rows to choose.
        strategy: ``typicality``, ``coverage`` or ``loss`` (see the module docstring).
        loss: (N,) per-row loss of the labelled rows (NaN unknown); required by ``loss``.
        n_purity: k-means regions of ProbCover's purity test (the number of classes is the paper's choice).
        graph: The kNN graph of ``vectors`` (built when None).
        views: Other (N, D') unit-vector views of the same rows whose copies count as copies too.
        seed: Seed of k-means and the graph.

    Returns:
        The :class:`Selection`.
    """
    n = len(vectors)
    labelled = np.asarray(is_labelled, dtype=bool)
    if labelled.shape != (n,):
        raise ValueError(f"is_labelled has shape {labelled.shape}, expected ({n},)")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    graph = build_curation_graph(vectors, seed=seed) if graph is None else graph
    groups, dup_info, extra = find_view_copy_groups(vectors, graph, views, seed=seed)
    blocked = labelled | np.isin(groups, groups[labelled & (groups >= 0)]) & (groups >= 0)
    n_regions = int(min(int(labelled.sum()) + budget, MAX_REGIONS, n))
    region, _ = fit_kmeans(vectors, n_regions, seed=seed)
    typicality = compute_typicality(graph, n)
    info: dict[str, Any] = {
        "n_regions": n_regions,
        "n_labelled": int(labelled.sum()),
        "n_pool": int((~labelled).sum()),
        "n_blocked_copies_of_labelled": int((blocked & ~labelled).sum()),
        "duplicates": dup_info,
    }
    picker = _Picker(groups, blocked)
    if strategy == "loss" and (loss is None or not np.isfinite(np.asarray(loss, dtype=float)[labelled]).any()):
        raise ValueError("the loss strategy needs per-row losses of the labelled rows (run `dinoscope errors`)")

    def pick(k: int) -> tuple[list[int], list[float]]:
        if strategy == "typicality":
            return _typiclust(region, labelled, typicality, k, picker)
        if strategy == "coverage":
            return _probcover(vectors, graph, labelled, typicality, k, picker, n_purity, seed, info)
        return _loss_weighted(vectors, region, labelled, np.asarray(loss, float), typicality, k, picker, seed, info)

    rows, score = pick(budget)
    checks = [(vectors, neighbour_scale(graph, n), float(dup_info.get("threshold", 0.0)))]
    checks += [(v, neighbour_scale(g, n), float(i.get("threshold", 0.0))) for v, g, i in extra]
    n_dropped = 0
    for _ in range(_CHECK_ROUNDS):  # the approximate graph can miss a copy: check the chosen rows exactly
        chosen, others = np.asarray(rows, np.int64), np.flatnonzero(labelled)
        bad = np.zeros(len(chosen), dtype=bool)
        for view, scale, threshold in checks:
            bad |= find_exact_copies(view, chosen, others, scale, threshold)
        if not bad.any():
            break
        n_dropped += int(bad.sum())
        rows = [r for r, b in zip(rows, bad, strict=True) if not b]
        score = [v for v, b in zip(score, bad, strict=True) if not b]
        more, more_score = pick(budget - len(rows))
        rows, score = rows + more, score + more_score
    info["n_dropped_by_exact_check"] = n_dropped
    info["n_selected"] = len(rows)
    info["n_short"] = int(budget - len(rows))
    if info["n_short"]:
        logger.warning("select: only %d of %d rows left that are not copies of labelled or chosen rows", len(rows),
                       budget)  # fmt: skip
    return Selection(np.asarray(rows, np.int64), np.asarray(score, float), strategy, region, info)


class _Picker:
    """Tracks which rows may still be chosen: choosing a row blocks its whole copy group."""

    def __init__(self, groups: np.ndarray, blocked: np.ndarray) -> None:
        self.groups, self.blocked = groups, blocked.copy()
        members = np.flatnonzero(groups >= 0)
        order = members[np.argsort(groups[members], kind="stable")]
        self.members = np.split(order, np.flatnonzero(np.diff(groups[order])) + 1) if len(order) else []
        self.index = {int(groups[m[0]]): m for m in self.members}

    def take(self, row: int) -> None:
        self.blocked[row] = True
        g = int(self.groups[row])
        if g >= 0:
            self.blocked[self.index[g]] = True


def _region_queues(region: np.ndarray, typicality: np.ndarray, candidates: np.ndarray) -> dict[int, list[int]]:
    """Per region, its candidate rows sorted by typicality (most typical last, for ``pop``)."""
    rows = np.flatnonzero(candidates)
    order = rows[np.lexsort((-rows, typicality[rows], region[rows]))]
    out: dict[int, list[int]] = {}
    bounds = np.flatnonzero(np.diff(region[order])) + 1
    for part in np.split(order, bounds) if len(order) else []:
        out[int(region[part[0]])] = part.tolist()
    return out


def _next_free(queue: list[int], picker: _Picker) -> int | None:
    while queue:
        row = queue.pop()
        if not picker.blocked[row]:
            return row
    return None


def _typiclust(
    region: np.ndarray, labelled: np.ndarray, typicality: np.ndarray, budget: int, picker: _Picker
) -> tuple[list[int], list[float]]:
    queues = _region_queues(region, typicality, ~picker.blocked)
    sizes = np.bincount(region, minlength=region.max() + 1)
    covered = np.bincount(region[labelled], minlength=len(sizes))
    heap = [(int(covered[c]), -int(sizes[c]), c) for c in queues]
    heapq.heapify(heap)
    rows: list[int] = []
    score: list[float] = []
    while heap and len(rows) < budget:
        n_cov, neg_size, c = heapq.heappop(heap)
        row = _next_free(queues[c], picker)
        if row is None:
            continue
        picker.take(row)
        rows.append(row)
        score.append(float(typicality[row]))
        heapq.heappush(heap, (n_cov + 1, neg_size, c))
    return rows, score


def _loss_weighted(
    vectors: np.ndarray,
    region: np.ndarray,
    labelled: np.ndarray,
    loss: np.ndarray,
    typicality: np.ndarray,
    budget: int,
    picker: _Picker,
    seed: int,
    info: dict[str, Any],
) -> tuple[list[int], list[float]]:
    """D'Hondt over coarse loss regions (about :data:`LABELLED_PER_REGION` labelled rows each), TypiClust's
    order over the fine regions inside each."""
    known = labelled & np.isfinite(loss)
    k = int(np.clip(known.sum() // LABELLED_PER_REGION, 2, MAX_REGIONS))
    coarse, _ = fit_kmeans(vectors, k, seed=seed + 1)
    mean = float(loss[known].mean())
    total = np.bincount(coarse[known], weights=loss[known], minlength=k)
    count = np.bincount(coarse[known], minlength=k)
    region_loss = (total + LOSS_PRIOR * mean) / (count + LOSS_PRIOR) / max(mean, 1e-12)
    n_fine = int(region.max()) + 1
    queues = _region_queues(coarse * n_fine + region, typicality, ~picker.blocked)
    sizes = np.bincount(region, minlength=n_fine)
    covered = np.bincount(region[labelled], minlength=n_fine)
    inner: dict[int, list[tuple[int, int, int]]] = {}
    for key in queues:
        inner.setdefault(key // n_fine, []).append((int(covered[key % n_fine]), -int(sizes[key % n_fine]), key))
    for heap in inner.values():
        heapq.heapify(heap)
    need = {c: region_loss[c] * sum(len(queues[key]) for *_, key in heap) for c, heap in inner.items()}
    outer = [(-need[c], c, 0) for c in inner]
    heapq.heapify(outer)
    rows: list[int] = []
    score: list[float] = []
    while outer and len(rows) < budget:
        _, c, picks = heapq.heappop(outer)
        row = None
        while inner[c] and row is None:
            n_cov, neg_size, key = heapq.heappop(inner[c])
            row = _next_free(queues[key], picker)
            if row is not None:
                heapq.heappush(inner[c], (n_cov + 1, neg_size, key))
        if row is None:
            continue
        picker.take(row)
        rows.append(row)
        score.append(float(region_loss[c]))
        heapq.heappush(outer, (-need[c] / (picks + 2), c, picks + 1))
    info.update(mean_loss=mean, prior_rows=LOSS_PRIOR, n_loss_regions=k, n_loss_regions_known=int((count > 0).sum()))
    return rows, score


def _probcover(
    vectors: np.ndarray,
    graph: NeighborGraph,
    labelled: np.ndarray,
    typicality: np.ndarray,
    budget: int,
    picker: _Picker,
    n_purity: int,
    seed: int,
    info: dict[str, Any],
) -> tuple[list[int], list[float]]:
    n = len(vectors)
    purity_labels, _ = fit_kmeans(vectors, n_purity, seed=seed)
    delta, purity = _purity_radius(graph, purity_labels)
    src = np.broadcast_to(graph.rows[:, None], graph.indices.shape)
    inside = (graph.indices >= 0) & (1.0 - graph.sims <= delta)
    i = np.concatenate([src[inside], np.arange(n)])  # a ball holds its centre
    j = np.concatenate([graph.indices[inside], np.arange(n)])
    ball = sparse.csr_matrix((np.ones(len(i), np.int32), (i, j)), shape=(n, n))
    holders = ball.T.tocsr()  # row j: the balls that hold j
    covered = np.zeros(n, dtype=bool)
    covered[ball[np.flatnonzero(labelled)].indices] = True
    degree = np.asarray(ball[:, ~covered].sum(axis=1)).ravel().astype(np.int64)
    rows: list[int] = []
    score: list[float] = []
    while len(rows) < budget:
        open_deg = np.where(picker.blocked, -1, degree)
        best = int(open_deg.argmax())
        if open_deg[best] <= 0:
            break
        picker.take(best)
        rows.append(best)
        score.append(float(degree[best]))
        new = ball.indices[ball.indptr[best] : ball.indptr[best + 1]]
        new = new[~covered[new]]
        covered[new] = True
        for row in new:
            degree[holders.indices[holders.indptr[row] : holders.indptr[row + 1]]] -= 1
    info.update(radius=delta, purity=purity, purity_target=PURITY, n_purity_regions=n_purity,
                covered_frac=float(covered.mean()), n_by_coverage=len(rows))  # fmt: skip
    if len(rows) < budget:  # everything covered: the rest by typicality
        region = np.zeros(n, dtype=np.int64)
        more, more_score = _typiclust(region, labelled, typicality, budget - len(rows), picker)
        rows += more
        score += [0.0] * len(more_score)
    return rows, score


def _purity_radius(graph: NeighborGraph, labels: np.ndarray) -> tuple[float, float]:
    """The largest candidate radius (quantiles of the graph's distances) whose balls are >= PURITY pure."""
    valid = graph.indices >= 0
    dist = np.where(valid, 1.0 - graph.sims, np.inf)
    other = valid & (labels[np.maximum(graph.indices, 0)] != labels[graph.rows][:, None])
    first_impure = np.where(other, dist, np.inf).min(axis=1)  # a ball is pure while delta < this
    candidates = np.quantile(dist[valid], np.linspace(0.02, 0.98, 49)) if valid.any() else np.array([0.0])
    best, best_purity = float(candidates[0]), float((first_impure > candidates[0]).mean())
    for delta in candidates:
        purity = float((first_impure > delta).mean())
        if purity >= PURITY:
            best, best_purity = float(delta), purity
    return best, best_purity
