"""Safety checks of an adaptation: a kNN probe on labelled images when there are any, else a collapse monitor.

Every check embeds a fixed set of images with the **teacher** backbone (the network that is exported):

- with ``--eval DATASET``: the DINOv2 weighted kNN (k = 20, T = 0.07; :mod:`dinoscope.analysis.probe_knn`) on
  group-aware folds (:func:`~dinoscope.analysis.probe_eval.select_evaluation_folds`), scored by balanced
  accuracy (:func:`~dinoscope.analysis.probe_metrics.compute_probe_metrics`); the best check is exported and
  training stops after ``patience`` checks without improvement;
- always: collapse figures of the L2-normalised pooled vectors of up to :data:`N_MONITOR` training images:
  mean per-dimension standard deviation (0 when every image maps to one point), effective rank (Roy & Vetterli
  2007: exp of the entropy of the normalised singular values; 1 when they lie on a line), and the teacher's
  normalised output entropy (1 = uniform over the prototypes, the other DINO collapse mode).

A model is **collapsed** when its effective rank falls below ``max(2, 0.2 x`` the original's) or its spread
below ``0.2 x`` the original's (the thresholds are recorded in ``adapt.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["COLLAPSE_FRAC", "N_MONITOR", "Check", "EvalSet", "compute_collapse_figures", "find_collapse"]

#: Training images the collapse monitor embeds at every check.
N_MONITOR = 128
#: A figure below this share of the original backbone's marks a collapse.
COLLAPSE_FRAC = 0.2
_MIN_RANK = 2.0
_KNN_K = 20


@dataclass
class EvalSet:
    """Labelled crops for the kNN probe: (N, S, S, 3) uint8 crops, labels, groups, folds, class names."""

    crops: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    folds: Any
    class_names: list[str]


@dataclass
class Check:
    """The figures of one check."""

    step: int
    figures: dict[str, float] = field(default_factory=dict)
    collapsed: bool = False
    reason: str = ""


def compute_collapse_figures(vectors: np.ndarray, head_probs: np.ndarray | None = None) -> dict[str, float]:
    """Spread, effective rank and (given the teacher head's probabilities) entropy of pooled vectors.

    Args:
        vectors: (N, D) pooled vectors.
        head_probs: (N, K) the teacher head's softmax outputs, or None.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> healthy = compute_collapse_figures(rng.normal(size=(64, 16)))
        >>> collapsed = compute_collapse_figures(np.ones((64, 16)) + 1e-6 * rng.normal(size=(64, 16)))
        >>> healthy["feature_std"] > 10 * collapsed["feature_std"]
        True
    """
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    spread = float(x.std(axis=0).mean())
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    p = s / s.sum() if s.sum() > 1e-12 else np.ones(1)
    p = p[p > 0]
    figures = {"feature_std": spread, "effective_rank": float(np.exp(-(p * np.log(p)).sum()))}
    if head_probs is not None:
        q = np.clip(np.asarray(head_probs, dtype=np.float64), 1e-12, 1.0)
        figures["teacher_entropy"] = float((-(q * np.log(q)).sum(axis=1)).mean() / np.log(q.shape[1]))
    return figures


def find_collapse(figures: dict[str, float], reference: dict[str, float]) -> str:
    """Why ``figures`` show a collapse against the original backbone's ``reference`` ('' when they do not).

    Example:
        >>> find_collapse({"feature_std": 0.001, "effective_rank": 1.0}, {"feature_std": 0.05, "effective_rank": 30.0})
        'effective rank 1.0 < 6.0 (20% of the original 30.0)'
    """
    rank_floor = max(_MIN_RANK, COLLAPSE_FRAC * reference["effective_rank"])
    if figures["effective_rank"] < rank_floor:
        return (
            f"effective rank {figures['effective_rank']:.1f} < {rank_floor:.1f} (20% of the original "
            f"{reference['effective_rank']:.1f})"
        )
    std_floor = COLLAPSE_FRAC * reference["feature_std"]
    if figures["feature_std"] < std_floor:
        return f"feature spread {figures['feature_std']:.4f} < {std_floor:.4f} (20% of the original)"
    return ""


def knn_score(vectors: np.ndarray, evalset: EvalSet) -> dict[str, float]:
    """kNN (k = 20) balanced accuracy and accuracy of ``vectors`` on the evaluation folds."""
    from dinoscope.analysis.probe_knn import knn_probabilities
    from dinoscope.analysis.probe_metrics import compute_probe_metrics

    probs, _ = knn_probabilities(vectors, evalset.labels, evalset.folds, len(evalset.class_names), ks=(_KNN_K,))
    m = compute_probe_metrics(evalset.labels, probs[_KNN_K], evalset.groups, evalset.class_names, n_boot=0)
    return {"knn_balanced_accuracy": m["balanced_accuracy"]["value"], "knn_accuracy": m["accuracy"]["value"]}


def read_evalset(dataset: Any, size: int, mean: tuple[float, float, float], seed: int) -> EvalSet:
    """The labelled crops of ``--eval`` at the global crop size, with group-aware folds (as ``dinoscope probe``)."""
    from dinoscope.analysis.probe_eval import select_evaluation_folds
    from dinoscope.embed.crops import cut_crops
    from dinoscope.embed.spec import CropSpec
    from dinoscope.errors import DinoscopeError
    from dinoscope.io.dataset import read_dataset
    from dinoscope.io.images import read_image

    table = read_dataset(dataset)
    labels = table.class_id.astype(np.int64) if table.class_names else np.full(len(table), -1)
    if len(np.unique(labels[labels >= 0])) < 2:
        raise DinoscopeError(f"--eval {dataset}: needs labels of at least two classes (a kNN probe has nothing to do)")
    data = table.data
    has_groups = "group_id" in data.columns and (data["group_id"].astype(str) != "").any()
    groups = data["group_id" if has_groups else "source"].fillna("").astype(str).to_numpy(dtype=object)
    folds = select_evaluation_folds(labels, groups, data["split"].to_numpy(), seed=seed)
    crops = np.empty((len(table), size, size, 3), np.uint8)
    from pathlib import Path

    for source, g in data.groupby("source", sort=False):
        image = read_image(Path(table.root or ".") / source)
        crops[g.index.to_numpy()] = cut_crops(
            image, g[["x1", "y1", "x2", "y2"]].to_numpy(), CropSpec(), size, "bicubic", mean
        )
    return EvalSet(crops, labels, groups, folds, list(table.class_names))


def run_check(
    step: int,
    embed: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    monitor_crops: np.ndarray,
    evalset: EvalSet | None,
    reference: dict[str, float] | None,
) -> Check:
    """One check: the collapse figures (and the kNN score) of the current teacher; ``reference`` None = this is
    the original backbone's check."""
    vectors, probs = embed(monitor_crops)
    check = Check(step, compute_collapse_figures(vectors, probs))
    if evalset is not None:
        check.figures.update(knn_score(embed(evalset.crops)[0], evalset))
    if reference is not None:
        check.reason = find_collapse(check.figures, reference)
        check.collapsed = bool(check.reason)
    return check
