"""Readers and writers: every dataset format becomes an :class:`~dinoscope.table.ObjectTable` here.

Formats never leak past this package: later stages only see the object table. Video files are a source
like any other: probing (:mod:`dinoscope.io.video_files`) and sequential frame decoding
(:mod:`dinoscope.io.frames`) live here too, PyAV imported on first use. Names are resolved on first use
so that importing one reader does not import them all.

Example:
    >>> from dinoscope.io import iter_frames
    >>> frames = list(iter_frames("clip.mp4", every_s=1.0))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dinoscope.io.checks import CheckReport, run_checks
    from dinoscope.io.class_names import read_class_names
    from dinoscope.io.coco import read_coco
    from dinoscope.io.coco_writer import write_coco
    from dinoscope.io.dataset import FORMATS, detect_format, read_dataset
    from dinoscope.io.folders import read_class_folders, read_image_folder
    from dinoscope.io.frames import Frame, iter_frames
    from dinoscope.io.images import IMAGE_EXTENSIONS, list_images, probe_image, read_image
    from dinoscope.io.masks import read_masks
    from dinoscope.io.mmpretrain import read_mmpretrain
    from dinoscope.io.predictions import read_predictions
    from dinoscope.io.video_files import VIDEO_EXTENSIONS, VideoInfo, is_video_file, list_videos, probe_video
    from dinoscope.io.voc import read_voc
    from dinoscope.io.yolo import read_yolo
    from dinoscope.io.yolo_writer import write_yolo

_WHERE = {
    "CheckReport": "checks",
    "run_checks": "checks",
    "read_class_names": "class_names",
    "read_coco": "coco",
    "write_coco": "coco_writer",
    "FORMATS": "dataset",
    "detect_format": "dataset",
    "read_dataset": "dataset",
    "read_class_folders": "folders",
    "read_image_folder": "folders",
    "Frame": "frames",
    "iter_frames": "frames",
    "VIDEO_EXTENSIONS": "video_files",
    "VideoInfo": "video_files",
    "is_video_file": "video_files",
    "list_videos": "video_files",
    "probe_video": "video_files",
    "IMAGE_EXTENSIONS": "images",
    "list_images": "images",
    "probe_image": "images",
    "read_image": "images",
    "read_masks": "masks",
    "read_mmpretrain": "mmpretrain",
    "read_predictions": "predictions",
    "read_voc": "voc",
    "read_yolo": "yolo",
    "write_yolo": "yolo_writer",
}

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "CheckReport",
    "Frame",
    "VideoInfo",
    "detect_format",
    "is_video_file",
    "iter_frames",
    "list_images",
    "list_videos",
    "probe_image",
    "probe_video",
    "read_class_folders",
    "read_class_names",
    "read_coco",
    "read_dataset",
    "read_image",
    "read_image_folder",
    "read_masks",
    "read_mmpretrain",
    "read_predictions",
    "read_voc",
    "read_yolo",
    "run_checks",
    "write_coco",
    "write_yolo",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dinoscope.io' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dinoscope.io.{module}"), name)
