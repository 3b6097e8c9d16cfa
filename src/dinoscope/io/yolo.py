"""YOLO txt datasets (Ultralytics layout): detection, segmentation and oriented boxes.

Layouts read:
- a ``data.yaml`` (``path``; ``train``/``val``/``test`` as folders, list files or lists of them;
  ``names`` as list or ``{id: name}``), given as the file or its folder;
- a folder with ``classes.txt`` (or none: names become ``class_0``, ...) whose images and labels sit side
  by side or in ``images/`` and ``labels/`` trees, splits taken from folder names (train/val/test).

Label lines: ``class cx cy w h`` (boxes), ``class x1 y1 ... xn yn`` (polygons, n >= 3) or, for oriented
boxes, ``class x1 y1 x2 y2 x3 y3 x4 y4``; all normalised to [0, 1]. The task is detected from the line
lengths (9 values everywhere else than boxes means OBB) unless given.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from dinoscope.errors import DatasetFormatError
from dinoscope.io._build import TableBuilder
from dinoscope.io.images import IMAGE_EXTENSIONS, is_image_file, list_images
from dinoscope.io.paths import relpath
from dinoscope.table import ObjectTable

__all__ = ["find_data_yaml", "label_path_for", "read_yolo", "split_of"]

Task = Literal["auto", "detect", "segment", "obb"]
_SPLIT_KEYS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
_NOT_LABELS = {"classes.txt", "notes.txt", "readme.txt", "labels.txt"}
_OUT_OF_RANGE_TOL = 1e-3
_MIN_PIXEL_LOOKING = 1.5


def read_yolo(path: str | Path, task: Task = "auto") -> ObjectTable:
    """Read a YOLO dataset into an :class:`ObjectTable`.

    Args:
        path: A ``data.yaml`` file, a folder holding one, or a folder of images and label files.
        task: ``detect``, ``segment``, ``obb`` or ``auto`` (from the label line lengths).

    Returns:
        The object table; problems met while reading are in ``table.findings``.

    Raises:
        DatasetFormatError: The path does not exist, the YAML cannot be parsed, or no image is found.

    Example:
        >>> table = read_yolo("datasets/ppe/data.yaml")  # doctest: +SKIP
        >>> table.class_counts()  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise DatasetFormatError(f"{path}: no such file or folder")
    yaml_path = path if path.is_file() else find_data_yaml(path)
    if yaml_path is not None:
        root, names, split_images = _from_yaml(yaml_path)
    else:
        root, names, split_images = path, _read_classes_txt(path), _from_folders(path)
    if not any(split_images.values()):
        raise DatasetFormatError(
            f"{path}: no image found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} files); "
            "point to the dataset folder or its data.yaml"
        )
    return _read_labels(root, names, split_images, task)


def find_data_yaml(folder: Path) -> Path | None:
    """The dataset YAML in ``folder``: ``data.yaml``/``dataset.yaml`` or the only YAML with ``names``."""
    for name in ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml"):
        if (folder / name).is_file():
            return folder / name
    candidates = []
    for p in sorted(folder.glob("*.y*ml")):
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and "names" in doc:
            candidates.append(p)
    return candidates[0] if len(candidates) == 1 else None


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder becomes ``labels``; else the label sits beside."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def split_of(rel: str, default: str = "all") -> str:
    """Split named by the first folder of a relative path that is a split name (train/val/test)."""
    for part in Path(rel).parts[:-1]:
        alias = _SPLIT_ALIASES.get(part.lower())
        if alias:
            return alias
    return default


# --- layouts ---------------------------------------------------------------------------------------
def _from_yaml(yaml_path: Path) -> tuple[Path, list[str], dict[str, list[Path]]]:
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{yaml_path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict) or "names" not in doc:
        raise DatasetFormatError(f"{yaml_path}: expected a mapping with 'names' (a list or {{id: name}})")
    names = _parse_names(doc["names"], yaml_path)
    if "nc" in doc and int(doc["nc"]) != len(names):
        raise DatasetFormatError(f"{yaml_path}: nc is {doc['nc']} but {len(names)} names are given")
    root = Path(doc.get("path") or ".")
    root = root if root.is_absolute() else yaml_path.parent / root
    if not root.is_dir():
        raise DatasetFormatError(f"{yaml_path}: 'path: {doc.get('path')}' is not a folder ({root})")
    split_images: dict[str, list[Path]] = {}
    for key in _SPLIT_KEYS:
        entries = doc.get(key)
        if not entries:
            continue
        entries = entries if isinstance(entries, list) else [entries]
        split_images[key] = [img for e in entries for img in _resolve_split_entry(str(e), root, yaml_path, key)]
    if not split_images:
        raise DatasetFormatError(f"{yaml_path}: none of {_SPLIT_KEYS} is given; add e.g. 'train: images/train'")
    return root, names, split_images


def _parse_names(raw: Any, where: Path) -> list[str]:
    if isinstance(raw, list):
        return [str(n) for n in raw]
    if isinstance(raw, dict):
        try:
            ids = sorted(int(k) for k in raw)
        except (TypeError, ValueError) as exc:
            raise DatasetFormatError(f"{where}: 'names' keys must be integer class ids") from exc
        if ids != list(range(len(ids))):
            raise DatasetFormatError(f"{where}: 'names' ids must be 0..{len(ids) - 1} without gaps; got {ids}")
        return [str(raw[k] if k in raw else raw[str(k)]) for k in ids]
    raise DatasetFormatError(f"{where}: 'names' must be a list or a mapping of id to name")


def _resolve_split_entry(entry: str, root: Path, yaml_path: Path, key: str) -> list[Path]:
    p = Path(entry)
    p = p if p.is_absolute() else root / p
    if p.is_dir():
        return list_images(p)
    if p.is_file() and p.suffix.lower() == ".txt":
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            q = Path(line)
            if not q.is_absolute():
                q = p.parent / line if line.startswith("./") else root / line
                if not q.exists() and (p.parent / line).exists():
                    q = p.parent / line
            out.append(q)
        return out
    raise DatasetFormatError(f"{yaml_path}: '{key}: {entry}' is neither a folder nor a .txt list ({p})")


def _read_classes_txt(folder: Path) -> list[str] | None:
    for cand in (folder / "classes.txt", folder / "labels" / "classes.txt"):
        if cand.is_file():
            return [ln.strip() for ln in cand.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return None


def _from_folders(folder: Path) -> dict[str, list[Path]]:
    images_dir = folder / "images"
    images = list_images(images_dir if images_dir.is_dir() else folder)
    by_split: dict[str, list[Path]] = {}
    for img in images:
        by_split.setdefault(split_of(relpath(img, folder)), []).append(img)
    return by_split


# --- labels ----------------------------------------------------------------------------------------
def _read_labels(root: Path, names: list[str] | None, split_images: dict[str, list[Path]], task: Task) -> ObjectTable:
    images, splits, label_paths, seen = [], [], [], set()
    for split, paths in split_images.items():
        for img in paths:
            key = os.path.abspath(img)
            if key in seen:
                continue  # a folder listed under two splits keeps its first split
            seen.add(key)
            images.append(img)
            splits.append(split)
            label_paths.append(label_path_for(img))
    parsed = [_parse_label_file(lp) for lp in label_paths]
    if names is None:
        top = max((int(r[0]) for rows, _ in parsed if rows for r in rows if r[0] is not None), default=-1)
        names = [f"class_{i}" for i in range(top + 1)]
    if task == "auto":
        task = _detect_task([len(r[1]) for rows, _ in parsed if rows for r in rows if r[1] is not None])
    builder = TableBuilder(root, names, "yolo")
    rel_labels = ["" if rows is None else relpath(lp, root) for lp, (rows, _) in zip(label_paths, parsed, strict=True)]
    builder.add_images(images, splits, rel_labels)
    for img, lp, rel_label, (rows, problem) in zip(images, label_paths, rel_labels, parsed, strict=True):
        _add_file_objects(builder, relpath(img, root), lp, rel_label, rows, problem, task)
    _find_orphan_labels(builder, root, label_paths, images)
    return builder.build()


def _parse_label_file(path: Path) -> tuple[list[tuple[int | None, list[float] | None, int, str]] | None, str]:
    """Rows of (class id, values, line number, error); None when the file is missing."""
    if not path.is_file():
        return None, ""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"cannot read label file: {exc}"
    rows = []
    for n, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts]
        except ValueError:
            bad = next(v for v in parts if not _is_number(v))
            rows.append((None, None, n, f"{bad!r} is not a number"))
            continue
        if not all(math.isfinite(v) for v in values) or values[0] != int(values[0]):
            rows.append((None, None, n, f"class id {parts[0]!r} must be a whole number and values finite"))
            continue
        rows.append((int(values[0]), values[1:], n, ""))
    return rows, ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _detect_task(lengths: Sequence[int]) -> Task:
    others = {n for n in lengths if n != 4}
    if not others:
        return "detect"
    return "obb" if others == {8} else "segment"


def _add_file_objects(
    builder: TableBuilder, source: str, label_path: Path, rel_label: str, rows: list | None, problem: str, task: Task
) -> None:
    img = builder.image(source)
    if rows is None:
        builder.finding(
            "missing_label_file",
            f"no label file (expected {relpath(label_path, builder.root)}); "
            "the image counts as background - add an empty file to mark it so on purpose",
            source,
            split=img["split"],
        )
        return
    if problem:
        builder.finding("unreadable_annotations", f"{problem}; save it as UTF-8 text", rel_label, split=img["split"])
        return
    if not rows:
        builder.finding(
            "background_image", "empty label file: background image (no objects)", rel_label, split=img["split"]
        )
        return
    w, h = img["width"], img["height"]
    for class_id, values, line, error in rows:
        where = {"file": rel_label, "line": line, "split": img["split"]}
        if error:
            builder.finding(
                "malformed_line", f"{error}; expected 'class cx cy w h' or 'class x1 y1 x2 y2 ...'", **where
            )
            continue
        shape = _line_shape(values, task)
        if shape is None:
            builder.finding(
                "malformed_line",
                f"{len(values) + 1} values; expected 5 (class cx cy w h)"
                + ("" if task == "detect" else ", or a class id and 3 or more x y pairs"),
                **where,
            )
            continue
        if class_id < 0 or class_id >= len(builder.class_names):
            builder.add_object(source, class_id, (0, 0, 0, 0), rel_label, line)  # records unknown_class
            continue
        arr = np.asarray(values, dtype=np.float64)
        if not _in_unit_range(builder, arr, where):
            continue
        if shape == "box":
            cx, cy, bw, bh = arr
            xyxy = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
            builder.add_object(source, class_id, xyxy, rel_label, line)
            continue
        pts = np.clip(arr.reshape(-1, 2), 0.0, 1.0) * (w, h)
        xyxy = (*pts.min(axis=0), *pts.max(axis=0))
        kw = {"obb": pts} if shape == "obb" else {"polygon": pts}
        builder.add_object(source, class_id, xyxy, rel_label, line, **kw)


def _line_shape(values: list[float], task: Task) -> str | None:
    n = len(values)
    if n == 4:
        return "box"
    if task == "obb" and n == 8:
        return "obb"
    if task == "segment" and n >= 6 and n % 2 == 0:
        return "polygon"
    return None


def _in_unit_range(builder: TableBuilder, arr: np.ndarray, where: dict[str, Any]) -> bool:
    """Report out-of-range normalised values; False when the line must be dropped (pixel units)."""
    if arr.min() >= -_OUT_OF_RANGE_TOL and arr.max() <= 1 + _OUT_OF_RANGE_TOL:
        return True
    if arr.min() >= 0 and arr.max() >= _MIN_PIXEL_LOOKING:
        builder.finding(
            "pixel_coordinates",
            f"values up to {arr.max():g} look like pixels; YOLO expects "
            "coordinates divided by the image width (x) and height (y), in [0, 1]",
            **where,
        )
        return False
    builder.finding(
        "coords_out_of_range",
        f"values range [{arr.min():g}, {arr.max():g}], outside [0, 1]; the box was clipped to the image",
        **where,
    )
    return True


def _find_orphan_labels(builder: TableBuilder, root: Path, label_paths: list[Path], images: list[Path]) -> None:
    """Label files in the dataset's label folders whose image exists nowhere (beside or in images/)."""
    used = {os.path.abspath(p) for p in label_paths}
    for folder in sorted({p.parent for p in label_paths if p.parent.is_dir()}):
        image_dirs = {folder, _image_dir_for(folder)}
        for txt in sorted(folder.glob("*.txt")):
            if os.path.abspath(txt) in used or txt.name.lower() in _NOT_LABELS:
                continue
            if any(is_image_file(q) for d in image_dirs for q in d.glob(glob.escape(txt.stem) + ".*")):
                continue  # its image exists but is not part of the selected splits
            builder.finding(
                "label_without_image",
                "label file has no image of the same name; add the image or remove the file",
                relpath(txt, root),
            )


def _image_dir_for(label_dir: Path) -> Path:
    parts = list(label_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "labels":
            parts[i] = "images"
            return Path(*parts)
    return label_dir
