"""Validated settings of ``dinoscope patches fit`` and ``dinoscope patches render`` (API, YAML and CLI alike).

Composed from the shared option groups of :mod:`dinoscope.options` (source, model, runtime, stride, output)
and the two groups only patch PCA has, declared here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dinoscope.config import StrictModel
from dinoscope.options import (
    FrameOptions,
    ModelOptions,
    OutputOptions,
    RuntimeOptions,
    SourceOptions,
    StrideOptions,
    WorkersOptions,
)

__all__ = [
    "DEFAULT_COMPONENTS",
    "DEFAULT_INPUT_SIZE",
    "ComponentsOptions",
    "PatchFitConfig",
    "PatchFitOptions",
    "PatchRenderConfig",
    "PatchRenderOptions",
]

#: Model input side of a fit when none is given (224 -> 16 x 16 DINOv2 patches; 518 -> 37 x 37).
DEFAULT_INPUT_SIZE = 224


#: Principal components a fit keeps when none is given.
DEFAULT_COMPONENTS = 8


class ComponentsOptions(StrictModel):
    """How many principal components a PCA file keeps."""

    components: int | None = Field(
        None, ge=1, description="Principal components to keep (fit: 8; merge: the first file's)."
    )


class PatchFitOptions(StrictModel):
    """What a patch PCA is fitted on and how."""

    layout: Literal["auto", "folder", "dataset"] = Field(
        "auto", description="auto, folder (plain files) or dataset (labelled, read with read_dataset)."
    )
    in_boxes: bool = Field(False, description="Dataset: only the patches whose centre lies in a box.")
    shard: str | None = Field(
        None, pattern=r"^\d+/[1-9]\d*$", description="k/n: every n-th clip from the k-th (fit parts, then merge)."
    )
    max_samples: int | None = Field(None, ge=1, description="At most this many frames in all, shared over clips.")
    frames_per_clip: int | None = Field(None, ge=1, description="Frames spread uniformly over each clip.")
    resize: Literal["squash", "center"] = Field(
        "squash", description="squash (whole frame to S x S) or center (shorter side to S, central square)."
    )
    foreground: bool = Field(False, description="Fit on foreground patches only (DINOv2 recipe; two passes).")
    fg_threshold: float = Field(0.0, description="Foreground threshold, in std of the first component.")
    foreground_from: Path | None = Field(
        None, description="Take the foreground direction from this PCA file (implies --foreground; fits merge)."
    )


class PatchFitConfig(
    SourceOptions,
    ModelOptions,
    StrideOptions,
    ComponentsOptions,
    PatchFitOptions,
    RuntimeOptions,
    WorkersOptions,
    OutputOptions,
):
    """Settings of ``dinoscope patches fit`` (``source``: image/video file, folder, subject/clip tree or dataset;
    ``out``: the PCA JSON to write, its statistics go to ``<stem>.stats.npz`` beside it; ``input_size``: default
    224; ``model``: auto = DINOv2-base when its weights are on this machine, else EfficientNet-Lite0)."""


class PatchRenderOptions(StrictModel):
    """How components of a patch PCA become colours."""

    pca: Path = Field(description="PCA JSON from `patches fit` or `patches merge`.")
    start_component: int = Field(0, ge=0, description="First component shown (0 = largest variance).")
    n_components: int = Field(3, ge=1, le=3, description="1 (grey), 2 (red/green) or 3 (RGB) components.")
    scale: Literal["fit", "frame"] = Field(
        "fit", description="fit (stable colours from the fit's variances) or frame (per-frame min-max)."
    )
    clip_sigma: float = Field(2.0, gt=0, description="fit scale: +-this many std span the colour range.")
    overlay: float | None = Field(None, ge=0.0, le=1.0, description="Blend over the frame with this alpha.")
    upsample: Literal["nearest", "bilinear"] = Field(
        "nearest", description="nearest (patch cells) or bilinear upsampling of the patch grid."
    )
    background: float = Field(0.25, ge=0.0, le=1.0, description="Foreground mode: brightness of background patches.")


class PatchRenderConfig(SourceOptions, PatchRenderOptions, ModelOptions, FrameOptions, RuntimeOptions, OutputOptions):
    """Settings of ``dinoscope patches render`` (``source``: an image, a video or a folder of them; ``out``: a
    .png / .mp4 for one input, else a folder; ``model`` and ``input_size``: auto / default = the fit's;
    ``stride``: render every k-th video frame, the output fps divided by k)."""
