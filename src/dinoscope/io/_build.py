"""The one place where every reader turns parsed records into an :class:`ObjectTable`.

Readers parse their format and hand images and objects to a :class:`TableBuilder`, which applies the
checks that do not depend on the format (class id range, box inside the image, degenerate and tiny boxes,
polygon validity), records findings with file and line, and computes stable object ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.io.images import ImageProbe, probe_images
from dinoscope.io.paths import relpath
from dinoscope.table import IMAGE_COLUMNS, OBJECT_COLUMNS, ObjectTable, compute_object_ids
from dinoscope.types import Finding

__all__ = ["TINY_BOX_PX", "TableBuilder", "polygon_problem"]

#: Boxes narrower or lower than this (pixels) are flagged as tiny.
TINY_BOX_PX = 2.0
_EDGE_TOLERANCE_PX = 1.0
_RESERVED = frozenset(OBJECT_COLUMNS) | {"polygon", "obb"}


def polygon_problem(points: np.ndarray) -> str:
    """Why a polygon (K, 2) is invalid: "" when fine, else a short reason."""
    from shapely.geometry import LinearRing

    if len(points) < 3:
        return f"polygon has {len(points)} point(s); at least 3 are needed"
    ring = LinearRing(points)
    if not ring.is_simple:
        return "polygon edges cross each other (self-intersecting)"
    return ""


class TableBuilder:
    """Collects images, objects and findings, then builds the table.

    Args:
        root: Dataset root; every path is stored relative to it.
        class_names: Names indexed by class id.
        format: Reader name recorded in the table.
    """

    def __init__(self, root: Path, class_names: Sequence[str], format: str) -> None:
        self.root = Path(root)
        self.class_names = tuple(class_names)
        self.format = format
        self.findings: list[Finding] = []
        self._images: list[dict[str, Any]] = []
        self._image_index: dict[str, int] = {}
        self._objects: list[dict[str, Any]] = []

    # --- images -----------------------------------------------------------------------------------
    def add_images(
        self, paths: Sequence[Path], splits: Sequence[str], label_files: Sequence[str] | None = None
    ) -> list[ImageProbe]:
        """Probe image files (one read each) and register them; unreadable ones become findings."""
        probes = probe_images(paths)
        label_files = label_files if label_files is not None else [""] * len(paths)
        for path, split, label_file, probe in zip(paths, splits, label_files, probes, strict=True):
            self.add_image(relpath(path, self.root), split, probe, label_file)
        return probes

    def add_image(self, source: str, split: str, probe: ImageProbe, label_file: str = "") -> int:
        """Register one image; returns its index (idempotent per source)."""
        if source in self._image_index:
            return self._image_index[source]
        if probe.error:
            self.finding(
                probe.error_kind or "unreadable_image", f"{probe.error}; fix or remove the file", source, split=split
            )
        self._image_index[source] = len(self._images)
        self._images.append(
            {
                "source": source,
                "split": split,
                "width": probe.width,
                "height": probe.height,
                "content_hash": probe.content_hash,
                "label_file": label_file,
                "n_objects": 0,
                "error": probe.error,
            }
        )
        return self._image_index[source]

    def image(self, source: str) -> dict[str, Any] | None:
        """The registered record of an image, or None."""
        i = self._image_index.get(source)
        return None if i is None else self._images[i]

    # --- findings ---------------------------------------------------------------------------------
    def finding(self, kind: str, message: str, file: str = "", line: int = 0, **kw: Any) -> None:
        """Record a finding (see :data:`dinoscope.types.FINDING_KINDS`)."""
        self.findings.append(Finding(kind=kind, message=message, file=file, line=line, **kw))

    # --- objects ----------------------------------------------------------------------------------
    def add_object(
        self,
        source: str,
        class_id: int,
        xyxy: Sequence[float],
        label_file: str = "",
        line: int = 0,
        *,
        polygon: np.ndarray | None = None,
        obb: np.ndarray | None = None,
        origin: str = "label",
        confidence: float = math.nan,
        frame: int = -1,
        clip: bool = True,
        **extra: Any,
    ) -> bool:
        """Validate and add one object of a registered image; returns False when it was dropped.

        ``class_id`` -1 marks an unlabelled object (origin ``image`` or ``prediction`` only; its class name
        is ""). Objects are dropped (with a finding) when their class id is unknown, their image is unreadable,
        or their box has no area inside the image. Boxes reaching past the image are clipped when
        ``clip`` (the reader reports the out-of-range coordinates itself when its format defines a range).
        """
        img = self.image(source)
        if img is None:
            raise KeyError(f"image {source!r} was not registered before its objects")
        reserved = _RESERVED.intersection(extra)
        if reserved:
            raise ValueError(f"extra columns {sorted(reserved)} would overwrite object table columns; rename them")
        where = {"file": label_file or source, "line": line, "split": img["split"]}
        unlabelled = class_id == -1 and origin != "label"
        if not unlabelled and not 0 <= class_id < len(self.class_names):
            self.finding(
                "unknown_class",
                f"class id {class_id} is not among the {len(self.class_names)} "
                f"class names (valid: 0..{len(self.class_names) - 1}); fix the id or add the name",
                **where,
            )
            return False
        name = "" if unlabelled else self.class_names[class_id]
        if img["error"]:
            return False
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        w_img, h_img = img["width"], img["height"]
        if not clip and (
            x1 < -_EDGE_TOLERANCE_PX
            or y1 < -_EDGE_TOLERANCE_PX
            or x2 > w_img + _EDGE_TOLERANCE_PX
            or y2 > h_img + _EDGE_TOLERANCE_PX
        ):
            self.finding(
                "coords_out_of_range",
                f"box ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) px reaches "
                f"outside the {w_img}x{h_img} image; it was clipped",
                class_name=name,
                **where,
            )
        if x2 <= x1 or y2 <= y1:
            self.finding(
                "degenerate_box",
                f"box has width {x2 - x1:.2f} px and height {y2 - y1:.2f} px; "
                "a box needs positive size, fix or delete the annotation",
                class_name=name,
                **where,
            )
            return False
        x1, x2 = max(0.0, min(x1, w_img)), max(0.0, min(x2, w_img))
        y1, y2 = max(0.0, min(y1, h_img)), max(0.0, min(y2, h_img))
        if x2 <= x1 or y2 <= y1:
            self.finding(
                "degenerate_box",
                "box lies entirely outside the image; fix or delete the annotation",
                class_name=name,
                **where,
            )
            return False
        if min(x2 - x1, y2 - y1) < TINY_BOX_PX:
            self.finding(
                "tiny_box",
                f"box is {x2 - x1:.2f} x {y2 - y1:.2f} px (under {TINY_BOX_PX:g} px); "
                "too small to learn from or to crop",
                class_name=name,
                **where,
            )
        if polygon is not None:
            problem = polygon_problem(np.asarray(polygon, dtype=np.float64).reshape(-1, 2))
            if problem:
                self.finding("invalid_polygon", f"{problem}; fix the polygon", class_name=name, **where)
        img["n_objects"] += 1
        self._objects.append(
            {
                "source": source,
                "frame": frame,
                "split": img["split"],
                "class_id": class_id,
                "class_name": name,
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "image_w": w_img,
                "image_h": h_img,
                "origin": origin,
                "confidence": confidence,
                "label_ref": f"{label_file}:{line}" if label_file and line else label_file,
                "content_hash": img["content_hash"],
                **({"polygon": _flat(polygon)} if polygon is not None else {}),
                **({"obb": _flat(obb)} if obb is not None else {}),
                **extra,
            }
        )
        return True

    def build(self) -> ObjectTable:
        """The table, with object ids computed (optional columns are missing values where absent)."""
        data = pd.DataFrame(self._objects)
        if data.empty:
            data = pd.DataFrame({c: pd.Series(dtype=t) for c, t in OBJECT_COLUMNS.items() if c != "object_id"})
        data.insert(
            0,
            "object_id",
            compute_object_ids(
                data["content_hash"], data["frame"], data[["x1", "y1", "x2", "y2"]].to_numpy(), data["class_id"]
            )
            if len(data)
            else pd.Series(dtype=object),
        )
        images = pd.DataFrame(self._images) if self._images else None
        return ObjectTable(
            data=data,
            class_names=self.class_names,
            images=images
            if images is not None
            else pd.DataFrame({c: pd.Series(dtype=t) for c, t in IMAGE_COLUMNS.items()}),
            root=self.root,
            format=self.format,
            findings=tuple(self.findings),
        )


def _flat(points: np.ndarray | Sequence[float]) -> list[float]:
    return [float(v) for v in np.asarray(points, dtype=np.float64).ravel()]
