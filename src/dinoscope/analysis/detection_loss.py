"""A per-object loss from predictions and ground truth alone, a per-image loss, and plain-word cluster insights.

Each object's loss is the mean of three terms in [0, 1], computed from its TIDE partner
(:mod:`~dinoscope.analysis.tide`: the match, the object an error targets, or the most overlapping one):

- **overlap**: ``1 - IoU`` with the partner (box or mask IoU; 1 without a partner);
- **class**: 1 when the partner's class differs or there is no partner, else 0;
- **confidence**: ``1 - score`` for a true positive (an unsure hit), ``score`` for any other prediction
  (a sure mistake), 1 for a ground-truth object no prediction matched.

A prediction that is not a true positive has its overlap and class terms scaled by its score, so a faint
false positive (score 0.01) costs almost nothing and a confident one costs nearly 1; a matched object shares
its prediction's loss. Crowd regions and predictions TIDE ignores get no loss (NaN). An image's loss is the
mean over its ground-truth objects and its predictions at the operating point. The loss needs no model
internals, so it works for any detector's output files.

:func:`describe_loss_clusters` compares each sub-group's mean loss with the mean over all objects and says
in words what sets the high-loss groups apart ("person, cluster 4: 3.1x the mean loss, mostly small boxes,
40% under-segmented").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dinoscope.analysis.detection_match import Instances
from dinoscope.analysis.tide import TideResult

__all__ = ["HIGH_LOSS_RATIO", "ObjectLoss", "compute_image_loss", "compute_object_loss", "describe_loss_clusters"]

#: A sub-group is called out when its mean loss is at least this multiple of the mean over all objects.
HIGH_LOSS_RATIO = 1.5
#: COCO's size buckets (area in px²): small < 32², medium < 96², large above.
_SMALL, _MEDIUM = 32.0**2, 96.0**2


@dataclass(frozen=True)
class ObjectLoss:
    """Loss of every prediction and ground-truth object, and its three terms.

    Attributes:
        dt: (N_dt,) loss of each prediction (NaN: ignored); ``dt_terms``: (N_dt, 3) overlap, class, confidence.
        gt: (N_gt,) loss of each ground-truth object; ``gt_terms``: (N_gt, 3).
    """

    dt: np.ndarray
    dt_terms: np.ndarray
    gt: np.ndarray
    gt_terms: np.ndarray


def compute_object_loss(dt: Instances, gt: Instances, tide: TideResult) -> ObjectLoss:
    """The per-object loss (see the module docstring).

    Example:
        >>> from dinoscope.analysis.tide import find_tide_errors
        >>> gt = Instances([0], [0], [[0, 0, 10, 10]])
        >>> dt = Instances([0], [0], [[0, 0, 10, 10]], score=[0.7])
        >>> round(float(compute_object_loss(dt, gt, find_tide_errors(dt, gt, 1)).dt[0]), 3)
        0.1
    """
    score = np.nan_to_num(dt.score, nan=1.0)
    has = tide.dt_partner >= 0
    same = has & (dt.class_id == gt.class_id[np.maximum(tide.dt_partner, 0)])
    tp = tide.dt_type == "tp"
    weight = np.where(tp, 1.0, score)
    dt_terms = np.stack(
        [weight * (1 - tide.dt_iou), np.where(tp, 0.0, weight * ~same), np.where(tp, 1 - score, score)], axis=1
    )
    dt_terms[tide.dt_type == "ignored"] = np.nan

    g_has = tide.gt_partner >= 0
    partner = np.maximum(tide.gt_partner, 0)
    g_same = g_has & (gt.class_id == dt.class_id[partner]) if len(dt) else np.zeros(len(gt), bool)
    gt_terms = np.stack([1 - tide.gt_iou, (~g_same).astype(float), np.ones(len(gt))], axis=1)
    g_tp = tide.gt_type == "tp"
    gt_terms[g_tp] = dt_terms[tide.gt_partner[g_tp]]
    gt_terms[tide.gt_type == "ignored"] = np.nan
    return ObjectLoss(dt_terms.mean(axis=1), dt_terms, gt_terms.mean(axis=1), gt_terms)


def compute_image_loss(image: np.ndarray, loss: np.ndarray, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_images,) mean loss of the objects of each image (0 without objects) and (n_images,) object counts.

    Args:
        image: (N,) image index of each object counted (ground truth and predictions at the operating point).
        loss: (N,) their losses (NaN ones are left out).

    Example:
        >>> compute_image_loss(np.array([0, 0, 2]), np.array([0.2, 0.4, 1.0]), 3)[0].round(2).tolist()
        [0.3, 0.0, 1.0]
    """
    ok = ~np.isnan(loss)
    total = np.bincount(image[ok], weights=loss[ok], minlength=n_images)
    count = np.bincount(image[ok], minlength=n_images)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0), count


def describe_loss_clusters(objects: pd.DataFrame, ratio: float = HIGH_LOSS_RATIO, min_size: int = 3) -> list[dict]:
    """Sub-groups whose mean loss is at least ``ratio`` times the overall mean, described in plain words.

    Args:
        objects: One row per embedded object with ``class_name``, ``cluster`` (-1: none), ``loss``, ``origin``,
            ``error_type``, ``area_px``, ``is_under_segmented``, ``is_over_segmented``.
        ratio: How much above the mean a group must be.
        min_size: Smallest group reported.

    Returns:
        One dict per group, worst first: ``class_name``, ``cluster``, ``n``, ``mean_loss``, ``ratio``, ``text``.

    Example:
        >>> frame = pd.DataFrame({"class_name": ["a"] * 6, "cluster": [0, 0, 0, 1, 1, 1],
        ...     "loss": [0.9, 0.8, 0.9, 0.1, 0.1, 0.1], "origin": ["label"] * 6, "error_type": ["miss"] * 6,
        ...     "area_px": [100.0] * 6, "is_under_segmented": [False] * 6, "is_over_segmented": [False] * 6})
        >>> describe_loss_clusters(frame)[0]["text"]
        'a, cluster 0: 1.8x the mean loss (3 objects), mostly small boxes, mostly ground truth, 100% miss'
    """
    frame = objects[objects["loss"].notna() & (objects["cluster"] >= 0)]
    mean = float(objects["loss"].mean()) if objects["loss"].notna().any() else 0.0
    if frame.empty or mean <= 0:
        return []
    out = []
    for (name, cluster), group in frame.groupby(["class_name", "cluster"], sort=True):
        group_mean = float(group["loss"].mean())
        if len(group) < min_size or group_mean < ratio * mean:
            continue
        words = [f"{name}, cluster {int(cluster)}: {group_mean / mean:.1f}x the mean loss ({len(group)} objects)"]
        words += _facets(group)
        out.append(
            {
                "class_name": str(name),
                "cluster": int(cluster),
                "n": len(group),
                "mean_loss": round(group_mean, 4),
                "ratio": round(group_mean / mean, 3),
                "text": ", ".join(words),
            }
        )
    return sorted(out, key=lambda r: -r["ratio"])


def _facets(group: pd.DataFrame) -> list[str]:
    """What sets a group apart: its dominant size, side (labels or predictions), segmentation and error type."""
    words = []
    area = group["area_px"].to_numpy(dtype=float)
    sizes = {"small": area < _SMALL, "medium": (area >= _SMALL) & (area < _MEDIUM), "large": area >= _MEDIUM}
    size, share = max(((k, float(v.mean())) for k, v in sizes.items()), key=lambda kv: kv[1])
    if share >= 0.6:
        words.append(f"mostly {size} boxes")
    preds = float((group["origin"] == "prediction").mean())
    if preds >= 0.7 or preds <= 0.3:
        words.append("mostly predictions" if preds >= 0.7 else "mostly ground truth")
    for column, label in (("is_under_segmented", "under-segmented"), ("is_over_segmented", "over-segmented")):
        frac = float(group[column].mean())
        if frac >= 0.1:
            words.append(f"{frac:.0%} {label}")
    errors = group["error_type"][~group["error_type"].isin(["tp", "ignored"])]
    if len(errors):
        top = errors.value_counts()
        frac = float(top.iloc[0] / len(group))
        if frac >= 0.3:
            words.append(f"{frac:.0%} {top.index[0]}")
    return words
