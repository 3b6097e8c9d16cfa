"""Dataset health checks: everything a team should fix before it embeds, analyses or trains.

Readers already report what they meet while parsing (malformed lines, unknown classes, missing files,
degenerate boxes, unreadable images...). :func:`run_checks` adds the checks that need the whole table
(stacked and duplicate boxes, byte-identical images within and across splits, ambiguous file names,
class imbalance, empty and single-object classes) and counts objects per split and class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.errors import DatasetFormatError
from dinoscope.table import ObjectTable
from dinoscope.types import FINDING_KINDS, Finding, Severity

__all__ = ["DUPLICATE_BOX_IOU", "STACKED_BOX_IOU", "CheckReport", "read_checks", "run_checks"]

#: Same-class boxes overlapping more than this are reported as stacked.
STACKED_BOX_IOU = 0.9
#: ... and above this as duplicates.
DUPLICATE_BOX_IOU = 0.99
#: A max/min class ratio from which imbalance is a warning rather than information.
IMBALANCE_WARN_RATIO = 10.0


@dataclass(frozen=True)
class CheckReport:
    """Findings and counts of one dataset.

    Attributes:
        findings: All findings, readers' first, in file order.
        counts: Per split: ``images``, ``objects``, ``background_images`` and ``classes`` (name → objects).
        class_names: The dataset's class names.
        format: The reader that read it.
        root: The dataset root.
    """

    findings: tuple[Finding, ...]
    counts: dict[str, dict[str, Any]]
    class_names: tuple[str, ...]
    format: str = ""
    root: str = ""
    totals: dict[str, Any] = field(default_factory=dict)

    @property
    def n_errors(self) -> int:
        """Number of findings of severity ``error``."""
        return sum(f.severity is Severity.ERROR for f in self.findings)

    def kind_counts(self) -> dict[str, int]:
        """Findings per kind, in the order of :data:`FINDING_KINDS`, kinds with none left out."""
        seen: dict[str, int] = {}
        for f in self.findings:
            seen[f.kind] = seen.get(f.kind, 0) + 1
        return {k: seen[k] for k in FINDING_KINDS if k in seen}

    def to_frame(self) -> pd.DataFrame:
        """One row per finding (columns of :class:`Finding`)."""
        cols = ["severity", "kind", "file", "line", "split", "class_name", "value", "message"]
        return pd.DataFrame([f.to_dict() for f in self.findings], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: totals, counts per split and class, findings per kind, all findings."""
        return {
            "root": self.root,
            "format": self.format,
            "class_names": list(self.class_names),
            "totals": self.totals,
            "counts": self.counts,
            "n_errors": self.n_errors,
            "kinds": self.kind_counts(),
            "findings": [f.to_dict() for f in self.findings],
        }

    def write(self, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
        """Write ``checks.parquet``, ``checks.csv`` and ``checks.json`` into ``out_dir``."""
        from dinoscope.outputs import prepare_output_files

        out_dir = Path(out_dir)
        paths = prepare_output_files(out_dir, ["checks.parquet", "checks.csv", "checks.json"], overwrite)
        frame = self.to_frame()
        frame.to_parquet(paths[0], index=False)
        frame.to_csv(paths[1], index=False)
        paths[2].write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return paths


def read_checks(folder: str | Path) -> CheckReport:
    """The :class:`CheckReport` written by :meth:`CheckReport.write` (its ``checks.json``).

    Raises:
        DatasetFormatError: The file is missing or not a check report.
    """
    path = Path(folder) / "checks.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        findings = tuple(Finding.from_dict(f) for f in doc["findings"])
        return CheckReport(
            findings=findings,
            counts=doc["counts"],
            class_names=tuple(doc["class_names"]),
            format=doc.get("format", ""),
            root=doc.get("root", ""),
            totals=doc.get("totals", {}),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetFormatError(f"{path}: not a readable check report ({exc}); run `dinoscope check` again") from exc


def run_checks(table: ObjectTable) -> CheckReport:
    """All dataset checks on a table read by any reader.

    Args:
        table: The object table, with its images and reader findings.

    Returns:
        A :class:`CheckReport` with every finding exactly once and counts per split and class.

    Example:
        >>> report = run_checks(read_dataset("datasets/ppe"))  # doctest: +SKIP
        >>> report.kind_counts()  # doctest: +SKIP
        {'duplicate_image': 3, 'class_imbalance': 1}
    """
    findings = list(table.findings)
    findings += _find_overlapping_boxes(table)
    findings += _find_duplicate_images(table.images)
    findings += _find_duplicate_basenames(table.images)
    findings += _find_class_problems(table)
    counts = _count(table)
    totals = {
        "images": len(table.images),
        "objects": len(table),
        "background_images": _n_background(table.images),
        "unreadable_images": int((table.images["error"] != "").sum()),
        "classes": len(table.class_names),
    }
    return CheckReport(
        findings=tuple(findings),
        counts=counts,
        class_names=table.class_names,
        format=table.format,
        root=str(table.root or ""),
        totals=totals,
    )


def _label_location(label_ref: str, source: str) -> tuple[str, int]:
    file, _, line = label_ref.rpartition(":")
    if file and line.isdigit():
        return file, int(line)
    return label_ref or source, 0


def _find_overlapping_boxes(table: ObjectTable) -> list[Finding]:
    """Stacked (IoU > 0.9) and duplicate (IoU > 0.99) boxes of one class in one image (frame).

    Rows are grouped by (source, frame, class); groups of equal size are stacked into (G, k, 4) arrays so
    the IoU of every pair is computed in one vectorised step per group size (near linear in N).
    """
    d = table.data
    if d.empty:
        return []
    keys = ["source", "frame", "class_id"]
    crowded = d[d.duplicated(keys, keep=False)]
    if crowded.empty:
        return []
    codes = crowded.groupby(keys, sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    rows = crowded.index.to_numpy()[order]
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    boxes = d[["x1", "y1", "x2", "y2"]].to_numpy()
    pairs: list[tuple[int, int, float]] = []
    for k in np.unique(sizes):
        members = rows[starts[sizes == k][:, None] + np.arange(k)]  # (G, k) row indices, file order kept
        iou = _batched_iou(boxes[members])
        lower = np.tril_indices(k)
        iou[:, lower[0], lower[1]] = 0.0
        g, i, j = np.nonzero(iou > STACKED_BOX_IOU)
        pairs += zip(members[g, i].tolist(), members[g, j].tolist(), iou[g, i, j].tolist(), strict=True)
    return _overlap_findings(d, sorted(pairs, key=lambda p: (p[1], p[0])))


def _batched_iou(boxes: np.ndarray) -> np.ndarray:
    """(G, k, 4) boxes -> (G, k, k) IoU within each group."""
    a, b = boxes[:, :, None, :], boxes[:, None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area[:, :, None] + area[:, None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _overlap_findings(d: pd.DataFrame, pairs: list[tuple[int, int, float]]) -> list[Finding]:
    out, reported = [], set()
    for first_row, row, iou in pairs:
        if row in reported:
            continue  # one finding per box, against the first box it overlaps
        reported.add(row)
        first, second = d.iloc[first_row], d.iloc[row]
        kind = "duplicate_box" if iou > DUPLICATE_BOX_IOU else "stacked_box"
        file, line = _label_location(second["label_ref"], second["source"])
        _, first_line = _label_location(first["label_ref"], first["source"])
        same = f"line {first_line}" if first_line else "another box"
        out.append(
            Finding(
                kind,
                f"overlaps {same} of the same class '{second['class_name']}' with IoU {iou:.3f}; "
                "delete one of them if they mark the same object",
                file,
                line,
                split=second["split"],
                class_name=second["class_name"],
                value=float(iou),
            )
        )
    return out


def _find_duplicate_images(images: pd.DataFrame) -> list[Finding]:
    ok = images[(images["content_hash"] != "") & (images["error"] == "")]
    dup = ok[ok.duplicated("content_hash", keep=False)].sort_values(["content_hash", "source"])
    out = []
    for _, group in dup.groupby("content_hash", sort=False):
        first = group.iloc[0]
        splits_seen = {first["split"]}
        for _, row in group.iloc[1:].iterrows():
            cross = row["split"] not in splits_seen
            kind = "cross_split_duplicate" if cross else "duplicate_image"
            where = f"{first['source']} ({first['split']})" if cross else first["source"]
            fix = "remove it from one split to avoid leakage" if cross else "keep one copy"
            out.append(Finding(kind, f"byte-identical to {where}; {fix}", row["source"], split=row["split"]))
            splits_seen.add(row["split"])
    return out


def _find_duplicate_basenames(images: pd.DataFrame) -> list[Finding]:
    if images.empty:
        return []
    paths = images["source"].map(PurePosixPath)
    key = paths.map(lambda p: f"{p.parent}/{p.stem}")
    out = []
    for _, group in images[key.duplicated(keep=False)].groupby(key[key.duplicated(keep=False)], sort=True):
        names = sorted(group["source"])
        for name in names[1:]:
            out.append(
                Finding(
                    "duplicate_basename",
                    f"shares its name with {names[0]}; both map to the same label file - rename one",
                    name,
                    split=str(group["split"].iloc[0]),
                )
            )
    return out


def _find_class_problems(table: ObjectTable) -> list[Finding]:
    if not table.class_names:
        return []
    counts = table.class_counts()
    out = []
    for name, n in counts.items():
        if n == 0:
            out.append(
                Finding(
                    "empty_class",
                    f"class '{name}' has no object; remove it from the names or label some",
                    class_name=str(name),
                    value=0.0,
                )
            )
        elif n == 1:
            out.append(
                Finding(
                    "singleton_class",
                    f"class '{name}' has a single object; nothing can be learnt or analysed per class from one example",
                    class_name=str(name),
                    value=1.0,
                )
            )
    present = counts[counts > 0]
    if len(present) >= 2:
        ratio = float(present.max() / present.min())
        severity = Severity.WARNING if ratio >= IMBALANCE_WARN_RATIO else Severity.INFO
        out.append(
            Finding(
                "class_imbalance",
                f"'{present.idxmax()}' has {present.max()} objects and "
                f"'{present.idxmin()}' {present.min()} (ratio {ratio:.1f})",
                severity=severity,
                value=ratio,
            )
        )
    return out


def _count(table: ObjectTable) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    images, data = table.images, table.data
    for split in table.splits:
        img = images[images["split"] == split]
        obj = data[data["split"] == split]
        per_class = obj["class_name"].value_counts()
        counts[split] = {
            "images": len(img),
            "objects": len(obj),
            "background_images": _n_background(img),
            "classes": {str(n): int(per_class.get(n, 0)) for n in table.class_names},
        }
    return counts


def _n_background(images: pd.DataFrame) -> int:
    """Readable images without any valid object."""
    return int(((images["n_objects"] == 0) & (images["error"] == "")).sum())
