"""Option groups of ``dinoscope adapt``: only the settings adaptation alone has.

Everything else comes from the shared groups of :mod:`dinoscope.options` (dataset and its reader, classes,
splits, video sampling, model, input size, local weights, device, precision, batch size, workers, seed,
output, overwrite, resume), so it has one spelling everywhere. The model to adapt is ``--model`` (the issue's
``--from``): one spelling for "which backbone" across every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dinoscope.config import StrictModel
from dinoscope.options import TrainingLengthOptions

__all__ = ["AdaptLengthOptions", "AdaptRecipeOptions", "AdaptSafetyOptions"]


class AdaptLengthOptions(TrainingLengthOptions):
    """How long ``adapt`` trains (``steps``, or ``epochs`` from the shared training-length group), how often it
    saves, on how many processes."""

    steps: int | None = Field(
        None, ge=1, description="Optimiser steps (default: 1000 on GPU, 300 on CPU; or give --epochs instead)."
    )
    checkpoint_every: int = Field(
        50, ge=1, description="Save the full training state, and check the features (probe/collapse), every N steps."
    )
    nproc: int = Field(
        1, ge=1, description="Processes of a data-parallel run on this machine (GPUs, or gloo on CPUs; see --parallel)."
    )
    parallel: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="How several processes share the model: ddp (a whole model in each), fsdp (parameters, "
        "gradients and optimiser state sharded: ViTs too large for one GPU) or auto (fsdp for ViTs of 250 M "
        "parameters and more, else ddp).",
    )


class AdaptRecipeOptions(StrictModel):
    """What ``adapt`` trains on and how hard."""

    crops: bool = Field(False, description="Train on the dataset's object crops (boxes) instead of whole images.")
    local_crops: int = Field(6, ge=0, description="Small local crops per image beside the 2 global crops (DINOv2: 8).")
    lr: float = Field(
        2e-5, gt=0.0, description="Peak backbone learning rate (before layer-wise decay); the fresh heads take 10x."
    )
    head_warmup: int | None = Field(
        None, ge=0, description="Steps that train only the new heads on a frozen backbone (default: 10% of the steps)."
    )
    anchor: float = Field(
        1.0,
        ge=0.0,
        description="Weight of the pull towards the original backbone's features (0 = off; guards against forgetting).",
    )


class AdaptSafetyOptions(StrictModel):
    """How ``adapt`` decides that the features got better, or collapsed."""

    eval: Path | None = Field(
        None,
        description="Labelled dataset for a kNN probe every --checkpoint-every steps (early stopping, best "
        "checkpoint); without it a collapse monitor watches the features.",
    )
    patience: int = Field(4, ge=1, description="Stop after N checks without a better kNN probe (with --eval).")
