"""Over- and under-segmentation by containment, for boxes and masks.

The containment rule of Tensorleap's public ARMBench analysis: object A *contains* object B when their
intersection covers at least ``containment`` (0.8) of B's own area. Then

- **under-segmentation**: one prediction contains two or more ground-truth objects (several objects
  predicted as one, e.g. two boxes merged);
- **over-segmentation**: one ground-truth object contains two or more predictions (one object predicted as
  several pieces).

Only pairs of the same class count (a person box holding a handbag is not a merge), crowd regions are left
out, and only predictions at the operating point (score at least ``score_threshold``) take part: a detector
evaluated at score 0.001 puts dozens of faint boxes inside every object. The threshold, the containment ratio
and the geometry (box or mask) are recorded in ``info``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinoscope.analysis.detection_match import Instances, Overlaps

__all__ = ["CONTAINMENT", "SegmentationErrors", "find_segmentation_errors"]

#: Share of the contained object's area that the container must cover (Tensorleap, ARMBench).
CONTAINMENT = 0.8


@dataclass(frozen=True)
class SegmentationErrors:
    """Per-object flags and the objects involved.

    Attributes:
        dt_under: (N_dt,) the prediction contains >= 2 ground-truth objects.
        dt_over: (N_dt,) the prediction is one of >= 2 predictions inside one ground-truth object.
        dt_involved: (N_dt,) list of the ground-truth rows involved (those it contains, or the object it is a
            piece of); empty when neither flag is set.
        gt_over: (N_gt,) the object contains >= 2 predictions.
        gt_under: (N_gt,) the object is one of >= 2 objects inside one prediction.
        gt_involved: (N_gt,) list of the prediction rows involved.
        info: ``containment``, ``score_threshold``, ``kind``.
    """

    dt_under: np.ndarray
    dt_over: np.ndarray
    dt_involved: np.ndarray
    gt_over: np.ndarray
    gt_under: np.ndarray
    gt_involved: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def find_segmentation_errors(
    dt: Instances,
    gt: Instances,
    pairs: Overlaps,
    *,
    score_threshold: float = 0.0,
    containment: float = CONTAINMENT,
) -> SegmentationErrors:
    """Under- and over-segmentation of every prediction and object (see the module docstring).

    Args:
        dt: Predictions.
        gt: Ground truth.
        pairs: Their overlaps (box or mask intersections).
        score_threshold: Predictions scoring below it take no part.
        containment: Intersection over the contained object's area at which it counts as contained.

    Returns:
        The :class:`SegmentationErrors`.

    Example:
        >>> from dinoscope.analysis.detection_match import compute_overlaps
        >>> gt = Instances([0, 0], [0, 0], [[0, 0, 10, 10], [10, 0, 20, 10]])
        >>> dt = Instances([0], [0], [[0, 0, 20, 10]], score=[0.9])
        >>> find_segmentation_errors(dt, gt, compute_overlaps(dt, gt)).dt_under.tolist()
        [True]
    """
    d, g, inter = pairs.dt, pairs.gt, pairs.inter
    ok = (dt.class_id[d] == gt.class_id[g]) & ~gt.crowd[g] & (dt.score[d] >= score_threshold)
    d, g, inter = d[ok], g[ok], inter[ok]
    tiny = np.finfo(float).tiny
    gt_inside = inter / np.maximum(pairs.gt_area[g], tiny) >= containment  # the prediction contains the object
    dt_inside = inter / np.maximum(pairs.dt_area[d], tiny) >= containment  # the object contains the prediction

    n_dt, n_gt = len(dt), len(gt)
    dt_under = np.bincount(d[gt_inside], minlength=n_dt) >= 2
    gt_over = np.bincount(g[dt_inside], minlength=n_gt) >= 2
    merged = gt_inside & dt_under[d]  # (pred, object) pairs of an under-segmentation
    pieces = dt_inside & gt_over[g]  # (pred, object) pairs of an over-segmentation
    gt_under = np.zeros(n_gt, bool)
    gt_under[g[merged]] = True
    dt_over = np.zeros(n_dt, bool)
    dt_over[d[pieces]] = True
    involved = merged | pieces
    info = {"containment": containment, "score_threshold": float(score_threshold), "kind": pairs.kind}
    return SegmentationErrors(
        dt_under=dt_under,
        dt_over=dt_over,
        dt_involved=_lists(d[involved], g[involved], n_dt),
        gt_over=gt_over,
        gt_under=gt_under,
        gt_involved=_lists(g[involved], d[involved], n_gt),
        info=info,
    )


def _lists(keys: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n,) object array: the sorted ``values`` of each key (empty lists elsewhere)."""
    out = np.empty(n, dtype=object)
    for i in range(n):
        out[i] = []
    if len(keys):
        order = np.lexsort((values, keys))
        keys, values = keys[order], values[order]
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        for a, b in itertools.pairwise(bounds):
            out[keys[a]] = values[a:b].tolist()
    return out
