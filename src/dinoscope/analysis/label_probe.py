"""Label errors from two out-of-sample opinions: the cross-validated linear probe and the kNN vote, combined.

The probe (:mod:`~dinoscope.analysis.probe`) sees the whole labelled set through a linear boundary; the kNN vote
(:mod:`~dinoscope.analysis.label_errors`) sees the object's own neighbourhood. Neither saw the object's label.
Their probabilities are averaged, ``M = w P + (1 - w) K`` (``w = 0.67``): on DeepPCB with 5% of labels flipped
the average ranks the flips better than either alone and than their product (measured, one probe round:
probe AUROC 0.989, kNN 0.982, average 0.990, geometric mean 0.989; weights 0.5 / 0.8 did no better).

Confident learning then runs on ``M`` through ``cleanlab`` (Northcutt et al., JAIR 2021): per-class thresholds
``t_j`` = the mean ``M[:, j]`` of the class's objects, lowered by ``min(1 - mean, 0.02)`` (in a tight class
the mean saturates near 1 and a swapped object exactly as confident as the members would not count), the
calibrated confident joint, prune by noise rate.
The probe is fitted twice: the first round's label issues are left out of the second round's training (a
label the first round doubts does not pull the boundary), and the second round starts from the first
round's weights (fewer iterations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinoscope._deps import require
from dinoscope.analysis.probe import ProbeFit, ProbeSettings, cross_validated_probabilities, group_folds

__all__ = ["CombinedIssues", "knn_probabilities", "probe_label_issues"]

#: Most a class threshold is lowered below its mean (see :func:`_thresholds`).
RELAX = 0.02


@dataclass
class CombinedIssues:
    """Confident learning on the combined probabilities.

    Attributes:
        probabilities: (N, C) float32 combined out-of-sample probabilities.
        flagged: (N,) bool label issues.
        suggested: (N,) class the issue was flagged towards (flagged rows), else the confident class (the most
            probable class whose probability reaches its threshold), else the most probable class.
        thresholds: (C,) per-class thresholds (inf for classes without eligible rows).
        estimated: {(given, true): estimated count} from the calibrated confident joint.
        info: The probe's settings, its cross-validated accuracy per round, the rows left out of round 2.
    """

    probabilities: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray
    thresholds: np.ndarray
    estimated: dict[tuple[int, int], int]
    info: dict[str, Any] = field(default_factory=dict)


def knn_probabilities(
    n: int, rows: np.ndarray, n_classes: int, cand_labels: np.ndarray, cand_shares: np.ndarray, total: np.ndarray,
    prior: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(n, C) float32 vote shares as dense probabilities: the background vote's share for classes no neighbour
    voted for, the prior for rows outside the graph. Rows sum to 1."""
    out = np.tile(prior.astype(np.float32), (n, 1))
    out[rows] = (prior[None, :] / total[:, None]).astype(np.float32)
    r, j = np.nonzero(cand_labels >= 0)
    out[rows[r], cand_labels[r, j]] = cand_shares[r, j]
    return out


def probe_label_issues(
    vectors: np.ndarray,
    labels: np.ndarray,
    knn: np.ndarray,
    eligible: np.ndarray,
    groups: tuple[np.ndarray | None, ...],
    settings: ProbeSettings,
) -> CombinedIssues:
    """Fit the probe (two rounds), combine with the kNN probabilities and run confident learning.

    Args:
        vectors: (N, D) vectors.
        labels: (N,) class ids, -1 unlabelled.
        knn: (N, C) out-of-sample kNN probabilities (:func:`knn_probabilities`).
        eligible: (N,) bool rows that may be flagged (labelled, class large enough).
        groups: (N,) groupings whose members share a fold (:func:`~dinoscope.analysis.probe.group_folds`).
        settings: The probe's settings.

    Returns:
        A :class:`CombinedIssues`.
    """
    n_classes = knn.shape[1]
    folds = [group_folds(len(labels), settings.folds, *groups, seed=settings.seed + i) for i in range(settings.repeats)]
    first = [cross_validated_probabilities(vectors, labels, f, n_classes=n_classes, settings=settings) for f in folds]
    combined = _combine(first, knn, settings.weight)
    doubted = _issues(labels, combined, eligible)[0]
    second = [
        cross_validated_probabilities(
            vectors, labels, f, n_classes=n_classes, settings=settings, exclude=doubted, init=fit.weights
        )
        for f, fit in zip(folds, first, strict=True)
    ]
    combined = _combine(second, knn, settings.weight)
    flagged, thresholds, estimated = _issues(labels, combined, eligible)

    r = np.arange(len(labels))
    others = combined.copy()
    others[r[labels >= 0], labels[labels >= 0]] = -np.inf
    passing = np.where(combined >= thresholds[None, :], combined, -np.inf)
    confident = np.where(np.isfinite(passing).any(axis=1), np.argmax(passing, axis=1), np.argmax(combined, axis=1))
    suggested = np.where(flagged, np.argmax(others, axis=1), confident).astype(np.int64)
    info = {
        **settings.as_info(),
        "model": "softmax regression (L2, L-BFGS, float32) on the vectors, group-aware folds",
        "combined": f"{settings.weight} * probe + {round(1 - settings.weight, 4)} * kNN vote",
        "cv_accuracy": round(float(np.mean([f.accuracy for f in second])), 4),
        "cv_accuracy_first_round": round(float(np.mean([f.accuracy for f in first])), 4),
        "left_out_of_second_round": int(doubted.sum()),
        "iterations": [i for f in first + second for i in f.iterations],
    }
    return CombinedIssues(combined, flagged, suggested, thresholds, estimated, info)


def _combine(fits: list[ProbeFit], knn: np.ndarray, weight: float) -> np.ndarray:
    """``weight * probe + (1 - weight) * knn`` (probe = the mean over the repeats); the kNN alone where the probe
    has no prediction (NaN)."""
    probe = np.mean([f.probabilities for f in fits], axis=0)
    mixed = weight * probe + (1.0 - weight) * knn
    return np.where(np.isnan(probe), knn, mixed).astype(np.float32)


def _issues(
    labels: np.ndarray, probs: np.ndarray, eligible: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[tuple[int, int], int]]:
    """(flags, per-class thresholds, estimated off-diagonal counts) of cleanlab's prune-by-noise-rate on the
    eligible rows."""
    n, n_classes = probs.shape
    flagged = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(eligible)
    y = labels[rows]
    present = np.unique(y)
    own = np.full(n, np.nan)
    own[rows] = probs[rows, y]
    thresholds = _thresholds(labels, own, n_classes)
    if len(present) < 2:
        return flagged, thresholds, {}
    count = require("cleanlab.count", "analysis", "label errors from the probe", alternative="probe=None")
    find_label_issues = require("cleanlab.filter", "analysis", "label errors from the probe").find_label_issues

    # cleanlab wants classes 0..C'-1 that all occur: restrict to the present classes, renormalised.
    sub = probs[np.ix_(rows, present)].astype(np.float64)
    sub /= np.maximum(sub.sum(axis=1, keepdims=True), 1e-12)
    y_sub = np.searchsorted(present, y)
    joint = count.compute_confident_joint(y_sub, sub, thresholds=thresholds[present], calibrate=True)
    flagged[rows] = find_label_issues(y_sub, sub, filter_by="prune_by_noise_rate", confident_joint=joint, n_jobs=1)
    off = joint.astype(np.float64).copy()
    np.fill_diagonal(off, 0.0)
    given, true = np.nonzero(off >= 0.5)
    estimated = {(int(present[i]), int(present[j])): round(float(off[i, j])) for i, j in zip(given, true, strict=True)}
    return flagged, thresholds, estimated


def _thresholds(labels: np.ndarray, own: np.ndarray, n_classes: int) -> np.ndarray:
    """(C,) per-class threshold: confident learning's mean own-label probability of the class's objects,
    lowered by ``min(1 - mean, RELAX)`` so that in a tight class (mean near 1) an object as confident as a
    typical member still counts; inf for classes without eligible rows."""
    out = np.full(n_classes, np.inf)
    ok = np.isfinite(own)
    for c in np.unique(labels[ok]):
        mean = float(own[ok & (labels == c)].mean())
        out[c] = mean - min(1.0 - mean, RELAX)
    return out
