"""``dinoscope prune RUN --keep FRACTION|N``: which training images to keep, and why the others can go.

Reads a run's objects and vectors (ground truth only: predictions of a ``dinoscope errors`` run are left out),
its per-object loss (the object table's ``loss`` column or ``findings/detection_errors.parquet``) and its
sub-groups (``findings/clusters.parquet``), then :func:`~dinoscope.analysis.pruning.select_to_keep` ranks the
objects and keeps whole images (see that module for the tiers and the image rule). ``--keep`` counts images:
a fraction of the run's readable images or a number. Images without objects (backgrounds) are kept in the same
share, chosen at random (seeded). Outputs in a new run ``out``: ``kept.csv`` and ``dropped.csv`` (object_id,
source, reason, class_name, region), ``dropped_summary.csv`` (per class and region: objects, kept, dropped, by
reason), and with ``--export yolo|coco`` the reduced dataset in ``dataset/`` (the source is never touched).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.config import build_config
from dinoscope.errors import ConfigError
from dinoscope.options import DatasetExportOptions, KeepOptions, OutputOptions, RunOptions, SeedOptions
from dinoscope.progress import Clock
from dinoscope.run import Run
from dinoscope.table import ObjectTable
from dinoscope.workflows._curation import export_dataset, image_index, load_vectors, object_column
from dinoscope.workflows._stages import record
from dinoscope.workflows.analyze import StoreOptions

__all__ = ["PruneConfig", "PruneResult", "prune", "prune_from_config"]

logger = logging.getLogger(__name__)


class PruneConfig(RunOptions, StoreOptions, KeepOptions, DatasetExportOptions, SeedOptions, OutputOptions):
    """Settings of ``dinoscope prune RUN`` (``out``: a new run directory, default ``<run>-pruned``)."""


@dataclass
class PruneResult:
    """What ``dinoscope prune`` produced.

    Attributes:
        run_dir: The output run.
        kept: ``kept.csv`` rows; ``dropped``: ``dropped.csv`` rows; ``summary``: ``dropped_summary.csv``.
        n_images: Readable images of the run; ``n_images_kept`` of them kept.
        info: The ranking's numbers (regions, duplicate rule, floors, protected counts).
        dataset: The exported dataset file (None without ``export``).
    """

    run_dir: Path
    kept: pd.DataFrame
    dropped: pd.DataFrame
    summary: pd.DataFrame
    n_images: int
    n_images_kept: int
    info: dict[str, Any]
    dataset: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def prune(**kwargs: Any) -> PruneResult:
    """Keep the most useful images of a run; keyword arguments are the fields of :class:`PruneConfig`.

    Example:
        >>> result = prune(run="runs/ppe", keep=0.34, export="yolo")  # doctest: +SKIP
        >>> result.n_images_kept  # doctest: +SKIP
        309
    """
    return prune_from_config(build_config(PruneConfig, **kwargs))


def prune_from_config(config: PruneConfig) -> PruneResult:
    """Run ``dinoscope prune`` as described by a validated config (see :func:`prune`)."""
    from dinoscope.analysis.pruning import select_to_keep

    timings: dict[str, float] = {}
    clock = Clock(timings)
    source = Run.open(config.run)
    table = source.read_objects()
    vectors, valid = load_vectors(source.store_path(source.store_name(config.store)))
    labels = (table.data["origin"] != "prediction").to_numpy()
    images, image = image_index(table)
    n_keep = _n_keep(config.keep, len(images))
    run = Run.create(config.out or source.path.with_name(source.path.name + "-pruned"), overwrite=config.overwrite)
    record(run, "prune", config)
    use = valid & labels & (image >= 0)
    with_objects = np.unique(image[use])
    background = np.setdiff1d(np.arange(len(images)), with_objects)
    n_bg = round(len(background) * n_keep / max(len(images), 1))
    local = np.searchsorted(with_objects, image[use])
    loss = object_column(source, table, "loss", "detection_errors")
    subgroup = object_column(source, table, "cluster", "clusters")
    with clock("rank"):
        ranked = select_to_keep(
            vectors[use[valid]],
            table.class_id[use],
            local,
            n_keep - n_bg,
            loss=None if loss is None else np.asarray(loss, float)[use],
            subgroup=None if subgroup is None else np.asarray(subgroup, np.int64)[use],
            class_floor=config.class_floor,
            seed=config.seed,
        )
    kept_images = np.zeros(len(images), dtype=bool)
    kept_images[with_objects[ranked.image_kept]] = True
    rng = np.random.default_rng(config.seed)
    kept_images[rng.choice(background, size=min(n_bg, len(background)), replace=False)] = True
    kept, dropped = _lists(table, images, image, use, ranked, kept_images, background)
    summary = _summary(pd.concat([kept.assign(kept=True), dropped.assign(kept=False)], ignore_index=True))
    kept.to_csv(run.curation_path("kept.csv"), index=False)
    dropped.to_csv(run.curation_path("dropped.csv"), index=False)
    summary.to_csv(run.curation_path("dropped_summary.csv"), index=False)
    result = PruneResult(run.path, kept, dropped, summary, len(images), int(kept_images.sum()), ranked.info,
                         timings=timings)  # fmt: skip
    if config.export != "none":
        with clock("export"):
            keep_sources = set(images["source"][kept_images])
            sub = table[(table.data["source"].isin(keep_sources)).to_numpy()]
            sub = replace(sub, images=table.images[table.images["source"].isin(keep_sources)])
            result.dataset = export_dataset(sub, run.dataset_dir, config.export)
    n_bg_kept = int(kept_images[background].sum())
    run.write_yaml({"prune": {"info": ranked.info, "n_images": len(images), "n_images_kept": result.n_images_kept,
                              "n_background_kept": n_bg_kept, "seconds": timings}})  # fmt: skip
    return result


def _n_keep(keep: float, n_images: int) -> int:
    if keep <= 1.0:
        return round(keep * n_images)
    if keep != int(keep):
        raise ConfigError(f"--keep {keep}: a number of images must be whole (or give a fraction <= 1)")
    return min(int(keep), n_images)


def _lists(
    table: ObjectTable,
    images: pd.DataFrame,
    image: np.ndarray,
    use: np.ndarray,
    ranked: Any,
    kept_images: np.ndarray,
    background: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """kept.csv and dropped.csv rows: every object (objects without a vector follow their image) and every
    background image (object_id empty)."""
    d = table.data
    reason = np.full(len(table), "", dtype=object)
    region = np.full(len(table), -1, dtype=np.int64)
    reason[use], region[use] = ranked.reason, ranked.region
    status = np.where(image >= 0, kept_images[np.maximum(image, 0)], False)
    reason[~use & status] = "same_image"
    reason[~use & ~status] = np.where(image[~use & ~status] < 0, "unreadable_image", "no_vector")
    frame = pd.DataFrame({"object_id": d["object_id"], "source": d["source"], "reason": reason,
                          "class_name": d["class_name"], "region": region})  # fmt: skip
    frame = frame[(d["origin"] != "prediction").to_numpy()]
    status = status[(d["origin"] != "prediction").to_numpy()]
    bg = pd.DataFrame({"object_id": "", "source": images["source"].to_numpy()[background], "class_name": "",
                       "region": -1})  # fmt: skip
    bg_kept = kept_images[background]
    bg_rows = [bg[bg_kept].assign(reason="background_share"), bg[~bg_kept].assign(reason="background_share")]
    kept = pd.concat([frame[status], bg_rows[0]], ignore_index=True)
    dropped = pd.concat([frame[~status], bg_rows[1]], ignore_index=True)
    return kept, dropped


def _summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per class and region: objects, kept, dropped, and dropped objects by reason."""
    objects = rows[rows["object_id"] != ""]
    base = objects.groupby(["class_name", "region"]).agg(n_objects=("kept", "size"), n_kept=("kept", "sum"))
    base["n_dropped"] = base["n_objects"] - base["n_kept"]
    reasons = objects[~objects["kept"]].pivot_table(index=["class_name", "region"], columns="reason",
                                                    values="object_id", aggfunc="count", fill_value=0)  # fmt: skip
    reasons.columns = [f"dropped_{c}" for c in reasons.columns]
    out = base.join(reasons, how="left").fillna(0)
    return out.astype(int).reset_index().sort_values(["class_name", "region"], ignore_index=True)
