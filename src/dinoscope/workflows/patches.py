"""``dinoscope patches fit | render | merge``: patch-feature PCA of images and videos.

Patch PCA is a stand-alone tool floor (:mod:`dinoscope.patches`) that runs from its own configs, composed
from the option groups like every command's; this workflow is its entry point and adds the merge config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from dinoscope.config import StrictModel, build_config
from dinoscope.options import OutputOptions
from dinoscope.patches import PatchPCAFit, fit_patches, render_patches
from dinoscope.patches.config import ComponentsOptions, PatchFitConfig, PatchRenderConfig

__all__ = [
    "PatchFitConfig",
    "PatchMergeConfig",
    "PatchRenderConfig",
    "fit_patches",
    "merge_patches",
    "merge_patches_from_config",
    "render_patches",
]


class PatchMergeOptions(StrictModel):
    """Which fits to merge and how."""

    files: list[Path] = Field(description="PCA JSON files (their .stats.npz beside them).")
    drop_foreground: bool = Field(
        False, description="Merge the all-patch statistics only (fits with different foreground directions)."
    )


class PatchMergeConfig(PatchMergeOptions, ComponentsOptions, OutputOptions):
    """Settings of ``dinoscope patches merge`` (``out``: the merged PCA JSON, required)."""


def merge_patches(**kwargs: Any) -> PatchPCAFit:
    """Merge fits into exactly the fit of the union of their patches; keywords: :class:`PatchMergeConfig`."""
    return merge_patches_from_config(build_config(PatchMergeConfig, **kwargs))


def merge_patches_from_config(config: PatchMergeConfig) -> PatchPCAFit:
    """Run the merge described by a validated config (see :func:`merge_patches`)."""
    from dinoscope.errors import ConfigError
    from dinoscope.patches.files import merge_fits, read_pca_file, write_pca_file

    if config.out is None:
        raise ConfigError("patches merge needs --out, the merged PCA JSON to write")
    fits = [read_pca_file(f, statistics=True) for f in config.files]
    merged = merge_fits(fits, config.components, drop_foreground=config.drop_foreground)
    write_pca_file(merged, config.out, overwrite=config.overwrite)
    return merged
