"""Validated settings of ``dinoscope patches fit`` and ``dinoscope patches render`` (API, YAML and CLI alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dinoscope.config import StrictModel

__all__ = ["PatchFitConfig", "PatchRenderConfig"]


class PatchFitConfig(StrictModel):
    """Settings of ``dinoscope patches fit``.

    Attributes:
        source: Image or video file, folder of images/videos, ``subject/clip`` tree, or a dataset.
        out: The PCA JSON to write (its statistics go to ``<stem>.stats.npz`` beside it).
        model: Registry name, ``timm:<name>``, ``onnx:<file>``, a local folder or a DINOv2 ``.pth``.
        image_size: Square model input side (a multiple of the patch size: 224 -> 16 x 16 DINOv2 patches,
            518 -> 37 x 37).
        components: Principal components kept in the JSON.
        layout: ``auto``, ``folder`` (plain files) or ``dataset`` (labelled dataset via ``read_dataset``).
        in_boxes: Dataset layout: only the patches whose centre lies in a box.
        shard: ``k/n``: only every n-th clip from the k-th (0-based), to fit parts separately and merge them.
        max_samples: At most this many frames/images in total, shared evenly over the clips.
        frames_per_clip: Frames spread uniformly over each clip.
        stride: Keep every k-th frame (or image) of each clip.
        resize: ``squash`` (whole frame to S x S) or ``center`` (shorter side to S, central square).
        foreground: Fit the components on foreground patches only (DINOv2 recipe; two passes).
        fg_threshold: Threshold on the first component, in its standard deviations (0: at the mean).
        foreground_from: Take the foreground direction and threshold from this PCA file (implies foreground
            mode; one pass; fits sharing the file merge exactly).
        batch_size: Frames per forward pass (default: from free GPU memory, 32 on CPU).
        workers: Decoding threads (0: decode between forward passes in the main thread; default: 1 on CPU, up
            to 8 with a GPU).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        weights: Local weights file for ``timm:`` models.
        allow_download: Let the backend download missing weights.
        overwrite: Replace an existing output.
    """

    source: Path
    out: Path
    model: str = "dinov2-base"
    image_size: int = Field(224, ge=1)
    components: int = Field(8, ge=1)
    layout: Literal["auto", "folder", "dataset"] = "auto"
    in_boxes: bool = False
    shard: str | None = Field(None, pattern=r"^\d+/[1-9]\d*$")
    max_samples: int | None = Field(None, ge=1)
    frames_per_clip: int | None = Field(None, ge=1)
    stride: int = Field(1, ge=1)
    resize: Literal["squash", "center"] = "squash"
    foreground: bool = False
    fg_threshold: float = 0.0
    foreground_from: Path | None = None
    batch_size: int | None = Field(None, ge=1)
    workers: int | None = Field(None, ge=0)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    weights: str | None = None
    allow_download: bool = False
    overwrite: bool = False


class PatchRenderConfig(StrictModel):
    """Settings of ``dinoscope patches render``.

    Attributes:
        input: An image, a folder (images -> PNGs, videos -> MP4s) or a video.
        pca: The PCA JSON written by ``patches fit`` or ``patches merge``.
        out: A ``.png`` or ``.mp4`` file for a single input, else a folder.
        model: Model to run (default: the one the PCA was fitted with).
        weights: Local weights file for ``timm:`` models.
        allow_download: Let the backend download missing weights.
        image_size: Model input side (default: the fit's).
        start_component: First component shown (0 = the largest-variance one).
        n_components: 1 (grey), 2 (red/green) or 3 (RGB) components from ``start_component`` on.
        scale: ``fit``: colours from the fit's variances (stable over a video); ``frame``: per-frame min-max.
        clip_sigma: ``fit`` scale: +-this many standard deviations span the colour range.
        overlay: Blend the map over the frame with this alpha instead of placing it beside the frame.
        upsample: ``nearest`` (patch cells) or ``bilinear`` upsampling of the patch grid to the frame.
        background: Brightness factor of background patches in foreground mode (0 = black).
        stride: Render every k-th video frame (the output fps is divided by k).
        max_frames: Stop each video after this many rendered frames.
        batch_size: Frames per forward pass (default: from free GPU memory, 32 on CPU).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        overwrite: Replace existing outputs.
    """

    input: Path
    pca: Path
    out: Path
    model: str | None = None
    weights: str | None = None
    allow_download: bool = False
    image_size: int | None = Field(None, ge=1)
    start_component: int = Field(0, ge=0)
    n_components: int = Field(3, ge=1, le=3)
    scale: Literal["fit", "frame"] = "fit"
    clip_sigma: float = Field(2.0, gt=0)
    overlay: float | None = Field(None, ge=0.0, le=1.0)
    upsample: Literal["nearest", "bilinear"] = "nearest"
    background: float = Field(0.25, ge=0.0, le=1.0)
    stride: int = Field(1, ge=1)
    max_frames: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    overwrite: bool = False
