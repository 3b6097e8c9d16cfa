"""``dinoscope patches fit``: exact PCA of a model's patch tokens over images and videos, in bounded memory.

The clips' frames go through the model in passes (:mod:`dinoscope.patches.passes`, run by the public runtime
of :mod:`dinoscope.embed.runtime`): each batch is reduced on the device to float64 centred statistics
(:class:`~dinoscope.patches.stats.StatisticsAccumulator`), so memory stays flat whatever the number of frames.

Foreground mode (DINOv2 recipe, see :mod:`dinoscope.patches.pca`) runs two passes: the first fits the first
component of all patches, the second splits the patches along it and accumulates both sides. With
``foreground_from`` the direction comes from an earlier fit and one pass suffices (and fits of different
parts share the direction, so they merge exactly).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import numpy as np

from dinoscope._version import __version__
from dinoscope.config import build_config
from dinoscope.embed.base import Backend
from dinoscope.embed.runtime_stats import peak_rss_mb
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.outputs import prepare_output_files
from dinoscope.patches.config import DEFAULT_COMPONENTS, DEFAULT_INPUT_SIZE, PatchFitConfig
from dinoscope.patches.files import PatchPCAFit, read_pca_file, sidecar_path, write_pca_file
from dinoscope.patches.model import create_patch_backend
from dinoscope.patches.passes import PassResult, PassRunner
from dinoscope.patches.pca import ForegroundSplit, PatchPCA, solve_pca
from dinoscope.patches.sources import find_clips, plan_quotas, select_shard
from dinoscope.patches.stats import PatchStatistics

__all__ = ["fit_patches", "fit_patches_from_config"]


logger = logging.getLogger(__name__)
_MAX_SKIPPED_LISTED = 50


def fit_patches(**kwargs: Any) -> PatchPCAFit:
    """Fit a patch PCA and write it; keyword arguments are the fields of :class:`PatchFitConfig`.

    Example:
        >>> fit = fit_patches(source="videos/", out="pca.json", model="dinov2-small", image_size=224,
        ...                   components=3, frames_per_clip=16)  # doctest: +SKIP
        >>> fit.pca.explained_variance_ratio_[:3]  # doctest: +SKIP
        array([0.12, 0.07, 0.05])
    """
    return fit_patches_from_config(build_config(PatchFitConfig, **kwargs))


def fit_patches_from_config(config: PatchFitConfig) -> PatchPCAFit:
    """Run the fit described by a validated config (see :func:`fit_patches`) and write the PCA file."""
    config = _resolved(config)
    prepare_output_files(config.out.parent, [config.out.name, sidecar_path(config.out).name], config.overwrite)
    clips, layout = find_clips(config.source, config.layout, config.in_boxes)
    try:
        clips = select_shard(clips, config.shard)
    except ValueError as exc:
        raise ConfigError(f"--shard: {exc}") from None
    if not clips:
        raise ConfigError(f"--shard {config.shard}: no clip falls in this shard of {config.source}")
    quotas = plan_quotas(len(clips), config.frames_per_clip, config.max_samples)
    given = read_pca_file(config.foreground_from) if config.foreground_from is not None else None
    backend = create_patch_backend(
        config.model,
        config.input_size,
        config.device,
        config.precision,
        config.weights,
        config.allow_download,
        compile=config.compile,
    )
    dim = backend.spec.patch_dim
    if dim and config.components > dim:
        raise ConfigError(f"--components {config.components} exceeds the feature dimension {dim} of {config.model}")
    started = time.perf_counter()
    runner = PassRunner(config, backend, clips, quotas)
    first, stats, split = _accumulate(runner, config, given)
    target = split.foreground if split is not None else stats
    _check_fit_size(target, config, split)
    pca = PatchPCA(config.components).fit_statistics(target)
    used = sorted(first.clips_used)
    fit = PatchPCAFit(
        pca=pca,
        statistics=stats,
        foreground=split,
        configuration=_configuration(config, backend, layout, first, runner, split, stats, started),
        model=backend.spec.to_dict(),
        subjects=sorted({clips[i].subject for i in used if clips[i].subject}),
        clips=sorted({clips[i].key for i in used}),
    )
    fit.configuration.update(unique_subjects=len(fit.subjects), unique_clips=len(fit.clips))
    write_pca_file(fit, config.out, overwrite=config.overwrite)
    return fit


def _accumulate(
    runner: PassRunner, config: PatchFitConfig, given: PatchPCAFit | None
) -> tuple[PassResult, PatchStatistics, ForegroundSplit | None]:
    """The passes: all-patch statistics, and the foreground split (direction given: same pass; else a second)."""
    split = None if given is None else _split_from(given, config)
    first = runner.run(collect_all=True, split=split, description="patch PCA")
    stats = first.all_statistics()
    if config.foreground and split is None:
        split = _split_along_first_component(stats, config.fg_threshold)
        split = runner.run(collect_all=False, split=split, description="foreground pass").split_with_counts(split)
    elif split is not None:
        split = first.split_with_counts(split)
    return first, stats, split


# --- foreground and checks -------------------------------------------------------------------------------------
def _split_along_first_component(stats: PatchStatistics, threshold_sigma: float) -> ForegroundSplit:
    if stats.n < 2:
        raise DinoscopeError(f"foreground mode needs at least 2 patches; got {stats.n}")
    components, variance, _ = solve_pca(stats, 1)
    dim = stats.dim
    return ForegroundSplit(
        mean=stats.mean.copy(),
        direction=components[0],
        threshold=float(threshold_sigma * np.sqrt(variance[0])),
        threshold_sigma=float(threshold_sigma),
        above=PatchStatistics.empty(dim),
        below=PatchStatistics.empty(dim),
    )


def _split_from(given: PatchPCAFit, config: PatchFitConfig) -> ForegroundSplit:
    """The foreground direction of an earlier fit (its own split, else its first component)."""
    dim = given.embed_dim
    name = str(config.foreground_from)
    if given.foreground is not None:
        src = given.foreground
        return ForegroundSplit(
            src.mean,
            src.direction,
            src.threshold,
            src.threshold_sigma,
            PatchStatistics.empty(dim),
            PatchStatistics.empty(dim),
            direction_from=name,
        )
    sigma = float(np.sqrt(given.pca.explained_variance_[0]))
    return ForegroundSplit(
        mean=given.pca.mean_.copy(),
        direction=given.pca.components_[0].copy(),
        threshold=float(config.fg_threshold * sigma),
        threshold_sigma=float(config.fg_threshold),
        above=PatchStatistics.empty(dim),
        below=PatchStatistics.empty(dim),
        direction_from=name,
    )


def _check_fit_size(target: PatchStatistics, config: PatchFitConfig, split: ForegroundSplit | None) -> None:
    what = "foreground patches" if split is not None else "patches"
    if target.n < 2:
        fix = "lower or raise --fg-threshold, or drop --foreground" if split is not None else "give more frames"
        raise DinoscopeError(f"only {target.n} {what} to fit a PCA on; {fix}")
    if config.components > target.dim:
        raise ConfigError(f"--components {config.components} exceeds the feature dimension {target.dim} of the model")


def _configuration(
    config: PatchFitConfig,
    backend: Backend,
    layout: str,
    first: PassResult,
    runner: PassRunner,
    split: ForegroundSplit | None,
    stats: PatchStatistics,
    started: float,
) -> dict[str, Any]:
    spec = backend.spec
    h, w = first.grid or (0, 0)
    seconds = time.perf_counter() - started
    forwarded = sum(p["patches_forwarded"] for p in runner.passes)
    skipped = dict(list(runner.failures.items())[:_MAX_SKIPPED_LISTED])
    return {
        "image_size": config.input_size,
        "model_name": config.model,
        "embed_dim": first.embed_dim,
        "patches_per_frame": h * w,
        "grid_size": [h, w],
        "patch_size": spec.patch_size or (config.input_size // w if w else 0),
        "total_patches": int(stats.n),
        "total_frames": first.n_frames,
        "unique_subjects": 0,
        "unique_clips": 0,
        "pca_components": config.components,
        "foreground": split is not None,
        "foreground_threshold_sigma": None if split is None else split.threshold_sigma,
        "foreground_from": None if split is None else split.direction_from,
        "source": str(config.source),
        "layout": layout,
        "in_boxes": config.in_boxes,
        "shard": config.shard,
        "frames_per_clip": config.frames_per_clip,
        "stride": config.stride,
        "max_samples": config.max_samples,
        "resize": config.resize,
        "interpolation": spec.interpolation,
        "mean_std": [list(spec.mean), list(spec.std)],
        "model_key": spec.key(),
        "device": str(getattr(backend, "device", "cpu")),
        "precision": getattr(backend, "precision", "fp32"),
        "batch_size": runner.batch_size,
        "workers": runner.workers,
        "passes": runner.passes,
        "seconds": round(seconds, 3),
        "patches_per_s": round(forwarded / seconds, 1) if seconds else 0.0,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_gpu_mb": round(runner.peak_gpu_mb, 1),
        "n_skipped": len(runner.failures),
        "skipped": skipped,
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dinoscope_version": __version__,
    }


def _resolved(config: PatchFitConfig) -> PatchFitConfig:
    """The config with its defaults made concrete: ``out`` given, the ``auto`` model chosen, input side 224,
    every frame, foreground mode when its direction comes from a file."""
    from dinoscope.embed.registry import resolve_model

    if config.out is None:
        raise ConfigError("patches fit needs --out: the PCA JSON to write")
    model, note = resolve_model(config.model)
    if note:
        logger.info("patch model: %s", note)
    update = {
        "model": model,
        "input_size": config.input_size or DEFAULT_INPUT_SIZE,
        "components": config.components or DEFAULT_COMPONENTS,
        "stride": config.stride or 1,
        "foreground": config.foreground or config.foreground_from is not None,
    }
    return config.model_copy(update=update)
