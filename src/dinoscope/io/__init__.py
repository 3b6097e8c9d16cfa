"""Readers and writers: every dataset format becomes an :class:`~dinoscope.table.ObjectTable` here.

Formats never leak past this package: later stages only see the object table.
"""

from __future__ import annotations

from dinoscope.io.checks import CheckReport, run_checks
from dinoscope.io.coco import read_coco, write_coco
from dinoscope.io.dataset import FORMATS, detect_format, read_dataset
from dinoscope.io.folders import read_class_folders, read_image_folder
from dinoscope.io.images import IMAGE_EXTENSIONS, list_images, probe_image, read_image
from dinoscope.io.masks import read_masks
from dinoscope.io.mmpretrain import read_mmpretrain
from dinoscope.io.voc import read_voc
from dinoscope.io.yolo import read_yolo
from dinoscope.io.yolo_writer import write_yolo

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "CheckReport",
    "detect_format",
    "list_images",
    "probe_image",
    "read_class_folders",
    "read_coco",
    "read_dataset",
    "read_image",
    "read_image_folder",
    "read_masks",
    "read_mmpretrain",
    "read_voc",
    "read_yolo",
    "run_checks",
    "write_coco",
    "write_yolo",
]
