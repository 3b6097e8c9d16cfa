"""Where the frames come from: the sources of a run, file hashes, and frame batches decoded ahead in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Full, Queue
from typing import Any

from dinoscope.errors import DatasetFormatError
from dinoscope.io.images import hash_file, is_image_file, list_images
from dinoscope.video.frames import is_video_file, list_videos

__all__ = ["batched", "hash_file", "list_sources", "prefetch"]


def list_sources(path: str | Path, exclude: Path | None = None) -> tuple[Path, list[Path], list[Path]]:
    """(root, videos, images) for a video file, an image file or a folder (searched recursively).

    Args:
        path: The video, image or folder.
        exclude: A folder whose files are left out (the run directory, when it lies inside ``path``).

    Raises:
        DatasetFormatError: The path is missing or holds neither a video nor an image.
    """
    path = Path(path)
    if path.is_file():
        if is_video_file(path):
            return path.parent, [path], []
        if is_image_file(path):
            return path.parent, [], [path]
        raise DatasetFormatError(f"{path}: not a video or image file (by its extension); expected e.g. an .mp4")
    if not path.is_dir():
        raise DatasetFormatError(f"{path}: no such file or folder; expected a video, a folder of videos or images")
    videos, images = list_videos(path), list_images(path)
    if exclude is not None:
        skip = exclude.resolve()
        videos = [v for v in videos if skip not in v.resolve().parents]
        images = [i for i in images if skip not in i.resolve().parents]
    if not videos and not images:
        raise DatasetFormatError(f"{path}: no video or image found (searched recursively); check the folder")
    return path, videos, images


def prefetch(batches: Iterator[list[Any]], depth: int = 1) -> Iterator[list[Any]]:
    """Decode the next batches in a thread while the detector works on the current one.

    PyAV releases the GIL while decoding, so decoding overlaps inference; at most ``depth`` batches wait
    (bounded memory). An exception in the decoder (:class:`VideoError`) is raised here, in order; closing
    this generator stops the thread after its current batch.
    """
    done = object()
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="dinoscope-decode", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting on a full queue
            queue.get_nowait()
        thread.join()


def batched(frames: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
