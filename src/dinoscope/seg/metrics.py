"""Foreground-class scores of binary masks (never averaged with the background class, which would inflate them).

From the foreground pixel counts ``tp`` (predicted and true), ``fp`` (predicted only), ``fn`` (true only):
dice = 2 tp / (2 tp + fp + fn), IoU = tp / (tp + fp + fn), precision = tp / (tp + fp), recall = tp / (tp + fn).
An empty prediction of an empty truth scores 1 (nothing to find, nothing wrongly found); precision is 1 when
nothing is predicted, recall 1 when nothing is true. Dataset scores sum the counts over images first
(micro average: large cracks weigh more, as pixels do); per-image scores are kept for the worst-image list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Counts", "count_pixels", "scores"]


@dataclass(frozen=True)
class Counts:
    """Foreground pixel counts of one image or a sum of images."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def count_pixels(pred: np.ndarray, truth: np.ndarray) -> Counts:
    """Foreground counts of a bool prediction against a bool truth of the same shape.

    Example:
        >>> count_pixels(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
        Counts(tp=1, fp=1, fn=1)
    """
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    tp = int(np.count_nonzero(pred & truth))
    return Counts(tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(truth)) - tp)


def scores(c: Counts) -> dict[str, float]:
    """dice, iou, precision, recall of foreground counts (see the module docstring).

    Example:
        >>> scores(Counts(tp=6, fp=2, fn=4))
        {'dice': 0.6666666666666666, 'iou': 0.5, 'precision': 0.75, 'recall': 0.6}
    """
    union = c.tp + c.fp + c.fn
    return {
        "dice": 2 * c.tp / (2 * c.tp + c.fp + c.fn) if union else 1.0,
        "iou": c.tp / union if union else 1.0,
        "precision": c.tp / (c.tp + c.fp) if c.tp + c.fp else 1.0,
        "recall": c.tp / (c.tp + c.fn) if c.tp + c.fn else 1.0,
    }
