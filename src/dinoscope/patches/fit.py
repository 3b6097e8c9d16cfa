"""``dinoscope patches fit``: exact PCA of a model's patch tokens over images and videos, in bounded memory.

Frames are decoded in background threads, resized to the model's square input and batched through
:func:`dinoscope.embed.engine._forward` (chunks halve on CUDA out-of-memory), with the batch size chosen from
free GPU memory by the engine's probe. The model's patch features never leave the device: each batch is
reduced there to float64 centred statistics (:class:`~dinoscope.patches.stats.StatisticsAccumulator`), so
memory stays flat whatever the number of frames.

Foreground mode (DINOv2 recipe, see :mod:`dinoscope.patches.pca`) runs two passes: the first fits the first
component of all patches, the second splits the patches along it and accumulates both sides. With
``foreground_from`` the direction comes from an earlier fit and one pass suffices (and fits of different
parts share the direction, so they merge exactly).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from dinoscope._deps import require
from dinoscope._version import __version__
from dinoscope.config import build_config
from dinoscope.embed.base import Backend
from dinoscope.errors import BackendError, ConfigError, DinoscopeError
from dinoscope.outputs import prepare_output_files
from dinoscope.patches._stream import InputBatch, iter_input_batches, patch_masks
from dinoscope.patches.config import PatchFitConfig
from dinoscope.patches.files import PatchPCAFit, read_pca_file, sidecar_path, write_pca_file
from dinoscope.patches.pca import ForegroundSplit, PatchPCA, solve_pca
from dinoscope.patches.sources import Clip, find_clips, iter_clip_samples, plan_quotas, select_shard
from dinoscope.patches.stats import PatchStatistics, StatisticsAccumulator

__all__ = ["create_patch_backend", "fit_patches", "fit_patches_from_config"]

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
        config.model, config.image_size, config.device, config.precision, config.weights, config.allow_download
    )
    dim = backend.spec.patch_dim
    if dim and config.components > dim:
        raise ConfigError(f"--components {config.components} exceeds the feature dimension {dim} of {config.model}")
    started = time.perf_counter()
    runner = _Runner(config, backend, clips, quotas)
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
    runner: _Runner, config: PatchFitConfig, given: PatchPCAFit | None
) -> tuple[_PassResult, PatchStatistics, ForegroundSplit | None]:
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


def create_patch_backend(
    model: str,
    image_size: int | None,
    device: str = "auto",
    precision: str = "auto",
    weights: str | None = None,
    allow_download: bool = False,
) -> Backend:
    """A backend from the embedding registry with its input size fixed, on its device.

    Raises:
        MissingDependencyError: torch is not installed.
        ConfigError: ``weights`` given for a model other than ``timm:<name>``.
        BackendError: The model cannot be loaded offline (one line with the fixes).
    """
    require("torch", "torch", "patch-feature PCA")
    from dinoscope.embed.registry import create_backend

    options: dict[str, Any] = {"input_size": image_size, "allow_download": allow_download}
    if weights is not None:
        if not model.startswith("timm:"):
            raise ConfigError(
                f"--weights applies to timm:<name> models; for {model!r} pass the weights file or folder as --model"
            )
        options["weights"] = weights
    backend = create_backend(model, **options)
    if hasattr(backend, "to"):
        backend.to(device, precision=precision)  # type: ignore[attr-defined]
    return backend


# --- one pass over the source -------------------------------------------------------------------------------
@dataclass
class _PassResult:
    """What one pass accumulated (tensors still on the device)."""

    collect_all: bool = True
    all: StatisticsAccumulator | None = None
    above: StatisticsAccumulator | None = None
    below: StatisticsAccumulator | None = None
    n_border_above: Any = 0
    n_border_below: Any = 0
    n_frames: int = 0
    n_patches: int = 0
    n_forwarded: int = 0
    grid: tuple[int, int] | None = None
    embed_dim: int = 0
    clips_used: set[int] = field(default_factory=set)
    seconds: float = 0.0
    batch_size: int = 0

    def all_statistics(self) -> PatchStatistics:
        if self.all is None or self.all.n == 0:
            raise DinoscopeError("no patch was read: every frame failed or was filtered out (see the warnings above)")
        return self.all.to_statistics()

    def split_with_counts(self, split: ForegroundSplit) -> ForegroundSplit:
        """``split`` with the side statistics and border counts of this pass."""
        split.above = self.above.to_statistics()  # type: ignore[union-attr]
        split.below = self.below.to_statistics()  # type: ignore[union-attr]
        split.n_border_above, split.n_border_below = int(self.n_border_above), int(self.n_border_below)
        return split

    def info(self) -> dict[str, Any]:
        return {
            "frames": self.n_frames,
            "patches_forwarded": self.n_forwarded,
            "seconds": round(self.seconds, 3),
            "patches_per_s": round(self.n_forwarded / self.seconds, 1) if self.seconds else 0.0,
            "batch_size": self.batch_size,
        }


class _StatsModel:
    """The backend as ``engine._forward`` sees it: ``embed(batch)`` reduces the batch's patch features to
    statistics on the device and returns an empty ``(B, 0)`` result. The running statistics change only once
    the whole chunk is reduced, so an out-of-memory retry never counts a patch twice."""

    def __init__(self, backend: Backend, result: _PassResult, split: ForegroundSplit | None, size: int) -> None:
        self.backend, self.spec, self.result, self.split, self.size = backend, backend.spec, result, split, size
        self.commit = True
        self._split_tensors: tuple[Any, Any] | None = None

    def embed(self, batch: InputBatch | Any) -> Any:
        import torch

        images = batch.images if isinstance(batch, InputBatch) else batch
        feats = torch.as_tensor(self.backend.embed_patches(images))
        b, h, w, d = feats.shape
        r = self.result
        self._check_grid(r, (h, w), d, feats.device)
        x = feats.reshape(-1, d)
        border = _border_mask(h, w, feats.device).repeat(b)
        masks = patch_masks(batch.boxes, (h, w), self.size) if isinstance(batch, InputBatch) else None
        if masks is not None:
            keep = torch.from_numpy(masks.reshape(-1)).to(feats.device)
            x, border = x[keep], border[keep]
        updates = []
        if r.all is not None:
            updates.append((r.all, r.all.moments(x)))
        if self.split is not None:
            above = self._project(x) > self.split.threshold
            updates += [(r.above, r.above.moments(x[above])), (r.below, r.below.moments(x[~above]))]  # type: ignore[union-attr]
            n_border = ((border & above).sum(), (border & ~above).sum())
        if self.commit:
            for acc, moments in updates:
                acc.add(*moments)
            if self.split is not None:
                r.n_border_above, r.n_border_below = r.n_border_above + n_border[0], r.n_border_below + n_border[1]
            r.n_frames, r.n_patches, r.n_forwarded = r.n_frames + b, r.n_patches + x.shape[0], r.n_forwarded + b * h * w
            if isinstance(batch, InputBatch):
                r.clips_used.update(batch.clips.tolist())
        return torch.zeros((b, 0))

    def _project(self, x: Any) -> Any:
        import torch

        if self._split_tensors is None:
            split = self.split
            self._split_tensors = (
                torch.as_tensor(split.mean, dtype=torch.float64, device=x.device),  # type: ignore[union-attr]
                torch.as_tensor(split.direction, dtype=torch.float64, device=x.device),  # type: ignore[union-attr]
            )
        mean, direction = self._split_tensors
        return (x.to(torch.float64) - mean) @ direction

    def _check_grid(self, r: _PassResult, grid: tuple[int, int], dim: int, device: Any) -> None:
        if r.grid is None:
            if self.split is not None and self.split.mean.shape[0] != dim:
                raise BackendError(
                    f"the foreground direction has {self.split.mean.shape[0]} dimensions but {self.spec.name} gives "
                    f"{dim}-d patch features ({self.split.direction_from}); use the model it was fitted with"
                )
            r.grid, r.embed_dim = grid, dim
            r.all = StatisticsAccumulator(dim, device) if r.collect_all else None
            if self.split is not None:
                r.above, r.below = StatisticsAccumulator(dim, device), StatisticsAccumulator(dim, device)
        elif r.grid != grid:
            raise BackendError(f"{self.spec.name}: the patch grid changed from {r.grid} to {grid} between batches")


def _border_mask(h: int, w: int, device: Any) -> Any:
    import torch

    mask = torch.zeros((h, w), dtype=torch.bool, device=device)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask.reshape(-1)


class _Runner:
    """Runs passes over the same clips with the same backend, batch size and threads."""

    def __init__(self, config: PatchFitConfig, backend: Backend, clips: list[Clip], quotas: list[int | None]) -> None:
        self.config, self.backend, self.clips, self.quotas = config, backend, clips, quotas
        self.failures: dict[str, str] = {}
        device = getattr(getattr(backend, "device", None), "type", "cpu")
        self.device_type = device
        cores = os.cpu_count() or 1
        default = min(8, max(1, cores - 1)) if device == "cuda" else 1
        self.workers = default if config.workers is None else config.workers
        self.batch_size = config.batch_size or 0
        self.passes: list[dict[str, Any]] = []

    def run(self, collect_all: bool, split: ForegroundSplit | None, description: str) -> _PassResult:
        from dinoscope.embed.engine import _default_batch_size, _forward, _memory_status
        from dinoscope.progress import ProgressBar

        result = _PassResult(collect_all=collect_all)
        model = _StatsModel(self.backend, result, split, self.config.image_size)
        if not self.batch_size:
            model.commit = False  # the engine's probe runs 8 blank images through the model
            self.batch_size = _default_batch_size(model, self.device_type)  # type: ignore[arg-type]
            result.grid, model.commit = None, True
        result.batch_size = max_chunk = self.batch_size
        jobs = [
            partial(iter_clip_samples, clip, i, quota, self.config.stride, self.failures)
            for i, (clip, quota) in enumerate(zip(self.clips, self.quotas, strict=True))
        ]
        start = time.perf_counter()
        with ProgressBar(self._expected_patches(), description, "patch", status=_memory_status) as bar:
            for batch in iter_input_batches(
                jobs,
                self.config.image_size,
                self.batch_size,
                resize=self.config.resize,
                interpolation=self.backend.spec.interpolation,
                workers=self.workers,
            ):
                before = result.n_forwarded
                _, max_chunk = _forward(model, batch, max_chunk)  # type: ignore[arg-type]
                bar.advance(result.n_forwarded - before)
        result.seconds = time.perf_counter() - start
        self.passes.append({"pass": description, **result.info()})
        logger.info("%s: %d frames, %d patches, %.1f s", description, result.n_frames, result.n_patches, result.seconds)
        return result

    def _expected_patches(self) -> int | None:
        """Patches the pass will forward, when every clip's count is known (image clips, or videos with a quota)."""
        patch = self.backend.spec.patch_size
        if not patch:
            return None
        total = 0
        for clip, quota in zip(self.clips, self.quotas, strict=True):
            if clip.video is not None:
                if quota is None:
                    return None
                total += quota
            else:
                n = -(-len(clip.images) // self.config.stride)
                total += n if quota is None else min(n, quota)
        return total * (self.config.image_size // patch) ** 2


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
    first: _PassResult,
    runner: _Runner,
    split: ForegroundSplit | None,
    stats: PatchStatistics,
    started: float,
) -> dict[str, Any]:
    from dinoscope.embed.engine import _peak_rss_mb

    spec = backend.spec
    h, w = first.grid or (0, 0)
    seconds = time.perf_counter() - started
    forwarded = sum(p["patches_forwarded"] for p in runner.passes)
    skipped = dict(list(runner.failures.items())[:_MAX_SKIPPED_LISTED])
    return {
        "image_size": config.image_size,
        "model_name": config.model,
        "embed_dim": first.embed_dim,
        "patches_per_frame": h * w,
        "grid_size": [h, w],
        "patch_size": spec.patch_size or (config.image_size // w if w else 0),
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
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "n_skipped": len(runner.failures),
        "skipped": skipped,
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dinoscope_version": __version__,
    }
