"""COCO-style detection metrics: mAP@0.5 and mAP@0.5:0.95 per class, PR curves, a confusion matrix.

:func:`evaluate_detections` reproduces ``pycocotools.cocoeval.COCOeval`` for ``areaRng='all'`` and
``maxDets=100`` (Lin et al. 2014, "Microsoft COCO"; cocodataset/cocoapi): matching per image and class
(:func:`~dinoscope.analysis.detection_match.match_greedy`; crowd regions ignored as COCO ignores them), then
per class the predictions of every image in score order, precision made non-increasing, and read at the 101
recall points 0, 0.01, ..., 1. The mean over classes skips classes without ground truth, as COCO does. The
tests compare the numbers with pycocotools on the same inputs (equal to 1e-3).

:func:`operating_point` picks the score threshold that maximises F1 at IoU 0.5 over all classes (derived
from the data, recorded); :func:`confusion_matrix` counts, at that threshold, which predicted class each
ground-truth object got (class-agnostic greedy matching at IoU 0.5), with a background row and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dinoscope.analysis.detection_match import Instances, Overlaps, compute_overlaps, match_greedy, rank_within

__all__ = [
    "IOU_THRESHOLDS",
    "RECALL_POINTS",
    "DetectionEval",
    "confusion_matrix",
    "evaluate_detections",
    "operating_point",
]

#: COCO's IoU thresholds 0.50:0.05:0.95 and recall points 0:0.01:1 (the same floats as pycocotools).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)


@dataclass(frozen=True)
class DetectionEval:
    """What :func:`evaluate_detections` measured.

    Attributes:
        kind: ``box`` or ``mask``.
        ap: (T, K) average precision per IoU threshold and class; NaN for classes without ground truth.
        precision: (T, R, K) interpolated precision at the recall points (NaN without ground truth).
        recall: (T, K) recall reached with every kept prediction.
        n_gt: (K,) ground-truth objects per class (crowd regions excluded).
        n_dt: (K,) predictions per class kept by ``max_dets``.
        match: (T, N_dt) ground-truth row matched by each prediction (-1: none).
        ignored: (T, N_dt) predictions COCO ignores: matched to a crowd region, or beyond ``max_dets``.
        max_dets: Predictions kept per image and class.
    """

    kind: str
    ap: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    n_gt: np.ndarray
    n_dt: np.ndarray
    match: np.ndarray
    ignored: np.ndarray
    max_dets: int

    @property
    def map50(self) -> float:
        """mAP at IoU 0.5 (COCO ``stats[1]``); NaN when no class has ground truth."""
        return _nanmean(self.ap[0])

    @property
    def map50_95(self) -> float:
        """mAP averaged over IoU 0.50:0.95 (COCO ``stats[0]``)."""
        return _nanmean(self.ap.mean(axis=0))

    def per_class(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per-class numbers and the PR curve at IoU 0.5 (precision at :data:`RECALL_POINTS`)."""
        out: dict[str, dict[str, Any]] = {}
        for k, name in enumerate(names):
            if not self.n_gt[k] and not self.n_dt[k]:
                continue
            has_gt = bool(self.n_gt[k])
            out[name] = {
                "n_gt": int(self.n_gt[k]),
                "n_pred": int(self.n_dt[k]),
                "ap50": float(self.ap[0, k]) if has_gt else None,
                "ap50_95": float(self.ap[:, k].mean()) if has_gt else None,
                "recall50": float(self.recall[0, k]) if has_gt else None,
                "pr_curve50": [round(float(p), 4) for p in self.precision[0, :, k]] if has_gt else None,
            }
        return out


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def evaluate_detections(
    dt: Instances,
    gt: Instances,
    n_classes: int,
    *,
    kind: str = "box",
    max_dets: int = 100,
    overlaps: Overlaps | None = None,
    image_order: np.ndarray | None = None,
) -> DetectionEval:
    """COCO mAP of predictions against ground truth (``COCOeval`` with ``areaRng='all'``).

    Args:
        dt: Predictions (``score`` set).
        gt: Ground truth (``crowd`` flags regions that neither count as misses nor make false positives).
        n_classes: K, the number of classes.
        kind: ``box`` or ``mask`` IoU.
        max_dets: Predictions kept per image and class, highest scores first.
        overlaps: Pairs already computed by :func:`compute_overlaps` with this ``kind``.
        image_order: (n_images,) position of each image when predictions of equal score are ordered
            (COCO: increasing image id; default: the image index).

    Returns:
        The :class:`DetectionEval`.

    Example:
        >>> gt = Instances([0], [0], [[0, 0, 10, 10]])
        >>> round(evaluate_detections(Instances([0], [0], [[0, 0, 10, 9]], score=[0.9]), gt, 1).map50, 3)
        1.0
    """
    pairs = overlaps if overlaps is not None else compute_overlaps(dt, gt, kind)
    rank = rank_within([dt.image, dt.class_id], dt.score)
    rank[rank >= max_dets] = -1
    match = match_greedy(pairs, dt, gt, IOU_THRESHOLDS, rank)
    crowd_hit = (match >= 0) & gt.crowd[np.maximum(match, 0)]
    kept = rank >= 0
    ignored = crowd_hit | ~kept[None, :]
    tp = (match >= 0) & ~crowd_hit
    n_gt = np.bincount(gt.class_id[~gt.crowd], minlength=n_classes)[:n_classes]
    n_dt = np.bincount(dt.class_id[kept], minlength=n_classes)[:n_classes]
    img_pos = dt.image if image_order is None else np.asarray(image_order)[dt.image]
    order = np.lexsort((rank, img_pos, -dt.score, dt.class_id))
    order = order[kept[order]]
    cls_sorted = dt.class_id[order]
    bounds = np.searchsorted(cls_sorted, np.arange(n_classes + 1))
    n_t, n_r = len(IOU_THRESHOLDS), len(RECALL_POINTS)
    ap = np.full((n_t, n_classes), np.nan)
    precision = np.full((n_t, n_r, n_classes), np.nan)
    recall = np.full((n_t, n_classes), np.nan)
    for k in np.flatnonzero(n_gt):
        rows = order[bounds[k] : bounds[k + 1]]
        q, rc = _accumulate(tp[:, rows], ~ignored[:, rows] & ~tp[:, rows], int(n_gt[k]))
        precision[:, :, k], recall[:, k], ap[:, k] = q, rc, q.mean(axis=1)
    return DetectionEval(kind, ap, precision, recall, n_gt, n_dt, match, ignored, max_dets)


def _accumulate(tps: np.ndarray, fps: np.ndarray, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one class: (T, R) interpolated precision and (T,) final recall."""
    tp_sum = np.cumsum(tps, axis=1, dtype=np.float64)
    fp_sum = np.cumsum(fps, axis=1, dtype=np.float64)
    n_t, nd = tps.shape
    q = np.zeros((n_t, len(RECALL_POINTS)))
    if not nd:
        return q, np.zeros(n_t)
    rc = tp_sum / n_pos
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision made non-increasing
    for t in range(n_t):
        inds = np.searchsorted(rc[t], RECALL_POINTS, side="left")
        ok = inds < nd
        q[t, ok] = pr[t, inds[ok]]
    return q, rc[:, -1]


def operating_point(evaluation: DetectionEval, dt: Instances) -> dict[str, float]:
    """The score threshold with the best F1 at IoU 0.5 over all classes (ties: the higher threshold).

    Returns:
        ``score_threshold``, ``f1``, ``precision``, ``recall`` at that threshold.

    Example:
        >>> gt = Instances([0], [0], [[0, 0, 10, 10]])
        >>> dt = Instances([0, 0], [0, 0], [[0, 0, 10, 10], [50, 50, 60, 60]], score=[0.9, 0.3])
        >>> operating_point(evaluate_detections(dt, gt, 1), dt)["score_threshold"]
        0.9
    """
    n_pos = int(evaluation.n_gt.sum())
    live = ~evaluation.ignored[0]
    order = np.flatnonzero(live)[np.argsort(-dt.score[live], kind="stable")]
    if not len(order) or not n_pos:
        return {"score_threshold": 1.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    tp = np.cumsum(evaluation.match[0, order] >= 0)
    seen = np.arange(1, len(order) + 1)
    precision, recall = tp / seen, tp / n_pos
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    scores = dt.score[order]
    last_of_score = np.r_[scores[1:] != scores[:-1], True]  # a threshold keeps every equal score
    best = int(np.flatnonzero(last_of_score)[np.argmax(f1[last_of_score])])
    return {
        "score_threshold": float(scores[best]),
        "f1": float(f1[best]),
        "precision": float(precision[best]),
        "recall": float(recall[best]),
    }


def confusion_matrix(
    dt: Instances, gt: Instances, n_classes: int, score_threshold: float, *, overlaps: Overlaps | None = None
) -> np.ndarray:
    """(K + 1, K + 1) counts: rows = ground-truth class, columns = predicted class, index K = background.

    Predictions scoring at least ``score_threshold`` are matched to ground truth regardless of class (greedy by
    score, IoU >= 0.5, crowd regions left out); a matched pair counts at [true class, predicted class], an
    unmatched object at [class, background], an unmatched prediction at [background, class].

    Example:
        >>> gt = Instances([0], [1], [[0, 0, 10, 10]])
        >>> dt = Instances([0], [0], [[0, 0, 10, 10]], score=[0.9])
        >>> confusion_matrix(dt, gt, 2, 0.5)[1].tolist()
        [1, 0, 0]
    """
    pairs = overlaps if overlaps is not None else compute_overlaps(dt, gt, "box")
    live = dt.score >= score_threshold
    agnostic_dt = Instances(dt.image, np.zeros(len(dt), np.int64), dt.xyxy, dt.score)
    agnostic_gt = Instances(gt.image, np.zeros(len(gt), np.int64), gt.xyxy, gt.score, gt.crowd)
    rank = np.where(live, rank_within([dt.image], np.where(live, dt.score, -np.inf)), -1)
    ordinary = ~gt.crowd[pairs.gt]
    sub = Overlaps(
        pairs.dt[ordinary], pairs.gt[ordinary], pairs.inter[ordinary], pairs.iou[ordinary],
        pairs.dt_area, pairs.gt_area, pairs.kind,
    )  # fmt: skip
    match = match_greedy(sub, agnostic_dt, agnostic_gt, [0.5], rank, iou=sub.iou)[0]
    k = n_classes
    matrix = np.zeros((k + 1, k + 1), np.int64)
    hit = match >= 0
    np.add.at(matrix, (gt.class_id[match[hit]], dt.class_id[hit]), 1)
    found = np.zeros(len(gt), bool)
    found[match[hit]] = True
    missed = ~found & ~gt.crowd
    np.add.at(matrix, (gt.class_id[missed], np.full(int(missed.sum()), k)), 1)
    spurious = live & ~hit
    np.add.at(matrix, (np.full(int(spurious.sum()), k), dt.class_id[spurious]), 1)
    return matrix
