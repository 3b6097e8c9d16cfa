"""Crop windows around boxes and crops cut out of images, padded where a window leaves the image.

The crop policy used by the embedding engine ("keep the whole object, pad to square") is
:func:`compute_crop_windows` with ``square=True`` followed by :func:`crop_and_pad`. Boxes and windows are
``xyxy`` in pixels with the continuous-coordinate convention of :mod:`dinoscope.geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from dinoscope.geometry.boxes import _boxes, _wh

__all__ = ["DEFAULT_FILL", "compute_crop_windows", "crop_and_pad", "round_window"]

#: Default padding colour: the ImageNet mean in 0-255 (what most backbones see as "nothing").
DEFAULT_FILL: tuple[int, int, int] = (124, 116, 104)
_EPS = 1e-6  # float slack when rounding windows to whole pixels


def compute_crop_windows(
    xyxy: np.ndarray,
    image_wh: np.ndarray | Sequence[float],
    *,
    pad_frac: float = 0.0,
    square: bool = False,
    min_size_px: float = 1.0,
    clip: bool = True,
) -> np.ndarray:
    """Crop windows around boxes: padded, optionally square, never smaller than a minimum, inside the image.

    The steps, per box of size ``w x h``:

    1. Padding: each side moves out by ``pad_frac`` of the box size along its axis (left and right by
       ``pad_frac * w``, top and bottom by ``pad_frac * h``), so the padded size is ``w(1 + 2 pad_frac)``.
    2. Square (``square=True``): the shorter side grows to the longer one, centred on the box.
    3. Minimum size: a side shorter than ``min_size_px`` grows to it, centred.
    4. Clip (``clip=True``): without ``square``, the window is intersected with ``[0, W] x [0, H]``. With
       ``square``, the window is instead shifted (not cut) to lie inside the image along every axis where
       its side fits; along an axis where the side is longer than the image, the window spans the whole
       image, so it is then not square and the caller pads it (``crop_and_pad(..., square=True)``).

    With ``clip=False`` windows may extend past the image; :func:`crop_and_pad` pads those parts, which
    keeps square windows square and objects centred.

    Guarantees: every window contains its box clipped to the image; square windows are square whenever
    the side fits in the image. Boxes lying entirely outside the image give windows at the image border
    (zero-size without ``square``); such boxes are flagged by the label checks.

    Args:
        xyxy: (N, 4) boxes in pixels.
        image_wh: (N, 2) or (2,) image width and height of each box's image.
        pad_frac: Context added on each side as a fraction of the box size (>= 0).
        square: Make windows square (the "keep the whole object, pad to square" policy).
        min_size_px: Smallest window side in pixels.
        clip: Keep windows inside the image (shifting square windows, see above).

    Returns:
        (N, 4) float64 windows ``x1, y1, x2, y2`` in pixels.

    Example:
        >>> compute_crop_windows(np.array([[100, 0, 300, 10]]), (640, 360), square=True, clip=False)
        array([[100., -95., 300., 105.]])
        >>> compute_crop_windows(np.array([[100, 0, 300, 10]]), (640, 360), square=True)
        array([[100.,   0., 300., 200.]])
    """
    boxes = _boxes("xyxy", xyxy)
    wh = _wh(image_wh, len(boxes))
    if pad_frac < 0:
        raise ValueError(f"pad_frac must be >= 0; got {pad_frac}")
    if min_size_px < 0:
        raise ValueError(f"min_size_px must be >= 0; got {min_size_px}")
    center = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    size = np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None) * (1.0 + 2.0 * pad_frac)
    if square:
        size = np.repeat(size.max(axis=1, keepdims=True), 2, axis=1)
    size = np.maximum(size, min_size_px)
    lo, hi = center - size / 2.0, center + size / 2.0
    if clip:
        if square:
            fits = size <= wh
            lo = np.where(fits, np.clip(lo, 0.0, np.maximum(wh - size, 0.0)), 0.0)
            hi = np.where(fits, lo + size, wh)
        lo = np.clip(lo, 0.0, wh)
        hi = np.clip(hi, lo, wh)
    return np.concatenate([lo, hi], axis=1)


def round_window(window: np.ndarray | Sequence[float]) -> tuple[int, int, int, int]:
    """Whole-pixel bounds of a float window, rounded outward so that it still contains the window.

    A square float window stays square: when the outward rounding makes one side a pixel longer than the
    other, the shorter side grows by one pixel on its far edge.

    Args:
        window: (4,) ``x1, y1, x2, y2`` in pixels.

    Returns:
        ``(x1, y1, x2, y2)`` integers; the crop is ``x2 - x1`` wide and ``y2 - y1`` high.

    Example:
        >>> round_window([0.5, 0.0, 200.5, 200.0])
        (0, 0, 201, 201)
    """
    x1f, y1f, x2f, y2f = (float(v) for v in _boxes("window", window)[0])
    x1, y1 = int(np.floor(x1f + _EPS)), int(np.floor(y1f + _EPS))
    x2, y2 = max(int(np.ceil(x2f - _EPS)), x1), max(int(np.ceil(y2f - _EPS)), y1)
    if abs((x2f - x1f) - (y2f - y1f)) <= _EPS * max(1.0, x2f - x1f):
        side = max(x2 - x1, y2 - y1)
        x2, y2 = x1 + side, y1 + side
    return x1, y1, x2, y2


def crop_and_pad(
    image: np.ndarray,
    window: np.ndarray | Sequence[float],
    *,
    fill: Sequence[int] | int | Literal["edge", "reflect"] = DEFAULT_FILL,
    square: bool = False,
) -> np.ndarray:
    """Cut a window out of an image, padding the parts of the window that lie outside the image.

    The window is rounded with :func:`round_window`. Pixels inside the image are copied unchanged; the
    rest are ``fill`` (a colour), the nearest image pixel (``"edge"``) or the mirrored image without
    repeating the border (``"reflect"``, numpy's ``reflect`` mode, repeated as often as needed).

    Args:
        image: (H, W, C) or (H, W) array, usually RGB uint8.
        window: (4,) ``x1, y1, x2, y2`` in pixels, e.g. a row of :func:`compute_crop_windows`.
        fill: Padding colour (one value per channel, or one for all), ``"edge"`` or ``"reflect"``.
        square: Afterwards pad the shorter side of the crop (evenly on both ends) to make it square; for
            square windows that were clipped because they did not fit in the image.

    Returns:
        (h, w, C) array of the image's dtype, with ``(w, h)`` the rounded window size (or its longer side
        twice when ``square``).

    Example:
        >>> img = np.zeros((360, 640, 3), np.uint8)
        >>> crop_and_pad(img, [-10, -10, 90, 90]).shape
        (100, 100, 3)
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or 0 in image.shape[:2]:
        raise ValueError(f"image must have shape (H, W, C) or (H, W) with H, W > 0; got {image.shape}")
    if isinstance(fill, str) and fill not in ("edge", "reflect"):
        raise ValueError(f'fill must be a colour, "edge" or "reflect"; got {fill!r}')
    out = _cut(image, round_window(window), fill)
    height, width = out.shape[:2]
    if square and height != width:
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        if height == 0 or width == 0:  # nothing to extend: an empty crop becomes a patch of fill colour
            fill = DEFAULT_FILL if isinstance(fill, str) else fill
        out = _cut(out, (-left, -top, side - left, side - top), fill)
    return out


def _cut(image: np.ndarray, bounds: tuple[int, int, int, int], fill: Sequence[int] | int | str) -> np.ndarray:
    """Pixels ``bounds`` (x1, y1, x2, y2 integers) of ``image``; those outside it come from ``fill``."""
    x1, y1, x2, y2 = bounds
    height, width = image.shape[:2]
    if isinstance(fill, str):
        rows = _source_index(np.arange(y1, y2), height, fill)
        cols = _source_index(np.arange(x1, x2), width, fill)
        return image[rows[:, None], cols[None, :]]
    out = np.empty((y2 - y1, x2 - x1, *image.shape[2:]), dtype=image.dtype)
    out[...] = _fill_value(fill, image)
    ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if ix2 > ix1 and iy2 > iy1:
        out[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = image[iy1:iy2, ix1:ix2]
    return out


def _source_index(index: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Image row (or column) that supplies each requested one: clamped (edge) or mirrored (reflect)."""
    if mode == "edge" or n == 1:
        return np.clip(index, 0, n - 1)
    period = 2 * (n - 1)
    m = np.mod(index, period)
    return np.where(m < n, m, period - m)


def _fill_value(fill: Sequence[int] | int, image: np.ndarray) -> np.ndarray:
    value = np.asarray(fill)
    if value.ndim > 1 or (image.ndim == 3 and value.size not in (1, image.shape[2])):
        raise ValueError(f"fill must have 1 or {image.shape[-1]} values for an image of shape {image.shape}: {fill}")
    if image.ndim == 2 and value.ndim == 1:  # grey image: one grey level from a colour
        value = np.asarray(round(float(value.mean())))
    return value.astype(image.dtype)
