"""Overlaps between ground truth and predictions, and COCO's greedy matching, vectorised over every image.

Both sides travel as :class:`Instances` (struct of arrays: image, class, box, score, crowd flag, optional
masks). :func:`compute_overlaps` lists every (prediction, ground truth) pair of one image whose intersection is
positive, with its intersection and IoU, without a Python loop over pairs for boxes (masks go through
pycocotools' C code, one call per image). :func:`match_greedy` is the matching of ``COCOeval.evaluateImg``
(Lin et al. 2014; cocodataset/cocoapi): predictions in score order take the unmatched ground truth of their
class with the highest IoU at or above each threshold; crowd regions can absorb any number of predictions and
are chosen only when no ordinary object qualifies; ties in IoU go to the later ground truth. It advances
one score rank at a time over all (image, class) groups at once, so its loop runs at most ``max_dets`` times.

IoU conventions are those of ``pycocotools.mask.iou``: boxes in continuous pixels (area ``w * h``), and for
a crowd region the intersection over the prediction's own area.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dinoscope._deps import require

__all__ = ["Instances", "Overlaps", "compute_overlaps", "match_greedy", "rank_within"]


@dataclass(frozen=True)
class Instances:
    """Objects of one side (ground truth or predictions), struct of arrays.

    Attributes:
        image: (N,) int64 image index (the same numbering on both sides).
        class_id: (N,) int64 class ids.
        xyxy: (N, 4) float64 boxes in pixels.
        score: (N,) float64 confidence (ground truth: 1).
        crowd: (N,) bool crowd regions (COCO ``iscrowd``; predictions: False).
        masks: None, or one pycocotools RLE dict per object (None where an object has no mask).

    Example:
        >>> gt = Instances(np.array([0]), np.array([2]), np.array([[0, 0, 10, 10.0]]))
        >>> len(gt), gt.area.tolist()
        (1, [100.0])
    """

    image: np.ndarray
    class_id: np.ndarray
    xyxy: np.ndarray
    score: np.ndarray | None = None
    crowd: np.ndarray | None = None
    masks: Sequence[dict[str, Any] | None] | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image, dtype=np.int64).reshape(-1)
        n = len(image)
        fields = {
            "image": image,
            "class_id": np.asarray(self.class_id, dtype=np.int64).reshape(-1),
            "xyxy": np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4),
            "score": np.ones(n) if self.score is None else np.asarray(self.score, dtype=np.float64).reshape(-1),
            "crowd": np.zeros(n, bool) if self.crowd is None else np.asarray(self.crowd, dtype=bool).reshape(-1),
        }
        for name, value in fields.items():
            if len(value) != n:
                raise ValueError(f"Instances.{name} has {len(value)} rows, image has {n}")
            object.__setattr__(self, name, value)
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"Instances.masks has {len(self.masks)} entries for {n} objects")

    def __len__(self) -> int:
        return len(self.image)

    @property
    def has_masks(self) -> bool:
        """Every object carries a mask."""
        return self.masks is not None and all(m is not None for m in self.masks)

    @property
    def area(self) -> np.ndarray:
        """(N,) box areas, pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]


@dataclass(frozen=True)
class Overlaps:
    """Every (prediction, ground truth) pair of one image with a positive intersection.

    Attributes:
        dt: (P,) prediction rows.
        gt: (P,) ground-truth rows.
        inter: (P,) intersection area, pixels.
        iou: (P,) intersection over union.
        dt_area: (N_dt,) area of each prediction (box or mask).
        gt_area: (N_gt,) area of each ground truth object.
        kind: ``box`` or ``mask``.
    """

    dt: np.ndarray
    gt: np.ndarray
    inter: np.ndarray
    iou: np.ndarray
    dt_area: np.ndarray
    gt_area: np.ndarray
    kind: str

    def eval_iou(self, crowd: np.ndarray) -> np.ndarray:
        """(P,) IoU as COCO evaluates it: for a crowd ground truth, the intersection over the prediction's area."""
        crowd_iou = self.inter / np.maximum(self.dt_area[self.dt], np.finfo(float).tiny)
        return np.where(crowd[self.gt], crowd_iou, self.iou)


def compute_overlaps(dt: Instances, gt: Instances, kind: str = "box") -> Overlaps:
    """All pairs of a prediction and a ground-truth object of the same image that intersect.

    Args:
        dt: Predictions.
        gt: Ground truth.
        kind: ``box`` (vectorised numpy) or ``mask`` (both sides need masks; pycocotools per image).

    Returns:
        The :class:`Overlaps`, pairs sorted by prediction then ground truth row.

    Example:
        >>> one = Instances([0], [0], [[0, 0, 10, 10]])
        >>> compute_overlaps(Instances([0], [0], [[5, 0, 15, 10]]), one).iou.round(3).tolist()
        [0.333]
    """
    d_rows, g_rows = _same_image_pairs(dt.image, gt.image)
    if kind == "box":
        a, b = dt.xyxy[d_rows], gt.xyxy[g_rows]
        w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
        h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
        inter, dt_area, gt_area = w * h, dt.area, gt.area
    elif kind == "mask":
        inter, dt_area, gt_area = _mask_inter(dt, gt, d_rows, g_rows)
    else:
        raise ValueError(f"kind must be 'box' or 'mask', got {kind!r}")
    keep = inter > 0
    d_rows, g_rows, inter = d_rows[keep], g_rows[keep], inter[keep]
    union = dt_area[d_rows] + gt_area[g_rows] - inter
    iou = inter / np.maximum(union, np.finfo(float).tiny)
    return Overlaps(d_rows, g_rows, inter, iou, dt_area, gt_area, kind)


def _same_image_pairs(dt_image: np.ndarray, gt_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (dt row, gt row) pair sharing an image, by index arithmetic (no loop over images)."""
    g_order = np.argsort(gt_image, kind="stable")
    g_sorted = gt_image[g_order]
    start = np.searchsorted(g_sorted, dt_image, side="left")
    count = np.searchsorted(g_sorted, dt_image, side="right") - start
    total = int(count.sum())
    d_rows = np.repeat(np.arange(len(dt_image)), count)
    offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    g_rows = g_order[np.repeat(start, count) + offsets]
    return d_rows.astype(np.int64), g_rows.astype(np.int64)


def _mask_inter(dt: Instances, gt: Instances, d_rows: np.ndarray, g_rows: np.ndarray) -> tuple[np.ndarray, ...]:
    if not (dt.has_masks and gt.has_masks):
        raise ValueError("mask overlaps need a mask on every prediction and every ground-truth object")
    mask = require("pycocotools.mask", "coco", "mask IoU")
    dt_area = np.asarray(mask.area(list(dt.masks)), dtype=np.float64) if len(dt) else np.zeros(0)
    gt_area = np.asarray(mask.area(list(gt.masks)), dtype=np.float64) if len(gt) else np.zeros(0)
    inter = np.zeros(len(d_rows))
    if not len(d_rows):
        return inter, dt_area, gt_area
    image = dt.image[d_rows]
    order = np.argsort(image, kind="stable")
    bounds = np.flatnonzero(np.diff(image[order])) + 1
    for block in np.split(order, bounds):  # one pycocotools call per image
        ds, ds_inv = np.unique(d_rows[block], return_inverse=True)
        gs, gs_inv = np.unique(g_rows[block], return_inverse=True)
        over_dt = np.asarray(
            mask.iou([dt.masks[i] for i in ds], [gt.masks[j] for j in gs], [1] * len(gs)), dtype=np.float64
        ).reshape(len(ds), len(gs))
        inter[block] = over_dt[ds_inv, gs_inv] * dt_area[ds][ds_inv]  # crowd IoU = intersection / dt area
    return inter, dt_area, gt_area


def rank_within(groups: Sequence[np.ndarray], score: np.ndarray) -> np.ndarray:
    """(N,) 0-based rank of each row by descending score within its group (stable: ties keep row order).

    Args:
        groups: Arrays whose rows together name a group (e.g. image, class).
        score: (N,) scores.

    Example:
        >>> rank_within([np.array([0, 0, 1])], np.array([0.2, 0.9, 0.5])).tolist()
        [1, 0, 0]
    """
    n = len(score)
    order = np.lexsort((np.arange(n), -score, *reversed([np.asarray(g) for g in groups])))
    keys = np.stack([np.asarray(g)[order] for g in groups], axis=1) if groups else np.zeros((n, 0))
    new = np.ones(n, bool)
    if n > 1:
        new[1:] = (keys[1:] != keys[:-1]).any(axis=1)
    idx = np.arange(n)
    starts = np.maximum.accumulate(np.where(new, idx, 0))
    rank = np.empty(n, np.int64)
    rank[order] = idx - starts
    return rank


def match_greedy(
    pairs: Overlaps,
    dt: Instances,
    gt: Instances,
    thresholds: Sequence[float],
    dt_rank: np.ndarray,
    *,
    iou: np.ndarray | None = None,
    last_on_ties: bool = True,
) -> np.ndarray:
    """Greedy matching per (image, class) at each IoU threshold (``COCOeval.evaluateImg``).

    Args:
        pairs: Overlaps of ``dt`` and ``gt``.
        dt: Predictions.
        gt: Ground truth (crowd regions may absorb several predictions, and only when no ordinary object can).
        thresholds: (T,) IoU thresholds; a match needs IoU >= threshold.
        dt_rank: (N_dt,) rank of each prediction within its (image, class) group by descending score;
            -1 leaves a prediction out (beyond ``max_dets``).
        iou: (P,) IoU per pair to match on (default: :meth:`Overlaps.eval_iou`).
        last_on_ties: Equal IoUs go to the later ground-truth row (COCO) or to the earlier one (TIDE's argmax).

    Returns:
        (T, N_dt) int64 ground-truth row matched by each prediction, -1 for none.

    Example:
        >>> gt = Instances([0, 0], [0, 0], [[0, 0, 10, 10], [20, 0, 30, 10]])
        >>> dt = Instances([0, 0], [0, 0], [[0, 0, 10, 9], [1, 0, 11, 10]], score=[0.9, 0.8])
        >>> match_greedy(compute_overlaps(dt, gt), dt, gt, [0.5], np.array([0, 1])).tolist()
        [[0, -1]]
    """
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1, 1)
    thr = np.minimum(thr, 1 - 1e-10)
    values = pairs.eval_iou(gt.crowd) if iou is None else np.asarray(iou, dtype=np.float64)
    d, g = pairs.dt, pairs.gt
    keep = (dt.class_id[d] == gt.class_id[g]) & (dt_rank[d] >= 0)
    d, g, values = d[keep], g[keep], values[keep]
    ordinary = ~gt.crowd[g]
    tie = g if last_on_ties else -g
    order = np.lexsort((tie, values, ordinary, d, dt_rank[d]))
    d, g, values, ordinary = d[order], g[order], values[order], ordinary[order]
    match = np.full((len(thr), len(dt)), -1, np.int64)
    taken = np.zeros((len(thr), len(gt)), bool)
    rank_of_pair = dt_rank[d]
    bounds = np.searchsorted(rank_of_pair, np.arange(int(rank_of_pair.max(initial=-1)) + 2))
    for a, b in itertools.pairwise(bounds):  # one step per score rank, all groups at once
        if a == b:
            continue
        dd, gg, vv, oo = d[a:b], g[a:b], values[a:b], ordinary[a:b]
        valid = (vv[None, :] >= thr) & ~(taken[:, gg] & oo[None, :])
        starts = np.flatnonzero(np.r_[True, dd[1:] != dd[:-1]])
        pos = np.where(valid, np.arange(b - a)[None, :], -1)
        best = np.maximum.reduceat(pos, starts, axis=1)  # the last valid pair = the best candidate
        t_idx, s_idx = np.nonzero(best >= 0)
        chosen = best[t_idx, s_idx]
        match[t_idx, dd[starts[s_idx]]] = gg[chosen]
        taken[t_idx, gg[chosen]] |= oo[chosen]
    return match
