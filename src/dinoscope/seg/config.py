"""Option groups of ``dinoscope seg import | prepare | train | predict | eval | collect``.

Only the settings segmentation alone has are declared here; everything else (model, input size, local
weights, device, precision, batch size, workers, seed, classes, output, overwrite, resume, video sampling)
comes from the shared groups of :mod:`dinoscope.options`, so it has one spelling everywhere.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dinoscope.config import StrictModel
from dinoscope.io.seg_exports import ExportFormat
from dinoscope.options import (
    ClassesOptions,
    ModelOptions,
    OutputOptions,
    OverwriteOptions,
    ResumeOptions,
    RuntimeOptions,
    SamplingOptions,
    SeedOptions,
    SourceOptions,
    SplitRatioOptions,
    TrainingLengthOptions,
    WorkersOptions,
)

__all__ = [
    "SegCollectConfig",
    "SegCollectOptions",
    "SegDataOptions",
    "SegEvalConfig",
    "SegEvalOptions",
    "SegImportConfig",
    "SegImportOptions",
    "SegInferOptions",
    "SegModelDirOptions",
    "SegPredictConfig",
    "SegPrepareConfig",
    "SegSplitOptions",
    "SegTrainConfig",
    "SegTrainOptions",
]


class SegDataOptions(StrictModel):
    """The segmentation data a command reads."""

    data: Path = Field(
        description="A CVAT export (import), or a folder with images/ + masks/ and optional splits/ (prepare, "
        "train, eval)."
    )


class SegImportOptions(StrictModel):
    """How an annotation export becomes images/ + masks/."""

    images: Path | None = Field(
        None, description="Folder of the task's images (default: the export's own JPEGImages/ or images/)."
    )
    export_format: ExportFormat = Field(
        "auto",
        description="cvat-mask (Segmentation mask 1.1), coco (COCO 1.0), cvat-xml (CVAT for images 1.1), "
        "masks (mask folder) or auto.",
    )
    line_width: int = Field(3, ge=1, description="Width in px at which polylines are drawn (cvat-xml).")


class SegSplitOptions(SplitRatioOptions):
    """How ``seg prepare`` splits images into train / val / test (the shares: the shared ratio group)."""

    min_val_pos: int = Field(10, ge=1, description="At least this many images with foreground in validation.")


class SegModelDirOptions(StrictModel):
    """A trained segmentation model."""

    model_dir: Path = Field(description="Folder written by `dinoscope seg train --out`.")


class SegTrainOptions(TrainingLengthOptions):
    """How long ``seg train`` trains (``epochs``: the shared training-length group)."""


class SegInferOptions(StrictModel):
    """How ``seg predict`` and ``seg eval`` run the model."""

    tta: bool = Field(
        False, description="Flip test-time augmentation: average the 4 flips' logits (nnU-Net; 4x slower)."
    )


class SegEvalOptions(StrictModel):
    """Which images ``seg eval`` scores."""

    split: str | None = Field(None, description="Only the images of splits/<split>.txt (default: every image).")


class SegCollectOptions(StrictModel):
    """Which frames ``seg collect`` keeps, and what it cuts from them."""

    diverse: int | None = Field(
        None, ge=1, description="Keep N frames covering the video's appearance (embedding + k-center greedy)."
    )
    roi: str | None = Field(
        None,
        description="Region of interest: a polygon 'x1,y1,x2,y2,...' in frame pixels, or a JSON file of (x, y) "
        "points; frames are cropped to it, with roi_masks/, raw/ and previews/.",
    )
    grayscale: bool = Field(False, description="Save images/ in grayscale (raw/ keeps the colour crop).")


# --- the commands' configs ------------------------------------------------------------------------------------
class SegImportConfig(SegDataOptions, SegImportOptions, ClassesOptions, OutputOptions):
    """Settings of ``dinoscope seg import`` (``data``: the unzipped export; ``classes``: the labels that make the
    foreground, default all; ``out``: the new data folder, required)."""


class SegPrepareConfig(SegDataOptions, SegSplitOptions, SeedOptions, OverwriteOptions):
    """Settings of ``dinoscope seg prepare`` (``data``: the folder with images/ + masks/, changed in place:
    new empty masks and splits/; ``overwrite``: re-split, and rewrite non-binary masks as 0/255)."""


class SegTrainConfig(
    SegDataOptions,
    ModelOptions,
    SegTrainOptions,
    RuntimeOptions,
    WorkersOptions,
    SeedOptions,
    OutputOptions,
    ResumeOptions,
):
    """Settings of ``dinoscope seg train`` (``model``: efficientnet-lite0 (auto), unet or timm:<name>;
    ``input_size``: training crop side, default 512 on GPU, 256 on CPU; ``weights``: local encoder state dict
    for timm:<name>; ``allow_download``: timm:<name> without --weights fetches ImageNet weights from the hub;
    ``batch_size``: default 16 on GPU, 8 on CPU; ``out``: the model folder, required)."""


class SegPredictConfig(SegModelDirOptions, SourceOptions, SegInferOptions, RuntimeOptions, OutputOptions):
    """Settings of ``dinoscope seg predict`` (``source``: an image, a folder of images and videos, or a video;
    ``out``: the folder of masks/, overlays/, predictions.csv and overlay MP4s, required)."""


class SegEvalConfig(SegModelDirOptions, SegDataOptions, SegEvalOptions, SegInferOptions, RuntimeOptions):
    """Settings of ``dinoscope seg eval`` (``data``: images/ + masks/ and optional splits/; the per-image scores
    and the worst-images page go to MODEL_DIR/eval/<data>-<split>[-tta]/)."""


class SegCollectConfig(SourceOptions, SamplingOptions, SegCollectOptions, ModelOptions, RuntimeOptions, OutputOptions):
    """Settings of ``dinoscope seg collect`` (``source``: a video, or a folder of videos headless; ``every_s``: one
    frame per T s, or the candidates of ``diverse`` (default 1 s); neither: the interactive window;
    ``model``: the embedding of ``diverse``; ``out``: the new folder of images/, meta/ and, with ``roi``,
    roi_masks/, raw/ and previews/)."""
