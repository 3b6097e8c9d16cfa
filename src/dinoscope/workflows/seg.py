"""``dinoscope seg collect | import | prepare | train | predict | eval``: segmentation as one toolchain.

Segmentation is a stand-alone tool floor (:mod:`dinoscope.seg`) whose configs are composed from the option
groups like every command's (:mod:`dinoscope.seg.config`); this workflow is its entry point: each command
validates its keywords into its config and runs it, so the Python API, ``--config`` files and the CLI are one
path.

Example:
    >>> from dinoscope.workflows.seg import seg_eval  # doctest: +SKIP
    >>> seg_eval(model_dir="models/cracks", data="data/cracks", split="test").metrics["dice"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from dinoscope.config import build_config
from dinoscope.errors import ConfigError
from dinoscope.seg.collect import CollectResult, collect_frames
from dinoscope.seg.config import (
    SegCollectConfig,
    SegEvalConfig,
    SegImportConfig,
    SegPredictConfig,
    SegPrepareConfig,
    SegTrainConfig,
)
from dinoscope.seg.evaluate import EvalResult, evaluate_segmentation
from dinoscope.seg.importer import ImportResult, import_export
from dinoscope.seg.predict import PredictResult, predict_segmentation
from dinoscope.seg.prepare import PrepareResult, prepare_data
from dinoscope.seg.train import TrainResult, train_segmentation

__all__ = [
    "SegCollectConfig",
    "SegEvalConfig",
    "SegImportConfig",
    "SegPredictConfig",
    "SegPrepareConfig",
    "SegTrainConfig",
    "collect_frames",
    "evaluate_segmentation",
    "predict_segmentation",
    "seg_collect",
    "seg_eval",
    "seg_import",
    "seg_import_from_config",
    "seg_predict",
    "seg_prepare",
    "seg_prepare_from_config",
    "seg_train",
]


def seg_import(**kwargs: Any) -> ImportResult:
    """An annotation export -> ``images/`` + ``masks/``; keywords: :class:`SegImportConfig`."""
    return seg_import_from_config(build_config(SegImportConfig, **kwargs))


def seg_import_from_config(config: SegImportConfig) -> ImportResult:
    """Run ``seg import`` from a validated config."""
    if config.out is None:
        raise ConfigError("seg import needs --out, the new folder for images/ and masks/")
    return import_export(
        config.data,
        config.out,
        config.images,
        config.export_format,
        config.classes,
        config.line_width,
        config.overwrite,
    )


def seg_prepare(**kwargs: Any) -> PrepareResult:
    """Empty masks, binarisation and grouped stratified splits; keywords: :class:`SegPrepareConfig`."""
    return seg_prepare_from_config(build_config(SegPrepareConfig, **kwargs))


def seg_prepare_from_config(config: SegPrepareConfig) -> PrepareResult:
    """Run ``seg prepare`` from a validated config."""
    return prepare_data(
        config.data, config.val_ratio, config.test_ratio, config.min_val_pos, config.seed, config.overwrite
    )


def seg_train(**kwargs: Any) -> TrainResult:
    """Train a U-Net; keywords: :class:`SegTrainConfig`."""
    return train_segmentation(build_config(SegTrainConfig, **kwargs))


def seg_predict(**kwargs: Any) -> PredictResult:
    """Masks, overlays and measurements of images and videos; keywords: :class:`SegPredictConfig`."""
    return predict_segmentation(build_config(SegPredictConfig, **kwargs))


def seg_eval(**kwargs: Any) -> EvalResult:
    """Foreground dice / IoU / precision / recall; keywords: :class:`SegEvalConfig`."""
    return evaluate_segmentation(build_config(SegEvalConfig, **kwargs))


def seg_collect(**kwargs: Any) -> CollectResult:
    """Frames to label from videos, in a window or headless; keywords: :class:`SegCollectConfig`."""
    return collect_frames(build_config(SegCollectConfig, **kwargs))
