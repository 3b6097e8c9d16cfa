"""Format detection: one entry point, :func:`read_dataset`, for every layout dinoscope reads."""

from __future__ import annotations

import dataclasses
import importlib
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from dinoscope.errors import DatasetFormatError
from dinoscope.io.images import is_image_file, list_images
from dinoscope.table import ObjectTable

__all__ = ["FORMATS", "detect_format", "read_dataset"]

Format = Literal["auto", "yolo", "coco", "voc", "mmpretrain", "class-folders", "masks", "images"]
FORMATS: tuple[str, ...] = ("yolo", "coco", "voc", "mmpretrain", "class-folders", "masks", "images")
_JSON_PEEK_BYTES = 1 << 16


def read_dataset(path: str | Path, format: Format = "auto", **options: Any) -> ObjectTable:
    """Read any supported dataset into an :class:`ObjectTable`, detecting its format.

    Args:
        path: Dataset folder or annotation file (``data.yaml``, COCO/MMPretrain JSON, ...).
        format: One of :data:`FORMATS`, or ``auto``.
        **options: Passed to the reader (e.g. ``task="segment"`` for YOLO).

    Raises:
        DatasetFormatError: Nothing readable there; the message lists what was looked for.

    Example:
        >>> table = read_dataset("datasets/ppe")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetFormatError(f"{path}: no such file or folder")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise DatasetFormatError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)} or auto")
    if fmt == "coco" and path.is_dir():
        return _read_coco_folder(path, **options)
    return _reader(fmt)(path, **options)


_READERS = {
    "yolo": ("yolo", "read_yolo"),
    "coco": ("coco", "read_coco"),
    "voc": ("voc", "read_voc"),
    "mmpretrain": ("mmpretrain", "read_mmpretrain"),
    "class-folders": ("folders", "read_class_folders"),
    "masks": ("masks", "read_masks"),
    "images": ("folders", "read_image_folder"),
}


def _reader(fmt: str) -> Callable[..., ObjectTable]:
    module, name = _READERS[fmt]
    return getattr(importlib.import_module(f"dinoscope.io.{module}"), name)


def detect_format(path: Path) -> str:
    """The format of a dataset path (see :data:`FORMATS`), from its files, without reading images."""
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            return "yolo"
        if suffix == ".json":
            kind = _json_kind(path)
            if kind:
                return kind
            raise DatasetFormatError(
                f"{path}: JSON is neither COCO (images/annotations/categories) nor MMPretrain (metainfo + data_list)"
            )
        if is_image_file(path):
            raise DatasetFormatError(f"{path}: a single image; point to the folder that holds it")
        raise DatasetFormatError(f"{path}: unsupported file; give a dataset folder, data.yaml or a JSON")
    from dinoscope.io.yolo import find_data_yaml

    if find_data_yaml(path) is not None:
        return "yolo"
    if (path / "Annotations").is_dir() or any(path.glob("*.xml")):
        return "voc"
    if _coco_files(path):
        return "coco"
    if any(_json_kind(p) == "mmpretrain" for p in sorted(path.glob("*.json"))):
        return "mmpretrain"
    if (path / "classes.txt").is_file() or _has_yolo_labels(path):
        return "yolo"
    from dinoscope.io.masks import MASK_DIRS

    if any((path / d).is_dir() for d in MASK_DIRS) and (path / "images").is_dir():
        return "masks"
    if _looks_like_class_folders(path):
        return "class-folders"
    if list_images(path):
        return "images"
    raise DatasetFormatError(
        f"{path}: no dataset found (looked for data.yaml, classes.txt + labels, COCO/MMPretrain JSON, VOC "
        "Annotations/*.xml, images/ + masks/, class folders and plain images); pass --format to say which"
    )


def _json_kind(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8") as fh:
            head = fh.read(_JSON_PEEK_BYTES)
    except (OSError, UnicodeDecodeError):
        return ""
    if '"data_list"' in head:
        return "mmpretrain"
    if '"images"' in head or '"annotations"' in head or '"categories"' in head:
        return "coco"
    return ""


def _coco_files(folder: Path) -> list[Path]:
    candidates = sorted(folder.glob("*.json")) + sorted((folder / "annotations").glob("*.json"))
    return [p for p in candidates if _json_kind(p) == "coco"]


def _read_coco_folder(folder: Path, **options: Any) -> ObjectTable:
    from dinoscope.io.coco import read_coco

    files = _coco_files(folder)
    if not files:
        raise DatasetFormatError(f"{folder}: no COCO JSON found here or in annotations/")
    tables = [read_coco(f, **options) for f in files]
    roots = [str(t.root) for t in tables]
    if len(set(roots)) > 1:  # e.g. train2017/ and val2017/: make every path relative to one common root
        common = Path(os.path.commonpath(roots))
        tables = [_rebase(t, common) for t in tables]
    try:
        return ObjectTable.concat(tables)
    except ValueError as exc:
        names = ", ".join(f.name for f in files)
        raise DatasetFormatError(
            f"{folder}: COCO files {names} have different categories; read them one by one"
        ) from exc


def _has_yolo_labels(folder: Path) -> bool:
    labels = folder / "labels"
    if labels.is_dir() and next(labels.rglob("*.txt"), None) is not None:
        return True
    return any(p.with_suffix(".txt").is_file() for p in list_images(folder, recursive=False)[:50])


def _looks_like_class_folders(folder: Path) -> bool:
    subdirs = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if not subdirs or list_images(folder, recursive=False):
        return False
    from dinoscope.io.yolo import split_of

    if all(split_of(f"{d.name}/x") != "all" for d in subdirs):  # split folders: look one level down
        subdirs = [c for d in subdirs for c in d.iterdir() if c.is_dir()]
    return bool(subdirs) and all(list_images(d, recursive=False) for d in subdirs if any(d.iterdir()))


def _rebase(table: ObjectTable, root: Path) -> ObjectTable:
    """The same table with every path relative to ``root``, an ancestor of ``table.root``."""
    from dinoscope.io.paths import relpath

    prefix = relpath(Path(table.root or root), root)

    def move(path: str) -> str:
        return posixpath.normpath(posixpath.join(prefix, path)) if path else path

    def move_ref(ref: str) -> str:
        file, sep, line = ref.rpartition(":")
        return f"{move(file)}:{line}" if sep and line.isdigit() else move(ref)

    data = table.data.assign(source=table.data["source"].map(move), label_ref=table.data["label_ref"].map(move_ref))
    images = table.images.assign(
        source=table.images["source"].map(move), label_file=table.images["label_file"].map(move)
    )
    findings = tuple(dataclasses.replace(f, file=move(f.file)) for f in table.findings)
    return dataclasses.replace(table, data=data, images=images, root=root, findings=findings)
