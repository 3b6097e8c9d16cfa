"""Decoded samples -> model-ready uint8 batches, prepared in background threads.

Decoding (PyAV, Pillow) and resizing release the GIL, so a few threads keep the model fed without the
pickling cost of worker processes; bounded queues keep memory flat however long the videos are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from dinoscope.patches.sources import Sample

__all__ = ["InputBatch", "InputGeometry", "Resize", "iter_input_batches", "patch_masks", "prepare_input"]

Resize = Literal["squash", "center"]
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class InputGeometry:
    """Where the model's square input lies in the original image: ``input_px = image_px * scale - offset``.

    Attributes:
        scale_x: Horizontal scale.
        scale_y: Vertical scale.
        offset_x: Left crop in input pixels.
        offset_y: Top crop in input pixels.
    """

    scale_x: float
    scale_y: float
    offset_x: float = 0.0
    offset_y: float = 0.0

    def window(self, size: int) -> tuple[int, int, int, int]:
        """The (x0, y0, x1, y1) pixel window of the original image that the ``size`` input shows."""
        x0, y0 = self.offset_x / self.scale_x, self.offset_y / self.scale_y
        return round(x0), round(y0), round(x0 + size / self.scale_x), round(y0 + size / self.scale_y)


def prepare_input(
    image: np.ndarray, size: int, resize: Resize = "squash", interpolation: str = "bicubic"
) -> tuple[np.ndarray, InputGeometry]:
    """Resize an (H, W, 3) uint8 image to the model's (S, S, 3) input.

    ``squash`` resizes the whole frame to S x S (nothing is cut off; the aspect ratio changes). ``center``
    resizes the shorter side to S and keeps the central S x S square (no distortion; the sides are lost).

    Example:
        >>> x, geo = prepare_input(np.zeros((360, 640, 3), np.uint8), 224, "center")
        >>> x.shape, geo.window(224)
        ((224, 224, 3), (140, 0, 500, 360))
    """
    h, w = image.shape[:2]
    resample = _RESAMPLE.get(interpolation, Image.Resampling.BICUBIC)
    if resize == "squash":
        out = image if (h, w) == (size, size) else np.asarray(Image.fromarray(image).resize((size, size), resample))
        return out, InputGeometry(size / w, size / h)
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    geometry = InputGeometry(new_w / w, new_h / h, float(left), float(top))
    return np.ascontiguousarray(resized[top : top + size, left : left + size]), geometry


def patch_masks(boxes: list[np.ndarray | None], grid: tuple[int, int], size: int) -> np.ndarray | None:
    """(B, h, w) masks of the patches whose centre lies inside a box (input pixels); None when no box is given.

    Example:
        >>> patch_masks([np.array([[0.0, 0.0, 14.0, 28.0]])], (2, 2), 28)[0].tolist()
        [[True, False], [True, False]]
    """
    if all(b is None for b in boxes):
        return None
    h, w = grid
    cy = (np.arange(h) + 0.5) * size / h
    cx = (np.arange(w) + 0.5) * size / w
    out = np.ones((len(boxes), h, w), dtype=bool)
    for i, b in enumerate(boxes):
        if b is None:
            continue
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        inside_x = (cx[None, :] >= b[:, 0:1]) & (cx[None, :] <= b[:, 2:3])  # (K, w)
        inside_y = (cy[None, :] >= b[:, 1:2]) & (cy[None, :] <= b[:, 3:4])  # (K, h)
        out[i] = (inside_y[:, :, None] & inside_x[:, None, :]).any(axis=0)
    return out


@dataclass
class InputBatch:
    """A batch of model inputs; slicing gives a sub-batch (what :class:`~dinoscope.embed.runtime.ChunkedForward`
    needs for its out-of-memory back-off).

    Attributes:
        images: (B, S, S, 3) uint8 model inputs.
        boxes: Per image, (K, 4) boxes in input pixels whose patches are used, or None (whole frame).
        clips: (B,) clip index of each image.
        originals: Per image, the decoded frame and its geometry (kept only when asked, for rendering).
    """

    images: np.ndarray
    boxes: list[np.ndarray | None]
    clips: np.ndarray
    originals: list[tuple[np.ndarray, InputGeometry]] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def original(self, i: int) -> tuple[np.ndarray, InputGeometry]:
        """The decoded frame of image ``i`` and where the model input lies in it (``keep_originals`` batches)."""
        if self.originals is None:
            raise ValueError("this batch was prepared without keep_originals=True")
        return self.originals[i]

    def __getitem__(self, index: slice) -> InputBatch:
        originals = None if self.originals is None else self.originals[index]
        return InputBatch(self.images[index], self.boxes[index], self.clips[index], originals)


def iter_input_batches(
    jobs: list[Callable[[], Iterator[Sample]]],
    size: int,
    batch_size: int,
    *,
    resize: Resize = "squash",
    interpolation: str = "bicubic",
    workers: int = 1,
    keep_originals: bool = False,
    prefetch_batches: int = 2,
) -> Iterator[InputBatch]:
    """Decode and prepare samples in ``workers`` threads and yield batches of model inputs.

    Worker ``k`` runs jobs ``k, k + workers, ...`` and batches its own samples ahead of the model
    (:func:`dinoscope.io.prefetch.prefetch`: a bounded queue, errors re-raised here, stopped when this
    generator closes); batches are taken from the workers in turn, so their order does not depend on timing.

    Args:
        jobs: Functions returning iterators of :class:`Sample` (one per clip).
        size: Model input side S.
        batch_size: Images per batch (a worker's last one may be smaller).
        resize: ``squash`` or ``center`` (see :func:`prepare_input`).
        interpolation: Resize filter of the model's spec.
        workers: Decoding threads; 0 decodes in the calling thread, between forward passes. With 0 or 1
            the samples keep the order of ``jobs``.
        keep_originals: Keep each decoded frame and its geometry in the batch (rendering).
        prefetch_batches: Batches each worker may hold ready.

    Raises:
        Whatever a producer raised, re-raised in the consumer.
    """
    from dinoscope.io.prefetch import batched, prefetch

    def prepared(share: list[Callable[[], Iterator[Sample]]]) -> Iterator[tuple]:
        for job in share:
            for sample in job():
                yield _prepared(sample, size, resize, interpolation, keep_originals)

    if workers <= 0:
        streams = [batched(prepared(jobs), batch_size)]
    else:
        n = max(1, min(workers, len(jobs)))
        streams = [prefetch(batched(prepared(jobs[k::n]), batch_size), depth=prefetch_batches) for k in range(n)]
    for items in _round_robin(streams):
        yield _batch(items, keep_originals)


def _round_robin(streams: list[Iterator[list[tuple]]]) -> Iterator[list[tuple]]:
    active = list(streams)
    try:
        while active:
            for stream in list(active):
                try:
                    yield next(stream)
                except StopIteration:
                    active.remove(stream)
    finally:
        for stream in streams:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _prepared(sample: Sample, size: int, resize: Resize, interpolation: str, keep_originals: bool) -> tuple:
    x, geometry = prepare_input(sample.image, size, resize, interpolation)
    boxes = None if sample.boxes is None else _to_input_boxes(sample.boxes, geometry)
    return x, boxes, sample.clip, (sample.image, geometry) if keep_originals else None


def _batch(items: list[tuple], keep_originals: bool) -> InputBatch:
    return InputBatch(
        images=np.stack([it[0] for it in items]),
        boxes=[it[1] for it in items],
        clips=np.asarray([it[2] for it in items], dtype=np.int64),
        originals=[it[3] for it in items] if keep_originals else None,
    )


def _to_input_boxes(boxes: np.ndarray, g: InputGeometry) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scale = np.array([g.scale_x, g.scale_y, g.scale_x, g.scale_y])
    offset = np.array([g.offset_x, g.offset_y, g.offset_x, g.offset_y])
    return b * scale - offset
