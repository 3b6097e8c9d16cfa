"""Every probe protocol over one model's vectors, on shared group-aware folds: predictions, metrics, errors.

:func:`run_protocols` runs the weighted kNN (one row per ``k``) and the logistic regression
(:mod:`~dinoscope.analysis.probe_eval`) on the same folds, and, when given the model's ``[CLS ‖ mean patch]``
vectors, the DINOv2 linear probe (the same logistic regression on that concatenation: the input of DINOv2's
released linear heads). Each protocol's out-of-fold predictions are scored by
:func:`~dinoscope.analysis.probe_metrics.compute_probe_metrics` (group-bootstrap intervals).

Example:
    >>> folds = select_evaluation_folds(labels, groups)  # doctest: +SKIP
    >>> results = run_protocols(vectors, labels, groups, folds, ["ok", "defect"])  # doctest: +SKIP
    >>> results["knn20"].metrics["accuracy"]["value"]  # doctest: +SKIP
    0.97
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.probe_eval import EvaluationFolds, logistic_probabilities
from dinoscope.analysis.probe_knn import KNN_KS, knn_probabilities
from dinoscope.analysis.probe_metrics import HEADLINE, compute_probe_metrics

__all__ = ["PROTOCOL_TITLES", "ProtocolResult", "errors_frame", "run_protocols", "summary_frame"]

#: Protocol key -> the name shown in tables.
PROTOCOL_TITLES = {
    **{f"knn{k}": f"kNN k={k}" for k in KNN_KS},
    "logreg": "logistic regression",
    "linear": "linear [CLS‖mean patch]",
}


@dataclass
class ProtocolResult:
    """One protocol's out-of-fold predictions and their metrics.

    Attributes:
        name: Protocol key (``knn10`` ... ``knn200``, ``logreg``, ``linear``).
        probabilities: (N, C) float32 class probabilities; NaN rows were not tested.
        metrics: :func:`~dinoscope.analysis.probe_metrics.compute_probe_metrics` of them.
        info: The protocol's settings and choices (k used, C per fold) and its seconds.
    """

    name: str
    probabilities: np.ndarray
    metrics: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def run_protocols(
    vectors: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    folds: EvaluationFolds,
    class_names: list[str],
    *,
    linear_vectors: np.ndarray | None = None,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, ProtocolResult]:
    """kNN (k = 10, 20, 100, 200), logistic regression and, given ``linear_vectors``, the linear probe.

    Args:
        vectors: (N, D) the model's vectors.
        labels: (N,) class ids (-1: not used).
        groups: (N,) group of every row (kept whole by ``folds``, resampled whole by the bootstrap).
        folds: The shared folds.
        class_names: C class names.
        linear_vectors: (N, D') ``[CLS ‖ mean patch]`` vectors of the same model, or None.
        seed: Seed of the inner folds and the bootstrap.
        n_boot: Bootstrap resamples.

    Returns:
        {protocol key: :class:`ProtocolResult`} in table order.
    """
    n_classes = len(class_names)
    out: dict[str, ProtocolResult] = {}
    started = time.perf_counter()
    knn, knn_info = knn_probabilities(vectors, labels, folds, n_classes)
    seconds = round(time.perf_counter() - started, 3)
    for k, probs in knn.items():
        info = {"k": knn_info["k"][str(k)], "temperature": knn_info["temperature"], "seconds": seconds}
        out[f"knn{k}"] = ProtocolResult(f"knn{k}", probs, {}, info)
    for name, x in (("logreg", vectors), ("linear", linear_vectors)):
        if x is None:
            continue
        started = time.perf_counter()
        probs, info = logistic_probabilities(x, labels, folds, groups, n_classes, seed=seed)
        out[name] = ProtocolResult(name, probs, {}, {**info, "seconds": round(time.perf_counter() - started, 3)})
    for result in out.values():
        probs = result.probabilities
        result.metrics = compute_probe_metrics(labels, probs, groups, class_names, n_boot=n_boot, seed=seed)
    return out


def errors_frame(
    results: dict[str, ProtocolResult],
    labels: np.ndarray,
    object_ids: np.ndarray,
    groups: np.ndarray,
    class_names: list[str],
    model: str,
) -> pd.DataFrame:
    """The misclassified objects of every protocol: ``object_id, group, model, protocol, class_name,
    predicted, p_true, p_predicted`` (most confident mistakes first)."""
    parts = []
    for name, result in results.items():
        p = result.probabilities
        tested = (labels >= 0) & np.isfinite(p).all(axis=1)
        pred = np.where(tested, np.argmax(np.nan_to_num(p, nan=-1.0), axis=1), -1)
        rows = np.flatnonzero(tested & (pred != labels))
        parts.append(
            pd.DataFrame(
                {
                    "object_id": object_ids[rows],
                    "group": np.asarray(groups, dtype=object)[rows].astype(str),
                    "model": model,
                    "protocol": name,
                    "class_name": np.asarray(class_names, dtype=object)[labels[rows]],
                    "predicted": np.asarray(class_names, dtype=object)[pred[rows]],
                    "p_true": p[rows, labels[rows]].astype(np.float64),
                    "p_predicted": p[rows, pred[rows]].astype(np.float64),
                }
            ).sort_values("p_predicted", ascending=False, kind="stable")
        )
    columns = ["object_id", "group", "model", "protocol", "class_name", "predicted", "p_true", "p_predicted"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def summary_frame(metrics: dict[str, dict[str, dict[str, Any]]]) -> pd.DataFrame:
    """One row per (model, protocol): ``n`` and each headline metric with its interval (``<metric>``,
    ``<metric>_low``, ``<metric>_high``).

    Args:
        metrics: {model: {protocol key: metrics}}.
    """
    rows = []
    for model, protocols in metrics.items():
        for name, m in protocols.items():
            row: dict[str, Any] = {"model": model, "protocol": name, "n": m["n"], "n_groups": m["n_groups"]}
            for metric in HEADLINE:
                row[metric] = m[metric]["value"]
                row[f"{metric}_low"], row[f"{metric}_high"] = m[metric]["low"], m[metric]["high"]
            rows.append(row)
    return pd.DataFrame(rows)
