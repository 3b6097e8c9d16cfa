"""Small value types shared across dinoscope: findings of checks and readers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = ["FINDING_KINDS", "Finding", "Severity"]


class Severity(str, Enum):
    """How bad a finding is. ``error`` makes ``dinoscope check --strict`` fail."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


#: Every kind of finding, with its default severity and a one-line description (shown by the CLI).
FINDING_KINDS: dict[str, tuple[Severity, str]] = {
    "unreadable_annotations": (Severity.ERROR, "annotation file cannot be parsed"),
    "malformed_line": (Severity.ERROR, "label line with a wrong number of values or non-numbers"),
    "unknown_class": (Severity.ERROR, "class id not in the class names"),
    "coords_out_of_range": (Severity.ERROR, "coordinates outside the image (outside [0, 1] when normalised)"),
    "pixel_coordinates": (Severity.ERROR, "coordinates look like pixels where normalised ones are expected"),
    "degenerate_box": (Severity.ERROR, "box with zero or negative width or height"),
    "tiny_box": (Severity.WARNING, "box narrower or lower than 2 px"),
    "invalid_polygon": (Severity.ERROR, "polygon with fewer than 3 points or self-intersecting"),
    "duplicate_box": (Severity.WARNING, "the same class twice at the same place (IoU > 0.99)"),
    "stacked_box": (Severity.WARNING, "two boxes of one class on top of each other (IoU > 0.9)"),
    "label_without_image": (Severity.ERROR, "label file or annotation whose image does not exist"),
    "missing_label_file": (Severity.WARNING, "image without a label file (treated as background)"),
    "background_image": (Severity.INFO, "image with an empty label file or no annotations"),
    "unreadable_image": (Severity.ERROR, "image file that cannot be decoded"),
    "truncated_image": (Severity.ERROR, "image file that ends early (partly written or cut)"),
    "unreadable_video": (Severity.ERROR, "video file that cannot be opened or decoded"),
    "size_mismatch": (Severity.WARNING, "annotation states an image size that differs from the file"),
    "duplicate_basename": (Severity.WARNING, "two images with one name and different extensions"),
    "duplicate_image": (Severity.WARNING, "byte-identical copy of another image in the same split"),
    "cross_split_duplicate": (Severity.ERROR, "byte-identical copy of an image in another split (leakage)"),
    "class_imbalance": (Severity.INFO, "ratio between the most and the least frequent class"),
    "empty_class": (Severity.WARNING, "class with no object"),
    "singleton_class": (Severity.WARNING, "class with a single object"),
}


@dataclass(frozen=True)
class Finding:
    """One problem found in a dataset.

    Attributes:
        kind: One of :data:`FINDING_KINDS`.
        message: What is wrong, what was expected and the fix, in plain words.
        file: Path of the file concerned, relative to the dataset root ("" for dataset-wide findings).
        line: 1-based line (or annotation index) in ``file``; 0 when not applicable.
        severity: Defaults to the kind's severity.
        split: Split of the file, when known.
        class_name: Class concerned, when one is.
        value: A number that quantifies the finding (IoU, ratio, ...), None when none.
    """

    kind: str
    message: str
    file: str = ""
    line: int = 0
    severity: Severity | None = None
    split: str = ""
    class_name: str = ""
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FINDING_KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}; expected one of {sorted(FINDING_KINDS)}")
        if self.severity is None:
            object.__setattr__(self, "severity", FINDING_KINDS[self.kind][0])

    @property
    def where(self) -> str:
        """``file:line`` (or just ``file``) for display."""
        if not self.file:
            return "(dataset)"
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (severity as its string value) for JSON and tables."""
        out = asdict(self)
        out["severity"] = self.severity.value if self.severity else ""
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """The finding written by :meth:`to_dict`."""
        values = dict(data)
        values["severity"] = Severity(values["severity"]) if values.get("severity") else None
        return cls(**values)
