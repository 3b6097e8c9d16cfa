"""Box geometry: crop windows, padded crops, IoU and conversions between box formats.

Everything is vectorised numpy over N boxes. Boxes are ``xyxy`` in pixels (``x1 <= x2``, ``y1 <= y2``) with
the continuous-coordinate convention: pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)``, so a box
``(0, 0, W, H)`` is the whole image and its size is ``x2 - x1`` by ``y2 - y1``.

Two modules: :mod:`~dinoscope.geometry.windows` cuts objects out of images (the crop policy used by the
embedding engine, "keep the whole object, pad to square", is :func:`compute_crop_windows` with ``square=True``
followed by :func:`crop_and_pad`); :mod:`~dinoscope.geometry.boxes` compares boxes (IoU) and converts between
box formats (polygons, oriented boxes, YOLO's normalised centre boxes).
"""

from __future__ import annotations

from dinoscope.geometry.boxes import (
    box_iou,
    obb_to_xyxy,
    pairwise_iou_same_class,
    polygon_area,
    polygon_to_xyxy,
    xywhn_to_xyxy,
    xyxy_to_xywhn,
)
from dinoscope.geometry.windows import DEFAULT_FILL, compute_crop_windows, crop_and_pad, round_window

__all__ = [
    "DEFAULT_FILL",
    "box_iou",
    "compute_crop_windows",
    "crop_and_pad",
    "obb_to_xyxy",
    "pairwise_iou_same_class",
    "polygon_area",
    "polygon_to_xyxy",
    "round_window",
    "xywhn_to_xyxy",
    "xyxy_to_xywhn",
]
