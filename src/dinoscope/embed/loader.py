"""Data loading for the engine: each source decoded once, its crops cut in memory, whole batches built in
DataLoader worker processes (pinned on CUDA) so the model never waits for I/O.

Crops that a caller already holds in memory (the video pipeline cuts them from frames while it detects)
come in as :class:`MemoryCrops` and are batched straight from memory, before any file is opened; only the
rows without one go through the decoding workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dinoscope.embed.base import Backend
from dinoscope.embed.crops import cut_crops
from dinoscope.embed.runtime import decode_workers
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.errors import DinoscopeError
from dinoscope.table import ObjectTable

__all__ = ["MemoryCrops", "make_loader"]


@dataclass(frozen=True)
class MemoryCrops:
    """Model inputs already cut in memory, by table row.

    They must be cut as the engine would cut them: :func:`~dinoscope.embed.crops.cut_crops` with the run's
    crop spec and the model's input size, interpolation and mean, from the decoded source.

    Attributes:
        rows: (k,) int64 distinct table rows.
        images: (k, S, S, 3) uint8 crops, ``S`` the model's input size.

    Example:
        >>> crops = MemoryCrops(np.array([0, 2]), np.zeros((2, 32, 32, 3), np.uint8))
        >>> crops.size, len(crops)
        (32, 2)
    """

    rows: np.ndarray
    images: np.ndarray

    def __post_init__(self) -> None:
        rows = np.asarray(self.rows, dtype=np.int64).reshape(-1)
        images = np.asarray(self.images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"MemoryCrops.images must be (k, S, S, 3) uint8; got {images.dtype} {images.shape}")
        if len(rows) != len(images):
            raise ValueError(f"MemoryCrops: {len(rows)} rows for {len(images)} crops")
        if len(np.unique(rows)) != len(rows):
            raise ValueError("MemoryCrops.rows must be distinct table rows")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "images", images)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def size(self) -> int:
        """Side ``S`` of the crops."""
        return int(self.images.shape[1])

    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows held here, their crops' positions in :attr:`images`, rows not held) among ``rows``."""
        position = {int(r): i for i, r in enumerate(self.rows)}
        held = np.fromiter((r in position for r in rows.tolist()), dtype=bool, count=len(rows))
        where = np.fromiter((position[r] for r in rows[held].tolist()), dtype=np.int64, count=int(held.sum()))
        return rows[held], where, rows[~held]


def _groups(table: ObjectTable, rows: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(source, frames, rows, boxes) per source file, in path order: one decode pass per file."""
    d = table.data.iloc[rows]
    out = []
    for source, g in d.groupby("source", sort=True):  # d keeps the table's row numbers as its index
        out.append((str(source), g["frame"].to_numpy(), g.index.to_numpy(), g[["x1", "y1", "x2", "y2"]].to_numpy()))
    return out


def make_loader(
    table: ObjectTable,
    rows: np.ndarray,
    spec: ModelSpec,
    crop: CropSpec,
    batch_size: int,
    num_workers: int | None,
    device_type: str,
    crops: MemoryCrops | None = None,
    model: Backend | None = None,
) -> Any:
    """Batches of the crops of ``rows``: ``{"rows", "images", "failed_rows", "failed_reasons", "failed_sources"}``.

    Args:
        table: The object table (``source`` relative to ``table.root``).
        rows: (m,) table rows to embed.
        spec: The model spec (input size, interpolation, mean fill).
        crop: The crop policy.
        batch_size: Crops per batch.
        num_workers: Decode worker processes (default: :func:`~dinoscope.embed.runtime.decode_workers`).
        device_type: ``cuda`` pins batches.
        crops: Crops already in memory; their rows are served first, without decoding.
        model: Run this model in the workers (one thread each): batches then carry ``vectors`` (B, D) instead
            of ``images`` (the ``replicas`` split of :mod:`~dinoscope.embed.sizing`).

    Returns:
        An iterable of batch dicts with ``n_objects`` (rows it will yield) as an attribute of ``dataset``.
    """
    if crops is not None and len(crops):
        if crops.size != spec.input_size:
            raise DinoscopeError(
                f"in-memory crops are {crops.size} px but model {spec.name!r} takes {spec.input_size} px; cut them "
                "with the model's input size"
            )
        held, where, rows = crops.split(np.asarray(rows, dtype=np.int64))
        if len(held):
            rest = make_loader(table, rows, spec, crop, batch_size, num_workers, device_type) if len(rows) else None
            return _MemoryBatches(held, crops.images, where, batch_size, rest, device_type == "cuda")
    if num_workers is None:
        num_workers = decode_workers(device_type)
    stream = _CropStream(Path(table.root or "."), _groups(table, rows), spec, crop, batch_size, model)
    return torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=device_type == "cuda",
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
    )


class _MemoryBatches:
    """Batches of in-memory crops, then the batches of ``rest`` (a decoding loader) if any."""

    def __init__(
        self, rows: np.ndarray, images: np.ndarray, where: np.ndarray, batch_size: int, rest: Any, pin: bool
    ) -> None:
        self.rows, self.images, self.where, self.batch_size, self.rest, self.pin = (
            rows,
            images,
            where,
            batch_size,
            rest,
            pin,
        )
        self.n_objects = len(rows) + (rest.dataset.n_objects if rest is not None else 0)

    @property
    def dataset(self) -> _MemoryBatches:
        """Mirrors ``DataLoader.dataset`` (the engine reads ``n_objects`` from it)."""
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for start in range(0, len(self.rows), self.batch_size):
            batch = _batch(
                self.rows[start : start + self.batch_size],
                self.images[self.where[start : start + self.batch_size]],
                ([], [], []),
            )
            if self.pin:
                batch["images"] = batch["images"].pin_memory()
            yield batch
        if self.rest is not None:
            yield from self.rest


class _CropStream(torch.utils.data.IterableDataset):
    """Iterable of ready batches; each worker takes every k-th source file."""

    def __init__(
        self, root: Path, groups: list, spec: ModelSpec, crop: CropSpec, batch_size: int, model: Backend | None = None
    ) -> None:
        super().__init__()
        self.root, self.groups, self.spec, self.crop, self.batch_size = root, groups, spec, crop, batch_size
        self.model = model
        self.n_objects = sum(len(g[2]) for g in groups)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.model is None:
            yield from self._batches()
            return
        for batch in self._batches():
            images = batch.pop("images")
            batch["vectors"] = self.model.embed(images).float() if len(images) else torch.empty(0)
            yield batch

    def _batches(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        groups = self.groups[info.id :: info.num_workers] if info else self.groups
        rows: list[np.ndarray] = []
        crops: list[np.ndarray] = []
        failed: tuple[list, list, list] = ([], [], [])
        n = 0
        for source, crops_or_error, group_rows in self._decode(groups):
            if isinstance(crops_or_error, str):
                failed[0].extend(group_rows.tolist())
                failed[1].extend([crops_or_error] * len(group_rows))
                failed[2].append((source, crops_or_error))
                continue
            rows.append(group_rows)
            crops.append(crops_or_error)
            n += len(group_rows)
            while n >= self.batch_size:
                batch, rows, crops, n = _take(rows, crops, self.batch_size)
                yield _batch(*batch, failed)
                failed = ([], [], [])
        if n or failed[0]:
            yield _batch(
                np.concatenate(rows) if rows else np.empty(0, np.int64),
                np.concatenate(crops) if crops else np.empty((0, 1, 1, 3), np.uint8),
                failed,
            )

    def _decode(self, groups: list) -> Iterator[tuple[str, np.ndarray | str, np.ndarray]]:
        from dinoscope.io.images import read_image

        s = self.spec
        for source, frames, rows, boxes in groups:
            if (frames >= 0).any():
                yield from self._decode_video(source, frames, rows, boxes)
                continue
            try:
                image = read_image(self.root / source)
            except DinoscopeError as exc:
                yield source, str(exc), rows
                continue
            yield source, cut_crops(image, boxes, self.crop, s.input_size, s.interpolation, s.mean), rows

    def _decode_video(
        self, source: str, frames: np.ndarray, rows: np.ndarray, boxes: np.ndarray
    ) -> Iterator[tuple[str, np.ndarray | str, np.ndarray]]:
        from dinoscope.io.videos import iter_selected_frames

        s = self.spec
        for pos, image, error in iter_selected_frames(self.root / source, frames, np.arange(len(frames))):
            if image is None:
                yield source, error, rows[pos]
            else:
                yield source, cut_crops(image, boxes[pos], self.crop, s.input_size, s.interpolation, s.mean), rows[pos]


def _take(
    rows: list[np.ndarray], crops: list[np.ndarray], k: int
) -> tuple[tuple[np.ndarray, np.ndarray], list, list, int]:
    all_rows, all_crops = np.concatenate(rows), np.concatenate(crops)
    rest = len(all_rows) - k
    keep_rows, keep_crops = ([all_rows[k:]], [all_crops[k:]]) if rest else ([], [])
    return (all_rows[:k], all_crops[:k]), keep_rows, keep_crops, rest


def _batch(rows: np.ndarray, crops: np.ndarray, failed: tuple[list, list, list]) -> dict[str, Any]:
    return {
        "rows": torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64)),
        "images": torch.from_numpy(np.ascontiguousarray(crops)),
        "failed_rows": failed[0],
        "failed_reasons": failed[1],
        "failed_sources": failed[2],
    }
