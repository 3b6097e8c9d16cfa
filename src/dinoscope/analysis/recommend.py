"""Headline numbers per class and recommendations in plain words, from the analyses' findings.

The wording rules (and the few thresholds that decide when a sentence is worth saying) live here, in one
place, so the CLI summary, ``summary.json`` and the report say the same thing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.base import AnalysisResult
from dinoscope.analysis.overlap import share_matrix
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
        results: Findings by analysis name (``clusters``, ``outliers``, ``duplicates``, ``label_errors``,
            ``overlap``, ``leakage``); missing analyses are skipped.

    Returns:
        ``{"n_classes", "classes": {name: {...numbers, "recommendations": [...]}}, "dataset": {...}}``.
    """
    frames = {name: r.findings.reindex(np.arange(len(table))) for name, r in results.items()}
    confusion = _confusion(results.get("overlap"), names)
    classes = {}
    for c, name in enumerate(names):
        rows = np.flatnonzero(class_id == c)
        numbers = _class_numbers(rows, frames, names, results)
        numbers["recommendations"] = _sentences(numbers, confusion.get(name, []))
        classes[name] = numbers
    return {"n_classes": len(names), "classes": classes, "dataset": _dataset(frames, results)}


def _col(frames: dict[str, pd.DataFrame], analysis: str, column: str, rows: np.ndarray) -> pd.Series | None:
    frame = frames.get(analysis)
    if frame is None or column not in frame.columns:
        return None
    return frame[column].iloc[rows]


def _class_numbers(
    rows: np.ndarray, frames: dict[str, pd.DataFrame], names: list[str], results: dict[str, AnalysisResult]
) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    cluster = _col(frames, "clusters", "cluster", rows)
    if cluster is not None:
        sizes = cluster[cluster >= 0].value_counts().sort_values(ascending=False)
        out.update(
            n_clusters=len(sizes),
            cluster_sizes=[int(v) for v in sizes],
            unclustered_share=float((cluster < 0).mean()) if n else 0.0,
        )
    flag = _col(frames, "outliers", "is_outlier", rows)
    if flag is not None:
        out.update(
            n_outliers=int(flag.fillna(False).sum()), outlier_rate=float(flag.fillna(False).mean()) if n else 0.0
        )
    near = _col(frames, "duplicates", "is_near_duplicate", rows)
    exact = _col(frames, "duplicates", "is_exact_duplicate", rows)
    if near is not None:
        dup = near.fillna(False).astype(bool) | (exact.fillna(False).astype(bool) if exact is not None else False)
        out.update(n_near_duplicates=int(dup.sum()), duplicate_share=float(dup.mean()) if n else 0.0)
    errors = _col(frames, "label_errors", "is_label_error", rows)
    if errors is not None:
        mask = errors.fillna(False).astype(bool).to_numpy()
        suggested = _col(frames, "label_errors", "suggested_class", rows)
        dest = Counter(names[int(s)] for s in suggested.to_numpy()[mask]) if suggested is not None else Counter()
        out.update(n_label_errors=int(mask.sum()), label_error_destinations=dict(dest.most_common()))
    sep = _col(frames, "overlap", "separability_quality", rows)
    if sep is not None and n:
        out["separability"] = float(sep.mean())
    for flag in ("is_blurry", "is_dark", "is_overexposed", "is_low_contrast"):
        values = _col(frames, "quality", flag, rows)
        if values is not None:
            out[f"n_{flag[3:]}"] = int(values.fillna(False).astype(bool).sum())
    return out


def _sentences(num: dict[str, Any], confused: list[tuple[str, float]]) -> list[str]:
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
    dup = frames.get("duplicates")
    if dup is not None and "duplicate_group" in dup.columns:
        groups = dup["duplicate_group"].fillna(-1)
        out["n_duplicate_groups"] = int(groups[groups >= 0].nunique())
        out["n_duplicates_to_drop"] = int((~dup["keep"].fillna(True).astype(bool)).sum()) if "keep" in dup else None
    leak = results.get("leakage")
    if leak is not None:
        out["leakage"] = leak.info.get("pairs", leak.summary)
        out["n_leaked"] = int(leak.findings.get("is_leaked", pd.Series(dtype=bool)).fillna(False).sum())
    quality = results.get("quality")
    if quality is not None:
        out["quality"] = dict(quality.summary)
    overlap = results.get("overlap")
    if overlap is not None:
        out["most_confused_pairs"] = overlap.info.get("confused_pairs", [])[:10]
    return out
