"""``dinoscope split DATASET --by group|source|video``: a leak-free train / val / test split.

Stages over one new :class:`~dinoscope.run.Run` (``out``): read the dataset; embed its images whole (content
cache); near-duplicate groups (:func:`~dinoscope.analysis.curation.find_copy_groups`, exact copies by content
hash too), with ``denoise_copies`` (default) in the denoised view too (:mod:`~dinoscope.embed.views`,
:func:`~dinoscope.analysis.curation.find_view_copy_groups`: a copy in either view is a copy); units = images
joined by the ``by`` key and by copies (:func:`~dinoscope.analysis.resplit.find_units`);
stratified assignment by ``val_ratio`` / ``test_ratio`` (:func:`~dinoscope.analysis.resplit.assign_splits`);
then the leakage analysis (:func:`~dinoscope.analysis.leakage.find_leakage`) over the duplicate groups of the
new split confirms that no copy crosses splits (``leakage`` in run.yaml and the result). Outputs:
``split.csv`` (source, split, unit, copy_group), ``splits/<split>.txt`` (absolute image paths, one per line,
as YOLO's data.yaml accepts them) and, with ``--export yolo|coco``, the re-split dataset in ``dataset/``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.config import build_config
from dinoscope.errors import ConfigError
from dinoscope.options import (
    CopyViewOptions,
    DatasetExportOptions,
    DatasetOptions,
    EmbeddingOptions,
    OutputOptions,
    SeedOptions,
    SplitByOptions,
    SplitRatioOptions,
)
from dinoscope.progress import Clock
from dinoscope.run import Run
from dinoscope.table import ObjectTable
from dinoscope.workflows._curation import denoised_view, export_dataset, load_vectors
from dinoscope.workflows._stages import default_out, embedding_into_run, record

__all__ = ["SplitConfig", "SplitResult", "split_dataset", "split_dataset_from_config"]

logger = logging.getLogger(__name__)
_FRAME_NUMBER = re.compile(r"([_\-. ]?(frame|img|image)?[_\-. ]?\d+)$", re.IGNORECASE)


class SplitConfig(
    DatasetOptions,
    SplitByOptions,
    SplitRatioOptions,
    DatasetExportOptions,
    CopyViewOptions,
    EmbeddingOptions,
    SeedOptions,
    OutputOptions,
):
    """Settings of ``dinoscope split DATASET`` (``out``: a new run directory, default ``runs/<dataset>-split``)."""


@dataclass
class SplitResult:
    """What ``dinoscope split`` produced.

    Attributes:
        run_dir: The output run.
        images: One row per image: ``source``, ``split``, ``unit``, ``copy_group``.
        counts: Images and objects per split and class.
        leakage: The leakage analysis of the new split (``n_leaked`` is 0).
        dataset: The exported dataset file (None without ``export``).
    """

    run_dir: Path
    images: pd.DataFrame
    counts: pd.DataFrame
    leakage: dict[str, Any]
    dataset: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def split_dataset(**kwargs: Any) -> SplitResult:
    """Re-split a dataset without leaks; keyword arguments are the fields of :class:`SplitConfig`.

    Example:
        >>> result = split_dataset(dataset="datasets/ppe", by="source", export="yolo")  # doctest: +SKIP
        >>> result.leakage["n_leaked"]  # doctest: +SKIP
        0
    """
    return split_dataset_from_config(build_config(SplitConfig, **kwargs))


def split_dataset_from_config(config: SplitConfig) -> SplitResult:
    """Run ``dinoscope split`` as described by a validated config (see :func:`split_dataset`)."""
    from dinoscope.analysis.curation import build_curation_graph, find_view_copy_groups
    from dinoscope.analysis.leakage import find_leakage
    from dinoscope.analysis.resplit import assign_splits, find_units
    from dinoscope.embed.stage import embedding_model
    from dinoscope.io.dataset import read_dataset

    if config.val_ratio + config.test_ratio >= 1.0:
        raise ConfigError(f"--val-ratio {config.val_ratio} + --test-ratio {config.test_ratio} leave no train split")
    timings: dict[str, float] = {}
    clock = Clock(timings)
    out = config.out or default_out(config.dataset).with_name(default_out(config.dataset).name + "-split")
    run = Run.create(out, overwrite=config.overwrite)
    record(run, "split", config)
    with clock("read"):
        table = read_dataset(config.dataset, config.format, **({"task": config.task} if config.task != "auto" else {}))
        whole = table.whole_images()
    run.write_objects(whole)
    model, note = embedding_model(config, config, config, config)  # one model for both views
    if note:
        logger.info("embedding model: %s", note)
    with clock("embed"):
        embedded = embedding_into_run(run, whole, config, resume=False, overwrite=True, model=model)
        vectors, valid = load_vectors(embedded.store_path)
    views = []
    if config.denoise_copies:
        with clock("embed_denoised"):
            views = [denoised_view(whole, config, model)[valid]]
    with clock("units"):
        copy_group = np.full(len(whole), -1, dtype=np.int64)
        graph = build_curation_graph(vectors, seed=config.seed)
        keys = whole.data["content_hash"].fillna("").to_numpy()[valid]
        copy_group[valid], dup_info, _ = find_view_copy_groups(vectors, graph, views, keys, seed=config.seed)
        unit = find_units(len(whole), _keys(table, whole, config.by), copy_group)
    with clock("assign"):
        ratios = {"train": 1.0 - config.val_ratio - config.test_ratio, "val": config.val_ratio}
        if config.test_ratio > 0:
            ratios["test"] = config.test_ratio
        counts = _unit_counts(table, whole, unit)
        names = np.array(list(ratios))
        split = names[assign_splits(counts, ratios, seed=config.seed)][unit]
    leak = find_leakage(copy_group, split)
    images = pd.DataFrame({"source": whole.data["source"], "split": split, "unit": unit, "copy_group": copy_group})
    images.to_csv(run.curation_path("split.csv"), index=False)
    root = Path(table.root or ".").resolve()
    for name in ratios:
        lines = "".join(f"{root / s}\n" for s in images.loc[images["split"] == name, "source"])
        run.split_list_path(name).write_text(lines, encoding="utf-8")
    resplit = _with_split(table, dict(zip(images["source"], images["split"], strict=True)))
    run.write_objects(replace(whole, data=whole.data.assign(split=split)))
    result = SplitResult(run.path, images, _counts(resplit, list(ratios)), leak.info, timings=timings)
    if config.export != "none":
        with clock("export"):
            result.dataset = export_dataset(resplit, run.dataset_dir, config.export)
    run.write_yaml({"split": {"ratios": ratios, "by": config.by, "n_units": int(unit.max()) + 1 if len(unit) else 0,
                              "duplicates": dup_info, "leakage": leak.info, "seconds": timings}})  # fmt: skip
    return result


def _keys(table: ObjectTable, whole: ObjectTable, by: str) -> np.ndarray:
    """(n_images,) int key per image of ``whole`` for the ``by`` rule."""
    sources = whole.data["source"]
    if by == "source":
        return np.arange(len(whole), dtype=np.int64)
    if by == "video":
        names = [str(Path(s).parent / _FRAME_NUMBER.sub("", Path(s).stem.split(".rf.")[0])) for s in sources]
        return pd.factorize(pd.Series(names))[0].astype(np.int64)
    if "group_id" not in table.data:
        raise ConfigError(
            f"{table.root}: --by group needs a group_id per object (e.g. an MMPretrain entry key); this dataset "
            "has none: use --by source or --by video"
        )
    first = table.data.drop_duplicates("source").set_index("source")["group_id"]
    group = first.reindex(sources.to_numpy())
    filled = group.where(group.notna() & (group.astype(str) != ""), "source:" + sources.astype(str).to_numpy())
    return pd.factorize(filled.astype(str))[0].astype(np.int64)


def _unit_counts(table: ObjectTable, whole: ObjectTable, unit: np.ndarray) -> np.ndarray:
    """(U, 1 + C): images of each unit, then its objects per class."""
    n_classes = max(len(table.class_names), 1)
    position = pd.Series(np.arange(len(whole)), index=whole.data["source"].to_numpy())
    labelled = table.data[(table.data["class_id"] >= 0) & table.data["source"].isin(position.index)]
    out = np.zeros((int(unit.max()) + 1 if len(unit) else 0, 1 + n_classes))
    np.add.at(out[:, 0], unit, 1.0)
    rows = unit[position.loc[labelled["source"]].to_numpy()]
    np.add.at(out, (rows, 1 + labelled["class_id"].to_numpy()), 1.0)
    return out


def _with_split(table: ObjectTable, split_of: dict[str, str]) -> ObjectTable:
    """The dataset with every image and object in its new split (unreadable images left out)."""
    images = table.images[table.images["source"].isin(split_of)]
    images = images.assign(split=images["source"].map(split_of))
    data = table.data[table.data["source"].isin(split_of)]
    return replace(table, data=data.assign(split=data["source"].map(split_of)).reset_index(drop=True), images=images)


def _counts(table: ObjectTable, splits: list[str]) -> pd.DataFrame:
    """Images and objects per class in each split."""
    rows = {"images": table.images.groupby("split").size()}
    for name in table.class_names:
        rows[name] = table.data[table.data["class_name"] == name].groupby("split").size()
    return pd.DataFrame(rows).reindex(splits).fillna(0).astype(int)
