"""Predictions made elsewhere (``--detections FILE``, ``--predictions FILE``): per-frame or per-image YOLO txt
files or a COCO results JSON. Every prediction file is parsed here; :mod:`dinoscope.io.prediction_table` turns
the predictions of a dataset's images into an object table (``dinoscope errors``).

Accepted layouts (see docs/video.md):

- **YOLO txt folder**, one file per frame or image, lines ``class cx cy w h [score]`` (boxes) or
  ``class x1 y1 x2 y2 ... xn yn [score]`` (polygons, n >= 3), normalised to [0, 1] (Ultralytics ``save_txt`` /
  ``save_conf``; a polygon line has an odd number of values without a score, an even one with it).
  File names:

  - ``<video_stem>_<N>.txt``: Ultralytics' naming for videos, **N counts from 1** (frame index N - 1);
    Ultralytics must have run with ``vid_stride=1``, otherwise N is not the frame number.
  - ``frame_<N>.txt`` (single video) or ``<video_stem>/frame_<N>.txt``: **N is the 0-based frame index**,
    zero padding allowed.
  - ``<image_stem>.txt`` for a folder of images.

- **COCO results JSON**: a list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` in pixels
  (instance segmentation results add ``"segmentation"``: an RLE ``{"size", "counts"}`` or polygons, and may
  leave out ``bbox``), or a dict with ``"annotations"`` (same entries) and ``"categories"`` (``id``/``name``,
  giving the names).
  For videos the frame is ``"frame"`` if present, else ``image_id`` (0-based); an optional ``"video"`` (file
  name or stem) routes entries among several videos. For images, ``image_id`` (or ``"file_name"``) is matched
  against the image's stem, as Ultralytics ``save_json`` writes it.

Class names: the JSON's categories, else ``names``, else a ``classes.txt``/``data.yaml`` beside the
predictions, else ``class_<id>``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from dinoscope.errors import DatasetFormatError
from dinoscope.io.class_names import NAMES_FILES, read_class_names

__all__ = ["FrameBoxes", "JsonEntry", "Predictions", "TxtLine", "read_predictions", "read_txt_lines"]

logger = logging.getLogger(__name__)
_FRAME_RE = re.compile(r"^frame_?(\d+)$", re.IGNORECASE)
_ULTRALYTICS_RE = re.compile(r"^(.+)_(\d+)$")

#: A key of the index: (video stem or "", 0-based frame) for video frames, (image stem, -1) for images.
FrameKey = tuple[str, int]


class TxtLine(NamedTuple):
    """One line of a YOLO txt prediction file.

    Attributes:
        line: 1-based line number.
        class_id: The class id.
        points: Normalised values: ``cx cy w h`` for a box, ``x1 y1 ... xn yn`` for a polygon.
        score: Confidence (NaN when the line gives none).
        polygon: Whether ``points`` is a polygon.
    """

    line: int
    class_id: int
    points: np.ndarray
    score: float
    polygon: bool

    def xyxy(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box (a polygon's bounding box) in pixels of a ``width`` x ``height`` frame."""
        p = self.points
        if self.polygon:
            xy = p.reshape(-1, 2) * (width, height)
            return (*xy.min(axis=0), *xy.max(axis=0))
        cx, cy, w, h = p[0] * width, p[1] * height, p[2] * width, p[3] * height
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


class JsonEntry(NamedTuple):
    """One entry of a COCO results JSON.

    Attributes:
        bbox: ``[x, y, w, h]`` in pixels (from the segmentation when the entry has no ``bbox``).
        score: Confidence (NaN when absent).
        class_id: Class id (index into :attr:`Predictions.class_names` when the JSON has categories, else the
            entry's ``category_id``).
        segmentation: The entry's RLE dict or polygon list, None without.
        number: 1-based position in the file's list (the ``label_ref`` line).
        category_id: The entry's own ``category_id``.
    """

    bbox: list[float]
    score: float
    class_id: int
    segmentation: Any
    number: int
    category_id: int


class FrameBoxes(NamedTuple):
    """The predicted boxes of one frame.

    Attributes:
        xyxy: (N, 4) float64 boxes in the frame's pixels, clipped to it (empty boxes dropped).
        score: (N,) float64 confidence (NaN when the file gives none).
        class_id: (N,) int64 ids into :attr:`Predictions.class_names`.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray


@dataclass
class Predictions:
    """Predictions indexed by source (video or image stem) and frame; see :func:`read_predictions`.

    Attributes:
        path: The file or folder read.
        kind: ``yolo-txt`` or ``coco-json``.
        class_names: Names indexed by class id.
        files: YOLO txt: the file of each key (read by :meth:`boxes_of`: its boxes are normalised and need
            the frame size).
        entries: COCO JSON: the :class:`JsonEntry` list of each key.
    """

    path: Path
    kind: Literal["yolo-txt", "coco-json"]
    class_names: tuple[str, ...]
    files: dict[FrameKey, Path] = field(default_factory=dict)
    entries: dict[FrameKey, list[JsonEntry]] = field(default_factory=dict)
    has_categories: bool = False

    @property
    def description(self) -> dict[str, Any]:
        """Provenance for ``run.yaml``."""
        return {"backend": "file", "family": self.kind, "file": str(self.path), "classes": len(self.class_names)}

    def boxes_of(self, stem: str, frame: int, width: int, height: int, single: bool) -> FrameBoxes:
        """The boxes of one frame (``frame = -1`` for an image), in pixels clipped to the frame.

        Args:
            stem: The video's or image's file stem.
            frame: 0-based frame index, -1 for an image.
            width: Frame width, pixels.
            height: Frame height, pixels.
            single: The only video of the run, so entries that name no video are its own.

        Raises:
            DatasetFormatError: A YOLO txt line that is not ``class cx cy w h [score]`` (file and line named).
        """
        if self.kind == "yolo-txt":
            file = self.files.get((stem, frame)) or (self.files.get(("", frame)) if single and frame >= 0 else None)
            boxes = _read_txt(file, width, height) if file else _empty()
        else:
            entries = self.entries.get((stem, frame)) or (self.entries.get(("", frame), []) if single else [])
            if not entries and frame < 0 and stem.isdigit():  # numeric image stems are stored as image ids
                entries = self.entries.get(("", int(stem)), [])
            if not entries:
                return _empty()
            xywh = np.array([e.bbox for e in entries], dtype=np.float64).reshape(-1, 4)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            score = np.array([e.score for e in entries], np.float64)
            boxes = FrameBoxes(xyxy, score, np.array([e.class_id for e in entries]))
        xyxy = boxes.xyxy
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return FrameBoxes(xyxy[ok], boxes.score[ok], boxes.class_id[ok].astype(np.int64))


def read_predictions(path: str | Path, names: Sequence[str] | None = None, *, warn_names: bool = True) -> Predictions:
    """Index a folder of YOLO txt files or read a COCO results JSON (see the module docstring).

    Args:
        path: A folder of ``.txt`` files or a ``.json`` file.
        names: Class names (overrides names found beside the predictions; not the JSON's categories).
        warn_names: Log a warning when no class names are found (the caller may map ids itself).

    Returns:
        The :class:`Predictions`; :meth:`Predictions.boxes_of` gives one frame's boxes in pixels.

    Raises:
        DatasetFormatError: Missing path, unreadable JSON or an entry without a usable box.

    Example:
        >>> preds = read_predictions("runs/detect/predict/labels")  # doctest: +SKIP
        >>> preds.boxes_of("cam1", 0, 640, 360, single=True).xyxy.shape  # doctest: +SKIP
        (2, 4)
    """
    path = Path(path)
    if path.is_dir():
        return _index_txt(path, names, warn_names)
    if path.is_file() and path.suffix.lower() == ".json":
        return _read_json(path, names, warn_names)
    what = "does not exist" if not path.exists() else "is neither a folder of .txt files nor a .json file"
    raise DatasetFormatError(
        f"{path}: --detections {what}; expected per-frame YOLO txt files in a folder or a COCO results JSON"
    )


def _empty() -> FrameBoxes:
    return FrameBoxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))


def _index_txt(folder: Path, names: Sequence[str] | None, warn_names: bool = True) -> Predictions:
    files = sorted(p for p in folder.rglob("*.txt") if p.name not in NAMES_FILES and not p.name.startswith("."))
    if not files:
        raise DatasetFormatError(f"{folder}: no .txt detection file found; expected e.g. frame_000123.txt")
    max_id = -1
    index: dict[FrameKey, Path] = {}
    for file in files:
        stem, parent = file.stem, "" if file.parent == folder else file.parent.name
        index[(stem, -1)] = file
        if m := _FRAME_RE.match(stem):
            index[(parent, int(m.group(1)))] = file
        elif m := _ULTRALYTICS_RE.match(stem):
            index[(m.group(1), int(m.group(2)) - 1)] = file
        for line in file.read_text(encoding="utf-8").split("\n", 50)[:50]:  # class ids, for default names
            head = line.split(maxsplit=1)
            if head and head[0].isdigit():
                max_id = max(max_id, int(head[0]))
    return Predictions(folder, "yolo-txt", _names(names, folder, max_id, warn_names), files=index)


def read_txt_lines(file: Path) -> list[TxtLine]:
    """Parse a YOLO txt prediction file: boxes ``class cx cy w h [score]`` and polygons
    ``class x1 y1 ... xn yn [score]`` (normalised; n >= 3 points).

    Raises:
        DatasetFormatError: A line that is neither (``file:line``, what was found, what is expected).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "a.txt"
        >>> _ = f.write_text("0 0.5 0.5 0.2 0.2 0.9\\n1 0.1 0.1 0.3 0.1 0.2 0.4 0.8\\n")
        >>> [(t.class_id, t.polygon, t.score) for t in read_txt_lines(f)]
        [(0, False, 0.9), (1, True, 0.8)]
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{file}: cannot read the predictions ({exc})") from exc
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            values = np.array([float(v) for v in parts], dtype=np.float64)
        except ValueError:
            values = np.zeros(0)
        k = len(values)
        ok = (k in (5, 6) or k >= 7) and np.isfinite(values).all() and values[0] >= 0 and values[0] == int(values[0])
        if not ok:
            raise DatasetFormatError(
                f"{file}:{n}: expected 'class cx cy w h [score]' or 'class x1 y1 ... xn yn [score]' (normalised, "
                f"class a whole number), got {raw.strip()[:80]!r}; fix or remove the line"
            )
        polygon = k >= 7
        has_score = k == 6 or (polygon and k % 2 == 0)
        coords = values[1:-1] if has_score else values[1:]
        out.append(TxtLine(n, int(values[0]), coords, float(values[-1]) if has_score else np.nan, polygon))
    return out


def _read_txt(file: Path, width: int, height: int) -> FrameBoxes:
    rows = read_txt_lines(file)
    if not rows:
        return _empty()
    xyxy = np.array([r.xyxy(width, height) for r in rows], dtype=np.float64).reshape(-1, 4)
    return FrameBoxes(xyxy, np.array([r.score for r in rows]), np.array([r.class_id for r in rows], np.int64))


def _read_json(path: Path, names: Sequence[str] | None, warn_names: bool = True) -> Predictions:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: cannot read the detections JSON ({exc})") from exc
    categories = doc.get("categories") if isinstance(doc, dict) else None
    entries = doc.get("annotations") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise DatasetFormatError(f"{path}: expected a list of detections or a dict with 'annotations'")
    if categories:
        ordered = sorted(categories, key=lambda c: c["id"])
        index = {int(c["id"]): i for i, c in enumerate(ordered)}
        class_names = tuple(str(c["name"]) for c in ordered)
    else:
        ids = [int(e.get("category_id", 0)) for e in entries if isinstance(e, dict)]
        index, class_names = None, _names(names, path.parent, max(ids, default=-1), warn_names)
    out = Predictions(path, "coco-json", class_names, has_categories=bool(categories))
    for n, e in enumerate(entries, start=1):
        try:
            segmentation = e.get("segmentation") or None
            bbox = [float(v) for v in e["bbox"]] if "bbox" in e or segmentation is None else _seg_box(segmentation)
            cat = int(e.get("category_id", 0))
            score = float(e.get("score", np.nan))
            key = _json_key(e)
            if len(bbox) != 4 or not np.isfinite(bbox).all():
                raise ValueError(f"bbox {e.get('bbox')!r} is not 4 numbers")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetFormatError(
                f"{path}:{n}: entry {n} needs 'bbox' [x, y, w, h] (or a 'segmentation'), 'category_id' and "
                f"'image_id' or 'frame' ({exc}); fix the entry"
            ) from exc
        if index is not None and cat not in index:
            raise DatasetFormatError(f"{path}:{n}: entry {n} has category_id {cat}, not among the categories")
        entry = JsonEntry(bbox, score, index[cat] if index is not None else cat, segmentation, n, cat)
        out.entries.setdefault(key, []).append(entry)
    return out


def _seg_box(segmentation: Any) -> list[float]:
    """``[x, y, w, h]`` of an RLE dict (pycocotools) or a list of polygons."""
    if isinstance(segmentation, dict):
        from dinoscope._deps import require

        mask = require("pycocotools.mask", "coco", "reading RLE masks")
        rle = dict(segmentation)
        if isinstance(rle.get("counts"), list):
            rle = mask.frPyObjects(rle, *rle["size"])
        elif isinstance(rle.get("counts"), str):
            rle["counts"] = rle["counts"].encode()
        return [float(v) for v in mask.toBbox(rle)]
    xy = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation])
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


def _json_key(e: dict[str, Any]) -> FrameKey:
    """Entries are stored under (video stem or "", frame) and under (image stem, -1)."""
    if "frame" in e:
        return Path(str(e.get("video", ""))).stem, int(e["frame"])
    image = e["file_name"] if "file_name" in e else e["image_id"]
    if "video" in e or (isinstance(image, int) or str(image).isdigit()):
        return Path(str(e.get("video", ""))).stem, int(image)
    return Path(str(image)).stem, -1


def _names(names: Sequence[str] | None, folder: Path, max_id: int, warn: bool = True) -> tuple[str, ...]:
    if names:
        found = tuple(names)
    else:
        found = ()
        for candidate in [*(folder / n for n in NAMES_FILES), folder / "data.yaml", folder.parent / "data.yaml"]:
            if candidate.is_file():
                found = read_class_names(candidate)
                break
    if len(found) <= max_id:
        if found:
            raise DatasetFormatError(
                f"{folder}: detections use class id {max_id} but only {len(found)} class names were found; "
                "pass a --names file with one name per class"
            )
        if warn:
            logger.warning("%s: no class names (--names, classes.txt or data.yaml); using class_0..", folder)
        found = tuple(f"class_{i}" for i in range(max_id + 1))
    return found
