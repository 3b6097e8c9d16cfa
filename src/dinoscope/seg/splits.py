"""Grouped, stratified train / val / test splits of segmentation images.

Adjacent video frames are near-duplicates, so images are split by *group*, never one by one: a group is a
source video (``meta/<stem>.json`` from ``seg collect``, or the name without its trailing frame number:
``line3_000120`` -> ``line3_``) cut into contiguous time windows, as many per video as its share of the
images times :data:`TARGET_GROUPS` (a video is one group once there are that many videos). Images that
share a name and a number (``DSC00550`` and ``DSC00550b``) are always in the same window; a name without a
number is a group of its own.

Groups are assigned greedily in a seeded random order (the stratified-group idea of scikit-learn's
``StratifiedGroupKFold``, with target ratios instead of folds): first validation (and test) get whole
positive groups until they hold ``min_val_pos`` (one) positive images, then each remaining group goes to
the split whose positive and negative counts it brings closest to their targets, or to train. When an order
cannot meet the minimums (large groups), up to 32 seeded orders are tried before giving up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dinoscope.errors import DatasetFormatError

__all__ = ["TARGET_GROUPS", "SplitPlan", "find_groups", "split_groups"]

#: About this many groups are formed from few videos (contiguous windows), so ratios can be met.
TARGET_GROUPS = 20
_ATTEMPTS = 32
_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


@dataclass(frozen=True)
class SplitPlan:
    """Split of every image and the counts behind it.

    Attributes:
        split: (N,) ``"train"``, ``"val"`` or ``"test"`` per image.
        n_groups: Number of groups.
        counts: split -> (images, positive images).
    """

    split: np.ndarray
    n_groups: int
    counts: dict[str, tuple[int, int]]


def find_groups(stems: Sequence[str], videos: Sequence[str | None], frames: Sequence[float | None]) -> np.ndarray:
    """(N,) int group id per image (see the module docstring for the rule).

    Args:
        stems: Image names without extension.
        videos: Source video per image when known (``meta/*.json``), else None (taken from the name).
        frames: Frame number or time per image when known, else None (taken from the name).

    Example:
        >>> find_groups(["a_001", "a_002", "b_001", "x"], [None] * 4, [None] * 4).tolist()
        [0, 1, 2, 3]
    """
    keys: list[tuple[str, float | None]] = []
    for stem, video, frame in zip(stems, videos, frames, strict=True):
        m = _NUMBERED.match(stem)
        prefix = video if video is not None else (m.group(1) if m else stem)
        number = frame if frame is not None else (float(m.group(2)) if m and video is None else None)
        keys.append((prefix, number))
    prefixes = sorted({k[0] for k in keys})
    group = np.full(len(keys), -1, dtype=np.int64)
    next_id = 0
    for prefix in prefixes:
        rows = [i for i, k in enumerate(keys) if k[0] == prefix]
        unnumbered = [i for i in rows if keys[i][1] is None]
        for i in unnumbered:
            group[i], next_id = next_id, next_id + 1
        numbers = sorted({keys[i][1] for i in rows if keys[i][1] is not None})  # type: ignore[type-var]
        if not numbers:
            continue
        n_blocks = max(1, math.ceil(TARGET_GROUPS * len(rows) / len(keys)))  # windows in proportion to the video
        block = {n: j * n_blocks // len(numbers) for j, n in enumerate(numbers)}  # equal contiguous windows
        for i in rows:
            if keys[i][1] is not None:
                group[i] = next_id + block[keys[i][1]]
        next_id += max(block.values()) + 1
    return np.unique(group, return_inverse=True)[1].astype(np.int64)


def split_groups(
    groups: np.ndarray,
    positive: np.ndarray,
    val_ratio: float,
    test_ratio: float,
    min_val_pos: int,
    seed: int = 0,
) -> SplitPlan:
    """Assign whole groups to train / val / test, stratified by positive (has foreground) vs negative.

    Args:
        groups: (N,) group id per image.
        positive: (N,) bool, the image's mask has foreground.
        val_ratio: Target share of images in val; ``test_ratio``: in test (0 = no test split).
        min_val_pos: Validation must hold at least this many positive images.
        seed: Seed of the random group order.

    Raises:
        DatasetFormatError: A split would hold no positive image, or validation fewer than ``min_val_pos``
            (the message gives the counts and the fix).

    Example:
        >>> plan = split_groups(np.arange(10), np.ones(10, bool), 0.2, 0.0, 2)
        >>> plan.counts["val"]
        (2, 2)
    """
    ids, inverse = np.unique(groups, return_inverse=True)
    g_pos = np.bincount(inverse, weights=positive.astype(float), minlength=len(ids))
    g_neg = np.bincount(inverse, weights=(~positive).astype(float), minlength=len(ids))
    n_pos, n_neg = float(g_pos.sum()), float(g_neg.sum())
    eval_splits = ["val"] + (["test"] if test_ratio > 0 else [])
    need = min_val_pos + 1 + (1 if test_ratio > 0 else 0)
    if n_pos < need:
        raise DatasetFormatError(
            f"only {int(n_pos)} image(s) with foreground: val needs {min_val_pos} (--min-val-pos), train and "
            f"{'test ' if test_ratio > 0 else ''}at least one each; label more images or lower --min-val-pos"
        )
    ratio = {"val": val_ratio, "test": test_ratio}
    target = {s: (max(ratio[s] * n_pos, min_val_pos if s == "val" else 1.0), ratio[s] * n_neg) for s in eval_splits}
    rng = np.random.default_rng(seed)
    first_error: DatasetFormatError | None = None
    for _ in range(_ATTEMPTS):  # a few group orders: the first that meets every minimum wins
        assigned = _assign(rng.permutation(len(ids)), g_pos, g_neg, eval_splits, target, min_val_pos)
        split = assigned[inverse].astype(str)
        counts = {s: (int((split == s).sum()), int((positive & (split == s)).sum())) for s in ("train", *eval_splits)}
        try:
            _check(counts, min_val_pos)
        except DatasetFormatError as exc:
            first_error = first_error or exc
            continue
        return SplitPlan(split, len(ids), counts)
    assert first_error is not None
    raise first_error


def _assign(
    order: np.ndarray,
    g_pos: np.ndarray,
    g_neg: np.ndarray,
    eval_splits: list[str],
    target: dict[str, tuple[float, float]],
    min_val_pos: int,
) -> np.ndarray:
    """Split per group for one group order (see the module docstring)."""
    have = {s: [0.0, 0.0] for s in eval_splits}
    assigned = np.full(len(order), "train", dtype=object)
    free = np.ones(len(order), dtype=bool)
    for k, s in enumerate(eval_splits):  # phase 1: the minimum positives
        floor = min_val_pos if s == "val" else 1
        reserve = len(eval_splits) - k  # one positive for train and one for each later split
        for g in (g for g in order if g_pos[g] > 0):
            if have[s][0] >= floor:
                break
            if free[g] and g_pos[free].sum() - g_pos[g] >= reserve:
                assigned[g], free[g] = s, False
                have[s][0] += g_pos[g]
                have[s][1] += g_neg[g]
    for g in order:  # phase 2: bring each split closest to its targets
        if not free[g]:
            continue
        best, best_gain = "train", 0.0
        for s in eval_splits:
            dp, dn = target[s][0] - have[s][0], target[s][1] - have[s][1]
            gain = abs(dp) + abs(dn) - abs(dp - g_pos[g]) - abs(dn - g_neg[g])
            if gain > best_gain and (g_pos[g] == 0 or g_pos[free].sum() - g_pos[g] >= 1):
                best, best_gain = s, gain
        if best != "train":
            have[best][0] += g_pos[g]
            have[best][1] += g_neg[g]
        assigned[g], free[g] = best, False
    return assigned


def _check(counts: dict[str, tuple[int, int]], min_val_pos: int) -> None:
    for s, (n, n_pos) in counts.items():
        if n_pos == 0:
            raise DatasetFormatError(
                f"split {s} has no image with foreground ({n} images): groups of frames are too large or positives "
                "too few; lower --val-ratio / --test-ratio (--test-ratio 0 drops test) or label more frames"
            )
    if counts["val"][1] < min_val_pos:
        raise DatasetFormatError(
            f"split val has {counts['val'][1]} image(s) with foreground, fewer than --min-val-pos {min_val_pos} (whole "
            "groups of adjacent frames move together); lower --min-val-pos or label more frames"
        )
