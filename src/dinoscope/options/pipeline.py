"""Option groups of the pipeline: dataset, objects, model, crops, runtime, cache, analyses, outputs.

Re-exported by :mod:`dinoscope.options`; see there how commands compose them.

Example:
    >>> from dinoscope.options import ModelOptions
    >>> ModelOptions().model
    'auto'
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from dinoscope.config import StrictModel

__all__ = [
    "AnalysisOptions",
    "CacheOptions",
    "ClassesOptions",
    "CropOptions",
    "DatasetOptions",
    "DeviceOptions",
    "EmbeddingOptions",
    "FrameOptions",
    "ModelOptions",
    "NeighboursOptions",
    "ObjectsOptions",
    "OutputOptions",
    "OverwriteOptions",
    "PoolingOptions",
    "ReportStepOptions",
    "ResumeOptions",
    "RunOptions",
    "RuntimeOptions",
    "SamplingOptions",
    "SeedOptions",
    "SelectOptions",
    "SourceOptions",
    "SplitsOptions",
    "StrideOptions",
    "WorkersOptions",
    "comma_separated",
]

DatasetFormat = Literal["auto", "yolo", "coco", "voc", "mmpretrain", "class-folders", "masks", "images"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


def _short(flag: str) -> dict[str, str]:
    return {"short": flag}


def comma_separated(value: object) -> object:
    """``"a,b"`` or ``["a,b", "c"]`` -> ``["a", "b", "c"]`` (None or nothing given -> None).

    Example:
        >>> comma_separated(["bottle,cup", "person"])
        ['bottle', 'cup', 'person']
    """
    if value is None:
        return None
    items = [value] if isinstance(value, (str, int)) else value
    if not isinstance(items, (list, tuple)):
        return value
    out = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    return out or None


class DatasetOptions(StrictModel):
    """Which dataset and how to read it."""

    dataset: Path = Field(
        description="Dataset folder or annotation file (data.yaml, COCO/MMPretrain JSON), an image folder, a video or "
        "a folder of videos."
    )
    format: DatasetFormat = Field(
        "auto",
        description="Dataset reader: yolo, coco, voc, mmpretrain, class-folders, masks, images or auto.",
        json_schema_extra=_short("-f"),
    )
    task: Literal["auto", "detect", "segment", "obb"] = Field(
        "auto", description="YOLO label type: detect, segment, obb or auto (from the label lines)."
    )


class SourceOptions(StrictModel):
    """Media to process without labels: a video, an image, or a folder of them."""

    source: Path = Field(description="A video or image file, or a folder of videos and/or images.")


class RunOptions(StrictModel):
    """An existing run directory to work on."""

    run: Path = Field(description="Run directory written by `dinoscope embed` or `dinoscope analyze`.")


class ClassesOptions(StrictModel):
    """Which classes to keep."""

    classes: list[str] | None = Field(None, description="Only these classes: names or ids (comma-separated).")

    @field_validator("classes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return comma_separated(value)


class SplitsOptions(StrictModel):
    """Which splits of a dataset to keep."""

    splits: list[str] | None = Field(None, description="Only these splits (comma-separated).")

    @field_validator("splits", mode="before")
    @classmethod
    def _comma_separated_splits(cls, value: object) -> object:
        return comma_separated(value)


class SelectOptions(ClassesOptions, SplitsOptions):
    """Which objects of a dataset to keep."""

    min_object_size: float = Field(0.0, ge=0.0, description="Leave out boxes whose shorter side is below N px.")
    whole_images: bool = Field(
        False, description="One object per image or video frame instead of per box; adds blur/exposure/contrast flags."
    )


class StrideOptions(StrictModel):
    """Every N-th frame."""

    stride: int | None = Field(
        None, ge=1, description="Videos: every N-th frame (default: every frame, or one a second in whole-image mode)."
    )


class FrameOptions(StrideOptions):
    """Which frames of a video to take."""

    max_frames: int | None = Field(None, ge=1, description="Videos: at most N frames each.")


class SamplingOptions(StrictModel):
    """Time-based frame sampling of unlabelled video."""

    every_s: float | None = Field(None, gt=0.0, description="Videos: one frame per N seconds (default 1).")


class ModelOptions(StrictModel):
    """The embedding model."""

    model: str = Field(
        "auto",
        description="Model name, timm:<name>, onnx:<file>, a folder or a DINOv2 .pth; auto = DINOv2-base when its "
        "weights are on this machine, else the offline EfficientNet-Lite0.",
        json_schema_extra=_short("-m"),
    )
    input_size: int | None = Field(
        None, ge=1, description="Model input side in pixels, a multiple of the patch size (default: the model's)."
    )
    weights: Path | None = Field(None, description="Local weights file for timm:<name> models.")
    allow_download: bool = Field(False, description="Allow downloading weights from the hub.")


class PoolingOptions(StrictModel):
    """Which vector of the model's tokens or feature map."""

    pooling: Literal["cls", "mean", "cls+mean", "all-mean", "avg"] | None = Field(
        None, description="Pooled vector: cls, mean, cls+mean, all-mean or avg (default: the model's)."
    )


class CropOptions(StrictModel):
    """How an object becomes the model's input."""

    crop: Literal["pad", "squash", "center"] = Field(
        "pad", description="pad (keep the whole object, default), squash or center."
    )
    context: float = Field(0.0, ge=0.0, description="Margin around each box, as a fraction of its size.")
    fill: Literal["mean", "edge", "reflect"] = Field("mean", description="Padding of pad crops: mean, edge or reflect.")
    min_size: float = Field(8.0, ge=1.0, description="Smallest crop side in pixels (smaller boxes are enlarged).")


class DeviceOptions(StrictModel):
    """Where models run."""

    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")


class RuntimeOptions(DeviceOptions):
    """How the model runs."""

    precision: Precision = Field(
        "auto", description="auto (bf16 on GPUs and CPUs with native bf16, else fp32), fp32, bf16 or fp16."
    )
    batch_size: int | None = Field(None, ge=1, description="Inputs per batch (default: from free memory).")
    compile: bool = Field(False, description="torch.compile the model (long warm-up).")


class WorkersOptions(StrictModel):
    """Parallel decoding."""

    workers: int | None = Field(None, ge=0, description="Decoding workers (0 = in-process; default: automatic).")


class CacheOptions(StrictModel):
    """The content cache and the run's vector store."""

    cache_dir: Path | None = Field(
        None, description="Content cache folder (default ~/.cache/dinoscope or $DINOSCOPE_CACHE)."
    )
    no_cache: bool = Field(False, description="Neither read nor write the content cache.")
    store_dtype: Literal["float32", "float16"] = Field("float32", description="float32 or float16 vectors on disk.")


class NeighboursOptions(StrictModel):
    """How many neighbours (the analyses' shared kNN graph; the results of ``search``)."""

    k: int = Field(15, ge=2, description="Neighbours per object (analyses: the shared kNN graph; search: results).")


class AnalysisOptions(NeighboursOptions):
    """The analyses over a run's vectors."""

    neighbor_method: Literal["auto", "exact", "hnsw", "disk"] = Field(
        "auto",
        description="kNN graph: auto (exact up to 10 k objects, else HNSW in memory, or on disk when that would "
        "take over half the free memory), exact, hnsw, or disk (FAISS IVF-PQ on disk, the store read in chunks).",
    )
    cluster_method: Literal["auto", "spectral", "hdbscan", "dbscan"] = Field(
        "auto",
        description="Sub-groups: auto (density groups, each split where its kNN graph has a stable bottleneck), "
        "hdbscan or dbscan (density gaps only) or spectral (bottlenecks only).",
    )
    map_method: Literal["umap", "pacmap", "pca", "none"] = Field(
        "umap", description="2-D maps: umap, pacmap, pca or none."
    )


class SeedOptions(StrictModel):
    """Reproducibility."""

    seed: int = Field(0, description="Seed of every randomised step.")


class ReportStepOptions(StrictModel):
    """The report as the last step of a workflow."""

    report: bool = Field(True, description="Build report/index.html at the end.")


class OverwriteOptions(StrictModel):
    """Permission to replace earlier results (for commands that write in place, without ``out``)."""

    overwrite: bool = Field(False, description="Replace the results of an earlier run (user files are never deleted).")


class OutputOptions(OverwriteOptions):
    """Where results go; nothing is replaced without ``overwrite``."""

    out: Path | None = Field(
        None, description="Output (run directory, folder or file).", json_schema_extra=_short("-o")
    )


class ResumeOptions(StrictModel):
    """Continuing an interrupted run."""

    resume: bool = Field(False, description="Continue an interrupted run.")


# --- bundles: groups that always travel together -----------------------------------------------------------
class ObjectsOptions(DatasetOptions, SelectOptions, FrameOptions, SamplingOptions):
    """Where a run's objects come from: a dataset (or image folder, or videos) and which of its objects."""


class EmbeddingOptions(ModelOptions, PoolingOptions, CropOptions, RuntimeOptions, WorkersOptions, CacheOptions):
    """Everything that turns objects into vectors: the model, its crops, where it runs, the cache."""
