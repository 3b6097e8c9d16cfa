"""Write an :class:`ObjectTable` as a COCO instances JSON (``images``, ``annotations``, ``categories``)."""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dinoscope.errors import DatasetFormatError, OutputExistsError
from dinoscope.io._coco_segmentation import segmentation_out
from dinoscope.table import ObjectTable

__all__ = ["write_coco"]

logger = logging.getLogger(__name__)


def write_coco(table: ObjectTable, path: str | Path, overwrite: bool = False) -> Path:
    """Write a table as a COCO instances JSON (``file_name`` = ``source``, relative to ``table.root``).

    Category ids are the table's ``category_id`` values when it has them (from :func:`read_coco`), else
    ``class_id + 1``. ``polygon`` and ``mask_rle`` become the segmentation (multi-part polygons: largest part).
    Objects without a class (``class_id`` -1) are left out.

    Args:
        table: Objects to write (images without objects are written too).
        path: Output JSON file.
        overwrite: Replace ``path`` when it exists.

    Returns:
        ``path``.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        DatasetFormatError: The table holds video frames, which COCO cannot name.

    Example:
        >>> write_coco(read_yolo("datasets/ppe"), "ppe_coco.json")  # doctest: +SKIP
        PosixPath('ppe_coco.json')
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) or another path")
    data = table.data
    if (data["frame"] >= 0).any():
        raise DatasetFormatError("the table holds video frames (frame >= 0); save them as image files first")
    (images, image_ids), category_ids = _images_out(table), _category_ids(table)
    doc = {"images": images, "annotations": _annotations_out(data, image_ids, category_ids)}
    doc["categories"] = [{"id": c, "name": n} for c, n in zip(category_ids, table.class_names, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(doc), encoding="utf-8")
    partial.replace(path)
    return path


def _images_out(table: ObjectTable) -> tuple[list[dict[str, Any]], dict[str, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    for source, width, height, error in table.images[["source", "width", "height", "error"]].itertuples(index=False):
        if not error and width > 0:
            sizes.setdefault(source, (int(width), int(height)))
    for source, width, height in table.data[["source", "image_w", "image_h"]].itertuples(index=False):
        sizes.setdefault(source, (int(width), int(height)))
    ids = {s: k for k, s in enumerate(sizes, start=1)}
    return [{"id": ids[s], "file_name": s, "width": w, "height": h} for s, (w, h) in sizes.items()], ids


def _category_ids(table: ObjectTable) -> list[int]:
    """Original category ids per class when known and consistent, else ``class_id + 1``."""
    default = list(range(1, len(table.class_names) + 1))
    if "category_id" not in table.data.columns:
        return default
    pairs = table.data[["class_id", "category_id"]].dropna().drop_duplicates()
    if pairs["class_id"].duplicated().any():
        logger.warning("a class has several category ids; writing class_id + 1 as category ids")
        return default
    known = dict(zip(pairs["class_id"].astype(int), pairs["category_id"].astype(int), strict=True))
    ids: list[int] = []
    for k in range(len(table.class_names)):
        ids.append(known.get(k, ids[-1] + 1 if ids else 1))
    if any(b <= a for a, b in itertools.pairwise(ids)):
        logger.warning("category ids of classes without objects cannot keep the class order; using class_id + 1")
        return default
    return ids


def _annotations_out(data: pd.DataFrame, image_ids: dict[str, int], category_ids: Sequence[int]) -> list[dict]:
    n = len(data)
    column = lambda name, fill: data[name].tolist() if name in data.columns else [fill] * n  # noqa: E731
    ann_ids = column("annotation_id", -1)
    if any(not isinstance(a, int) or a < 0 for a in ann_ids) or len(set(ann_ids)) != n:
        ann_ids = list(range(1, n + 1))
    out = []
    rows = zip(
        data["source"], data["class_id"], data[["x1", "y1", "x2", "y2"]].to_numpy(), data["origin"],
        data["confidence"], column("iscrowd", False), column("polygon", None), column("mask_rle", ""), ann_ids,
        strict=True,
    )  # fmt: skip
    for source, class_id, box, origin, confidence, iscrowd, polygon, mask_rle, ann_id in rows:
        if class_id < 0:
            continue  # unlabelled: no category to write
        x1, y1, x2, y2 = (float(v) for v in box)
        segmentation, area = segmentation_out(polygon, mask_rle, (x2 - x1) * (y2 - y1))
        ann = {
            "id": int(ann_id),
            "image_id": image_ids[source],
            "category_id": int(category_ids[int(class_id)]),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": area,
            "iscrowd": int(bool(iscrowd)) if pd.notna(iscrowd) else 0,
            "segmentation": segmentation,
        }
        if origin == "prediction" and math.isfinite(confidence):
            ann["score"] = float(confidence)
        out.append(ann)
    return out
