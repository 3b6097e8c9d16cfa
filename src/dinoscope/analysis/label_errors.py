"""Label-error candidates from neighbour class votes and, optionally, a cross-validated linear probe.

Every labelled object is classified by its neighbours, as in the weighted kNN evaluation of self-supervised
features (Wu et al., "Unsupervised feature learning via non-parametric instance discrimination", CVPR 2018;
the DINO/DINOv2 kNN protocol, Caron et al. 2021, Oquab et al. 2024): neighbour ``j`` votes for its class with
weight ``exp(cos_ij / T)``, ``T = 0.07``. One extra background vote of the weight of a neighbour at the
data's typical k-th-neighbour similarity is spread over the classes by their frequency: an outlier, whose
neighbours are all far, then gets near-prior shares instead of a confident vote from whichever class happens
to be nearest (without it, planted outliers crowd the top of the ranking). The object itself is never a
neighbour, so the vote is an out-of-sample class probability ``p(c | x)``, which is what confident learning
needs (Northcutt, Jiang & Chuang, "Confident learning: estimating uncertainty in dataset labels", JAIR 2021;
cleanlab's ``find_label_issues``, which also accepts kNN-based probabilities).

Copies are not independent witnesses: a mislabelled image stored three times would confirm its own wrong
label. Neighbours with an identical vector are therefore always left out of the vote, and so are the members
of the object's duplicate group when ``duplicate_group`` (from :func:`~dinoscope.analysis.duplicates.
find_duplicates`) is given. Unlabelled neighbours (class -1) do not vote.

Ranking: ``label_quality = p(label | x)``, low = suspicious. Flag rule (confident learning, no tuned
constant): the threshold of class ``c`` is the class's own mean agreement ``t_c = mean p(c | x)`` over the
objects labelled ``c``. An object counts for class ``j`` when ``p(j | x) >= t_j``; the most voted of the
classes it counts for is its confident class. The counts (given label, confident class) form the confident
joint, calibrated so each row sums to the class size (CL eq. 2); for every off-diagonal pair (i, j) the
estimated number of class-i objects with the largest margin ``p(j | x) - p(i | x) > 0`` are flagged
(CL's prune-by-noise-rate) with ``j`` as the suggested class. Objects of classes with fewer than ``k``
members are never flagged (their neighbour lists cannot be filled by their own class).

With ``probe`` (what the pipeline's runner passes), the votes become one of two out-of-sample opinions:
a softmax regression cross-validated over group-aware folds (:mod:`~dinoscope.analysis.probe`) gives the
other, the ranking uses ``0.67 * probe + 0.33 * votes``, and the flags come from ``cleanlab``'s confident
learning on that average (:mod:`~dinoscope.analysis.label_probe`). On DeepPCB with 5% of labels flipped
(EfficientNet-Lite0) the votes alone rank the flips with AUROC 0.982, precision@k 0.767; with the probe
0.992, 0.844 (a plain 5-fold logistic regression: 0.977, 0.767).

Example:
    >>> res = find_label_errors(vectors, graph, class_id, class_names=names)  # doctest: +SKIP
    >>> res.findings.sort_values("label_quality").head()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.base import AnalysisResult, NeighborGraph
from dinoscope.analysis.probe import ProbeSettings

__all__ = ["DEFAULT_K", "TEMPERATURE", "find_label_errors"]

logger = logging.getLogger(__name__)

#: Neighbours that vote by default (DINOv2's kNN protocol reports k = 10 and 20).
DEFAULT_K = 20
#: Softmax temperature of the vote weights exp(sim / T) (Wu et al. 2018; DINO/DINOv2 kNN evaluation).
TEMPERATURE = 0.07
_IDENTICAL_SIM = 1.0 - 1e-6
_CHUNK = 8192  # rows per block: the (rows, k, k) same-class mask stays small


def find_label_errors(
    vectors: np.ndarray,
    graph: NeighborGraph,
    class_id: np.ndarray,
    *,
    k: int | None = None,
    duplicate_group: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    temperature: float = TEMPERATURE,
    probe: ProbeSettings | None = None,
    fold_groups: np.ndarray | None = None,
) -> AnalysisResult:
    """Rank objects by how strongly their neighbours vote against their label, and flag confident errors.

    Args:
        vectors: (N, D) unit vectors of the run (only the row count is read).
        graph: The all-object neighbour graph (global row numbers).
        class_id: (N,) int class of every object; -1 for unlabelled objects (no flag, no vote).
        k: Voting neighbours per object (default ``min(graph.k, 20)``).
        duplicate_group: (N,) duplicate group of every object (-1 none); members of an object's own group
            do not vote for it.
        class_names: Names indexed by class id, for ``summary`` and ``info`` (default: the ids as text).
        temperature: T of the vote weights ``exp(sim / T)``.
        probe: Also fit a cross-validated linear probe (:mod:`~dinoscope.analysis.label_probe`): the ranking
            and the flags then come from ``w * probe + (1 - w) * votes``, flagged by ``cleanlab``'s confident
            learning; None = the kNN votes alone.
        fold_groups: (N,) group of every row for the probe's folds (e.g. the source image of boxes; -1 none):
            a group, and a duplicate group, never straddles two folds.

    Returns:
        ``AnalysisResult("label_errors")``; findings indexed by global row with ``is_label_error``,
        ``label_quality`` (weighted share of votes for the object's own label, background vote included;
        low = suspicious; NaN without a label or without votes), ``suggested_class`` (for flagged objects the
        class they were flagged towards, else the confident class when there is one, else the most voted
        class; -1 without votes), ``suggested_share`` and ``n_votes``. ``info`` holds the per-class
        thresholds, the estimated error counts per (given -> true) pair and, per class, where its flagged
        objects would go (``destinations``); ``summary`` has the same per class name.

    Example:
        >>> x = np.eye(2, dtype=np.float32)[[0, 0, 0, 1, 1, 1]]
        >>> g = NeighborGraph(np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]]),
        ...                   np.ones((6, 2), np.float32) * 0.9, np.arange(6))
        >>> find_label_errors(x, g, np.array([0, 0, 1, 1, 1, 1]), k=2).findings["is_label_error"].tolist()
        [False, False, True, False, False, False]
    """
    n = int(vectors.shape[0])
    labels = _check(class_id, n, "class_id").astype(np.int64)
    groups = None if duplicate_group is None else _check(duplicate_group, n, "duplicate_group").astype(np.int64)
    k = min(graph.k, DEFAULT_K) if k is None else int(k)
    if not 1 <= k <= graph.k:
        raise ValueError(f"k must be in [1, {graph.k}] (the graph's neighbours per row), got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n_classes = max(int(labels.max(initial=-1)) + 1, len(class_names or ()))
    names = list(class_names) if class_names is not None else [str(c) for c in range(n_classes)]

    rows = np.asarray(graph.rows, dtype=np.int64)
    prior = np.bincount(labels[labels >= 0], minlength=n_classes) / max(int((labels >= 0).sum()), 1)
    s_ref = _reference_similarity(graph, k)
    own, best, n_votes, cand_labels, cand_shares, total = _votes(
        graph, rows, labels, groups, k, temperature, prior, s_ref
    )
    quality = np.full(n, np.nan)
    quality[rows] = np.where((labels[rows] >= 0) & (n_votes > 0), own, np.nan)
    thresholds = _class_thresholds(labels, quality, n_classes)
    confident = _confident_class(cand_labels, cand_shares, thresholds)
    sizes = np.bincount(labels[labels >= 0], minlength=n_classes)

    lab = labels[rows]
    eligible = (lab >= 0) & (sizes[np.maximum(lab, 0)] >= k) & (n_votes > 0)
    vote = _Votes(lab, own, cand_labels, cand_shares, total, prior)
    suggested = np.full(n, -1, dtype=np.int64)
    share = np.full(n, np.nan)
    flag = np.zeros(n, dtype=bool)
    probe_info: dict[str, Any] | None = None
    if probe is None:
        estimated = _calibrated_off_diagonal(lab, confident, eligible, n_classes)
        flagged, flag_class = _prune_by_noise_rate(vote, eligible, estimated)
        suggestion = np.where(flagged, flag_class, np.where(confident >= 0, confident, best))
        suggested[rows] = suggestion
        share[rows] = np.where(suggestion >= 0, vote.share_of(np.arange(len(rows)), suggestion), np.nan)
        flag[rows] = flagged
    else:
        from dinoscope.analysis.label_probe import knn_probabilities, probe_label_issues

        knn = knn_probabilities(n, rows, n_classes, cand_labels, cand_shares, total, prior)
        may_flag = (labels >= 0) & (sizes[np.maximum(labels, 0)] >= k)
        combined = probe_label_issues(vectors, labels, knn, may_flag, (fold_groups, groups), probe)
        everyone = np.arange(n)
        quality = np.where(labels >= 0, combined.probabilities[everyone, np.maximum(labels, 0)], np.nan)
        flag, suggested, thresholds = combined.flagged, combined.suggested, combined.thresholds
        share = combined.probabilities[everyone, suggested].astype(np.float64)
        estimated, probe_info = combined.estimated, combined.info
    votes = np.zeros(n, dtype=np.int64)
    votes[rows] = n_votes

    findings = pd.DataFrame(
        {
            "is_label_error": flag,
            "label_quality": quality,
            "suggested_class": suggested,
            "suggested_share": share,
            "n_votes": votes,
        }
    )
    info, summary = _report(labels, flag, suggested, thresholds, sizes, names, k, temperature, groups is not None)
    info["reference_similarity"] = round(s_ref, 6)
    if probe_info is not None:
        info["probe"] = probe_info
        info["rule"] = (
            "confident learning (cleanlab, prune by noise rate) on the combined out-of-sample probabilities "
            f"({probe_info['combined']}); threshold of class j = mean combined p(j|x) of its members"
        )
    info["estimated_errors"] = {f"{names[i]}->{names[j]}": n_ij for (i, j), n_ij in sorted(estimated.items())}
    logger.info("label errors: %d candidates among %d labelled objects", int(flag.sum()), int((labels >= 0).sum()))
    return AnalysisResult("label_errors", findings, info=info, summary=summary)


def _votes(
    graph: NeighborGraph,
    rows: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    k: int,
    temperature: float,
    prior: np.ndarray,
    s_ref: float,
) -> tuple[np.ndarray, ...]:
    """Per graph row: own-label share, top class, vote count, (R, k) column classes and shares, vote total.

    Weights are ``exp((sim - s_ref) / T)`` plus one background vote of weight 1 spread over the classes by
    their prior, so that neighbours far beyond the usual k-th neighbour similarity ``s_ref`` (an outlier's)
    carry little evidence and its shares fall back to the class frequencies. Shares per class are summed
    over each row's k neighbours without a dense (N, C) matrix: ``shares[:, j]`` is the share of the class of
    column j (O(N k²) in chunks).
    """
    m = len(rows)
    own = np.zeros(m)
    best = np.full(m, -1, dtype=np.int64)
    n_votes = np.zeros(m, dtype=np.int64)
    cand_labels = np.full((m, k), -1, dtype=np.int64)
    cand_shares = np.zeros((m, k))
    totals = np.ones(m)
    for a in range(0, m, _CHUNK):
        b = min(m, a + _CHUNK)
        idx = np.asarray(graph.indices[a:b, :k], dtype=np.int64)
        sims = np.asarray(graph.sims[a:b, :k], dtype=np.float64)
        nb_lab = np.where(idx >= 0, labels[np.maximum(idx, 0)], -1)
        valid = (idx >= 0) & np.isfinite(sims) & (nb_lab >= 0) & (sims < _IDENTICAL_SIM)
        if groups is not None:
            g = groups[rows[a:b]][:, None]
            valid &= ~((g >= 0) & (groups[np.maximum(idx, 0)] == g))
        w = np.where(valid, np.exp((np.where(valid, sims, s_ref) - s_ref) / temperature), 0.0)
        total = w.sum(axis=1, keepdims=True) + 1.0  # + the background vote
        lab = np.where(valid, nb_lab, -1)
        same = lab[:, :, None] == lab[:, None, :]
        per_col = (np.einsum("rl,rjl->rj", w, same) + prior[np.maximum(lab, 0)]) / total
        per_col[~valid] = 0.0
        me = labels[rows[a:b]]
        own_prior = np.where(me >= 0, prior[np.maximum(me, 0)], 0.0)
        own[a:b] = (np.where(lab == me[:, None], w, 0.0).sum(axis=1) + own_prior) / total[:, 0]
        j = np.argmax(per_col, axis=1)
        best[a:b] = np.where(valid.any(axis=1), lab[np.arange(b - a), j], -1)
        n_votes[a:b] = valid.sum(axis=1)
        cand_labels[a:b], cand_shares[a:b], totals[a:b] = lab, per_col, total[:, 0]
    return own, best, n_votes, cand_labels, cand_shares, totals


def _reference_similarity(graph: NeighborGraph, k: int) -> float:
    """Median similarity of the objects' k-th neighbour: how close an ordinary neighbourhood is."""
    s = np.asarray(graph.sims[:, :k], dtype=np.float64)
    last = np.where(np.isfinite(s), s, np.inf).min(axis=1)
    last = last[np.isfinite(last)]
    return float(np.median(last)) if len(last) else 0.0


def _class_thresholds(labels: np.ndarray, quality: np.ndarray, n_classes: int) -> np.ndarray:
    """(C,) per-class threshold: confident learning's mean own-label share of the class's objects, relaxed
    for tight classes, never below a strict majority: ``max(0.5, min(mean, Q1, 1 - 2 (1 - mean)))``.

    kNN vote shares of a tight, clean class saturate just below 1 (the background vote caps them), so its
    mean is higher than what an object voted for it by nearly every neighbour reaches; without the relaxation
    a swapped label in a very clean class is never counted. Loose classes keep their mean (or 0.5)."""
    ok = (labels >= 0) & np.isfinite(quality)
    out = np.full(n_classes, np.inf)
    for c in np.unique(labels[ok]):
        q = quality[ok & (labels == c)]
        mean = float(q.mean())
        out[c] = max(0.5, min(mean, float(np.quantile(q, 0.25)), 1.0 - 2.0 * (1.0 - mean)))
    return out


def _confident_class(cand_labels: np.ndarray, cand_shares: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(R,) most voted class among those whose share reaches their class threshold; -1 when none does."""
    ok = cand_labels >= 0
    thr = np.where(ok, thresholds[np.maximum(cand_labels, 0)], np.inf)
    passing = ok & (cand_shares >= thr)
    score = np.where(passing, cand_shares, -1.0)
    j = np.argmax(score, axis=1)
    r = np.arange(len(cand_labels))
    return np.where(passing.any(axis=1), cand_labels[r, j], -1)


@dataclass(frozen=True)
class _Votes:
    """Vote shares of the graph rows: own label, (R, k) per-column class and share, totals and the prior."""

    label: np.ndarray
    own: np.ndarray
    cand_labels: np.ndarray
    cand_shares: np.ndarray
    total: np.ndarray
    prior: np.ndarray

    def share_of(self, r: np.ndarray, cls: np.ndarray | int) -> np.ndarray:
        """(len(r),) share of class ``cls`` for rows ``r`` (the background vote alone when no neighbour has it)."""
        cls = np.broadcast_to(np.asarray(cls, dtype=np.int64), r.shape)
        hit = self.cand_labels[r] == cls[:, None]
        col = np.argmax(hit, axis=1)
        background = self.prior[np.maximum(cls, 0)] / self.total[r]
        return np.where(hit.any(axis=1), self.cand_shares[r, col], background)


def _calibrated_off_diagonal(
    label: np.ndarray, confident: np.ndarray, eligible: np.ndarray, n_classes: int
) -> dict[tuple[int, int], int]:
    """{(given, true): estimated count}: the confident joint calibrated to the class sizes (CL eq. 2)."""
    counted = eligible & (confident >= 0)
    joint = np.bincount(label[counted] * n_classes + confident[counted], minlength=n_classes * n_classes)
    joint = joint.reshape(n_classes, n_classes).astype(np.float64)
    n_given = np.bincount(label[eligible], minlength=n_classes)
    row = joint.sum(axis=1, keepdims=True)
    calibrated = np.divide(joint * n_given[:, None], row, out=np.zeros_like(joint), where=row > 0)
    np.fill_diagonal(calibrated, 0.0)
    given, true = np.nonzero(calibrated >= 0.5)
    return {(int(i), int(j)): round(float(calibrated[i, j])) for i, j in zip(given, true, strict=True)}


def _prune_by_noise_rate(
    vote: _Votes, eligible: np.ndarray, estimated: dict[tuple[int, int], int]
) -> tuple[np.ndarray, np.ndarray]:
    """Flag, for each (given i, true j) pair, the estimated number of class-i objects with the largest margin
    ``p(j|x) - p(i|x)`` (CL's prune-by-noise-rate), counting only objects whose neighbours prefer j."""
    flagged = np.zeros(len(vote.label), dtype=bool)
    flag_class = np.full(len(vote.label), -1, dtype=np.int64)
    best_margin = np.full(len(vote.label), -np.inf)
    for (i, j), count in estimated.items():
        members = np.flatnonzero(eligible & (vote.label == i))
        margin = vote.share_of(members, j) - vote.own[members]
        order = np.lexsort((members, -margin))[:count]
        pick, m = members[order], margin[order]
        better = (m > 0) & (m > best_margin[pick])
        flagged[pick[better]] = True
        flag_class[pick[better]] = j
        best_margin[pick[better]] = m[better]
    return flagged, flag_class


def _report(
    labels: np.ndarray,
    flag: np.ndarray,
    suggested: np.ndarray,
    thresholds: np.ndarray,
    sizes: np.ndarray,
    names: list[str],
    k: int,
    temperature: float,
    grouped: bool,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Info (thresholds, destinations) and the per-class summary."""

    def name(c: int) -> str:
        return names[c] if 0 <= c < len(names) else str(c)

    summary: dict[str, dict[str, Any]] = {}
    for c in range(len(sizes)):
        mine = flag & (labels == c)
        dest = pd.Series(suggested[mine]).value_counts()
        summary[name(c)] = {
            "n": int(sizes[c]),
            "n_label_errors": int(mine.sum()),
            "agreement": round(float(thresholds[c]), 4) if np.isfinite(thresholds[c]) else None,
            "suggested": {name(int(d)): int(v) for d, v in dest.items()},
        }
    info = {
        "k": k,
        "temperature": temperature,
        "weights": "exp((sim - reference_similarity) / T) + 1 background vote spread by the class prior",
        "rule": "confident learning: calibrated confident joint (threshold of class j = "
        "max(0.5, min(mean, Q1, 1 - 2(1 - mean))) of its members' agreement), "
        "prune by noise rate on the margin p(j|x) - p(label|x) > 0",
        "excluded_votes": "identical vectors" + (", same duplicate group" if grouped else ""),
        "min_class_size": k,
        "class_threshold": {n: s["agreement"] for n, s in summary.items()},
        "destinations": {n: s["suggested"] for n, s in summary.items() if s["suggested"]},
        "n_label_errors": int(flag.sum()),
    }
    return info, summary


def _check(values: np.ndarray, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) to match the vectors")
    return arr
