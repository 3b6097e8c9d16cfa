"""Read a COCO instances JSON (``images``, ``annotations``, ``categories``) into an object table.

- Images: ``file_name`` is relative to ``images_dir``, else to the folder holding most of the first few files
  among: the JSON's folder, ``images/`` beside it or beside its folder, and for the official layout
  (``annotations/instances_val2017.json``) ``val2017/`` or ``images/val2017/`` beside ``annotations/``.
- Category ids (1, 3, 90, ...) map to class ids 0..K-1 in increasing id order. ``bbox`` ``[x, y, w, h]`` px
  becomes ``xyxy`` (derived from the segmentation when absent); boxes past the image are reported and clipped.
- Polygons keep their largest part as ``polygon``; RLE masks (compressed or not) are decoded with pycocotools.
- ``label_ref`` is ``<json>:<n>`` (``n``: 1-based index in ``annotations``; in ``images`` for image findings).

Extra columns: ``category_id``, ``annotation_id`` (-1 when absent), ``iscrowd`` (bool), ``segmentation_type``
(``polygon``, ``rle``, ``none``), ``n_polygon_parts`` (0 without polygon), ``mask_rle`` (compressed RLE as
JSON, "" without). Writing back: :func:`~dinoscope.io.coco_writer.write_coco`.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from dinoscope.errors import DatasetFormatError
from dinoscope.io._build import TableBuilder
from dinoscope.io._coco_segmentation import annotation_geometry
from dinoscope.io.paths import relpath
from dinoscope.table import ObjectTable

__all__ = ["read_coco", "split_from_name"]

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
        geometry, problem = annotation_geometry(ann)
        if problem:
            self.report("malformed_line", line, f"annotation {line}: {problem}")
            return
        ann_id = ann.get("id")
        geometry.update(category_id=int(category), iscrowd=bool(ann.get("iscrowd", 0)))
        geometry["annotation_id"] = ann_id if isinstance(ann_id, int) and not isinstance(ann_id, bool) else -1
        xyxy = geometry.pop("xyxy")
        self.builder.add_object(source, self.class_of[category], xyxy, self.json_rel, line, clip=False, **geometry)
