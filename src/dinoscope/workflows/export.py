"""``dinoscope export RUN DIR --to parquet|fiftyone``: a run's objects, findings, vectors and map for other tools.

``parquet`` writes three tables that pandas, DuckDB, Polars or Spark read directly:

- ``objects.parquet``: every object of the run, its object-table columns, every findings column of every
  analysis (row-number columns such as ``duplicate_of`` as object ids: ``duplicate_of_id``) and the 2-D map
  (``x, y, class_x, class_y``); objects the analyses left out have empty findings;
- ``vectors.parquet``: ``object_id`` and ``vector`` (a fixed-size list of float32, unit length) of every object
  with a vector;
- ``images.parquet``: one row per image of the dataset (size, split, label file, objects, read errors).

``fiftyone`` writes a FiftyOne dataset directory (:mod:`dinoscope.workflows.export_fiftyone`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope.config import build_config
from dinoscope.errors import ConfigError
from dinoscope.options import ExportTargetOptions, OutputOptions, RunOptions
from dinoscope.run import Run
from dinoscope.workflows.analyze import StoreOptions

if TYPE_CHECKING:
    import pandas as pd

    from dinoscope.table import ObjectTable

__all__ = ["ExportConfig", "ExportResult", "export", "export_from_config", "export_tables"]

PARQUET_FILES = ("objects.parquet", "vectors.parquet", "images.parquet")


class ExportConfig(RunOptions, OutputOptions, ExportTargetOptions, StoreOptions):
    """Settings of ``dinoscope export RUN DIR`` (``out`` is the folder written)."""


@dataclass
class ExportResult:
    """What ``export`` wrote.

    Attributes:
        to: ``parquet`` or ``fiftyone``.
        out: The folder written.
        files: The files written (parquet), or the FiftyOne export's main files.
        counts: Objects, vectors, images / samples and detections written.
        skipped: Objects not exported, with the reason (video frames are not FiftyOne image samples).
    """

    to: str
    out: Path
    files: list[Path]
    counts: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)


def export(**kwargs: Any) -> ExportResult:
    """Export a run; keyword arguments are the fields of :class:`ExportConfig`.

    Example:
        >>> export(run="runs/ppe", out="exports/ppe", to="parquet")  # doctest: +SKIP
        >>> import pandas as pd; pd.read_parquet("exports/ppe/objects.parquet").columns[:3]  # doctest: +SKIP
    """
    return export_from_config(build_config(ExportConfig, **kwargs))


def export_from_config(config: ExportConfig) -> ExportResult:
    """Run an export described by a validated config (see :func:`export`)."""
    if config.out is None:
        raise ConfigError(f"give the folder to write: dinoscope export {config.run} DIR --to {config.to}")
    run = Run.open(config.run)
    table = run.read_objects()
    objects = export_tables(run, table)
    ids, vectors = _vectors(run, config.store)
    if config.to == "fiftyone":
        from dinoscope.workflows.export_fiftyone import write_fiftyone

        return write_fiftyone(run, table, objects, ids, vectors, Path(config.out), overwrite=config.overwrite)
    return _write_parquet(table, objects, ids, vectors, Path(config.out), overwrite=config.overwrite)


def export_tables(run: Run, table: ObjectTable) -> pd.DataFrame:
    """Every object of the run with every findings column and the 2-D map (one row per object, table order).

    Example:
        >>> export_tables(Run.open("runs/ppe"), Run.open("runs/ppe").read_objects()).columns  # doctest: +SKIP
    """
    from dinoscope.analysis.registry import registered_analyses, rows_as_ids

    objects = table.data.copy()
    known = [a.name for a in registered_analyses() if run.findings_path(a.name).is_file()]
    for name in known + [n for n in run.findings_names() if n not in known]:
        frame = rows_as_ids(name, run.read_findings(name))
        objects = _join(objects, frame)
    coords = run.read_map()
    return objects if coords is None else _join(objects, coords)


def _join(objects: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Left join on ``object_id``; a column already present is kept from the first table that has it."""
    frame = frame.drop(columns=[c for c in frame.columns if c != "object_id" and c in objects.columns])
    return objects.merge(frame, on="object_id", how="left", validate="one_to_one")


def _vectors(run: Run, store: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(object ids, (M, D) float32 unit vectors) of the store's valid rows; empty when the run has no vectors."""
    from dinoscope.embed.store import EmbeddingStore

    if not run.store_names():
        return np.empty(0, dtype=object), np.empty((0, 0), dtype=np.float32)
    st = EmbeddingStore.open(run.embeddings_dir, run.store_name(store))
    rows = np.flatnonzero(st.valid_mask())
    return st.object_ids[rows], np.asarray(st.vectors[rows], dtype=np.float32)


def _write_parquet(
    table: ObjectTable, objects: pd.DataFrame, ids: np.ndarray, vectors: np.ndarray, out: Path, *, overwrite: bool
) -> ExportResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dinoscope.outputs import prepare_output_files

    paths = prepare_output_files(out, PARQUET_FILES, overwrite=overwrite)
    objects.to_parquet(paths[0], index=False)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), max(dim, 1))
    if not dim:
        column = pa.array([], type=pa.list_(pa.float32(), 1))
    pq.write_table(
        pa.table({"object_id": pa.array([str(i) for i in ids], type=pa.string()), "vector": column}), paths[1]
    )
    table.images.to_parquet(paths[2], index=False)
    counts = {"objects": len(objects), "vectors": len(ids), "images": len(table.images)}
    counts["columns"] = objects.shape[1]
    return ExportResult("parquet", out, paths, counts)
