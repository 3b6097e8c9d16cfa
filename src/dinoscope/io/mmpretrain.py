"""MMPretrain (OpenMMLab) annotation files for image classification.

The format, as written by MMPretrain's ``CustomDataset`` / ``BaseDataset`` annotation files::

    {"metainfo": {"classes": ["negative", "positive"]},
     "data_list": [{"img_path": "images/a.jpg", "gt_label": 1, "group_id": "a"}, ...]}

Each entry becomes one whole-image object. ``gt_label`` is an integer or a list holding one integer
(multi-label entries are reported and skipped). Other scalar keys of an entry (``group_id``, ``camera``,
...) are kept as string columns. An image listed twice gives two rows (their object ids differ by an
occurrence suffix, or by class), so duplicates stay visible to later checks.

Reference: https://mmpretrain.readthedocs.io/en/latest/user_guides/dataset_prepare.html
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from dinoscope.errors import DatasetFormatError
from dinoscope.io._build import TableBuilder
from dinoscope.io.paths import relpath
from dinoscope.io.yolo import split_of
from dinoscope.table import OBJECT_COLUMNS, ObjectTable, compute_object_ids

__all__ = ["read_mmpretrain"]

_DEFAULT_SPLIT = "all"
_ENTRY_KEYS = ("img_path", "gt_label")
# Column names an entry key may not take (table columns and add_object keywords); such keys get a prefix.
_RESERVED = frozenset(OBJECT_COLUMNS) | {"polygon", "obb", "mask_ref", "clip", "label_file", "line", "xyxy"}
_RESERVED_PREFIX = "entry_"


def read_mmpretrain(path: str | Path, data_root: str | Path | None = None) -> ObjectTable:
    """Read an MMPretrain-style classification annotation JSON.

    Args:
        path: The JSON file, or a folder: every ``*.json`` in it holding a ``data_list`` is read (e.g.
            ``train.json`` and ``val.json``) into one table.
        data_root: Folder that ``img_path`` values are relative to; defaults to the JSON's folder.

    Returns:
        One whole-image object per valid entry, with ``label_ref`` ``"<json>:<entry index, 1-based>"``
        and one string column per scalar entry key (``group_id`` ...; keys that clash with table
        columns get the prefix ``entry_``; missing values are ""). The split is taken from the JSON
        file name when it names one (``train``, ``val``, ``test``), else ``all``.

    Raises:
        DatasetFormatError: The JSON cannot be parsed, lacks ``data_list``, or the folder holds none.

    Example:
        >>> table = read_mmpretrain("datasets/deeppcb/ok_vs_defect.json")  # doctest: +SKIP
        >>> table.data.groupby("group_id").size().max()  # doctest: +SKIP
        2
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, data_root)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: no such annotation file; give the MMPretrain JSON or its folder")
    return _read_file(path, Path(data_root) if data_root is not None else path.parent)


def _read_folder(folder: Path, data_root: str | Path | None) -> ObjectTable:
    files = [p for p in sorted(folder.glob("*.json")) if _has_data_list(p)]
    if not files:
        raise DatasetFormatError(
            f"{folder}: no JSON with a 'data_list' here; give the annotation file itself (read_mmpretrain(file))"
        )
    root = Path(data_root) if data_root is not None else folder
    tables = [_read_file(p, root) for p in files]
    names = tables[0].class_names
    for p, t in zip(files[1:], tables[1:], strict=True):
        if t.class_names != names:
            raise DatasetFormatError(
                f"{p}: metainfo.classes {list(t.class_names)} differ from {list(names)} in {files[0].name}; "
                "give every file the same class list, or read them one by one"
            )
    # Ids are recomputed over all files: an image listed in two files (a leak) keeps two distinct rows.
    data = pd.concat([t.data for t in tables], ignore_index=True)
    extra = [c for c in data.columns if c not in OBJECT_COLUMNS]  # entry keys: all strings
    data[extra] = data[extra].fillna("")
    data["object_id"] = compute_object_ids(
        data["content_hash"], data["frame"], data[["x1", "y1", "x2", "y2"]].to_numpy(), data["class_id"]
    )
    images = pd.concat([t.images for t in tables], ignore_index=True)
    findings = tuple(f for t in tables for f in t.findings)
    return replace(tables[0], data=data, images=images, findings=findings)


def _has_data_list(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and "data_list" in doc


def _load(path: Path) -> tuple[list[str] | None, list[Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); fix the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read the file ({exc}); save it as UTF-8 JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("data_list"), list):
        raise DatasetFormatError(
            f"{path}: expected an object with a 'data_list' list of {{'img_path', 'gt_label'}} entries "
            "(MMPretrain annotation format)"
        )
    meta = doc.get("metainfo") or {}
    classes = meta.get("classes") if isinstance(meta, dict) else None
    if classes is not None and (
        not isinstance(classes, list | tuple) or not all(isinstance(c, str | int) for c in classes)
    ):
        raise DatasetFormatError(f"{path}: metainfo.classes must be a list of names; got {classes!r}")
    return ([str(c) for c in classes] if classes is not None else None), doc["data_list"]


def _read_file(path: Path, root: Path) -> ObjectTable:
    classes, entries = _load(path)
    rel_json = relpath(path, root)
    split = _split_from_name(path.stem)
    parsed: list[tuple[int, Path, int, dict[str, str]]] = []  # (index, image, label, extra)
    problems: list[tuple[str, str, int]] = []  # (kind, message, index)
    for i, entry in enumerate(entries, start=1):
        row, problem = _parse_entry(entry, root)
        if problem:
            problems.append(("malformed_line", problem, i))
        elif not row[0].is_file():
            problems.append(
                (
                    "label_without_image",
                    f"img_path {entry['img_path']!r} does not exist under {root}; add the image, fix the path "
                    "or pass data_root",
                    i,
                )
            )
        else:
            parsed.append((i, *row))
    if classes is None:  # no metainfo: name classes by id, up to the largest label seen
        classes = [f"class_{k}" for k in range(max((r[2] for r in parsed), default=-1) + 1)]
    builder = TableBuilder(root, classes, "mmpretrain")
    for kind, message, i in problems:
        builder.finding(kind, message, rel_json, i, split=split)
    unique: dict[Path, Path] = {}
    for _, img, _, _ in parsed:
        unique.setdefault(img.resolve(), img)
    builder.add_images(list(unique.values()), [split] * len(unique), [rel_json] * len(unique))
    columns = sorted({k for *_, extra in parsed for k in extra})
    for i, img, label, extra in parsed:
        source = relpath(img, root)
        record = builder.image(source) or {"width": 0, "height": 0}
        box = (0.0, 0.0, float(record["width"]), float(record["height"]))
        builder.add_object(source, label, box, rel_json, i, **{k: extra.get(k, "") for k in columns})
    return builder.build()


def _parse_entry(entry: Any, root: Path) -> tuple[tuple[Path, int, dict[str, str]], str]:
    """((image path, label, extra string columns), "") or (placeholder, reason the entry is malformed)."""
    bad: tuple[Path, int, dict[str, str]] = (Path(), -1, {})
    if not isinstance(entry, dict):
        return bad, f"entry is {type(entry).__name__}, expected an object with 'img_path' and 'gt_label'"
    missing = [k for k in _ENTRY_KEYS if k not in entry]
    if missing:
        return bad, f"entry lacks {', '.join(repr(k) for k in missing)}; each entry needs 'img_path' and 'gt_label'"
    img_path, label = entry["img_path"], entry["gt_label"]
    if not isinstance(img_path, str) or not img_path:
        return bad, f"img_path must be a non-empty string; got {img_path!r}"
    if isinstance(label, list):
        if len(label) > 1:
            return bad, f"gt_label {label} has {len(label)} labels: multi-label entries not supported"
        if not label:
            return bad, "gt_label is an empty list; give one class index"
        label = label[0]
    if isinstance(label, bool) or not isinstance(label, int):
        return bad, f"gt_label must be an integer class index; got {label!r}"
    image = Path(img_path)
    extra = {_column(k): _as_text(v) for k, v in entry.items() if k not in _ENTRY_KEYS and _is_scalar(v)}
    return (image if image.is_absolute() else root / image, label, extra), ""


def _column(key: str) -> str:
    return _RESERVED_PREFIX + key if key in _RESERVED else key


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _split_from_name(stem: str) -> str:
    """``train``/``val``/``test`` when a word of the file name names a split (``val_ann`` -> val)."""
    for word in re.split(r"[^A-Za-z]+", stem):
        split = split_of(f"{word}/_", "")
        if split:
            return split
    return _DEFAULT_SPLIT
