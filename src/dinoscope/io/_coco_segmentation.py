"""COCO segmentations: polygons and RLE masks read from an annotation, and written back.

Polygons are lists of ``x y`` pixel numbers; the largest part is kept as the object's ``polygon``. RLE masks
(compressed strings or uncompressed run lengths) are normalised to ``{"size": [h, w], "counts": str}`` and
decoded with pycocotools (extra ``coco``) only where their box or area is needed.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from dinoscope._deps import require
from dinoscope.geometry import polygon_area

__all__ = ["annotation_geometry", "segmentation_out"]


def annotation_geometry(ann: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Box, polygon and mask of an annotation, or a reason why they cannot be read.

    Returns:
        ``(columns, problem)``: ``xyxy`` (from ``bbox``, else from the segmentation), ``segmentation_type``,
        ``n_polygon_parts``, ``mask_rle`` and, for polygons, ``polygon``; ``problem`` is "" when all is well.

    Example:
        >>> annotation_geometry({"bbox": [1, 2, 3, 4]})[0]["xyxy"]
        (1.0, 2.0, 4.0, 6.0)
    """
    out: dict[str, Any] = {"segmentation_type": "none", "n_polygon_parts": 0, "mask_rle": ""}
    seg, seg_box = ann.get("segmentation"), None
    if isinstance(seg, list) and seg:
        if not all(isinstance(p, list) and len(p) % 2 == 0 and p and all(map(_is_number, p)) for p in seg):
            return out, "segmentation polygons must be lists of x y pixel numbers (an even count of them)"
        parts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in seg]
        everything = np.concatenate(parts)
        seg_box = (*everything.min(axis=0), *everything.max(axis=0))
        out.update(polygon=max(parts, key=polygon_area), segmentation_type="polygon", n_polygon_parts=len(parts))
    elif isinstance(seg, dict):
        rle, problem = _compressed_rle(seg)
        if problem:
            return out, problem
        x, y, w, h = (float(v) for v in _mask_api().toBbox(_as_bytes(rle)))
        seg_box = (x, y, x + w, y + h)
        out.update(segmentation_type="rle", mask_rle=json.dumps(rle))
    elif seg not in (None, [], {}):
        return out, "segmentation must be a list of polygons or an RLE object {size, counts}"
    bbox = ann.get("bbox")
    if bbox is None:
        if seg_box is None:
            return out, "no 'bbox' and no segmentation to derive one from; add 'bbox': [x, y, width, height]"
        out["xyxy"] = seg_box
    elif isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox)):
        x, y, w, h = (float(v) for v in bbox)
        out["xyxy"] = (x, y, x + w, y + h)
    else:
        return out, f"bbox {bbox!r} is not 4 numbers [x, y, width, height] in pixels; fix the box"
    return out, ""


def segmentation_out(polygon: Any, mask_rle: Any, box_area: float) -> tuple[Any, float]:
    """COCO ``segmentation`` and ``area`` of an object: its RLE mask, else its polygon, else none and the box area.

    Example:
        >>> segmentation_out([0, 0, 4, 0, 4, 3], "", 12.0)
        ([[0.0, 0.0, 4.0, 0.0, 4.0, 3.0]], 6.0)
    """
    if isinstance(mask_rle, str) and mask_rle:
        rle = json.loads(mask_rle)
        return rle, float(_mask_api().area(_as_bytes(rle)))
    if isinstance(polygon, (list, np.ndarray)) and len(polygon) >= 6:
        flat = [float(v) for v in polygon]
        return [flat], polygon_area(np.asarray(flat).reshape(-1, 2))
    return [], box_area


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mask_api() -> Any:
    return require("pycocotools.mask", "coco", "decoding COCO RLE masks")


def _as_bytes(rle: dict[str, Any]) -> dict[str, Any]:
    return {"size": rle["size"], "counts": rle["counts"].encode("ascii")}


def _compressed_rle(seg: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """An RLE (compressed string or uncompressed run lengths) as ``{"size": [h, w], "counts": str}``."""
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        return {}, f"RLE 'size' must be [height, width] (positive integers); got {size!r}"
    h, w = size
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != h * w:
            return {}, f"uncompressed RLE 'counts' must be run lengths (>= 0) that sum to {h}x{w} = {h * w}"
        counts = _mask_api().frPyObjects({"size": [h, w], "counts": counts}, h, w)["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str) or not counts.isascii():
        return {}, "RLE 'counts' must be a compressed string or a list of run lengths"
    return {"size": [h, w], "counts": counts}, ""
