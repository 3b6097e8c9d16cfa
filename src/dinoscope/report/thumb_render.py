"""Decode one source once and cut every image the report wants from it.

For a still image one decode (JPEG draft decoding at the smallest size that still gives every crop its full
output size); for a video one pass straight through to its last needed frame, never seeking per frame. From
each decoded frame come the thumbnails of its objects (``CELL`` px cells), larger crops for the slide montages
(``MONTAGE_PX``), crops for ``--export-samples`` (``SAMPLE_PX``) and one downscaled copy of the image for the
object inspector (``CONTEXT_PX``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dinoscope.errors import DinoscopeError
from dinoscope.report.thumb_sheets import _BACKGROUND, CELL

__all__ = ["CONTEXT_PX", "MONTAGE_PX", "SAMPLE_PX", "render_source"]

#: Long side of the inspector's source images, of the montage crops and of exported sample crops.
CONTEXT_PX = 384
MONTAGE_PX = 160
SAMPLE_PX = 320
_JPEG_QUALITY = 66
_MAX_UPSCALE = 4.0


def render_source(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: decode one source once and cut every image asked of it.

    Args:
        task: ``path`` of the source (None: missing), ``items`` (one per object: row, frame, box, image size
            ``wh`` and what to cut) and ``context`` ({frame: path of the downscaled image to write}).

    Returns:
        ``thumbs`` [(row, (CELL, CELL, 3) array)], ``montage`` {row: PNG bytes}, ``failed`` rows that got no
        thumbnail and the read ``error`` ("file: reason") or None.

    Example:
        >>> done = render_source({"path": None, "items": [], "context": {}})
        >>> done["failed"], done["error"]
        ([], None)
    """
    done: dict[str, Any] = {"thumbs": [], "montage": {}, "failed": [], "error": None}
    items = task["items"]
    if task["path"] is None:
        done["failed"] = [it["row"] for it in items if it["thumb"]]
        return done
    try:
        for frame, image in _decoded(task):
            for it in (it for it in items if it["frame"] == frame):
                _cut(image, it, done)
            if frame in task["context"]:
                _save_context(image, Path(task["context"][frame]))
    except (DinoscopeError, OSError, ValueError) as exc:
        done["error"] = f"{task['path']}: {exc}"
    got = {row for row, _ in done["thumbs"]}
    done["failed"] = [it["row"] for it in items if it["thumb"] and it["row"] not in got]
    return done


def _decoded(task: dict[str, Any]) -> Iterator[tuple[int, np.ndarray]]:
    """(frame, RGB image) for each frame the task needs: one decode of a still, one pass through a video."""
    path, items = Path(task["path"]), task["items"]
    frames = sorted({it["frame"] for it in items})
    if frames == [-1]:
        from dinoscope.io.images import read_image

        yield -1, read_image(path, max_side=_needed_side(items, bool(task["context"])))
        return
    from dinoscope.io.frames import iter_frames

    wanted, last = set(frames), max(frames)
    for frame in iter_frames(path):
        if frame.index in wanted:
            yield frame.index, frame.image
        if frame.index >= last:
            return


def _needed_side(items: list[dict[str, Any]], context: bool) -> int:
    """The decoded long side that still gives every crop its full output size (JPEG draft decoding)."""
    w, h = items[0]["wh"]
    long_side = max(w, h, 1)
    scale = CONTEXT_PX / long_side if context else 0.0
    for it in items:
        x1, y1, x2, y2 = it["box"]
        box = max(x2 - x1, y2 - y1, 1.0)
        want = SAMPLE_PX if it["sample"] else MONTAGE_PX if it["montage"] else CELL
        scale = max(scale, want / box)
    return int(min(1.0, scale) * long_side) + 1


def _crop(image: np.ndarray, it: dict[str, Any], margin: float = 0.0) -> Image.Image:
    """The object's box (plus ``margin`` of its size) cut from a possibly downscaled decode."""
    h, w = image.shape[:2]
    iw, ih = it["wh"]
    sx, sy = w / max(iw, 1), h / max(ih, 1)
    x1, y1, x2, y2 = it["box"]
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int((x1 - mx) * sx)), max(0, int((y1 - my) * sy))
    right, bottom = (
        min(w, max(left + 1, int(np.ceil((x2 + mx) * sx)))),
        min(h, max(top + 1, int(np.ceil((y2 + my) * sy)))),
    )
    return Image.fromarray(image[top:bottom, left:right])


def _fit(crop: Image.Image, side: int) -> Image.Image:
    scale = min(side / max(crop.size), _MAX_UPSCALE)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    if scale >= 1:  # small boxes: a smooth enlargement, never more than _MAX_UPSCALE
        return crop.resize(size, Image.Resampling.BILINEAR)
    return crop.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0 if scale < 0.5 else None)


def _cut(image: np.ndarray, it: dict[str, Any], done: dict[str, Any]) -> None:
    crop = _crop(image, it)
    if it["thumb"]:
        cell = Image.new("RGB", (CELL, CELL), _BACKGROUND)
        small = _fit(crop, CELL)
        cell.paste(small, ((CELL - small.width) // 2, (CELL - small.height) // 2))
        done["thumbs"].append((it["row"], np.asarray(cell)))
    if it["montage"]:
        buf = io.BytesIO()
        _fit(crop, MONTAGE_PX).save(buf, "PNG", compress_level=1)
        done["montage"][it["row"]] = buf.getvalue()
    if it["sample"]:
        sample = _fit(_crop(image, it, margin=0.1), SAMPLE_PX)
        for name in it["sample"]:
            path = Path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            sample.save(path, "JPEG", quality=90)


def _save_context(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pic = Image.fromarray(image)
    if max(pic.size) > CONTEXT_PX:
        pic.thumbnail((CONTEXT_PX, CONTEXT_PX), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pic.save(path, "JPEG", quality=_JPEG_QUALITY, optimize=True)
