"""dinoscope: see inside your image data with self-supervised features.

The package imports nothing heavy: readers, tables and models load on first use.

Example:
    >>> import dinoscope
    >>> table = dinoscope.read_dataset("datasets/ppe")  # doctest: +SKIP
    >>> report = dinoscope.run_checks(table)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dinoscope._version import __version__
from dinoscope.errors import (
    BackendError,
    ConfigError,
    DatasetFormatError,
    DinoscopeError,
    DinoscopeWarning,
    MissingDependencyError,
    OutputExistsError,
    VideoError,
)

if TYPE_CHECKING:
    from dinoscope.io import (
        iter_frames,
        list_videos,
        probe_video,
        read_class_folders,
        read_coco,
        read_dataset,
        read_image,
        read_image_folder,
        read_masks,
        read_mmpretrain,
        read_voc,
        read_yolo,
        write_coco,
        write_yolo,
    )
    from dinoscope.io.checks import CheckReport, run_checks
    from dinoscope.table import ObjectTable

__all__ = [
    "BackendError",
    "CheckReport",
    "ConfigError",
    "DatasetFormatError",
    "DinoscopeError",
    "DinoscopeWarning",
    "MissingDependencyError",
    "ObjectTable",
    "OutputExistsError",
    "VideoError",
    "__version__",
    "iter_frames",
    "list_videos",
    "probe_video",
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

_LAZY = {
    "ObjectTable": "dinoscope.table",
    "CheckReport": "dinoscope.io.checks",
    "run_checks": "dinoscope.io.checks",
    "iter_frames": "dinoscope.io",
    "list_videos": "dinoscope.io",
    "probe_video": "dinoscope.io",
    **{
        name: "dinoscope.io"
        for name in (
            "read_class_folders",
            "read_coco",
            "read_dataset",
            "read_image",
            "read_image_folder",
            "read_masks",
            "read_mmpretrain",
            "read_voc",
            "read_yolo",
            "write_coco",
            "write_yolo",
        )
    },
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dinoscope' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
