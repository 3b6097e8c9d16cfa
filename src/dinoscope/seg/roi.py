"""The region of interest of ``seg collect``: a polygon in frame pixels, and what a saved frame becomes.

``--roi`` is ``"x1,y1,x2,y2,..."`` (at least three points) or a JSON file holding the points as
``[[x, y], ...]`` or a flat ``[x1, y1, ...]``, bare or under a ``"roi"`` key (so a ``meta/*.json`` that
``seg collect`` wrote gives the same ROI again). A saved frame becomes (:func:`cut_frame`):

- ``image``: the crop of the polygon's bounding box (clipped to the frame), grayscale if asked (ITU-R 601-2
  luma, PIL ``L``); pixels outside the polygon are kept: ``roi_mask`` says which are inside;
- ``raw``: the same crop in colour, untouched;
- ``roi_mask``: 0/255, the polygon inside the crop;
- ``preview``: the whole frame with the polygon outlined.

Without a ROI the crop is the whole frame.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dinoscope.errors import ConfigError

__all__ = ["FrameCut", "cut_frame", "outline", "parse_roi", "roi_box"]

_OUTLINE = (255, 200, 0)


@dataclass(frozen=True)
class FrameCut:
    """A saved frame's files (module docstring); ``box`` is (x0, y0, x1, y1) in frame pixels, end exclusive."""

    image: np.ndarray
    raw: np.ndarray
    roi_mask: np.ndarray | None
    preview: np.ndarray | None
    box: tuple[int, int, int, int]


def parse_roi(value: str) -> list[tuple[float, float]]:
    """The polygon of ``--roi``: ``"x1,y1,x2,y2,..."`` or a JSON file (module docstring).

    Raises:
        ConfigError: Not a list of at least three (x, y) points, or an unreadable JSON file.

    Example:
        >>> parse_roi("10,10, 200,10, 200,120")
        [(10.0, 10.0), (200.0, 10.0), (200.0, 120.0)]
    """
    text = value.strip()
    if text.lower().endswith(".json") or Path(text).is_file():
        path = Path(text)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--roi {path}: cannot read it as JSON ({exc}); give [[x, y], ...] in a file") from exc
        if isinstance(data, dict):
            data = data.get("roi", data.get("points"))
        source = f"--roi {path}"
        flat = np.asarray(data if data is not None else [], dtype=object).ravel().tolist()
    else:
        source = "--roi"
        flat = [p for p in re.split(r"[,\s]+", text) if p]
    try:
        numbers = [float(v) for v in flat]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) < 6 or len(numbers) % 2:
        raise ConfigError(
            f"{source}: expected at least three x,y points (e.g. 10,10,200,10,200,120 or a JSON file with "
            f'[[x, y], ...] or {{"roi": [[x, y], ...]}}), got {value!r}'
        )
    return [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)]


def roi_box(points: list[tuple[float, float]], width: int, height: int) -> tuple[int, int, int, int]:
    """The polygon's bounding box (x0, y0, x1, y1) clipped to a ``width`` x ``height`` frame, end exclusive.

    Raises:
        ConfigError: The polygon lies outside the frame.

    Example:
        >>> roi_box([(-5, 2), (10, 2), (10, 400)], 64, 48)
        (0, 2, 11, 48)
    """
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, y0 = max(0, int(np.floor(min(xs)))), max(0, int(np.floor(min(ys))))
    x1, y1 = min(width, int(np.ceil(max(xs))) + 1), min(height, int(np.ceil(max(ys))) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ConfigError(
            f"--roi {points}: the polygon lies outside the {width}x{height} frame; give points inside it "
            f"(x in 0..{width - 1}, y in 0..{height - 1})"
        )
    return x0, y0, x1, y1


def outline(image: np.ndarray, points: list[tuple[float, float]], width: int = 2) -> np.ndarray:
    """A copy of an RGB frame with the polygon drawn on it.

    Example:
        >>> outline(np.zeros((8, 8, 3), np.uint8), [(1, 1), (6, 1), (6, 6)])[1, 3].tolist()
        [255, 200, 0]
    """
    canvas = Image.fromarray(image).convert("RGB")
    ImageDraw.Draw(canvas).line([*points, points[0]], fill=_OUTLINE, width=width, joint="curve")
    return np.asarray(canvas)


def cut_frame(image: np.ndarray, roi: list[tuple[float, float]] | None, grayscale: bool) -> FrameCut:
    """What a saved frame becomes (module docstring).

    Raises:
        ConfigError: The ROI lies outside the frame.

    Example:
        >>> cut = cut_frame(np.zeros((100, 200, 3), np.uint8), [(10, 10), (50, 10), (50, 30)], grayscale=True)
        >>> cut.box, cut.image.shape, cut.raw.shape, int(cut.roi_mask.max())
        ((10, 10, 51, 31), (21, 41), (21, 41, 3), 255)
    """
    h, w = image.shape[:2]
    box = roi_box(roi, w, h) if roi else (0, 0, w, h)
    x0, y0, x1, y1 = box
    raw = np.ascontiguousarray(image[y0:y1, x0:x1])
    crop = np.asarray(Image.fromarray(raw).convert("L")) if grayscale else raw
    if not roi:
        return FrameCut(crop, raw, None, None, box)
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).polygon([(x - x0, y - y0) for x, y in roi], fill=255, outline=255)
    return FrameCut(crop, raw, np.asarray(mask), outline(image, roi), box)
