"""What the curation workflows share: a run's vectors, per-object losses and sub-groups, dataset export."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dinoscope.errors import DinoscopeError
from dinoscope.options import EmbeddingOptions
from dinoscope.run import Run
from dinoscope.table import ObjectTable

if TYPE_CHECKING:
    from dinoscope.embed.stage import EmbeddingModel

__all__ = ["denoised_view", "export_dataset", "image_index", "load_vectors", "object_column"]


def load_vectors(store_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """((M, D) float32 unit vectors of the rows that have one, (N,) bool: which rows) from a run's store."""
    from dinoscope.embed.store import EmbeddingStore

    store = EmbeddingStore.open(store_path.parent, store_path.stem)
    valid = store.valid_mask()
    if not valid.any():
        raise DinoscopeError(f"{store_path}: no vectors (no readable image)")
    vectors = np.ascontiguousarray(store.vectors[valid], dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors, valid


def denoised_view(table: ObjectTable, config: EmbeddingOptions, model: EmbeddingModel | None = None) -> np.ndarray:
    """(N, D) unit vectors of the table's objects through a 3x3 median filter (:mod:`~dinoscope.embed.views`),
    with the config's model and crops, through the content cache; zeros for unreadable images."""
    from dinoscope.embed.stage import cache_root_of, crop_spec, embedding_model
    from dinoscope.embed.views import embed_denoised

    model = model or embedding_model(config, config, config, config)[0]
    vectors, _ = embed_denoised(table, model, crop_spec(config), cache_root=cache_root_of(config),
                                batch_size=config.batch_size, workers=config.workers)  # fmt: skip
    return vectors


def object_column(run: Run, table: ObjectTable, column: str, findings: str) -> np.ndarray | None:
    """(N,) ``column`` of each object: from the object table, else from ``findings/<findings>.parquet`` (by
    ``object_id``; missing objects get NaN / -1), else None."""
    if column in table.data:
        return table.data[column].to_numpy()
    if findings not in run.findings_names():
        return None
    frame = run.read_findings(findings)
    if column not in frame:
        return None
    values = frame.drop_duplicates("object_id").set_index("object_id")[column]
    out = values.reindex(table.object_id)
    return out.fillna(-1 if out.dtype.kind in "iu" or column == "cluster" else np.nan).to_numpy()


def export_dataset(table: ObjectTable, out_dir: Path, kind: str) -> Path:
    """Write ``table`` (its images and labels) as a new dataset in ``out_dir``: ``yolo`` (data.yaml, images/,
    labels/) or ``coco`` (images/ copied + annotations.json); the source dataset is never touched.

    Returns:
        ``data.yaml`` or ``annotations.json``.
    """
    from dinoscope.io.coco_writer import write_coco
    from dinoscope.io.image_links import place_images
    from dinoscope.io.yolo_writer import write_yolo

    labels = table[(table.data["origin"] != "prediction").to_numpy()]
    if kind == "yolo":
        return write_yolo(labels, out_dir, images="copy")
    root = Path(labels.root or ".")
    sources = labels.images["source"].tolist()
    placed = place_images([root / s for s in sources], out_dir / "images", "copy")
    rename = {s: f"images/{p.name}" for s, p in zip(sources, placed, strict=True)}
    data = labels.data.assign(source=labels.data["source"].map(rename))
    images = labels.images.assign(source=labels.images["source"].map(rename))
    moved = replace(labels, data=data, images=images, root=out_dir)
    return write_coco(moved, out_dir / "annotations.json")


def image_index(table: ObjectTable) -> tuple[pd.DataFrame, np.ndarray]:
    """(the table's readable images, (N,) row of each object's image in it)."""
    images = table.images[table.images["error"] == ""].reset_index(drop=True)
    position = pd.Series(np.arange(len(images)), index=images["source"].to_numpy())
    position = position[~position.index.duplicated()]
    index = position.reindex(table.data["source"].to_numpy()).fillna(-1).astype(np.int64).to_numpy()
    return images, index
