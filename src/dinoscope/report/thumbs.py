"""Every image the report needs, made in one pass that decodes each source once.

For each source file (or video, decoded straight through to its last needed frame, never seeking per frame)
one task cuts everything the report wants from it: the thumbnails of its objects, larger crops for the
slide montages, crops for ``--export-samples`` and one downscaled copy of the image for the object inspector.
Tasks run in threads (Pillow and PyAV release the GIL while decoding, resizing and encoding).

Thumbnails are packed into WebP sheets (``thumbs/c<class>-<k>.webp``, 8 x 8 cells of 96 px), one series per
class, so a 40 k-thumbnail report ships a few hundred files instead of 40 k; cells are assigned in the order
the sources are processed (sources of featured objects first), so a sheet is written and freed as soon as
its last source is done, and a class page first loads only its first sheets.
"""

from __future__ import annotations

import io
import logging
import os
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from dinoscope.errors import DinoscopeError
from dinoscope.progress import ProgressBar

__all__ = ["CELL", "GRID", "ImageJobs", "ThumbResult", "make_images", "sheet_name"]

logger = logging.getLogger(__name__)

#: Side of a thumbnail cell in pixels, and cells per sheet row/column.
CELL = 96
GRID = 8
#: Long side of the inspector's source images, of the montage crops and of exported sample crops.
CONTEXT_PX = 384
MONTAGE_PX = 160
SAMPLE_PX = 320
_WEBP_QUALITY = 76
_WEBP_METHOD = 2  # encoder effort 0-6: 2 is ~3x faster than 4 for ~3% larger sheets
_JPEG_QUALITY = 66
_BACKGROUND = (236, 239, 243)
_MAX_UPSCALE = 4.0


def sheet_name(cls: int, sheet: int) -> str:
    """File name of a class's thumbnail sheet, relative to the report folder."""
    return f"thumbs/c{cls:03d}-{sheet:03d}.webp"


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
    sheets = _SheetWriter(out, jobs, order)
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
        yield from map(_render_source, tasks)
        return
    window = 4 * n_workers
    with ThreadPoolExecutor(n_workers, thread_name_prefix="dinoscope-report") as pool:
        pending: deque[Future[dict[str, Any]]] = deque()
        for task in tasks:
            pending.append(pool.submit(_render_source, task))
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


def _render_source(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: decode one source once and cut every image asked of it."""
    done: dict[str, Any] = {"thumbs": [], "montage": {}, "failed": [], "error": None}
    items = task["items"]
    if task["path"] is None:
        done["failed"] = [it["row"] for it in items if it["thumb"]]
        return done
    try:
        for frame, image in _decoded(task):
            for it in (it for it in items if it["frame"] == frame):
                _cut(image, it, done)
            if frame in task["context"]:
                _save_context(image, Path(task["context"][frame]))
    except (DinoscopeError, OSError, ValueError) as exc:
        done["error"] = f"{task['path']}: {exc}"
    got = {row for row, _ in done["thumbs"]}
    done["failed"] = [it["row"] for it in items if it["thumb"] and it["row"] not in got]
    return done


def _decoded(task: dict[str, Any]) -> Iterator[tuple[int, np.ndarray]]:
    """(frame, RGB image) for each frame the task needs: one decode of a still, one pass through a video."""
    path, items = Path(task["path"]), task["items"]
    frames = sorted({it["frame"] for it in items})
    if frames == [-1]:
        from dinoscope.io.images import read_image

        yield -1, read_image(path, max_side=_needed_side(items, bool(task["context"])))
        return
    from dinoscope.io.frames import iter_frames

    wanted, last = set(frames), max(frames)
    for frame in iter_frames(path):
        if frame.index in wanted:
            yield frame.index, frame.image
        if frame.index >= last:
            return


def _needed_side(items: list[dict[str, Any]], context: bool) -> int:
    """The decoded long side that still gives every crop its full output size (JPEG draft decoding)."""
    w, h = items[0]["wh"]
    long_side = max(w, h, 1)
    scale = CONTEXT_PX / long_side if context else 0.0
    for it in items:
        x1, y1, x2, y2 = it["box"]
        box = max(x2 - x1, y2 - y1, 1.0)
        want = SAMPLE_PX if it["sample"] else MONTAGE_PX if it["montage"] else CELL
        scale = max(scale, want / box)
    return int(min(1.0, scale) * long_side) + 1


def _crop(image: np.ndarray, it: dict[str, Any], margin: float = 0.0) -> Image.Image:
    """The object's box (plus ``margin`` of its size) cut from a possibly downscaled decode."""
    h, w = image.shape[:2]
    iw, ih = it["wh"]
    sx, sy = w / max(iw, 1), h / max(ih, 1)
    x1, y1, x2, y2 = it["box"]
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int((x1 - mx) * sx)), max(0, int((y1 - my) * sy))
    right, bottom = (
        min(w, max(left + 1, int(np.ceil((x2 + mx) * sx)))),
        min(h, max(top + 1, int(np.ceil((y2 + my) * sy)))),
    )
    return Image.fromarray(image[top:bottom, left:right])


def _fit(crop: Image.Image, side: int) -> Image.Image:
    scale = min(side / max(crop.size), _MAX_UPSCALE)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    if scale >= 1:  # small boxes: a smooth enlargement, never more than _MAX_UPSCALE
        return crop.resize(size, Image.Resampling.BILINEAR)
    return crop.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0 if scale < 0.5 else None)


def _cut(image: np.ndarray, it: dict[str, Any], done: dict[str, Any]) -> None:
    crop = _crop(image, it)
    if it["thumb"]:
        cell = Image.new("RGB", (CELL, CELL), _BACKGROUND)
        small = _fit(crop, CELL)
        cell.paste(small, ((CELL - small.width) // 2, (CELL - small.height) // 2))
        done["thumbs"].append((it["row"], np.asarray(cell)))
    if it["montage"]:
        buf = io.BytesIO()
        _fit(crop, MONTAGE_PX).save(buf, "PNG", compress_level=1)
        done["montage"][it["row"]] = buf.getvalue()
    if it["sample"]:
        sample = _fit(_crop(image, it, margin=0.1), SAMPLE_PX)
        for name in it["sample"]:
            path = Path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            sample.save(path, "JPEG", quality=90)


def _save_context(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pic = Image.fromarray(image)
    if max(pic.size) > CONTEXT_PX:
        pic.thumbnail((CONTEXT_PX, CONTEXT_PX), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pic.save(path, "JPEG", quality=_JPEG_QUALITY, optimize=True)


class _SheetWriter:
    """Cells assigned in processing order per class; a sheet is encoded once its last cell has arrived."""

    def __init__(self, out: Path, jobs: ImageJobs, order: Iterable[int]) -> None:
        self.out = out
        self.encoder = ThreadPoolExecutor(1, thread_name_prefix="dinoscope-sheets")
        self.written: list[Future[None]] = []
        self.cell: dict[int, tuple[int, int]] = {}
        owner = {int(r): c for c, rows in jobs.thumbs.items() for r in rows.tolist()}
        counts: dict[int, int] = defaultdict(int)
        for row in order:
            c = owner[row]
            self.cell[row] = (c, counts[c])
            counts[c] += 1
        per = GRID * GRID
        self.pending: dict[tuple[int, int], int] = defaultdict(int)
        for c, i in self.cell.values():
            self.pending[(c, i // per)] += 1
        self.canvas: dict[tuple[int, int], np.ndarray] = {}
        self.icon_row = {row: c for c, row in jobs.icons.items() if row in self.cell}
        self.icon_cells = {c: i for i, c in enumerate(sorted(self.icon_row.values()))}
        self.icons = _blank_sheet(max(1, len(self.icon_cells))) if self.icon_cells else None

    def put(self, row: int, thumb: np.ndarray | None) -> None:
        c, i = self.cell[row]
        key = (c, i // (GRID * GRID))
        if thumb is not None:
            canvas = self.canvas.get(key)
            if canvas is None:
                canvas = self.canvas[key] = _blank_sheet(GRID * GRID)
            _paste(canvas, i % (GRID * GRID), thumb)
            if row in self.icon_row and self.icons is not None:
                _paste(self.icons, self.icon_cells[self.icon_row[row]], thumb)
        self.pending[key] -= 1
        if self.pending[key] == 0:
            self._flush(key)

    def _flush(self, key: tuple[int, int]) -> None:
        canvas = self.canvas.pop(key, None)
        sheet = canvas if canvas is not None else _blank_sheet(GRID * GRID)
        self.written.append(self.encoder.submit(_write_sheet, sheet, self.out / sheet_name(*key)))
        if len(self.written) > 8:  # bound the sheets waiting for the encoder
            self.written.pop(0).result()

    def finish(self) -> None:
        """Write the sheets still open (rows never processed) and the class icons; wait for the encoder."""
        for key in [k for k, n in self.pending.items() if n > 0]:
            self.pending[key] = 0
            self._flush(key)
        if self.icons is not None:
            self.written.append(self.encoder.submit(_write_sheet, self.icons, self.out / "thumbs" / "classes.webp"))
        for done in self.written:
            done.result()
        self.encoder.shutdown()


def _blank_sheet(n_cells: int) -> np.ndarray:
    rows = -(-n_cells // GRID)
    sheet = np.empty((rows * CELL, GRID * CELL, 3), np.uint8)
    sheet[:] = _BACKGROUND
    return sheet


def _paste(sheet: np.ndarray, i: int, thumb: np.ndarray) -> None:
    r, c = divmod(i, GRID)
    sheet[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = thumb


def _write_sheet(sheet: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path, "WEBP", quality=_WEBP_QUALITY, method=_WEBP_METHOD)
