"""One entry for every labelled or unlabelled source: a dataset, an image folder, a video or a folder of videos,
read into the object table, then narrowed to the chosen classes, splits and object sizes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from dinoscope.errors import ConfigError
from dinoscope.options import DatasetOptions, FrameOptions, SelectOptions
from dinoscope.table import ObjectTable

__all__ = ["is_video_source", "read_source", "select_objects"]


def is_video_source(path: Path) -> bool:
    """A video file, or a folder of videos without images (a dataset with a video beside it stays a dataset)."""
    from dinoscope.io.images import list_images
    from dinoscope.io.video_files import is_video_file, list_videos

    if path.is_file():
        return is_video_file(path)
    return path.is_dir() and bool(list_videos(path)) and not list_images(path)


def read_source(
    dataset: DatasetOptions, select: SelectOptions, frames: FrameOptions, every_s: float | None = None
) -> ObjectTable:
    """The full object table of a dataset (boxes, or whole images with ``select.whole_images``) or of a video
    source (sampled whole frames, one per ``every_s`` seconds by default, planned from the headers: nothing is
    decoded here).

    Raises:
        ConfigError: Videos without ``whole_images`` (they have no labels to analyse).
        DatasetFormatError: Nothing readable at the path.
    """
    from dinoscope.io.dataset import read_dataset
    from dinoscope.io.videos import read_video_frames

    path = dataset.dataset
    if is_video_source(path):
        if not select.whole_images:
            raise ConfigError(
                f"{path}: videos have no labels to analyse; pass --whole-images to analyse sampled frames, or run "
                "`dinoscope video PATH --detector MODEL` to analyse the objects a detector finds"
            )
        return read_video_frames(path, stride=frames.stride, every_s=every_s, max_frames=frames.max_frames)
    options = {"task": dataset.task} if dataset.task != "auto" else {}
    table = read_dataset(path, dataset.format, **options)
    return table.whole_images() if select.whole_images else table


def select_objects(table: ObjectTable, select: SelectOptions) -> ObjectTable:
    """The objects kept by the ``classes``, ``splits`` and ``min_object_size`` settings.

    With ``classes`` the table's class names become the chosen classes only (in the dataset's order), so the
    analyses and the report show no empty classes; the dataset's own id stays in ``dataset_class_id``.

    Raises:
        ConfigError: A class or split that the dataset does not have (the message lists those it has).
    """
    keep = np.ones(len(table), dtype=bool)
    d = table.data
    wanted: list[int] = []
    if select.classes:
        wanted = _class_ids(table, select.classes)
        keep &= np.isin(table.class_id, wanted)
    if select.splits:
        have = set(d["split"])
        unknown = [s for s in select.splits if s not in have]
        if unknown:
            raise ConfigError(f"split(s) {unknown} not in the dataset; its splits are: {', '.join(sorted(have))}")
        keep &= d["split"].isin(select.splits).to_numpy()
    if select.min_object_size > 0:
        short = np.minimum(d["x2"] - d["x1"], d["y2"] - d["y1"]).to_numpy()
        keep &= short >= select.min_object_size
    kept = table[keep] if not keep.all() else table
    if wanted:  # the run knows only the chosen classes (ids renumbered; the dataset's id is kept)
        new_id = np.full(len(table.class_names), -1)
        new_id[wanted] = np.arange(len(wanted))
        data = kept.data.assign(dataset_class_id=kept.data["class_id"], class_id=new_id[kept.data["class_id"]])
        kept = replace(kept, data=data, class_names=tuple(table.class_names[i] for i in wanted))
    return kept


def _class_ids(table: ObjectTable, classes: list[str]) -> list[int]:
    wanted = set()
    for item in classes:
        if item in table.class_names:
            wanted.add(table.class_names.index(item))
        elif item.isdigit() and int(item) < len(table.class_names):
            wanted.add(int(item))
        else:
            raise ConfigError(
                f"class {item!r} is not in the dataset; its classes are: {', '.join(table.class_names) or 'none'}"
            )
    return sorted(wanted)
