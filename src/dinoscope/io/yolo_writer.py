"""Write an :class:`ObjectTable` back to a YOLO dataset (``data.yaml``, ``images/``, ``labels/``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd
import yaml

from dinoscope.errors import DatasetFormatError
from dinoscope.outputs import prepare_output_dir
from dinoscope.table import ObjectTable

__all__ = ["write_yolo"]

ImageMode = Literal["copy", "link", "none"]


def write_yolo(table: ObjectTable, out_dir: str | Path, *, images: ImageMode = "copy", overwrite: bool = False) -> Path:
    """Write a YOLO dataset: ``data.yaml``, ``images/<split>/`` and ``labels/<split>/``.

    Boxes become ``class cx cy w h``; objects with a ``polygon`` are written as segments and those with an
    ``obb`` as oriented boxes (when every object of the table has one, else as boxes). Images without
    objects get an empty label file (background). Unlabelled objects (class id -1) are skipped.

    Args:
        table: Objects to write; ``table.images`` lists every image, background ones included.
        out_dir: New (or empty) folder.
        images: ``copy`` the image files, hard-``link`` them (falls back to copy across devices), or ``none``.
        overwrite: Allow writing into a non-empty folder (files of the same names are replaced).

    Returns:
        The path of the written ``data.yaml``.

    Example:
        >>> write_yolo(read_yolo("ppe")[mask], "ppe-clean")  # doctest: +SKIP
    """
    if table.root is None and images != "none":
        raise DatasetFormatError("the table has no dataset root to copy images from; pass images='none'")
    out = prepare_output_dir(Path(out_dir), overwrite)
    shape = _label_shape(table.data)
    labelled = table.data[table.data["class_id"] >= 0]
    by_source = {src: g for src, g in labelled.groupby("source", sort=False)}
    used: set[tuple[str, str]] = set()
    for _, img in table.images.iterrows():
        split = img["split"] or "all"
        name = _unique_name(PurePosixPath(img["source"]).name, split, used)
        label = out / "labels" / split / (Path(name).stem + ".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        rows = by_source.get(img["source"])
        label.write_text(_label_text(rows, shape, img["width"], img["height"]) if rows is not None else "")
        if images != "none":
            _place_image(Path(table.root) / img["source"], out / "images" / split / name, images)
    splits = sorted({s or "all" for s in table.images["split"]})
    doc = {
        "path": ".",
        **{s: f"images/{s}" for s in splits},
        "nc": len(table.class_names),
        "names": list(table.class_names),
    }
    yaml_path = out / "data.yaml"
    yaml_path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return yaml_path


def _label_shape(data: pd.DataFrame) -> str:
    if "obb" in data.columns and data["obb"].notna().all() and len(data):
        return "obb"
    if "polygon" in data.columns and data["polygon"].notna().any():
        return "segment"
    return "box"


def _unique_name(name: str, split: str, used: set[tuple[str, str]]) -> str:
    """``name``, or ``stem_1.ext``... when images of one split share a stem (their label files would clash)."""
    stem, suffix = os.path.splitext(name)
    candidate, n = stem, 1
    while (split, candidate) in used:
        candidate, n = f"{stem}_{n}", n + 1
    used.add((split, candidate))
    return candidate + suffix


def _label_text(rows: pd.DataFrame, shape: str, width: int, height: int) -> str:
    scale = np.array([width, height], dtype=np.float64)
    lines = []
    for _, r in rows.iterrows():
        geometry = r.get(shape if shape != "segment" else "polygon") if shape != "box" else None
        if geometry is not None and not (isinstance(geometry, float) and np.isnan(geometry)):
            pts = np.asarray(geometry, dtype=np.float64).reshape(-1, 2) / scale
            values = pts.ravel()
        else:
            cx, cy = (r["x1"] + r["x2"]) / 2 / width, (r["y1"] + r["y2"]) / 2 / height
            values = np.array([cx, cy, (r["x2"] - r["x1"]) / width, (r["y2"] - r["y1"]) / height])
        lines.append(" ".join([str(int(r["class_id"])), *(f"{v:.6f}" for v in values)]))
    return "\n".join(lines) + "\n"


def _place_image(src: Path, dst: Path, mode: ImageMode) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()  # only reached with overwrite=True: replaces a file this writer names
    if mode == "link":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)
