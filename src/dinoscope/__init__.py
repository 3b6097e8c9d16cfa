"""dinoscope: see inside your image data with self-supervised features.

The product in six calls (the same configs as the CLI and ``--config`` files): ``run_pipeline`` (check ->
embed -> analyse -> report a dataset), ``embed``, ``analyze`` (a run's vectors), ``build_report``,
``create_backend`` and ``list_models``, and ``probe`` (kNN / logistic-regression probes of a labelled dataset's
features); plus the readers, the object table and the run directory. The package
imports nothing heavy: everything loads on first use.

Example:
    >>> import dinoscope
    >>> result = dinoscope.run_pipeline(dataset="datasets/ppe", out="runs/ppe")  # doctest: +SKIP
    >>> dinoscope.Run.open("runs/ppe").read_summary()["classes"]["helmet"]["n_clusters"]  # doctest: +SKIP
    3
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
    from dinoscope.embed.registry import create_backend, list_models
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
    from dinoscope.report import build_report
    from dinoscope.run import Run
    from dinoscope.table import ObjectTable
    from dinoscope.workflows.adapt import adapt
    from dinoscope.workflows.analyze import analyze
    from dinoscope.workflows.check import check
    from dinoscope.workflows.pipeline import run_pipeline
    from dinoscope.workflows.probe import probe
    from dinoscope.workflows.prune import prune
    from dinoscope.workflows.select import select
    from dinoscope.workflows.split import split_dataset
    from dinoscope.workflows.video import run_video

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
    "Run",
    "VideoError",
    "__version__",
    "adapt",
    "analyze",
    "build_report",
    "check",
    "create_backend",
    "embed",
    "iter_frames",
    "list_models",
    "list_videos",
    "probe",
    "probe_video",
    "prune",
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
    "run_pipeline",
    "run_video",
    "select",
    "split_dataset",
    "write_coco",
    "write_yolo",
]

_LAZY = {
    "run_pipeline": "dinoscope.workflows.pipeline",
    "analyze": "dinoscope.workflows.analyze",
    "check": "dinoscope.workflows.check",
    "probe": "dinoscope.workflows.probe",
    "adapt": "dinoscope.workflows.adapt",
    "select": "dinoscope.workflows.select",
    "prune": "dinoscope.workflows.prune",
    "split_dataset": "dinoscope.workflows.split",
    "run_video": "dinoscope.workflows.video",
    "build_report": "dinoscope.report",
    "create_backend": "dinoscope.embed.registry",
    "list_models": "dinoscope.embed.registry",
    "Run": "dinoscope.run",
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


class _EmbedEntry:
    """``dinoscope.embed(**settings)`` runs the embed workflow (:func:`dinoscope.workflows.embed.embed`), while
    ``dinoscope.embed.<module>`` stays the embedding package: the name serves both."""

    __doc__ = __doc__

    def __call__(self, **kwargs: Any) -> Any:
        from dinoscope.workflows.embed import embed as run

        return run(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("dinoscope.embed"), name)

    def __repr__(self) -> str:
        return "<dinoscope.embed: the embed workflow and the embedding package>"


# The subpackage is imported first (it is light), so that importing it later does not replace the entry.
importlib.import_module("dinoscope.embed")
embed = _EmbedEntry()
