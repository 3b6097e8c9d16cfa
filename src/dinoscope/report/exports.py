"""Files written beside the report for spreadsheets, reviews and other tools.

- ``cluster_statistics.csv``: one row per class with the columns users of the original scripts expect
  (``class, n_samples, n_clusters, n_outliers, outlier_rate, eps_used``, all numeric), then more numbers;
- ``findings.csv``: one row per analysed object with every finding column (row references as object ids,
  class ids also as names; which analysis gives which columns comes from the analysis registry) and
  ``checks.csv``: the dataset health findings;
- ``label_errors_review.csv`` / ``.yaml``: the label-error candidates to review (file, line, current and
  suggested class), lowest label quality first, with an empty ``decision`` column for the reviewer;
- ``samples/<class>/...`` with ``--export-samples``: crops per sub-group, outliers and label-error candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from dinoscope.analysis.registry import get_analysis, registered_analyses
from dinoscope.report.data import RunData
from dinoscope.report.select import ReportPlan

__all__ = [
    "CLUSTER_STATISTICS_COLUMNS",
    "FindingsSection",
    "findings_sections",
    "plan_samples",
    "write_cluster_statistics",
    "write_findings",
    "write_label_error_review",
]

#: The first columns of cluster_statistics.csv, as the original scripts wrote them.
CLUSTER_STATISTICS_COLUMNS = ("class", "n_samples", "n_clusters", "n_outliers", "outlier_rate", "eps_used")
_OBJECT_COLUMNS = (
    "object_id", "class_name", "split", "source", "frame", "label_ref", "x1", "y1", "x2", "y2", "image_w", "image_h",
)  # fmt: skip
_INTERNAL = {"cls", "content_hash", "class_id", "origin", "confidence"}


def cluster_statistics(data: RunData) -> pd.DataFrame:
    """One row per class: the original's columns, then unclustered, duplicates, label errors, separability.

    Numbers come from ``summary.json`` (counts, rates, separability) and run.yaml (``eps_used``: the eps the
    sub-group analysis derived for the class; ``min_group_size``).
    """
    info = data.analysis_info.get("clusters", {}).get("classes", {})
    o = data.objects
    rows = []
    for c, name in enumerate(data.names):
        s = data.class_summary(c)
        own = info.get(str(c), info.get(c, {})) or {}
        n_unclustered = (
            int(o.loc[o["cls"] == c, "is_unclustered"].fillna(False).sum()) if "is_unclustered" in o else None
        )
        rows.append(
            {
                "class": name,
                "n_samples": s.get("n"),
                "n_clusters": s.get("n_clusters"),
                "n_outliers": s.get("n_outliers"),
                "outlier_rate": s.get("outlier_rate"),
                "eps_used": own.get("eps"),
                "min_group_size": own.get("min_group_size"),
                "n_unclustered": n_unclustered,
                "largest_cluster": max(s.get("cluster_sizes") or [0]) if s.get("cluster_sizes") is not None else None,
                "n_near_duplicates": s.get("n_near_duplicates"),
                "n_label_errors": s.get("n_label_errors"),
                "separability": s.get("separability"),
            }
        )
    frame = pd.DataFrame(rows)
    for col in frame.columns[1:]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
        if col.startswith("n_") or col in ("min_group_size", "largest_cluster"):
            frame[col] = frame[col].astype("Int64")
    return frame


def write_cluster_statistics(data: RunData, path: Path) -> Path:
    """Write ``cluster_statistics.csv`` (see :func:`cluster_statistics`)."""
    cluster_statistics(data).to_csv(path, index=False, float_format="%.6g")
    return path


def findings_frame(data: RunData) -> pd.DataFrame:
    """Every analysed object with every finding column; class ids (registered ``class_columns``) as names too."""
    o = data.objects
    cols = [c for c in _OBJECT_COLUMNS if c in o.columns]
    cols += [c for c in o.columns if c not in cols and c not in _INTERNAL]
    frame = o[cols].copy()
    names = np.asarray([*data.names, ""], dtype=object)
    for col in (c for a in registered_analyses() for c in a.class_columns):
        if col in frame.columns:
            ids = frame[col].fillna(-1).astype(int).to_numpy()
            frame.insert(frame.columns.get_loc(col) + 1, f"{col}_name", names[np.where(ids >= 0, ids, -1)])
    return frame


@dataclass(frozen=True)
class FindingsSection:
    """The columns one analysis contributes to ``findings.csv``, described for the exports page."""

    name: str
    title: str
    description: str
    columns: list[str]


def findings_sections(data: RunData) -> list[FindingsSection]:
    """One section per findings file of the run, registered analyses first (in run order), with the columns
    of ``findings.csv`` it holds; an analysis no longer registered keeps its name, without a description."""
    present = set(data.objects.columns)
    out = []
    for name in data.analyses:
        analysis = get_analysis(name)
        if analysis is None:
            out.append(FindingsSection(name, name, "", []))
            continue
        columns = analysis.csv_columns(present)
        out.append(FindingsSection(name, analysis.title or name, analysis.description, columns))
    return out


def write_findings(data: RunData, out: Path) -> list[Path]:
    """Write ``findings.csv`` (objects x findings) and ``checks.csv`` (dataset health findings)."""
    paths = [out / "findings.csv", out / "checks.csv"]
    findings_frame(data).to_csv(paths[0], index=False, float_format="%.6g")
    data.checks.to_frame().to_csv(paths[1], index=False)
    return paths


def label_error_review(data: RunData) -> pd.DataFrame:
    """The label-error candidates, lowest label quality first: where to look and what the neighbours say."""
    o = data.objects
    columns = ["file", "line", "image", "frame", "current_class", "suggested_class", "label_quality",
               "suggested_share", "object_id", "x1", "y1", "x2", "y2", "decision"]  # fmt: skip
    if "is_label_error" not in o.columns:
        return pd.DataFrame(columns=columns)
    rows = o[o["is_label_error"].fillna(False).astype(bool)].sort_values("label_quality", kind="stable")
    ref = rows["label_ref"].fillna("").astype(str)
    parts = ref.str.extract(r"^(?P<file>.*?)(?::(?P<line>\d+))?$")
    names = np.asarray(data.names, dtype=object)
    suggested = rows["suggested_class"].fillna(-1).astype(int).to_numpy()
    return pd.DataFrame(
        {
            "file": parts["file"].where(parts["file"] != "", rows["source"]).to_numpy(),
            "line": pd.to_numeric(parts["line"], errors="coerce").astype("Int64").to_numpy(),
            "image": rows["source"].to_numpy(),
            "frame": rows["frame"].to_numpy(),
            "current_class": rows["class_name"].to_numpy(),
            "suggested_class": np.where(suggested >= 0, names[np.clip(suggested, 0, len(names) - 1)], ""),
            "label_quality": rows["label_quality"].round(4).to_numpy(),
            "suggested_share": rows["suggested_share"].round(4).to_numpy(),
            "object_id": rows["object_id"].to_numpy(),
            "x1": rows["x1"].round(1).to_numpy(),
            "y1": rows["y1"].round(1).to_numpy(),
            "x2": rows["x2"].round(1).to_numpy(),
            "y2": rows["y2"].round(1).to_numpy(),
            "decision": "",
        },
        columns=columns,
    )


def write_label_error_review(data: RunData, out: Path) -> list[Path]:
    """Write ``label_errors_review.csv`` and ``label_errors_review.yaml`` (same items)."""
    review = label_error_review(data)
    paths = [out / "label_errors_review.csv", out / "label_errors_review.yaml"]
    review.to_csv(paths[0], index=False)
    items = [{k: _plain(v) for k, v in row.items()} for row in review.to_dict(orient="records")]
    doc = {
        "run": str(data.run_dir),
        "dataset_root": str(data.table.root or ""),
        "how_to_review": "open each file at its line; set decision to keep, relabel or remove",
        "n_candidates": len(items),
        "candidates": items,
    }
    paths[1].write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return paths


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def slug(name: str) -> str:
    """A file-system-safe version of a class name (letters, digits, ``-_.``; never empty)."""
    out = re.sub(r"[^\w.-]+", "_", name, flags=re.UNICODE).strip("._")
    return out[:60] or "class"


def plan_samples(
    data: RunData, plan: ReportPlan, out: Path, per_group: int = 24, seed: int = 0
) -> dict[int, list[Path]]:
    """Crop paths for ``--export-samples``: per class, sub-groups (representatives first, then a seeded
    sample of members), objects in no group, outliers and label-error candidates.

    Returns:
        {row: paths under ``out / "samples"``} (an outlier in no group is in both folders).
    """
    rng = np.random.default_rng(seed)
    o = data.objects
    cluster = o["cluster"].fillna(-1).to_numpy().astype(int) if "cluster" in o else np.full(len(o), -1)
    ids = o["object_id"].to_numpy()
    paths: dict[int, list[Path]] = {}

    def put(rows: np.ndarray, folder: Path) -> None:
        for i, r in enumerate(rows.tolist()):
            paths.setdefault(int(r), []).append(folder / f"{i + 1:03d}_{ids[r]}.jpg")

    for cp in plan.classes:
        base = out / "samples" / f"{cp.cls:03d}_{slug(cp.name)}"
        for g in cp.groups:
            members = cp.rows[cluster[cp.rows] == g.cluster]
            rest = np.setdiff1d(members, g.shown)
            extra = rng.choice(rest, size=min(len(rest), max(0, per_group - len(g.shown))), replace=False)
            put(
                np.concatenate([g.shown, np.sort(extra)])[:per_group],
                base / f"group-{cp.ranks[g.cluster] + 1:02d}_{g.size}-objects",
            )
        loose = cp.rows[cluster[cp.rows] < 0]
        if len(loose):
            put(np.sort(rng.choice(loose, size=min(len(loose), per_group), replace=False)), base / "no-group")
        if cp.outliers_flagged and len(cp.outliers):
            put(cp.outliers, base / "outliers")
        if len(cp.label_errors):
            put(cp.label_errors, base / "label-errors")
    return paths
