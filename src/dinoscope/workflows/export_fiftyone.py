"""A run as a FiftyOne dataset directory (``dinoscope export RUN DIR --to fiftyone``).

One sample per still image of the run (its file where the run read it; the media are not copied), tagged with
its split; its objects are ``fo.Detection``s in the ``ground_truth`` field (FiftyOne's relative
``[x, y, w, h]`` boxes) carrying the object's ``object_id``, its ``embedding`` (the run's unit vector), every
findings column and the map coordinates as attributes. The 2-D map is stored as a FiftyOne Brain
visualization (``brain_key="dinoscope_map"``, computed from the given points, no model and no UMAP run), so
the App's Embeddings panel shows dinoscope's map. The dataset is written with
``dataset.export(dataset_type=fo.types.FiftyOneDataset)`` and loads with
``fo.Dataset.from_dir(DIR, dataset_type=fo.types.FiftyOneDataset)``; the temporary dataset made in FiftyOne's
database on the way is deleted. Video frames have no image file, so their objects are not exported (counted
in ``skipped``).

FiftyOne is an optional extra: ``pip install 'dinoscope[fiftyone]'``.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope._deps import require

if TYPE_CHECKING:
    import pandas as pd

    from dinoscope.run import Run
    from dinoscope.table import ObjectTable
    from dinoscope.workflows.export import ExportResult

__all__ = ["BRAIN_KEY", "LABEL_FIELD", "write_fiftyone"]

#: Sample field holding the objects, and the brain key of the 2-D map.
LABEL_FIELD = "ground_truth"
BRAIN_KEY = "dinoscope_map"
#: Object-table columns a Detection already holds (label, box, confidence) or that are per sample.
_NOT_ATTRIBUTES = {"class_name", "x1", "y1", "x2", "y2", "image_w", "image_h", "source", "frame", "split", "confidence"}


def write_fiftyone(
    run: Run,
    table: ObjectTable,
    objects: pd.DataFrame,
    ids: np.ndarray,
    vectors: np.ndarray,
    out: Path,
    *,
    overwrite: bool = False,
) -> ExportResult:
    """Write the run as a FiftyOneDataset directory ``out`` (see the module docs).

    Args:
        run: The run.
        table: Its object table (for the dataset root and the images).
        objects: Every object with its findings and map columns (:func:`~dinoscope.workflows.export.export_tables`).
        ids: (M,) object ids that have a vector.
        vectors: (M, D) their unit vectors.
        out: The export folder (new or empty, unless ``overwrite``).
        overwrite: Write into a folder that holds files.

    Returns:
        The :class:`~dinoscope.workflows.export.ExportResult`.

    Example:
        >>> write_fiftyone(run, table, export_tables(run, table), ids, vectors, Path("exports/fo"))  # doctest: +SKIP
    """
    from dinoscope.outputs import prepare_output_dir
    from dinoscope.workflows.export import ExportResult

    fo = require("fiftyone", "fiftyone", "exporting a run to FiftyOne", "export --to parquet")
    prepare_output_dir(out, overwrite=overwrite)
    root = Path(table.root) if table.root is not None else Path()
    vector_of = {str(i): v for i, v in zip(ids, vectors, strict=True)}
    still = objects[objects["frame"].to_numpy() < 0]
    dataset = fo.Dataset(f"dinoscope-export-{uuid.uuid4().hex[:12]}")
    try:
        samples, label_ids, points = _samples(fo, table, still, vector_of, root)
        dataset.add_samples(samples)
        n_detections = sum(len(s[LABEL_FIELD].detections) for s in samples)
        if points:
            _map(dataset, label_ids, np.asarray(points, dtype=np.float32))
        dataset.export(export_dir=str(out), dataset_type=fo.types.FiftyOneDataset, export_media=False)
    finally:
        dataset.delete()
    counts = {"samples": len(samples), "detections": n_detections, "vectors": len(vector_of)}
    skipped = {"video-frame objects": int(len(objects) - len(still))} if len(still) < len(objects) else {}
    files = [p for p in (out / "metadata.json", out / "samples.json") if p.exists()]
    return ExportResult("fiftyone", out, files, counts, skipped)


def _samples(
    fo: Any, table: ObjectTable, still: pd.DataFrame, vector_of: dict[str, np.ndarray], root: Path
) -> tuple[list[Any], list[str], list[list[float]]]:
    """One ``fo.Sample`` per still image (images without objects included), the detections' ids and map points."""
    attributes = [c for c in still.columns if c not in _NOT_ATTRIBUTES]
    by_source = {str(s): frame for s, frame in still.groupby("source", sort=False)}
    images = table.images
    sources = [str(s) for s in images["source"]] if len(images) else list(by_source)
    split_of = dict(zip(images["source"].astype(str), images["split"].astype(str), strict=True)) if len(images) else {}
    has_map = {"x", "y"}.issubset(still.columns)
    samples, label_ids, points = [], [], []
    for source in sources:
        group = by_source.get(source)
        detections = []
        for row in group.itertuples(index=False) if group is not None else ():
            w, h = float(row.image_w), float(row.image_h)
            box = [row.x1 / w, row.y1 / h, (row.x2 - row.x1) / w, (row.y2 - row.y1) / h]
            fields = {c: _plain(getattr(row, c)) for c in attributes}
            vector = vector_of.get(str(row.object_id))
            if vector is not None:
                fields["embedding"] = vector
            confidence = _plain(row.confidence)
            detection = fo.Detection(
                label=str(row.class_name) or "object", bounding_box=box, confidence=confidence, **fields
            )
            detections.append(detection)
            if has_map and _plain(row.x) is not None:
                label_ids.append(detection.id)
                points.append([float(row.x), float(row.y)])
        split = split_of.get(source) or (str(group["split"].iloc[0]) if group is not None else "")
        sample = fo.Sample(filepath=str((root / source).resolve()), tags=[split] if split else [])
        sample[LABEL_FIELD] = fo.Detections(detections=detections)
        samples.append(sample)
    return samples, label_ids, points


def _map(dataset: Any, label_ids: list[str], points: np.ndarray) -> None:
    """The run's 2-D map as a FiftyOne Brain visualization of the detections (given points: nothing computed)."""
    fob = require("fiftyone.brain", "fiftyone", "storing the 2-D map in the FiftyOne dataset")
    fob.compute_visualization(
        dataset,
        patches_field=LABEL_FIELD,
        points=dict(zip(label_ids, points, strict=True)),
        brain_key=BRAIN_KEY,
        method="manual",
    )


def _plain(value: Any) -> Any:
    """A JSON/BSON-ready scalar: numpy scalars as Python ones, NaN and None as None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
