"""Validated configuration: one path for the Python API, config files and the CLI.

Every command has a pydantic model with ``extra="forbid"``; :func:`build_config` turns keyword arguments
(from the CLI or a YAML file) into it and reports every bad key or value at once as a :class:`ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from dinoscope.errors import ConfigError

__all__ = [
    "AnalyzeConfig",
    "CheckConfig",
    "EmbedConfig",
    "PipelineConfig",
    "StrictModel",
    "build_config",
    "load_config_file",
]

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class CheckConfig(StrictModel):
    """Settings of ``dinoscope check``.

    Attributes:
        dataset: Dataset folder or annotation file.
        format: Reader to use, or ``auto``.
        task: YOLO label type (``detect``, ``segment``, ``obb``) or ``auto`` from the label lines.
        out: Folder to write ``checks.parquet``/``checks.csv``/``checks.json`` into.
        overwrite: Replace those files if they exist.
        strict: Exit non-zero when any finding is an error.
    """

    dataset: Path
    format: Literal["auto", "yolo", "coco", "voc", "mmpretrain", "class-folders", "masks", "images"] = "auto"
    task: Literal["auto", "detect", "segment", "obb"] = "auto"
    out: Path | None = None
    overwrite: bool = False
    strict: bool = False


def build_config(schema: type[M], /, **values: Any) -> M:
    """Validate ``values`` into the ``schema`` model, raising one :class:`ConfigError` that lists every problem.

    Example:
        >>> build_config(CheckConfig, dataset="data", strict=True).strict
        True
    """
    try:
        return schema(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(config)"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{key}'")
            else:
                problems.append(f"'{key}': {err['msg']} (got {err.get('input')!r})")
        allowed = ", ".join(schema.model_fields)
        raise ConfigError(f"invalid {schema.__name__}: {'; '.join(problems)}. Allowed keys: {allowed}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (validated later by :func:`build_config`)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return doc


class EmbedConfig(StrictModel):
    """Settings of ``dinoscope embed`` (every field is also a CLI option and a YAML key).

    Attributes:
        dataset: Dataset folder or annotation file (any format ``read_dataset`` reads).
        out: Run directory to write (``objects.parquet``, ``embeddings/``, ``run.yaml``).
        model: Registry name, ``timm:<name>``, ``onnx:<file>``, a local folder or a DINOv2 ``.pth``.
        pooling: Pooled vector (default: the model's own default, CLS for DINOv2).
        input_size: Model input side (multiple of the patch size; default: the model's).
        crop: ``pad`` (keep the whole object, default), ``squash`` or ``center`` (original scripts).
        context: Margin around each box as a fraction of its size.
        whole_images: Embed each image as one object instead of its boxes.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        store_dtype: ``float32`` or ``float16`` for the stored vectors.
        cache_dir: Content cache folder (default ``~/.cache/dinoscope`` or ``$DINOSCOPE_CACHE``).
        no_cache: Do not read or write the content cache.
    """

    dataset: Path
    out: Path
    format: Literal["auto", "yolo", "coco", "voc", "mmpretrain", "class-folders", "masks", "images"] = "auto"
    model: str = "dinov2-base"
    pooling: Literal["cls", "mean", "cls+mean", "all-mean", "avg"] | None = None
    input_size: int | None = None
    crop: Literal["pad", "squash", "center"] = "pad"
    context: float = 0.0
    fill: Literal["mean", "edge", "reflect"] = "mean"
    min_size: float = 8.0
    whole_images: bool = False
    batch_size: int | None = None
    workers: int | None = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    store_dtype: Literal["float32", "float16"] = "float32"
    compile: bool = False
    cache_dir: Path | None = None
    no_cache: bool = False
    allow_download: bool = False
    resume: bool = False
    overwrite: bool = False


class AnalyzeConfig(StrictModel):
    """Settings of ``dinoscope analyze RUN`` (analyses over a run directory that has vectors).

    Attributes:
        run: Run directory written by ``dinoscope embed``.
        store: Which embedding store of the run (default: the only one).
        k: Neighbours per object in the shared kNN graph.
        cluster_method: ``hdbscan`` (default) or ``dbscan`` (eps derived from the data).
        map_method: ``umap`` (default), ``pacmap``, ``pca`` or ``none``.
        seed: Seed of every randomised step.
    """

    run: Path
    store: str | None = None
    k: int = 15
    cluster_method: Literal["hdbscan", "dbscan"] = "hdbscan"
    map_method: Literal["umap", "pacmap", "pca", "none"] = "umap"
    seed: int = 0


class PipelineConfig(StrictModel):
    """Settings of ``dinoscope analyze DATASET``: check → embed (cached) → analyses → report, in one run.

    Every field is also a CLI option and a key of the ``--config`` YAML file (flags given on the command
    line win over the file).

    Attributes:
        dataset: Dataset folder or annotation file, an image folder, a video or a folder of videos.
        out: Run directory (default ``runs/<dataset name>``).
        format: Dataset reader, or ``auto``.
        model: Embedding model; ``auto`` takes DINOv2-base when its weights are on this machine, else the
            offline EfficientNet-Lite0 (and says which).
        classes: Only these classes (names or ids).
        splits: Only these splits.
        min_object_size: Leave out boxes whose shorter side is below this many pixels.
        whole_images: One object per image (or sampled video frame) instead of per box; adds image-quality
            flags (blur, exposure, contrast).
        every_s / stride / max_frames: Video frame sampling in whole-image mode (default one frame a second).
        export_crops: Also write every object's crop as an image file, one folder per class.
        report: Build ``report/index.html`` at the end.
    """

    dataset: Path
    out: Path | None = None
    format: Literal["auto", "yolo", "coco", "voc", "mmpretrain", "class-folders", "masks", "images"] = "auto"
    model: str = "auto"
    classes: list[str] | None = None
    splits: list[str] | None = None
    min_object_size: float = 0.0
    whole_images: bool = False
    every_s: float | None = None
    stride: int | None = None
    max_frames: int | None = None
    pooling: Literal["cls", "mean", "cls+mean", "all-mean", "avg"] | None = None
    input_size: int | None = None
    crop: Literal["pad", "squash", "center"] = "pad"
    context: float = 0.0
    k: int = 15
    cluster_method: Literal["hdbscan", "dbscan"] = "hdbscan"
    map_method: Literal["umap", "pacmap", "pca", "none"] = "umap"
    seed: int = 0
    batch_size: int | None = None
    workers: int | None = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    store_dtype: Literal["float32", "float16"] = "float32"
    cache_dir: Path | None = None
    no_cache: bool = False
    allow_download: bool = False
    export_crops: Path | None = None
    report: bool = True
    resume: bool = False
    overwrite: bool = False
