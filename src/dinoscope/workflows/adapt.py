"""``dinoscope adapt IMAGES --model MODEL --out DIR``: adapt a backbone to unlabelled images, safely.

The config composes the shared option groups (the images: any source dinoscope reads, with classes, splits
and video sampling; the model; the runtime; the seed; the output and resume) with adaptation's own groups
(:mod:`dinoscope.adapt.config`). The run itself is :func:`dinoscope.adapt.session.adapt_images`; the
before/after page that ends it, :func:`dinoscope.workflows.adapt_compare.compare_backbones`.

Example:
    >>> result = adapt(dataset="data/pcb/images", model="efficientnet-lite0", out="runs/pcb-adapt",
    ...                steps=200, eval="data/pcb/ok_vs_defect.json")  # doctest: +SKIP
    >>> result.backbone  # doctest: +SKIP
    PosixPath('runs/pcb-adapt/backbone')
"""

from __future__ import annotations

from typing import Any

from dinoscope.adapt.config import AdaptLengthOptions, AdaptRecipeOptions, AdaptSafetyOptions
from dinoscope.config import build_config
from dinoscope.options import (
    ClassesOptions,
    DatasetOptions,
    FrameOptions,
    ModelOptions,
    OutputOptions,
    ResumeOptions,
    RuntimeOptions,
    SamplingOptions,
    SeedOptions,
    SplitsOptions,
    WorkersOptions,
)

__all__ = ["AdaptConfig", "adapt", "adapt_from_config"]


class AdaptConfig(
    DatasetOptions,
    ClassesOptions,
    SplitsOptions,
    FrameOptions,
    SamplingOptions,
    ModelOptions,
    AdaptLengthOptions,
    AdaptRecipeOptions,
    AdaptSafetyOptions,
    RuntimeOptions,
    WorkersOptions,
    SeedOptions,
    OutputOptions,
    ResumeOptions,
):
    """Settings of ``dinoscope adapt`` (``dataset``: the unlabelled images - a folder, any dataset, a video;
    ``model``: the backbone to adapt (the issue's ``--from``); ``input_size``: the global crop side;
    ``batch_size``: images per step and process, default 64 on GPU, 16 on CPU; ``out``: the folder for
    backbone/, checkpoints/, log.csv and adapt.yaml, required)."""


def adapt(**kwargs: Any) -> Any:
    """Adapt a backbone; keywords: :class:`AdaptConfig`. Returns :class:`~dinoscope.adapt.session.AdaptResult`."""
    return adapt_from_config(build_config(AdaptConfig, **kwargs))


def adapt_from_config(config: AdaptConfig) -> Any:
    """Run ``adapt`` from a validated config, then (in the main process) the before/after comparison."""
    import os

    from dinoscope.adapt.session import adapt_images
    from dinoscope.workflows.adapt_compare import compare_backbones

    result = adapt_images(config)
    if int(os.environ.get("RANK", "0")) == 0:  # torchrun: rank 0 alone compares, after the job
        result.comparison = compare_backbones(config, result)
    return result
