"""Patch-feature PCA: what each patch of a self-supervised ViT "sees", fitted over images and videos.

``fit_patches`` streams frames through a backend's patch tokens and keeps exact, mergeable float64
statistics (memory does not grow with the number of patches); ``merge_fits`` combines fits exactly;
``render_patches`` paints chosen components as RGB beside or over images and videos. See docs/patches.md.

The package imports nothing heavy until a function is used.

Example:
    >>> from dinoscope.patches import fit_patches, render_patches
    >>> fit_patches(source="clips/", out="pca.json", model="dinov2-small", frames_per_clip=8)  # doctest: +SKIP
    >>> render_patches(input="clip.mp4", pca="pca.json", out="clip-pca.mp4")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dinoscope.patches.config import PatchFitConfig, PatchRenderConfig
    from dinoscope.patches.files import PatchPCAFit, merge_fits, read_pca_file, write_pca_file
    from dinoscope.patches.fit import fit_patches, fit_patches_from_config
    from dinoscope.patches.maps import ComponentProjector, compose_panels, compute_component_rgb
    from dinoscope.patches.model import create_patch_backend
    from dinoscope.patches.pca import ForegroundSplit, PatchPCA, solve_pca
    from dinoscope.patches.render import RenderResult, render_patches, render_patches_from_config
    from dinoscope.patches.sources import Clip, find_clips
    from dinoscope.patches.stats import PatchStatistics, StatisticsAccumulator

__all__ = [
    "Clip",
    "ComponentProjector",
    "ForegroundSplit",
    "PatchFitConfig",
    "PatchPCA",
    "PatchPCAFit",
    "PatchRenderConfig",
    "PatchStatistics",
    "RenderResult",
    "StatisticsAccumulator",
    "compose_panels",
    "compute_component_rgb",
    "create_patch_backend",
    "find_clips",
    "fit_patches",
    "fit_patches_from_config",
    "merge_fits",
    "read_pca_file",
    "render_patches",
    "render_patches_from_config",
    "solve_pca",
    "write_pca_file",
]

_MODULES = {
    "config": ("PatchFitConfig", "PatchRenderConfig"),
    "files": ("PatchPCAFit", "merge_fits", "read_pca_file", "write_pca_file"),
    "fit": ("fit_patches", "fit_patches_from_config"),
    "model": ("create_patch_backend",),
    "pca": ("ForegroundSplit", "PatchPCA", "solve_pca"),
    "maps": ("ComponentProjector", "compose_panels", "compute_component_rgb"),
    "render": ("RenderResult", "render_patches", "render_patches_from_config"),
    "sources": ("Clip", "find_clips"),
    "stats": ("PatchStatistics", "StatisticsAccumulator"),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dinoscope.patches' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dinoscope.patches.{module}"), name)
