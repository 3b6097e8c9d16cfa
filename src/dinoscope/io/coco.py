"""COCO instances JSON (``images``, ``annotations``, ``categories``): read into an object table, write back.

- Images: ``file_name`` is relative to ``images_dir``, else to the folder holding most of the first few files
  among: the JSON's folder, ``images/`` beside it or beside its folder, and for the official layout
  (``annotations/instances_val2017.json``) ``val2017/`` or ``images/val2017/`` beside ``annotations/``.
- Category ids (1, 3, 90, ...) map to class ids 0..K-1 in increasing id order. ``bbox`` ``[x, y, w, h]`` px
  becomes ``xyxy`` (derived from the segmentation when absent); boxes past the image are reported and clipped.
- Polygons keep their largest part as ``polygon``; RLE masks (compressed or not) are decoded with pycocotools.
- ``label_ref`` is ``<json>:<n>`` (``n``: 1-based index in ``annotations``; in ``images`` for image findings).

Extra columns: ``category_id``, ``annotation_id`` (-1 when absent), ``iscrowd`` (bool), ``segmentation_type``
(``polygon``, ``rle``, ``none``), ``n_polygon_parts`` (0 without polygon), ``mask_rle`` (compressed RLE as
JSON, "" without).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope._deps import require
from dinoscope.errors import DatasetFormatError, OutputExistsError
from dinoscope.geometry import polygon_area
from dinoscope.io._build import TableBuilder, relpath
from dinoscope.table import ObjectTable

__all__ = ["read_coco", "split_from_name", "write_coco"]

logger = logging.getLogger(__name__)

_SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}
_SPLIT_WORDS.update(test="test", testing="test")
_N_ROOT_PROBES = 5


def read_coco(path: str | Path, images_dir: str | Path | None = None) -> ObjectTable:
    """Read a COCO instances JSON into an :class:`ObjectTable`.

    Args:
        path: The COCO JSON file.
        images_dir: Folder the ``file_name`` entries are relative to; found automatically when None.

    Returns:
        The object table (root: the images folder); problems met while reading are in ``table.findings``.

    Raises:
        DatasetFormatError: The file is missing, is not valid JSON, or has no ``images`` list.

    Example:
        >>> table = read_coco("coco/annotations/instances_val2017.json")  # doctest: +SKIP
        >>> table.data[["class_name", "category_id", "x1", "y1", "x2", "y2"]].head()  # doctest: +SKIP
    """
    path = Path(path)
    doc = _load_json(path)
    annotations = doc.get("annotations", [])
    root = _image_root(path, doc["images"], images_dir)
    class_of, names, category_problems = _parse_categories(doc, annotations)
    reader = _Reader(TableBuilder(root, names, "coco"), _relative(path, root), split_from_name(path), class_of)
    for line, message in category_problems:
        reader.report("unreadable_annotations", line, message)
    reader.add_images(doc["images"], Counter(_hashable(a.get("image_id")) for a in annotations if isinstance(a, dict)))
    for index, ann in enumerate(annotations):
        reader.add_annotation(index + 1, ann)
    return reader.builder.build()


def split_from_name(path: str | Path) -> str:
    """Split named by a word of the file name, else of its folder (``instances_val2017.json`` → ``val``).

    Example:
        >>> split_from_name("annotations/instances_val2017.json")
        'val'
    """
    path = Path(path)
    for text in (path.stem, path.parent.name):
        for word in re.findall(r"[a-z]+", text.lower()):
            if word in _SPLIT_WORDS:
                return _SPLIT_WORDS[word]
    return "all"


# --- reading -------------------------------------------------------------------------------------------
def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: no such COCO JSON file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); fix the file or re-export it"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read as UTF-8 text ({exc}); re-export the file") from exc
    lists = (doc.get("images"), doc.get("annotations", [])) if isinstance(doc, dict) else (None,)
    if not all(isinstance(v, list) for v in lists):
        raise DatasetFormatError(
            f"{path}: not a COCO instances file (expected an object with an 'images' list, an 'annotations' "
            "list and 'categories'); point to the instances JSON"
        )
    return doc


def _image_root(json_path: Path, images: list[Any], images_dir: str | Path | None) -> Path:
    if images_dir is not None:
        folder = Path(images_dir)
        if not folder.is_dir():
            raise DatasetFormatError(f"{folder}: images_dir is not a folder; pass the folder of the images")
        return folder
    names = [e["file_name"] for e in images if isinstance(e, dict) and isinstance(e.get("file_name"), str)]
    sample = [n for n in names[:_N_ROOT_PROBES] if n]
    here, above = json_path.parent, json_path.parent.parent
    tag = re.sub(r"^instances_", "", json_path.stem)
    candidates = [here, here / "images", above / "images", above / tag, above / "images" / tag]
    scores = [sum((c / n).is_file() for n in sample) for c in candidates]
    return candidates[int(np.argmax(scores))] if max(scores, default=0) else here


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form, with ``..`` when outside it (absolute across drives)."""
    try:
        return Path(os.path.relpath(path, root)).as_posix()  # relpath makes both absolute first
    except ValueError:
        return path.absolute().as_posix()


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (int, str, float)) and not isinstance(value, bool) else None


def _parse_categories(doc: dict[str, Any], annotations: list[Any]) -> tuple[dict[Any, int], list[str], list[tuple]]:
    """Category id → class id, class names in id order, and (line, message) problems."""
    cats, names, problems = doc.get("categories"), {}, []
    if not isinstance(cats, list):
        ids = {a.get("category_id") for a in annotations if isinstance(a, dict)}
        names = {c: f"category_{c}" for c in ids if isinstance(c, int) and not isinstance(c, bool)}
        problems.append((0, "no 'categories' list; class names were made up (category_<id>) - add the list"))
    else:
        for i, cat in enumerate(cats):
            cid = cat.get("id") if isinstance(cat, dict) else None
            if not isinstance(cid, int) or isinstance(cid, bool):
                problems.append((i + 1, f"category entry {i + 1} needs an integer 'id' and a 'name'; skipped"))
            elif cid in names:
                problems.append((i + 1, f"category entry {i + 1} repeats id {cid}; the first one was kept"))
            else:
                names[cid] = str(cat.get("name", f"category_{cid}"))
    order = sorted(names)
    return {cid: k for k, cid in enumerate(order)}, [names[c] for c in order], problems


class _Reader:
    """Adds the images and annotations of one COCO file to a builder, reporting at ``json_rel:line``."""

    def __init__(self, builder: TableBuilder, json_rel: str, split: str, class_of: dict[Any, int]) -> None:
        self.builder, self.json_rel, self.split, self.class_of = builder, json_rel, split, class_of
        self.sources: dict[Any, str | None] = {}  # image id -> source, None when its file is missing

    def report(self, kind: str, line: int, message: str) -> None:
        self.builder.finding(kind, message, self.json_rel, line, split=self.split)

    def add_images(self, images: list[Any], n_per_image: Counter) -> None:
        found: list[tuple[int, dict[str, Any], Path]] = []
        for line, entry in enumerate(images, start=1):
            image_id = _hashable(entry.get("id")) if isinstance(entry, dict) else None
            name = entry.get("file_name") if isinstance(entry, dict) else None
            if image_id is None or not isinstance(name, str) or not name:
                self.report("unreadable_annotations", line, f"image entry {line} lacks 'id' or 'file_name'; add them")
            elif image_id in self.sources:
                self.report("unreadable_annotations", line, f"image entry {line} repeats id {image_id!r}; skipped")
            elif not (self.builder.root / name).is_file():
                self.sources[image_id] = None
                message = f"image entry {line} names {name!r}, not a file under {self.builder.root}; its "
                message += f"{n_per_image[image_id]} annotation(s) were skipped - add the image or remove the entry"
                self.report("label_without_image", line, message)
            else:
                found.append((line, entry, self.builder.root / name))
        paths = [p for _, _, p in found]
        probes = self.builder.add_images(paths, [self.split] * len(paths), [self.json_rel] * len(paths))
        for (line, entry, path), probe in zip(found, probes, strict=True):
            self.sources[entry["id"]] = relpath(path, self.builder.root)
            stated = (entry.get("width"), entry.get("height"))
            if not probe.error and all(isinstance(v, int) for v in stated) and stated != (probe.width, probe.height):
                message = f"image entry {line} ({entry['file_name']!r}) states {stated[0]}x{stated[1]} but the file "
                message += f"is {probe.width}x{probe.height}; fix 'width' and 'height' (boxes were kept as they are)"
                self.report("size_mismatch", line, message)
            if not n_per_image[entry["id"]]:
                self.report("background_image", line, f"image {entry['file_name']!r} has no annotations: background")

    def add_annotation(self, line: int, ann: Any) -> None:
        if not isinstance(ann, dict):
            self.report("unreadable_annotations", line, f"annotation {line} is not a JSON object; fix or remove it")
            return
        image_id = _hashable(ann.get("image_id"))
        if image_id not in self.sources:
            message = f"annotation {line} refers to image_id {ann.get('image_id')!r}, which no entry of 'images' has"
            self.report("label_without_image", line, message + "; add the image entry or remove the annotation")
            return
        source = self.sources[image_id]
        if source is None:
            return  # the missing file was reported once, on its image entry
        category = _hashable(ann.get("category_id"))
        if category not in self.class_of:
            known = ", ".join(map(str, sorted(self.class_of)[:20])) + (" ..." if len(self.class_of) > 20 else "")
            message = f"category_id {ann.get('category_id')!r} is not among the category ids [{known}]"
            self.report("unknown_class", line, message + "; fix the id or add the category")
            return
        geometry, problem = _geometry(ann)
        if problem:
            self.report("malformed_line", line, f"annotation {line}: {problem}")
            return
        ann_id = ann.get("id")
        geometry.update(category_id=int(category), iscrowd=bool(ann.get("iscrowd", 0)))
        geometry["annotation_id"] = ann_id if isinstance(ann_id, int) and not isinstance(ann_id, bool) else -1
        xyxy = geometry.pop("xyxy")
        self.builder.add_object(source, self.class_of[category], xyxy, self.json_rel, line, clip=False, **geometry)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _geometry(ann: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Box, polygon and mask of an annotation, or a reason why they cannot be read."""
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


# --- writing -------------------------------------------------------------------------------------------
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
        segmentation, area = _segmentation_out(polygon, mask_rle, (x2 - x1) * (y2 - y1))
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


def _segmentation_out(polygon: Any, mask_rle: Any, box_area: float) -> tuple[Any, float]:
    if isinstance(mask_rle, str) and mask_rle:
        rle = json.loads(mask_rle)
        return rle, float(_mask_api().area(_as_bytes(rle)))
    if isinstance(polygon, (list, np.ndarray)) and len(polygon) >= 6:
        flat = [float(v) for v in polygon]
        return [flat], polygon_area(np.asarray(flat).reshape(-1, 2))
    return [], box_area
