"""Segmentation exports (CVAT and plain mask folders) read as one binary foreground mask per image.

Four kinds of export, detected from their files (``format="auto"``):

- ``cvat-mask``: CVAT "Segmentation mask 1.1" (``labelmap.txt``, ``SegmentationClass/*.png`` in label colours,
  ``ImageSets/Segmentation/*.txt``), read by :mod:`dinoscope.io.cvat`;
- ``coco``: COCO 1.0 (``annotations/*.json`` or one JSON file): polygons, compressed RLE and the uncompressed
  RLE with ``iscrowd: 1`` that CVAT writes for brush masks;
- ``cvat-xml``: CVAT for images 1.1 (``annotations.xml``): polygons, polylines (rasterised at a line width),
  masks, ellipses, read by :mod:`dinoscope.io.cvat`;
- ``masks``: a folder of single-channel masks (``masks/`` beside ``images/``, or the mask folder itself):
  binary (0/1 or 0/255) or indexed (value ``v`` is class ``v``, names from ``classes.txt``).

Each image becomes a :class:`MaskEntry` whose ``read()`` rasterises or decodes the foreground of the chosen
labels (every non-background label when none is chosen) lazily, so a large export is never held in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dinoscope._deps import require
from dinoscope.errors import ConfigError, DatasetFormatError
from dinoscope.io._coco_segmentation import annotation_geometry
from dinoscope.io.images import list_images
from dinoscope.io.masks import read_mask_array
from dinoscope.io.paths import relpath

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "MaskEntry",
    "SegmentationExport",
    "choose_labels",
    "detect_export_format",
    "read_segmentation_export",
]

ExportFormat = Literal["auto", "cvat-mask", "coco", "cvat-xml", "masks"]
EXPORT_FORMATS = ("cvat-mask", "coco", "cvat-xml", "masks")
#: Folders of an export that hold its images when it was exported "with images".
IMAGE_DIRS = ("JPEGImages", "images", "Images")
_MASK_FOLDERS = ("masks", "labels", "annotations", "segmentations", "SegmentationClass")


@dataclass(frozen=True)
class MaskEntry:
    """One image of a segmentation export.

    Attributes:
        name: The image as the export names it, relative, ``/``-separated (without extension for CVAT masks).
        ref: Where its annotation lives, e.g. ``SegmentationClass/a.png`` or ``annotations.xml: image 'a.jpg'``.
        size_wh: Image size the export states (COCO, XML), or None when only the mask tells.
        read: Returns the (H, W) bool foreground of the chosen labels, or None when the image has no annotation.
            Raises :class:`DatasetFormatError` naming the file when the annotation cannot be decoded.
    """

    name: str
    ref: str
    size_wh: tuple[int, int] | None
    read: Callable[[], np.ndarray | None]


@dataclass
class SegmentationExport:
    """A segmentation export: its images and how to read each one's foreground.

    Attributes:
        format: One of :data:`EXPORT_FORMATS`.
        root: The export folder (or the folder of the annotation file).
        labels: Every label the export defines, background excluded.
        chosen: The labels whose union is the foreground.
        entries: One per image, in the export's order.
        images_dir: The export's own image folder (``JPEGImages/``, ``images/``) when it has one.
        notes: Remarks on the whole export (shapes ignored, tracks skipped), one line each.
    """

    format: str
    root: Path
    labels: tuple[str, ...]
    chosen: tuple[str, ...]
    entries: list[MaskEntry]
    images_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def detect_export_format(path: str | Path) -> str:
    """The kind of export at ``path`` (see the module docstring).

    Raises:
        DatasetFormatError: Nothing there looks like a segmentation export.

    Example:
        >>> detect_export_format("exports/task_12-seg")  # doctest: +SKIP
        'cvat-mask'
    """
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".xml":
            return "cvat-xml"
        if p.suffix.lower() == ".json":
            return "coco"
        raise DatasetFormatError(f"{p}: not an export; expected a folder, annotations.xml or a COCO .json file")
    if not p.is_dir():
        raise DatasetFormatError(f"{p}: export not found; give the unzipped export folder")
    if (p / "labelmap.txt").is_file() or (p / "SegmentationClass").is_dir():
        return "cvat-mask"
    if (p / "annotations.xml").is_file():
        return "cvat-xml"
    if _coco_files(p):
        return "coco"
    if any((p / d).is_dir() for d in _MASK_FOLDERS) or list_images(p, recursive=False):
        return "masks"
    raise DatasetFormatError(
        f"{p}: no labelmap.txt + SegmentationClass/ (CVAT Segmentation mask 1.1), annotations.xml (CVAT for images "
        "1.1), annotations/*.json (COCO 1.0) or masks/ folder; unzip the export there or pass --export-format"
    )


def read_segmentation_export(
    path: str | Path, format: ExportFormat = "auto", labels: Sequence[str] | None = None, line_width: int = 3
) -> SegmentationExport:
    """Read a segmentation export into one lazily decoded foreground mask per image.

    Args:
        path: Export folder (unzipped), or its ``annotations.xml`` / COCO ``.json`` file.
        format: ``auto`` or one of :data:`EXPORT_FORMATS`.
        labels: Labels whose union is the foreground (case-insensitive); None = every non-background label.
        line_width: Width in pixels at which polylines are drawn (CVAT for images XML).

    Raises:
        DatasetFormatError: The export is missing or its index files cannot be parsed (file:line named).
        ConfigError: A chosen label is not in the export, or ``format`` / ``line_width`` is invalid.

    Example:
        >>> export = read_segmentation_export("task_7", labels=["crack"])  # doctest: +SKIP
        >>> export.entries[0].read().sum()  # doctest: +SKIP
        1873
    """
    if line_width < 1:
        raise ConfigError(f"line_width must be >= 1 px; got {line_width}")
    kind = detect_export_format(path) if format == "auto" else format
    p = Path(path)
    if kind == "cvat-mask":
        from dinoscope.io.cvat import read_cvat_mask_export

        return read_cvat_mask_export(p, labels)
    if kind == "cvat-xml":
        from dinoscope.io.cvat import read_cvat_xml_export

        return read_cvat_xml_export(p, labels, line_width)
    if kind == "coco":
        return _read_coco_export(p, labels)
    if kind == "masks":
        return _read_mask_folder(p, labels)
    raise ConfigError(f"export format must be auto or one of {', '.join(EXPORT_FORMATS)}; got {format!r}")


def choose_labels(available: Sequence[str], wanted: Sequence[str] | None, where: str) -> tuple[str, ...]:
    """The labels making the foreground: all of ``available`` when ``wanted`` is None, else ``wanted`` checked.

    Raises:
        ConfigError: A wanted label is not available (the available ones are listed).

    Example:
        >>> choose_labels(["crack", "stain"], ["Crack"], "labelmap.txt")
        ('crack',)
    """
    if not wanted:
        return tuple(available)
    by_lower = {a.lower(): a for a in available}
    unknown = [w for w in wanted if w.lower() not in by_lower]
    if unknown:
        raise ConfigError(
            f"{where}: no label {', '.join(map(repr, unknown))}; labels there: {', '.join(available) or 'none'}"
        )
    return tuple(dict.fromkeys(by_lower[w.lower()] for w in wanted))


def find_images_dir(root: Path) -> Path | None:
    """The export's own image folder (``JPEGImages/``, ``images/``), if it has one."""
    for name in IMAGE_DIRS:
        if (root / name).is_dir():
            return root / name
    return None


# --- COCO 1.0 ----------------------------------------------------------------------------------------------
def _coco_files(folder: Path) -> list[Path]:
    return sorted((folder / "annotations").glob("*.json")) if (folder / "annotations").is_dir() else []


def _read_coco_export(path: Path, labels: Sequence[str] | None) -> SegmentationExport:
    files = [path] if path.is_file() else _coco_files(path)
    root = path.parent.parent if path.is_file() and path.parent.name == "annotations" else path
    if path.is_file() and path.parent.name != "annotations":
        root = path.parent
    if not files:
        raise DatasetFormatError(f"{path}: no annotations/*.json; expected a COCO 1.0 export")
    docs = [(f, _load_json(f)) for f in files]
    names = list(dict.fromkeys(str(c.get("name", "")) for _, d in docs for c in d.get("categories", [])))
    chosen = choose_labels(names, labels, relpath(files[0], root))
    entries: list[MaskEntry] = []
    notes: list[str] = []
    for f, doc in docs:
        entries += _coco_entries(f, doc, set(chosen), relpath(f, root), notes)
    return SegmentationExport("coco", root, tuple(names), chosen, entries, find_images_dir(root), notes)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); re-export the task") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DatasetFormatError(f"{path}: no 'images' list; expected a COCO 1.0 instances file")
    return doc


def _coco_entries(path: Path, doc: dict[str, Any], chosen: set[str], ref: str, notes: list[str]) -> list[MaskEntry]:
    cats = {c.get("id"): str(c.get("name", "")) for c in doc.get("categories", [])}
    by_image: dict[Any, list[dict[str, Any]]] = {}
    n_boxes = 0
    for ann in doc.get("annotations", []):
        if not ann.get("segmentation"):
            n_boxes += 1
            continue
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    if n_boxes:
        notes.append(f"{ref}: {n_boxes} annotation(s) without segmentation (boxes) ignored")
    entries = []
    for img in doc["images"]:
        w, h = int(img.get("width", 0)), int(img.get("height", 0))
        anns = [a for a in by_image.get(img.get("id"), []) if cats.get(a.get("category_id")) in chosen]
        has_any = bool(by_image.get(img.get("id")))
        where = f"{ref}: image id {img.get('id')}"
        entries.append(
            MaskEntry(
                str(img.get("file_name", "")).replace("\\", "/"),
                where,
                (w, h) if w > 0 and h > 0 else None,
                _coco_reader(anns, h, w, has_any, where),
            )
        )
    return entries


def _coco_reader(
    anns: list[dict[str, Any]], h: int, w: int, has_any: bool, where: str
) -> Callable[[], np.ndarray | None]:
    def read() -> np.ndarray | None:
        if not has_any:
            return None
        mask = np.zeros((h, w), dtype=bool)
        for ann in anns:
            part = _decode_annotation(ann, h, w, f"{where}, annotation id {ann.get('id')}")
            if part.shape != mask.shape:
                if mask.any() or not (h and w):
                    raise DatasetFormatError(f"{where}: RLE size {part.shape} differs from the image's {h}x{w}")
                mask = np.zeros(part.shape, dtype=bool)
            mask |= part
        return mask

    return read


def _decode_annotation(ann: dict[str, Any], h: int, w: int, where: str) -> np.ndarray:
    """(H, W) bool mask of one COCO annotation: every polygon part, or its RLE (compressed or not)."""
    mask_api = require("pycocotools.mask", "coco", "decoding COCO segmentations")
    columns, problem = annotation_geometry(ann)
    if problem:
        raise DatasetFormatError(f"{where}: {problem}")
    if columns["segmentation_type"] == "rle":
        rle = json.loads(columns["mask_rle"])
        decoded = mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
        return decoded.astype(bool)
    polygons = [p for p in ann["segmentation"] if len(p) >= 6]
    if not polygons or not (h and w):
        return np.zeros((h, w), dtype=bool)
    rles = mask_api.frPyObjects(polygons, h, w)
    return mask_api.decode(mask_api.merge(rles)).astype(bool)


# --- plain mask folders ------------------------------------------------------------------------------------
def _read_mask_folder(path: Path, labels: Sequence[str] | None) -> SegmentationExport:
    mask_dir = next((path / d for d in _MASK_FOLDERS if (path / d).is_dir()), path)
    masks = [m for m in list_images(mask_dir) if not any(p.name in IMAGE_DIRS for p in m.parents)]
    if not masks:
        raise DatasetFormatError(f"{mask_dir}: no mask images; expected masks/<name>.png beside images/<name>.jpg")
    names = _folder_class_names(path, mask_dir)
    chosen = choose_labels(names, labels, relpath(mask_dir, path) or ".") if names else ()
    values = None if not labels or len(names) == 1 else {names.index(c) + 1 for c in chosen}
    entries = [
        MaskEntry(relpath(m.with_suffix(""), mask_dir), relpath(m, path), None, _folder_reader(m, values, path))
        for m in masks
    ]
    images_dir = find_images_dir(path) if mask_dir != path else None
    return SegmentationExport("masks", path, tuple(names), chosen, entries, images_dir)


def _folder_class_names(root: Path, mask_dir: Path) -> list[str]:
    for folder in (root, mask_dir):
        txt = folder / "classes.txt"
        if txt.is_file():
            names = [ln.strip() for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
            return names[1:] if names and names[0].lower() in ("background", "_background_", "bg") else names
    return ["foreground"]


def _folder_reader(mask: Path, values: set[int] | None, root: Path) -> Callable[[], np.ndarray | None]:
    def read() -> np.ndarray:
        try:
            arr = read_mask_array(mask)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DatasetFormatError(f"{relpath(mask, root)}: cannot read the mask ({exc})") from exc
        if values is None:
            return arr > 0
        return np.isin(arr, sorted(values))

    return read
