"""One pass of a patch PCA fit over its clips: frames -> patch features -> float64 statistics on the device.

Frames are decoded in background threads, resized to the model's square input and batched
(:func:`~dinoscope.patches._stream.iter_input_batches`). The public runtime runs the model: the batch size
comes from free GPU memory (:func:`~dinoscope.embed.runtime.choose_batch_size`) and chunks halve on CUDA
out-of-memory (:class:`~dinoscope.embed.runtime.ChunkedForward`). The patch features never leave the device:
:class:`PatchReducer` reduces each chunk to centred moments without touching any running state, and
:class:`PassResult` adds them once the chunk is done, so a retried chunk is never counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope.embed.base import Backend
from dinoscope.embed.runtime import ChunkedForward, choose_batch_size, decode_workers, device_type_of
from dinoscope.embed.runtime_stats import measure_throughput, memory_status
from dinoscope.errors import BackendError, DinoscopeError
from dinoscope.patches._stream import InputBatch, iter_input_batches, patch_masks
from dinoscope.patches.config import PatchFitConfig
from dinoscope.patches.pca import ForegroundSplit
from dinoscope.patches.sources import Clip, Sample, iter_clip_samples
from dinoscope.patches.stats import Moments, PatchStatistics, StatisticsAccumulator, compute_moments

if TYPE_CHECKING:
    import torch

__all__ = ["BatchMoments", "PassResult", "PassRunner", "PatchReducer"]

logger = logging.getLogger(__name__)


@dataclass
class BatchMoments:
    """What one chunk of frames contributes to a pass (tensors on the model's device).

    Attributes:
        grid: (h, w) patch grid of the model.
        dim: Patch feature dimension D.
        n_frames: Frames in the chunk.
        n_patches: Patches kept (inside the boxes, if any).
        n_forwarded: Patches the model computed (``n_frames * h * w``).
        all: Moments of every kept patch, or None when the pass does not collect them.
        above: Moments of the kept patches above the split threshold (None without a split).
        below: The same below it.
        n_border_above: Border patches above the threshold (a 0-d tensor, or 0 without a split).
        n_border_below: Border patches below it.
        clips: (n_frames,) clip index of each frame, or None (a probe batch).
    """

    grid: tuple[int, int]
    dim: int
    n_frames: int
    n_patches: int
    n_forwarded: int
    all: Moments | None = None
    above: Moments | None = None
    below: Moments | None = None
    n_border_above: Any = 0
    n_border_below: Any = 0
    clips: np.ndarray | None = None


class PatchReducer:
    """Patch features of a chunk of frames reduced to :class:`BatchMoments`; no running state is changed.

    Args:
        backend: The model (on its device).
        split: The foreground split to apply (its side statistics are collected), or None.
        collect_all: Collect the moments of all patches.
        size: Model input side (to map boxes to patches).
    """

    def __init__(self, backend: Backend, split: ForegroundSplit | None, collect_all: bool, size: int) -> None:
        self.backend, self.split, self.collect_all, self.size = backend, split, collect_all, size
        self._split_tensors: tuple[Any, Any] | None = None

    def __call__(self, batch: InputBatch) -> BatchMoments:
        """The moments of a batch (boxes, when given, select the patches whose centre lies inside)."""
        return self.reduce(batch.images, batch.boxes, batch.clips)

    def reduce(
        self, images: Any, boxes: list[np.ndarray | None] | None = None, clips: np.ndarray | None = None
    ) -> BatchMoments:
        """The moments of (B, S, S, 3) uint8 frames; ``boxes`` per frame in input pixels, or None (whole frames)."""
        import torch

        feats = torch.as_tensor(self.backend.embed_patches(images))
        b, h, w, d = feats.shape
        self._check_dim(d)
        x = feats.reshape(-1, d)
        border = _border_mask(h, w, feats.device).repeat(b)
        masks = None if boxes is None else patch_masks(boxes, (h, w), self.size)
        if masks is not None:
            keep = torch.from_numpy(masks.reshape(-1)).to(feats.device)
            x, border = x[keep], border[keep]
        out = BatchMoments((h, w), d, b, int(x.shape[0]), b * h * w, clips=clips)
        if self.collect_all:
            out.all = compute_moments(x)
        if self.split is not None:
            above = self._project(x, self.split) > self.split.threshold
            out.above, out.below = compute_moments(x[above]), compute_moments(x[~above])
            out.n_border_above, out.n_border_below = (border & above).sum(), (border & ~above).sum()
        return out

    def _project(self, x: torch.Tensor, split: ForegroundSplit) -> torch.Tensor:
        import torch

        if self._split_tensors is None:
            self._split_tensors = (
                torch.as_tensor(split.mean, dtype=torch.float64, device=x.device),
                torch.as_tensor(split.direction, dtype=torch.float64, device=x.device),
            )
        mean, direction = self._split_tensors
        return (x.to(torch.float64) - mean) @ direction

    def _check_dim(self, dim: int) -> None:
        if self.split is not None and self.split.mean.shape[0] != dim:
            raise BackendError(
                f"the foreground direction has {self.split.mean.shape[0]} dimensions but {self.backend.spec.name} "
                f"gives {dim}-d patch features ({self.split.direction_from}); use the model it was fitted with"
            )


def _border_mask(h: int, w: int, device: Any) -> torch.Tensor:
    import torch

    mask = torch.zeros((h, w), dtype=torch.bool, device=device)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask.reshape(-1)


@dataclass
class PassResult:
    """What one pass accumulated (running statistics on the model's device)."""

    model: str = ""
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

    def add(self, m: BatchMoments) -> None:
        """Add a reduced chunk (the first one fixes the grid and the accumulators' dimension and device)."""
        if self.grid is None:
            self.grid, self.embed_dim = m.grid, m.dim
        elif self.grid != m.grid:
            raise BackendError(f"{self.model}: the patch grid changed from {self.grid} to {m.grid} between batches")
        self.all = _added(self.all, m.all, m.dim)
        self.above = _added(self.above, m.above, m.dim)
        self.below = _added(self.below, m.below, m.dim)
        self.n_border_above = self.n_border_above + m.n_border_above
        self.n_border_below = self.n_border_below + m.n_border_below
        self.n_frames += m.n_frames
        self.n_patches += m.n_patches
        self.n_forwarded += m.n_forwarded
        if m.clips is not None:
            self.clips_used.update(m.clips.tolist())

    def all_statistics(self) -> PatchStatistics:
        """The statistics of every patch read."""
        if self.all is None or self.all.n == 0:
            raise DinoscopeError("no patch was read: every frame failed or was filtered out (see the warnings above)")
        return self.all.to_statistics()

    def split_with_counts(self, split: ForegroundSplit) -> ForegroundSplit:
        """``split`` with the side statistics and border counts of this pass."""
        dim = split.mean.shape[0]
        split.above = self.above.to_statistics() if self.above is not None else PatchStatistics.empty(dim)
        split.below = self.below.to_statistics() if self.below is not None else PatchStatistics.empty(dim)
        split.n_border_above, split.n_border_below = int(self.n_border_above), int(self.n_border_below)
        return split

    def info(self) -> dict[str, Any]:
        """The pass in the PCA file's ``passes`` list."""
        return {
            "frames": self.n_frames,
            "patches_forwarded": self.n_forwarded,
            "seconds": round(self.seconds, 3),
            "patches_per_s": round(self.n_forwarded / self.seconds, 1) if self.seconds else 0.0,
            "batch_size": self.batch_size,
        }


def _added(acc: StatisticsAccumulator | None, moments: Moments | None, dim: int) -> StatisticsAccumulator | None:
    if moments is None:
        return acc
    if acc is None:
        acc = StatisticsAccumulator(dim, moments[1].device)
    return acc.add(*moments)


class PassRunner:
    """Runs passes over the same clips with the same backend, batch size and decoding threads.

    Attributes:
        passes: Each pass's :meth:`PassResult.info`, with its name.
        peak_gpu_mb: The largest CUDA memory peak of the passes (MiB; 0 without CUDA).

    Args:
        config: The fit's config (stride, resize, batch size, workers).
        backend: The model, on its device.
        clips: The clips of the fit.
        quotas: Frames to take from each clip (None: all).
    """

    def __init__(self, config: PatchFitConfig, backend: Backend, clips: list[Clip], quotas: list[int | None]) -> None:
        self.config, self.backend, self.clips, self.quotas = config, backend, clips, quotas
        self.failures: dict[str, str] = {}
        self.device_type = device_type_of(backend)
        self.workers = decode_workers(self.device_type, minimum=1) if config.workers is None else config.workers
        self.batch_size = config.batch_size or 0
        self.passes: list[dict[str, Any]] = []
        self.peak_gpu_mb = 0.0

    def run(self, collect_all: bool, split: ForegroundSplit | None, description: str) -> PassResult:
        """One pass: every clip's frames through the model, reduced to statistics (and split sides)."""
        from dinoscope.progress import ProgressBar

        result = PassResult(model=self.backend.spec.name)
        reducer = PatchReducer(self.backend, split, collect_all, self.config.input_size)
        if not self.batch_size:  # the probe's blank frames are reduced but never added
            self.batch_size = choose_batch_size(reducer.reduce, self.config.input_size, self.device_type)
        result.batch_size = self.batch_size
        forward = ChunkedForward(reducer, self.batch_size)
        jobs: list[Callable[[], Iterator[Sample]]] = [
            partial(iter_clip_samples, clip, i, quota, self.config.stride, self.failures)
            for i, (clip, quota) in enumerate(zip(self.clips, self.quotas, strict=True))
        ]
        bar = ProgressBar(self._expected_patches(), description, "patch", status=memory_status)
        with measure_throughput(self.device_type) as meter, bar:
            for batch in iter_input_batches(
                jobs,
                self.config.input_size,
                self.batch_size,
                resize=self.config.resize,
                interpolation=self.backend.spec.interpolation,
                workers=self.workers,
            ):
                for moments in forward(batch):
                    result.add(moments)
                    meter.n_items += moments.n_forwarded
                    bar.advance(moments.n_forwarded)
        result.seconds = meter.seconds
        self.peak_gpu_mb = max(self.peak_gpu_mb, meter.peak_gpu_mb)
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
        return total * (self.config.input_size // patch) ** 2
