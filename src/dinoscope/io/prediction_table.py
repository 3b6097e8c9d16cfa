"""The predictions of a dataset's images as an object table (``origin = prediction``), and object masks.

:func:`read_prediction_table` reads a YOLO txt folder or a COCO results JSON (parsed by
:mod:`dinoscope.io.predictions`) against a dataset already read: each prediction is attached to the dataset
image of the same file stem (YOLO txt, ``file_name``, string ``image_id``), or to the image whose COCO id or
numeric stem equals its ``image_id``. Class ids are the dataset's: YOLO class ids as they are, or mapped by
name when the predictions come with their own names; COCO ``category_id`` through the dataset's categories.
``label_ref`` is ``file:line`` (the entry number in a JSON). Polygons stay in ``polygon`` (pixel ``x, y``
list) and RLE masks in ``mask_rle`` (JSON), as the dataset readers store them.

:func:`build_prediction_table` makes the same table from arrays (a detector run over the images), and
:func:`object_masks` turns a table's polygons and RLE strings into pycocotools RLE masks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope._deps import require
from dinoscope.errors import DatasetFormatError, DinoscopeError
from dinoscope.io.predictions import Predictions, read_predictions, read_txt_lines
from dinoscope.table import ObjectTable, compute_object_ids

__all__ = ["build_prediction_table", "map_class_names", "object_masks", "read_prediction_table"]

logger = logging.getLogger(__name__)


def read_prediction_table(path: str | Path, dataset: ObjectTable) -> ObjectTable:
    """Predictions for the images of ``dataset``, as an object table with the dataset's class names.

    Args:
        path: A folder of YOLO txt files (one per image, ``save_conf`` scores as the last value) or a COCO
            results JSON.
        dataset: The dataset's table (its images, class names and, for COCO, its JSON file).

    Returns:
        An :class:`ObjectTable` of origin ``prediction`` (``confidence`` = score; NaN when the file gives none).

    Raises:
        DatasetFormatError: A malformed line or entry (``file:line``), a class the dataset does not know.
        DinoscopeError: No prediction names an image of the dataset.

    Example:
        >>> preds = read_prediction_table("runs/predict/labels", read_dataset("data.yaml"))  # doctest: +SKIP
        >>> preds.data[["source", "class_name", "confidence", "label_ref"]].head(2)  # doctest: +SKIP
    """
    path = Path(path)
    preds = read_predictions(path, warn_names=False)
    images = dataset.images[dataset.images["error"] == ""].reset_index(drop=True)
    stems = {Path(s).stem: s for s in images["source"][::-1]}  # the first image of a stem wins
    rows: list[dict[str, Any]] = []
    if preds.kind == "yolo-txt":
        rows, unmatched = _txt_rows(preds, dataset, images, stems)
    else:
        rows, unmatched = _json_rows(preds, dataset, stems, path)
    if unmatched:
        logger.warning("%s: %d prediction files/entries name no image of the dataset; left out", path, unmatched)
    if not rows and unmatched:
        raise DinoscopeError(
            f"{path}: no prediction names an image of the dataset ({unmatched} left out); prediction files must "
            "be named after the images (<image stem>.txt) or JSON entries carry their image_id / file_name"
        )
    frame = pd.DataFrame(rows)
    return build_prediction_table(dataset, frame, kind=preds.kind, path=path)


def build_prediction_table(dataset: ObjectTable, frame: pd.DataFrame, *, kind: str, path: Path | str) -> ObjectTable:
    """An object table of predictions from rows ``source, class_id, x1, y1, x2, y2, confidence, label_ref``
    (optional ``polygon``, ``mask_rle``) on images of ``dataset``. Boxes stay as given, even past the image's
    edges (pycocotools evaluates them unclipped; crops are clipped when they are cut).

    Object ids hash the image content, box and class like the dataset's, within a namespace of their own, so a
    prediction never takes the id of the ground-truth object it matches exactly.
    """
    images = dataset.images.drop_duplicates("source").set_index("source")
    if frame.empty:
        frame = pd.DataFrame(columns=["source", "class_id", "x1", "y1", "x2", "y2", "confidence", "label_ref"])
    info = images.loc[frame["source"]] if len(frame) else images.iloc[:0]
    w, h = info["width"].to_numpy(), info["height"].to_numpy()
    data = pd.DataFrame(
        {
            "source": frame["source"].to_numpy(dtype=object),
            "frame": np.full(len(frame), -1),
            "split": info["split"].to_numpy(dtype=object),
            "class_id": frame["class_id"].to_numpy(dtype=np.int64),
            "class_name": [dataset.class_names[c] for c in frame["class_id"]],
            "x1": frame["x1"].to_numpy(float),
            "y1": frame["y1"].to_numpy(float),
            "x2": frame["x2"].to_numpy(float),
            "y2": frame["y2"].to_numpy(float),
            "image_w": w,
            "image_h": h,
            "origin": "prediction",
            "confidence": frame["confidence"].to_numpy(float),
            "label_ref": frame["label_ref"].to_numpy(dtype=object),
            "content_hash": info["content_hash"].to_numpy(dtype=object),
        }
    )
    data["x2"], data["y2"] = np.maximum(data["x2"], data["x1"]), np.maximum(data["y2"], data["y1"])
    for column in ("polygon", "mask_rle"):
        if column in frame:
            data[column] = frame[column].to_numpy(dtype=object)
    ids = compute_object_ids(
        [f"{h}|prediction" for h in data["content_hash"]], data["frame"], data[["x1", "y1", "x2", "y2"]].to_numpy(),
        data["class_id"],
    )  # fmt: skip
    data.insert(0, "object_id", ids)
    return ObjectTable(data, dataset.class_names, dataset.images, dataset.root, f"predictions:{kind}:{path}")


def object_masks(table: ObjectTable) -> list[dict[str, Any] | None]:
    """One pycocotools RLE per object from its ``mask_rle`` or ``polygon`` (None for a box-only object).

    Example:
        >>> object_masks(ObjectTable(pd.DataFrame(), ()))  # doctest: +SKIP
        []
    """
    data = table.data
    rles = data["mask_rle"] if "mask_rle" in data else pd.Series([""] * len(data))
    polys = data["polygon"] if "polygon" in data else pd.Series([None] * len(data))
    if not len(data) or (not (rles.fillna("") != "").any() and polys.isna().all()):
        return [None] * len(data)
    mask = require("pycocotools.mask", "coco", "mask IoU")
    out: list[dict[str, Any] | None] = []
    for rle, poly, w, h in zip(rles.fillna(""), polys, data["image_w"], data["image_h"], strict=True):
        if rle:
            doc = json.loads(rle)
            doc["counts"] = doc["counts"].encode() if isinstance(doc["counts"], str) else doc["counts"]
            out.append(doc)
        elif poly is not None and not (isinstance(poly, float) and np.isnan(poly)) and len(poly) >= 6:
            out.append(mask.merge(mask.frPyObjects([list(map(float, poly))], int(h), int(w))))
        else:
            out.append(None)
    return out


def _txt_rows(
    preds: Predictions, dataset: ObjectTable, images: pd.DataFrame, stems: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    size = dict(zip(images["source"], zip(images["width"], images["height"], strict=True), strict=True))
    ids = _class_map(preds.class_names, dataset.class_names, preds.path)
    rows: list[dict[str, Any]] = []
    files = {stem: f for (stem, frame), f in preds.files.items() if frame == -1}
    unmatched = 0
    for stem, file in files.items():
        source = stems.get(stem)
        if source is None:
            unmatched += 1
            continue
        w, h = size[source]
        ref = file.as_posix()
        for line in read_txt_lines(file):
            if not 0 <= line.class_id < len(ids) or ids[line.class_id] < 0:
                raise DatasetFormatError(
                    f"{file}:{line.line}: class id {line.class_id} is not among the {len(dataset.class_names)} "
                    "classes of the dataset; predict with a model trained on its classes or fix the id"
                )
            x1, y1, x2, y2 = line.xyxy(w, h)
            row = {"source": source, "class_id": ids[line.class_id], "x1": x1, "y1": y1, "x2": x2, "y2": y2}
            row.update(confidence=line.score, label_ref=f"{ref}:{line.line}")
            row["polygon"] = (line.points.reshape(-1, 2) * (w, h)).ravel().tolist() if line.polygon else None
            rows.append(row)
    return rows, unmatched


def _json_rows(
    preds: Predictions, dataset: ObjectTable, stems: dict[str, str], path: Path
) -> tuple[list[dict[str, Any]], int]:
    coco_ids, coco_categories = _coco_dataset_ids(dataset)
    if preds.has_categories:
        names = _class_map(preds.class_names, dataset.class_names, path)
    rows: list[dict[str, Any]] = []
    unmatched = 0
    for (stem, frame), entries in preds.entries.items():
        if frame == -1:
            source = stems.get(stem)
        else:
            source = coco_ids.get(frame) or stems.get(str(frame)) or _numeric(stems, frame)
        if source is None:
            unmatched += len(entries)
            continue
        for e in entries:
            if preds.has_categories:
                class_id = names[e.class_id]
            elif coco_categories:
                class_id = coco_categories.get(e.category_id, -1)
            else:
                class_id = e.category_id
            if not 0 <= class_id < len(dataset.class_names):
                raise DatasetFormatError(
                    f"{path}:{e.number}: category_id {e.category_id} is not a class of the dataset "
                    f"({len(dataset.class_names)} classes); use the dataset's category ids"
                )
            x, y, bw, bh = e.bbox
            row = {"source": source, "class_id": class_id, "x1": x, "y1": y, "x2": x + bw, "y2": y + bh}
            row.update(confidence=e.score, label_ref=f"{path.as_posix()}:{e.number}", polygon=None)
            row["mask_rle"] = _rle_json(e.segmentation, path, e.number, dataset, source)
            rows.append(row)
    return rows, unmatched


def _numeric(stems: dict[str, str], number: int) -> str | None:
    for stem, source in stems.items():
        if stem.isdigit() and int(stem) == number:
            return source
    return None


def map_class_names(found: Sequence[str], names: Sequence[str], where: Path | str) -> np.ndarray:
    """(len(found),) dataset class id of each prediction class, -1 where the dataset has no such class.

    By position when the names agree or were made up (``class_<i>``); by name (case-insensitive) otherwise; by
    position, with a warning, when the lists have the same length, some names differ and every other name sits
    at its own position (``motorbike`` for ``motorcycle``: the 80 COCO classes spelled by another toolkit).

    Example:
        >>> map_class_names(["dog", "bird", "cat"], ["cat", "dog"], "model").tolist()
        [1, -1, 0]
    """
    if tuple(found[: len(names)]) == tuple(names) or all(n == f"class_{i}" for i, n in enumerate(found)):
        return (
            np.arange(len(found))
            if len(found) <= len(names)
            else np.r_[np.arange(len(names)), [-1] * (len(found) - len(names))]
        )
    index = {n.lower(): i for i, n in enumerate(names)}
    ids = np.array([index.get(n.lower(), -1) for n in found], dtype=np.int64)
    same_place = all(i < 0 or i == k for k, i in enumerate(ids))
    if (ids < 0).any() and len(found) == len(names) and same_place:
        pairs = [f"{a}={b}" for a, b, i in zip(found, names, ids, strict=True) if i < 0][:6]
        logger.warning(
            "%s: class names differ from the dataset's (%s); classes mapped by position", where, ", ".join(pairs)
        )
        return np.arange(len(found))
    return ids


def _class_map(found: Sequence[str], names: Sequence[str], path: Path) -> list[int]:
    """Prediction class id -> dataset class id for prediction files (an unknown name is an error)."""
    ids = map_class_names(found, names, path)
    unknown = [n for n, i in zip(found, ids, strict=True) if i < 0 and not n.startswith("class_")]
    if unknown:
        raise DatasetFormatError(
            f"{path}: prediction classes {', '.join(map(repr, unknown[:5]))} are not classes of the dataset "
            f"({', '.join(names[:10])}{' ...' if len(names) > 10 else ''}); predict with the dataset's classes"
        )
    return ids.tolist()


def _coco_dataset_ids(dataset: ObjectTable) -> tuple[dict[int, str], dict[int, int]]:
    """A COCO dataset's image id -> source and category id -> class id (empty for other formats)."""
    if dataset.format != "coco" or dataset.root is None or not len(dataset.images):
        return {}, {}
    files = {f for f in dataset.images["label_file"] if f}
    ids: dict[int, str] = {}
    cats: dict[int, int] = {}
    for rel in files:
        doc = json.loads((dataset.root / rel).read_text(encoding="utf-8"))
        for entry in doc.get("images", []):
            if isinstance(entry, dict) and isinstance(entry.get("id"), int):
                ids[entry["id"]] = Path(entry["file_name"]).as_posix()
        order = sorted(c["id"] for c in doc.get("categories", []) if isinstance(c.get("id"), int))
        cats = {cid: k for k, cid in enumerate(order)}
    sources = set(dataset.images["source"])
    return {i: s for i, s in ids.items() if s in sources}, cats


def _rle_json(segmentation: Any, path: Path, number: int, dataset: ObjectTable, source: str) -> str:
    """A JSON entry's segmentation as a compressed RLE JSON string ("" without)."""
    if segmentation is None:
        return ""
    mask = require("pycocotools.mask", "coco", "reading RLE masks")
    row = dataset.images[dataset.images["source"] == source].iloc[0]
    h, w = int(row["height"]), int(row["width"])
    try:
        if isinstance(segmentation, dict):
            rle = dict(segmentation)
            if isinstance(rle["counts"], list):
                rle = mask.frPyObjects(rle, *rle["size"])
            rle = {"size": list(rle["size"]), "counts": rle["counts"]}
        else:
            rle = mask.merge(mask.frPyObjects([list(map(float, p)) for p in segmentation], h, w))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DatasetFormatError(
            f"{path}:{number}: segmentation is neither an RLE {{size, counts}} nor polygons ({exc}); fix the entry"
        ) from exc
    counts = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
    return json.dumps({"size": [int(v) for v in rle["size"]], "counts": counts})
