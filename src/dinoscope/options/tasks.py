"""Option groups of the task commands: search, export, curation (select / prune / split), the Ray engine,
copy detection and training length (seg train, adapt).

Re-exported by :mod:`dinoscope.options`.

Example:
    >>> from dinoscope.options import KeepOptions
    >>> KeepOptions(keep=0.5).keep
    0.5
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dinoscope.config import StrictModel

__all__ = [
    "BudgetOptions",
    "CopyViewOptions",
    "DatasetExportOptions",
    "EngineOptions",
    "ExportTargetOptions",
    "ImageCopyOptions",
    "KeepOptions",
    "LabeledOptions",
    "SearchQueryOptions",
    "SplitByOptions",
    "SplitRatioOptions",
    "TrainingLengthOptions",
]


# --- search and export (session 5) --------------------------------------------------------------------------
class SearchQueryOptions(StrictModel):
    """What ``dinoscope search`` looks for: an image (or a box of it), or an object of the run."""

    image: Path | None = Field(None, description="Query image file (embedded with the run's model and crops).")
    box: str | None = Field(None, description="Box of the query image, x1,y1,x2,y2 in pixels (default: whole image).")
    object: str | None = Field(None, description="Query by an object of the run: its object_id.")


class ExportTargetOptions(StrictModel):
    """What ``dinoscope export`` writes."""

    to: Literal["parquet", "fiftyone"] = Field(
        "parquet", description="parquet (tables for DuckDB/pandas) or fiftyone (a FiftyOne dataset directory)."
    )


# --- curation: select, prune, split (issue 15) ----------------------------------------------------------------
class LabeledOptions(StrictModel):
    """The labelled data a selection builds on."""

    labeled: Path = Field(description="Run directory of the labelled data (`dinoscope analyze`, `embed` or `errors`).")


class BudgetOptions(StrictModel):
    """How many images to choose, and how."""

    budget: int = Field(ge=1, description="Images to choose.")
    strategy: Literal["typicality", "coverage", "loss"] = Field(
        "typicality",
        description="typicality (TypiClust), coverage (ProbCover) or loss (regions whose labelled images have high "
        "loss; needs a `dinoscope errors` run).",
    )


class ImageCopyOptions(StrictModel):
    """How chosen images are placed in the output folder."""

    copy_images: Literal["link", "copy", "none"] = Field(
        "link", description="Chosen images into OUT/images/: link (symbolic links), copy, or none."
    )


class KeepOptions(StrictModel):
    """How much of a dataset to keep."""

    keep: float = Field(gt=0.0, description="Images to keep: a fraction (<= 1) or a number (> 1).")
    class_floor: int = Field(
        20, ge=0, description="Never keep fewer than N objects of a class (or all it has); floors win over --keep."
    )


class DatasetExportOptions(StrictModel):
    """Writing the resulting dataset."""

    export: Literal["none", "yolo", "coco"] = Field(
        "none", description="Also write the resulting dataset to OUT/dataset: yolo or coco (the source is untouched)."
    )


class SplitRatioOptions(StrictModel):
    """Shares of the validation and test splits."""

    val_ratio: float = Field(0.2, gt=0.0, lt=1.0, description="Share of images in the validation split.")
    test_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of images in the test split (0 = none).")


class SplitByOptions(StrictModel):
    """What must stay together in one split."""

    by: Literal["group", "source", "video"] = Field(
        "source",
        description="Keep together: source (each image), group (the dataset's group_id column) or video (frames of "
        "one video or numbered frames of one name); near-duplicate images are always kept together.",
    )


class EngineOptions(StrictModel):
    """Which engine computes the vectors: this process, or Ray Data on one machine or a cluster."""

    engine: Literal["local", "ray"] = Field(
        "local",
        description="local (this process and its decoding workers) or ray (Ray Data: a pool of --workers model "
        "actors, one per GPU fed by decoding tasks, or on CPUs one per core that decodes, crops and embeds; extra "
        "`ray`).",
    )
    address: str | None = Field(
        None, description="--engine ray: the cluster (auto or ray://HOST:PORT; default: a local Ray on 2 CPUs)."
    )


class CopyViewOptions(StrictModel):
    """How ``select`` and ``split`` recognise augmented copies of one photo."""

    denoise_copies: bool = Field(
        True,
        description="Also find copies among denoised (3x3 median) embeddings: catches copies that salt-and-pepper "
        "noise moves far (one more embedding pass, content-cached).",
    )


# --- training length, shared by `seg train` and `adapt` (issue 13) ----------------------------------------------
class TrainingLengthOptions(StrictModel):
    """How many passes over the training images (the commands that train)."""

    epochs: int | None = Field(
        None,
        ge=1,
        description="Passes over the training images (seg train: default 30 on GPU, 6 on CPU; adapt: instead of "
        "--steps, steps = epochs x images / (batch size x processes), rounded up).",
    )
