"""Headline numbers per class and recommendations in plain words, from the analyses' findings.

The numbers come from the registry (:mod:`~dinoscope.analysis.registry`: each analysis gives its per-class and
dataset-wide numbers). The wording rules of the shipped analyses (and the few thresholds that decide when a
sentence is worth saying) live here, in one place, because they weigh several analyses at once (a class too
small to judge, confusion read from the overlap matrix); an analysis added later brings its own sentences
(``Analysis.advice``), said after these. So the CLI summary, ``summary.json`` and the report say the same thing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.base import AnalysisResult
from dinoscope.analysis.overlap import share_matrix
from dinoscope.analysis.registry import registered_analyses
from dinoscope.table import ObjectTable

__all__ = ["MIN_OBJECTS", "recommend"]

#: Below this many objects a class is too small to judge sub-groups or outliers.
MIN_OBJECTS = 10
#: A near-duplicate share worth a sentence.
DUPLICATE_SHARE = 0.05
#: A share of neighbours from one other class worth a sentence.
CONFUSION_SHARE = 0.15
#: A sub-group smaller than this share of its class is called rare.
RARE_SHARE = 0.05


def recommend(
    table: ObjectTable, names: list[str], class_id: np.ndarray, results: dict[str, AnalysisResult]
) -> dict[str, Any]:
    """The summary: per-class numbers with recommendations, and dataset-wide findings.

    Args:
        table: The analysed objects (rows aligned with ``class_id`` and the findings' index).
        names: Class names (index = class id).
        class_id: (N,) class id per row (unlabelled data: all 0).
        results: Findings by analysis name; every registered analysis among them adds its per-class and
            dataset-wide numbers (:mod:`~dinoscope.analysis.registry`), the others are left out.

    Returns:
        ``{"n_classes", "classes": {name: {...numbers, "recommendations": [...]}}, "dataset": {...}}``.
    """
    frames = {name: r.findings.reindex(np.arange(len(table))) for name, r in results.items()}
    confusion = _confusion(results.get("overlap"), names)
    classes = {}
    for c, name in enumerate(names):
        rows = np.flatnonzero(class_id == c)
        numbers = _class_numbers(rows, frames, names)
        numbers["recommendations"] = _sentences(numbers, confusion.get(name, []), set(results))
        classes[name] = numbers
    return {"n_classes": len(names), "classes": classes, "dataset": _dataset(frames, results)}


def _class_numbers(rows: np.ndarray, frames: dict[str, pd.DataFrame], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for analysis in registered_analyses():
        frame = frames.get(analysis.name)
        if frame is not None and analysis.class_numbers is not None:
            out.update(analysis.class_numbers(frame, rows, names))
    return out


def _sentences(num: dict[str, Any], confused: list[tuple[str, float]], analysed: set[str]) -> list[str]:
    n = num["n"]
    if n < MIN_OBJECTS:
        few = f"only {n} object{'s' if n != 1 else ''}: too few to judge sub-groups or outliers - collect more"
        return [few, *_quality_sentence(num)]
    out = []
    k = num.get("n_clusters", 0)
    if k >= 2:
        sizes = num["cluster_sizes"]
        text = (
            f"{k} sub-types (sizes {' / '.join(str(s) for s in sizes[:6])}) - check each is intended; "
            "consider splitting the class or balancing its sub-types"
        )
        rare = [s for s in sizes if s < RARE_SHARE * n]
        if rare:
            text += f"; {len(rare)} rare sub-type{'s' if len(rare) > 1 else ''} under {RARE_SHARE:.0%} of the class"
        out.append(text)
    if num.get("n_outliers"):
        m = num["n_outliers"]
        out.append(
            f"{m} outlier{'s' if m > 1 else ''} ({num['outlier_rate']:.1%}) - review them first: wrong boxes, "
            "occlusions or rare cases"
        )
    if num.get("n_label_errors"):
        m, dest = num["n_label_errors"], num.get("label_error_destinations", {})
        to = f", mostly to {next(iter(dest))}" if dest else ""
        out.append(f"{m} likely label error{'s' if m > 1 else ''}{to}")
    if num.get("duplicate_share", 0.0) >= DUPLICATE_SHARE:
        out.append(
            f"{num['duplicate_share']:.0%} near-duplicates of each other - deduplicate, and keep copies "
            "within one split"
        )
    for other, share in confused[:2]:
        out.append(f"often confused with {other} ({share:.0%} of neighbours)")
    out += _quality_sentence(num)
    for analysis in registered_analyses():
        if analysis.advice is not None and analysis.name in analysed:
            out += analysis.advice(num)
    return out or ["no problem found"]


def _quality_sentence(num: dict[str, Any]) -> list[str]:
    poor = [(num.get(f"n_{key}", 0), word) for key, word in _QUALITY_WORDS]
    if not any(count for count, _ in poor):
        return []
    listed = ", ".join(f"{count} {word}" for count, word in poor if count)
    return [f"image quality: {listed} - drop or re-capture them before annotating"]


_QUALITY_WORDS = (("blurry", "blurry"), ("dark", "dark"), ("overexposed", "over-exposed"), ("low_contrast", "flat"))


def _confusion(overlap: AnalysisResult | None, names: list[str]) -> dict[str, list[tuple[str, float]]]:
    """Per class, the other classes holding at least CONFUSION_SHARE of its neighbours, largest first."""
    if overlap is None:
        return {}
    m = share_matrix(overlap.info.get("neighbor_share"), len(names))
    if m is None:
        return {}
    out: dict[str, list[tuple[str, float]]] = {}
    for i, name in enumerate(names):
        pairs = [(names[j], float(m[i, j])) for j in range(len(names)) if j != i and m[i, j] >= CONFUSION_SHARE]
        out[name] = sorted(pairs, key=lambda p: -p[1])
    return out


def _dataset(frames: dict[str, pd.DataFrame], results: dict[str, AnalysisResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for analysis in registered_analyses():
        if analysis.name in results and analysis.dataset_numbers is not None:
            out.update(analysis.dataset_numbers(results[analysis.name], frames[analysis.name]))
    return out
