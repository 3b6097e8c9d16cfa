"""Write every object's crop as an image file, one folder per class (``--export-crops``).

The layout is the class-folders format (``DIR/<class>/<file>``, readable back with
``read_dataset(DIR, "class-folders")``) that the original scripts produced for other tools, with names that
never collide: ``<image stem>_<n>.jpg`` for the n-th object of a still image and
``<video stem>_f<frame>_<n>.jpg`` for video frames, so two boxes of one class in one frame are two files.
``crops.csv`` maps each file back to its object (object_id, source, frame, box, label_ref).
Each image is decoded once for all its objects; video frames are decoded sequentially in one pass.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dinoscope.errors import DinoscopeError, OutputExistsError
from dinoscope.table import ObjectTable

__all__ = ["export_crops"]

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\w.\-]+")


def export_crops(
    table: ObjectTable,
    out_dir: str | Path,
    *,
    context: float = 0.0,
    quality: int = 95,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Write each object's box (plus ``context`` × its size around it) as a JPEG under ``out_dir/<class>/``.

    Args:
        table: Objects to export (``source`` relative to ``table.root``).
        out_dir: Destination; must be new or empty unless ``overwrite`` (files already there are never
            deleted; with ``overwrite`` same-named crops are replaced).
        context: Margin around each box as a fraction of its width/height.
        quality: JPEG quality.
        overwrite: Allow writing into a non-empty folder.

    Returns:
        The index written to ``crops.csv``: ``file`` (relative to ``out_dir``), ``object_id``, ``source``,
        ``frame``, ``class_name``, ``x1 y1 x2 y2``, ``label_ref``, ``error`` ("" when written).

    Example:
        >>> index = export_crops(read_dataset("datasets/ppe"), "crops")  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not overwrite)):
        raise OutputExistsError(f"{out_dir} exists and is not empty; pass --overwrite or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    d = table.data.reset_index(drop=True)
    files = _file_names(d)
    errors = np.full(len(d), "", dtype=object)
    root = Path(table.root or ".")
    for rows, image, error in _images(root, d):
        if image is None:
            errors[rows] = error
            continue
        h, w = image.shape[:2]
        for r in rows:
            x1, y1, x2, y2 = d.loc[r, ["x1", "y1", "x2", "y2"]].to_numpy(dtype=float)
            mx, my = context * (x2 - x1), context * (y2 - y1)
            box = (
                max(0, int(x1 - mx)),
                max(0, int(y1 - my)),
                min(w, int(np.ceil(x2 + mx))),
                min(h, int(np.ceil(y2 + my))),
            )
            if box[2] <= box[0] or box[3] <= box[1]:
                errors[r] = "empty box"
                continue
            path = out_dir / files[r]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[box[1] : box[3], box[0] : box[2]]).save(path, quality=quality)
    index = pd.DataFrame(
        {
            "file": files,
            "object_id": d["object_id"],
            "source": d["source"],
            "frame": d["frame"],
            "class_name": d["class_name"],
            "x1": d["x1"],
            "y1": d["y1"],
            "x2": d["x2"],
            "y2": d["y2"],
            "label_ref": d["label_ref"],
            "error": errors,
        }
    )
    index.to_csv(out_dir / "crops.csv", index=False)
    failed = int((errors != "").sum())
    if failed:
        logger.warning("%d of %d crops not written (see the error column of %s)", failed, len(d), out_dir / "crops.csv")
    return index


def _file_names(d: pd.DataFrame) -> list[str]:
    """``<class>/<stem>[_f<frame>]_<n>.jpg``, n counting the objects of one image or frame in table order; the
    stem is the file's own, or its whole relative path (``a__b__img``) when two sources share a stem."""
    n_in_image = d.groupby(["source", "frame"], sort=False).cumcount().to_numpy()
    sources = pd.Series(d["source"].unique())
    stems = sources.map(lambda s: Path(str(s)).stem)
    clash = stems.duplicated(keep=False)
    stems[clash] = sources[clash].map(lambda s: Path(str(s)).with_suffix("").as_posix().replace("/", "__"))
    stem_of = dict(zip(sources, stems.map(lambda s: _UNSAFE.sub("_", s)), strict=True))
    names = []
    for source, frame, cls, n in zip(d["source"], d["frame"], d["class_name"], n_in_image, strict=True):
        folder = _UNSAFE.sub("_", str(cls)) or "unlabelled"
        names.append(f"{folder}/{stem_of[source]}{f'_f{int(frame):06d}' if frame >= 0 else ''}_{n}.jpg")
    return names


def _images(root: Path, d: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray | None, str]]:
    """(rows, RGB image or None, error) per still image and per needed video frame, each decoded once."""
    from dinoscope.io.images import read_image
    from dinoscope.io.videos import iter_selected_frames

    for (source, is_video), group in d.groupby(["source", d["frame"] >= 0], sort=False):
        rows = group.index.to_numpy()
        if not is_video:
            try:
                yield rows, read_image(root / source), ""
            except DinoscopeError as exc:
                yield rows, None, str(exc)
            continue
        yield from iter_selected_frames(root / source, group["frame"].to_numpy(), rows)
