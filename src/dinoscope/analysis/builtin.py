"""The shipped analyses as registry entries see them: a runner over the shared context and summary numbers.

Each ``run_<name>`` calls the analysis' ``find_*`` function with what it needs from the
:class:`~dinoscope.analysis.registry.AnalysisContext`; each ``<name>_numbers`` gives its per-class numbers of
``summary.json`` from its findings (reindexed to every analysed row, NaN where a row was not analysed), each
``<name>_dataset_numbers`` its dataset-wide ones. The analysis modules are imported when an analysis runs.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dinoscope.analysis.base import AnalysisResult

if TYPE_CHECKING:
    from dinoscope.analysis.registry import AnalysisContext

__all__ = [
    "DUPLICATE_COLUMNS",
    "OUTLIER_COLUMNS",
    "QUALITY_COLUMNS",
    "QUALITY_FLAGS",
    "cluster_numbers",
    "duplicate_dataset_numbers",
    "duplicate_numbers",
    "label_error_numbers",
    "leakage_dataset_numbers",
    "outlier_numbers",
    "overlap_dataset_numbers",
    "overlap_numbers",
    "quality_dataset_numbers",
    "quality_numbers",
    "run_clusters",
    "run_duplicates",
    "run_label_errors",
    "run_leakage",
    "run_outliers",
    "run_overlap",
    "run_quality",
]

#: The finding columns of the longer findings tables, in the order they are written.
OUTLIER_COLUMNS = (
    "is_outlier", "outlier_quality", "outlier_reason", "outlier_z", "isolation_z", "class_distance_z",
    "knn_similarity", "class_similarity",
)  # fmt: skip
DUPLICATE_COLUMNS = (
    "is_duplicate", "is_exact_duplicate", "is_near_duplicate", "duplicate_quality", "nearest_duplicate",
    "duplicate_group", "duplicate_of", "keep",
)  # fmt: skip
QUALITY_COLUMNS = (
    "sharpness", "laplacian_var", "brightness", "dark_share", "bright_share", "contrast", "error", "is_blurry",
    "blur_quality", "is_dark", "is_overexposed", "exposure_quality", "is_low_contrast", "contrast_quality",
    "is_quality_issue", "quality_quality", "quality_reason",
)  # fmt: skip
#: The image-quality flags counted per class (``n_<flag without is_>``).
QUALITY_FLAGS = ("is_blurry", "is_dark", "is_overexposed", "is_low_contrast")


def column(frame: pd.DataFrame, name: str, rows: np.ndarray) -> pd.Series | None:
    """Column ``name`` of ``frame`` at ``rows``; None when the findings have no such column."""
    return frame[name].iloc[rows] if name in frame.columns else None


# --- runners -------------------------------------------------------------------------------------------------
def run_clusters(ctx: AnalysisContext) -> AnalysisResult:
    """Sub-groups per class (:func:`~dinoscope.analysis.clusters.find_subgroups`)."""
    from dinoscope.analysis.clusters import find_subgroups

    return find_subgroups(ctx.vectors, ctx.class_id, ctx.class_graphs, method=ctx.options.cluster_method, seed=ctx.seed)


def run_outliers(ctx: AnalysisContext) -> AnalysisResult:
    """Outliers per class (:func:`~dinoscope.analysis.outliers.find_outliers`)."""
    from dinoscope.analysis.outliers import find_outliers

    return find_outliers(ctx.vectors, ctx.class_id, ctx.class_graphs)


def run_duplicates(ctx: AnalysisContext) -> AnalysisResult:
    """Exact and near duplicates (:func:`~dinoscope.analysis.duplicates.find_duplicates`)."""
    from dinoscope.analysis.duplicates import find_duplicates

    return find_duplicates(ctx.vectors, ctx.graph, ctx.content_keys, area=ctx.area, split_rank=ctx.split_rank)


def run_label_errors(ctx: AnalysisContext) -> AnalysisResult:
    """Label errors from the kNN votes and a cross-validated linear probe
    (:func:`~dinoscope.analysis.label_errors.find_label_errors`): a duplicate's copies do not vote, and the boxes
    of one source image and the members of one duplicate group stay in one fold of the probe."""
    from dinoscope.analysis.label_errors import find_label_errors
    from dinoscope.analysis.probe import ProbeSettings

    groups = ctx.results["duplicates"].findings["duplicate_group"].to_numpy()
    images = None
    if ctx.table is not None and len(ctx.table) == len(ctx.vectors):
        images = pd.factorize(ctx.table.data["source"].astype(str))[0]
    return find_label_errors(
        ctx.vectors,
        ctx.graph,
        ctx.class_id,
        duplicate_group=groups,
        class_names=ctx.names,
        probe=ProbeSettings(seed=ctx.seed),
        fold_groups=images,
    )


def run_overlap(ctx: AnalysisContext) -> AnalysisResult:
    """Class overlap (:func:`~dinoscope.analysis.overlap.compute_class_overlap`)."""
    from dinoscope.analysis.overlap import compute_class_overlap

    return compute_class_overlap(ctx.graph, ctx.class_id, ctx.vectors, ctx.names)


def run_leakage(ctx: AnalysisContext) -> AnalysisResult:
    """Duplicates across splits (:func:`~dinoscope.analysis.leakage.find_leakage`)."""
    from dinoscope.analysis.leakage import find_leakage

    return find_leakage(ctx.results["duplicates"], ctx.split)


def run_quality(ctx: AnalysisContext) -> AnalysisResult:
    """Image quality of whole images or frames (:func:`~dinoscope.analysis.quality.find_quality_issues`)."""
    from dinoscope.analysis.quality import find_quality_issues, measure_table

    if ctx.table is None:
        raise ValueError("the quality analysis measures the images: the context needs the object table")
    return find_quality_issues(measure_table(ctx.table))


# --- per-class numbers ---------------------------------------------------------------------------------------
def cluster_numbers(frame: pd.DataFrame, rows: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``n_clusters``, ``cluster_sizes`` (largest first) and ``unclustered_share``."""
    cluster = column(frame, "cluster", rows)
    if cluster is None:
        return {}
    sizes = cluster[cluster >= 0].value_counts().sort_values(ascending=False)
    return {
        "n_clusters": len(sizes),
        "cluster_sizes": [int(v) for v in sizes],
        "unclustered_share": float((cluster < 0).mean()) if len(rows) else 0.0,
    }


def outlier_numbers(frame: pd.DataFrame, rows: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``n_outliers`` and ``outlier_rate``."""
    flag = column(frame, "is_outlier", rows)
    if flag is None:
        return {}
    flag = flag.fillna(False)
    return {"n_outliers": int(flag.sum()), "outlier_rate": float(flag.mean()) if len(rows) else 0.0}


def duplicate_numbers(frame: pd.DataFrame, rows: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``n_near_duplicates`` (exact or near) and ``duplicate_share``."""
    near = column(frame, "is_near_duplicate", rows)
    exact = column(frame, "is_exact_duplicate", rows)
    if near is None:
        return {}
    dup = near.fillna(False).astype(bool) | (exact.fillna(False).astype(bool) if exact is not None else False)
    return {"n_near_duplicates": int(dup.sum()), "duplicate_share": float(dup.mean()) if len(rows) else 0.0}


def label_error_numbers(frame: pd.DataFrame, rows: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``n_label_errors`` and ``label_error_destinations`` ({suggested class: count}, most common first)."""
    errors = column(frame, "is_label_error", rows)
    if errors is None:
        return {}
    mask = errors.fillna(False).astype(bool).to_numpy()
    suggested = column(frame, "suggested_class", rows)
    dest = Counter(names[int(s)] for s in suggested.to_numpy()[mask]) if suggested is not None else Counter()
    return {"n_label_errors": int(mask.sum()), "label_error_destinations": dict(dest.most_common())}


def overlap_numbers(frame: pd.DataFrame, rows: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``separability``: the class's mean separability quality."""
    sep = column(frame, "separability_quality", rows)
    return {"separability": float(sep.mean())} if sep is not None and len(rows) else {}


def quality_numbers(frame: pd.DataFrame, rows: np.ndarray, names: list[str]) -> dict[str, Any]:
    """``n_blurry``, ``n_dark``, ``n_overexposed``, ``n_low_contrast``."""
    out = {}
    for flag in QUALITY_FLAGS:
        values = column(frame, flag, rows)
        if values is not None:
            out[f"n_{flag[3:]}"] = int(values.fillna(False).astype(bool).sum())
    return out


# --- dataset-wide numbers ------------------------------------------------------------------------------------
def duplicate_dataset_numbers(result: AnalysisResult, frame: pd.DataFrame) -> dict[str, Any]:
    """``n_duplicate_groups`` and ``n_duplicates_to_drop``."""
    if "duplicate_group" not in frame.columns:
        return {}
    groups = frame["duplicate_group"].fillna(-1)
    to_drop = int((~frame["keep"].fillna(True).astype(bool)).sum()) if "keep" in frame else None
    return {"n_duplicate_groups": int(groups[groups >= 0].nunique()), "n_duplicates_to_drop": to_drop}


def leakage_dataset_numbers(result: AnalysisResult, frame: pd.DataFrame) -> dict[str, Any]:
    """``leakage`` (counts per split pair) and ``n_leaked``."""
    leaked = result.findings.get("is_leaked", pd.Series(dtype=bool)).fillna(False)
    return {"leakage": result.info.get("pairs", result.summary), "n_leaked": int(leaked.sum())}


def quality_dataset_numbers(result: AnalysisResult, frame: pd.DataFrame) -> dict[str, Any]:
    """``quality``: the flag counts of the whole run."""
    return {"quality": dict(result.summary)}


def overlap_dataset_numbers(result: AnalysisResult, frame: pd.DataFrame) -> dict[str, Any]:
    """``most_confused_pairs``: the ten most confused class pairs."""
    return {"most_confused_pairs": result.info.get("confused_pairs", [])[:10]}
