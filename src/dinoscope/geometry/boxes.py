"""Boxes compared and converted: IoU, same-class overlaps, and polygons / oriented boxes / YOLO boxes to ``xyxy``.

Boxes are ``xyxy`` in pixels with the continuous-coordinate convention of :mod:`dinoscope.geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "box_iou",
    "obb_to_xyxy",
    "pairwise_iou_same_class",
    "polygon_area",
    "polygon_to_xyxy",
    "xywhn_to_xyxy",
    "xyxy_to_xywhn",
]


def _boxes(name: str, value: np.ndarray | Sequence[Sequence[float]], width: int = 4) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1 and arr.size == width:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != width:
        if arr.size == 0:
            return arr.reshape(0, width)
        raise ValueError(f"{name} must have shape (N, {width}); got {arr.shape}")
    return arr


def _wh(image_wh: np.ndarray | Sequence[float], n: int) -> np.ndarray:
    wh = np.asarray(image_wh, dtype=np.float64)
    if wh.shape == (2,):
        wh = np.broadcast_to(wh, (n, 2))
    if wh.shape != (n, 2):
        raise ValueError(f"image_wh must have shape (2,) or (N, 2) with N={n} boxes; got {wh.shape}")
    return wh


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union (Jaccard index) of every box in ``a`` with every box in ``b``.

    Args:
        a: (N, 4) boxes ``xyxy``.
        b: (M, 4) boxes ``xyxy``.

    Returns:
        (N, M) float64 IoU in [0, 1]; 0 where the union is empty (two zero-area boxes).

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [0, 0, 2, 2]]))
        array([[0.33333333, 1.        ]])
    """
    a, b = _boxes("a", a), _boxes("b", b)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.clip(iou, 0.0, 1.0)


def pairwise_iou_same_class(
    xyxy: np.ndarray, class_id: np.ndarray | Sequence[int], *, min_iou: float = 0.5
) -> list[tuple[int, int, float]]:
    """Pairs of boxes of one image that have the same class and overlap by at least ``min_iou``.

    Used to find stacked or duplicated labels. Cost is O(N^2) in the boxes of one image.

    Args:
        xyxy: (N, 4) boxes of one image.
        class_id: (N,) class of each box.
        min_iou: Smallest IoU reported.

    Returns:
        ``(i, j, iou)`` with ``i < j`` row positions, ordered by ``i`` then ``j``.

    Example:
        >>> pairwise_iou_same_class(np.array([[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 10]]), [0, 0, 1])
        [(0, 1, 0.9)]
    """
    boxes = _boxes("xyxy", xyxy)
    cls = np.asarray(class_id).reshape(-1)
    if len(cls) != len(boxes):
        raise ValueError(f"class_id must have shape ({len(boxes)},) like xyxy; got {cls.shape}")
    iou = box_iou(boxes, boxes)
    keep = np.triu((cls[:, None] == cls[None, :]) & (iou >= min_iou), k=1)
    rows, cols = np.nonzero(keep)
    return [(int(i), int(j), float(iou[i, j])) for i, j in zip(rows, cols, strict=True)]


def obb_to_xyxy(corners: np.ndarray) -> np.ndarray:
    """Axis-aligned bounding boxes of oriented boxes.

    Args:
        corners: (N, 8) corner coordinates ``x1, y1, ..., x4, y4`` or (N, 4, 2).

    Returns:
        (N, 4) ``xyxy``.

    Example:
        >>> obb_to_xyxy(np.array([[5, 0, 10, 5, 5, 10, 0, 5]]))
        array([[ 0.,  0., 10., 10.]])
    """
    pts = np.asarray(corners, dtype=np.float64)
    if pts.ndim == 3:
        pts = pts.reshape(len(pts), -1)
    pts = _boxes("corners", pts, width=8).reshape(-1, 4, 2)
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def _points(points: np.ndarray | Sequence[float]) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1 and pts.size % 2 == 0:
        pts = pts.reshape(-1, 2)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueError(f"points must have shape (K, 2) with K >= 1 (or a flat x, y list); got {pts.shape}")
    return pts


def polygon_to_xyxy(points: np.ndarray | Sequence[float]) -> np.ndarray:
    """Bounding box of a polygon.

    Args:
        points: (K, 2) vertices ``x, y`` in pixels, or a flat ``x1, y1, x2, y2, ...`` list.

    Returns:
        (4,) ``xyxy``.

    Example:
        >>> polygon_to_xyxy([[1, 2], [5, 3], [2, 8]])
        array([1., 2., 5., 8.])
    """
    pts = _points(points)
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def polygon_area(points: np.ndarray | Sequence[float]) -> float:
    """Area of a simple polygon by the shoelace formula (Gauss's area formula).

    Args:
        points: (K, 2) vertices in order (either orientation), or a flat ``x, y`` list.

    Returns:
        The area (>= 0) in squared input units; 0 for fewer than 3 vertices.

    Example:
        >>> polygon_area([[0, 0], [4, 0], [4, 3], [0, 3]])
        12.0
    """
    pts = _points(points)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def xywhn_to_xyxy(xywhn: np.ndarray, image_wh: np.ndarray | Sequence[float]) -> np.ndarray:
    """Normalised centre boxes (YOLO ``x_c y_c w h`` in [0, 1]) to pixel ``xyxy``.

    Args:
        xywhn: (N, 4) normalised centre x, centre y, width, height.
        image_wh: (N, 2) or (2,) image width and height in pixels.

    Returns:
        (N, 4) ``xyxy`` in pixels.

    Example:
        >>> xywhn_to_xyxy(np.array([[0.5, 0.5, 0.25, 0.5]]), (640, 360))
        array([[240.,  90., 400., 270.]])
    """
    boxes = _boxes("xywhn", xywhn)
    wh = _wh(image_wh, len(boxes))
    center, size = boxes[:, :2] * wh, boxes[:, 2:] * wh
    return np.concatenate([center - size / 2.0, center + size / 2.0], axis=1)


def xyxy_to_xywhn(xyxy: np.ndarray, image_wh: np.ndarray | Sequence[float]) -> np.ndarray:
    """Pixel ``xyxy`` to normalised centre boxes (inverse of :func:`xywhn_to_xyxy`).

    Args:
        xyxy: (N, 4) boxes in pixels.
        image_wh: (N, 2) or (2,) image width and height in pixels (> 0).

    Returns:
        (N, 4) normalised centre x, centre y, width, height.

    Example:
        >>> xyxy_to_xywhn(np.array([[240, 90, 400, 270]]), (640, 360))
        array([[0.5 , 0.5 , 0.25, 0.5 ]])
    """
    boxes = _boxes("xyxy", xyxy)
    wh = _wh(image_wh, len(boxes))
    center, size = (boxes[:, :2] + boxes[:, 2:]) / 2.0, boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([center / wh, size / wh], axis=1)
