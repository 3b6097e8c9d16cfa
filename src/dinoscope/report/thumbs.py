"""Every image the report needs, made in one pass that decodes each source once.

This module plans the work: one task per source file (or video), sources of featured objects first, and
runs the tasks in threads (Pillow and PyAV release the GIL while decoding, resizing and encoding). Each task
(:func:`~dinoscope.report.thumb_render.render_source`) cuts everything the report wants from its source: the
thumbnails of its objects, larger crops for the slide montages, crops for ``--export-samples`` and one
downscaled copy of the image for the object inspector.

Thumbnails are packed into WebP sheets (:mod:`~dinoscope.report.thumb_sheets`, 8 x 8 cells of 96 px), one
series per class, so a 40 k-thumbnail report ships a few hundred files instead of 40 k; cells are assigned in
the order the sources are processed, so a sheet is written and freed as soon as its last source is done, and a
class page first loads only its first sheets.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.progress import ProgressBar
from dinoscope.report.thumb_render import render_source
from dinoscope.report.thumb_sheets import SheetWriter

__all__ = ["ImageJobs", "ThumbResult", "make_images"]

logger = logging.getLogger(__name__)


@dataclass
class ImageJobs:
    """What to cut from which rows (positions in ``RunData.objects``).

    Attributes:
        thumbs: {class index: rows with a thumbnail}.
        montage: Rows cut at ``MONTAGE_PX`` for the slide montages.
        context: Rows whose source image is shipped downscaled (one file per source and frame).
        samples: {row: paths} crops written for ``--export-samples``.
        icons: {class index: row} thumbnails also copied to the class icon sheet.
    """

    thumbs: dict[int, np.ndarray]
    montage: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    context: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    samples: dict[int, list[Path]] = field(default_factory=dict)
    icons: dict[int, int] = field(default_factory=dict)


@dataclass
class ThumbResult:
    """Where each image went.

    Attributes:
        cell: {row: (class, cell index)}; the sheet is ``cell // GRID**2``.
        failed: Rows whose source could not be read (their cell is left blank).
        context: {row: path of its downscaled source image, relative to the report folder}.
        montage: {row: PNG bytes of a ``MONTAGE_PX`` crop}.
        icons: {class: icon cell} in ``thumbs/classes.webp``.
        n_sources: Source files decoded.
        errors: First read errors (file: reason).
    """

    cell: dict[int, tuple[int, int]] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    context: dict[int, str] = field(default_factory=dict)
    montage: dict[int, bytes] = field(default_factory=dict)
    icons: dict[int, int] = field(default_factory=dict)
    n_sources: int = 0
    errors: list[str] = field(default_factory=list)


def make_images(
    objects: pd.DataFrame,
    jobs: ImageJobs,
    root: Path | None,
    out: Path,
    *,
    max_context: int = 1_500,
    workers: int | None = None,
) -> ThumbResult:
    """Decode each needed source once and write thumbnail sheets, context images and sample crops.

    Args:
        objects: ``RunData.objects`` (``source``, ``frame``, box and image size columns).
        jobs: What to cut.
        root: The dataset folder (None: images are missing; every cell stays blank).
        out: The report folder being built.
        max_context: At most this many context images (one per source and frame).
        workers: Decoding threads (default: up to 4 when more than 50 sources; 0 = in the calling thread).

    Returns:
        A :class:`ThumbResult`.
    """
    result = ThumbResult()
    tasks, order = _tasks(objects, jobs, root, out, max_context, result)
    sheets = SheetWriter(out, jobs.thumbs, jobs.icons, order)
    (out / "thumbs").mkdir(parents=True, exist_ok=True)
    n_workers = _n_workers(workers, len(tasks))
    with ProgressBar(len(tasks), "report images", "src") as bar:
        for done in _run(tasks, n_workers):
            result.n_sources += 1
            if done["error"] and len(result.errors) < 5:
                result.errors.append(done["error"])
            for row, thumb in done["thumbs"]:
                sheets.put(row, thumb)
            for row in done["failed"]:
                result.failed.add(row)
                sheets.put(row, None)
            result.montage.update(done["montage"])
            bar.advance()
    sheets.finish()
    result.cell, result.icons = sheets.cell, sheets.icon_cells
    written = {rel for rel in set(result.context.values()) if (out / rel).is_file()}
    result.context = {row: rel for row, rel in result.context.items() if rel in written}
    if result.errors:
        logger.warning(
            "report: %d objects have no thumbnail because their source could not be read (first: %s)",
            len(result.failed),
            result.errors[0],
        )
    return result


def _n_workers(workers: int | None, n_tasks: int) -> int:
    if workers is not None:
        return max(0, workers)
    return min(4, os.cpu_count() or 1) if n_tasks > 50 else 0


def _run(tasks: list[dict[str, Any]], n_workers: int) -> Iterator[dict[str, Any]]:
    """Task results in task order. Decoding, resizing and encoding in Pillow and PyAV release the GIL, so
    threads use every core without pickling images between processes; at most ``4 * n_workers`` tasks run
    ahead of the consumer, which bounds memory."""
    if n_workers <= 1:
        yield from map(render_source, tasks)
        return
    window = 4 * n_workers
    with ThreadPoolExecutor(n_workers, thread_name_prefix="dinoscope-report") as pool:
        pending: deque[Future[dict[str, Any]]] = deque()
        for task in tasks:
            pending.append(pool.submit(render_source, task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _tasks(
    objects: pd.DataFrame, jobs: ImageJobs, root: Path | None, out: Path, max_context: int, result: ThumbResult
) -> tuple[list[dict[str, Any]], list[int]]:
    """One task per source file; sources of featured (context) rows first. Returns tasks and row order."""
    want_thumb = np.concatenate([np.empty(0, np.int64), *jobs.thumbs.values()])
    rows = np.unique(np.concatenate([want_thumb, jobs.montage, jobs.context, list(jobs.samples)]).astype(np.int64))
    montage = set(jobs.montage.tolist())
    thumbed = set(want_thumb.tolist())
    ctx_files: dict[tuple[str, int], str] = {}
    for row in jobs.context.tolist():  # featured order: the context budget goes to the first listed
        key = (str(objects["source"].iat[row]), int(objects["frame"].iat[row]))
        if key not in ctx_files and len(ctx_files) < max_context:
            ctx_files[key] = f"images/{len(ctx_files):05d}.jpg"
        if key in ctx_files:
            result.context[row] = ctx_files[key]
    first = set(objects["source"].iloc[jobs.context].tolist()) if len(jobs.context) else set()
    source = objects["source"].to_numpy()[rows].astype(str)
    frame = objects["frame"].to_numpy()[rows].astype(int)
    box = objects[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float)[rows]
    wh = objects[["image_w", "image_h"]].to_numpy(dtype=int)[rows]
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(source.tolist()):
        by_source[s].append(i)
    tasks, order = [], []
    for src in sorted(by_source, key=lambda s: (s not in first, s)):
        items = []
        for i in by_source[src]:
            row = int(rows[i])
            items.append(
                {
                    "row": row,
                    "frame": int(frame[i]),
                    "box": tuple(box[i].tolist()),
                    "wh": tuple(wh[i].tolist()),
                    "thumb": row in thumbed,
                    "montage": row in montage,
                    "sample": [str(p) for p in jobs.samples[row]] if row in jobs.samples else None,
                }
            )
            if row in thumbed:
                order.append(row)
        frames = sorted({it["frame"] for it in items})
        ctx = {f: str(out / ctx_files[(src, f)]) for f in frames if (src, f) in ctx_files}
        tasks.append({"path": str(root / src) if root else None, "items": items, "context": ctx})
    return tasks, order
