"""Videos as sources: sampled frames as whole-frame objects, selected frames decoded in one pass, and the
videos and images under a path.

``read_video_frames`` plans which frames to take from each video's header (frame count and rate, no
decoding beyond the first frame that :func:`~dinoscope.io.video_files.probe_video` checks), so building the
table is instant; the frames are decoded later, sequentially and once, by whatever reads them (the
embedding engine, the quality measures, the report's thumbnails). ``list_sources`` finds what a detector
runs over (``dinoscope video``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from dinoscope.errors import DatasetFormatError, DinoscopeError, VideoError
from dinoscope.io.frames import iter_frames
from dinoscope.io.images import hash_file, is_image_file, list_images
from dinoscope.io.video_files import is_video_file, list_videos, probe_video
from dinoscope.table import ObjectTable, compute_object_ids
from dinoscope.types import Finding

__all__ = ["DEFAULT_EVERY_S", "iter_selected_frames", "list_sources", "plan_frames", "read_video_frames"]

logger = logging.getLogger(__name__)

#: Default sampling of unlabelled video: one frame per this many seconds.
DEFAULT_EVERY_S = 1.0


def plan_frames(
    n_frames: int, fps: float, *, stride: int | None = None, every_s: float | None = None, max_frames: int | None = None
) -> np.ndarray:
    """Frame indices to take: every ``stride``-th frame, or one per ``every_s`` seconds (default 1 s).

    With ``max_frames`` the selection is thinned evenly over the whole video (not cut at the start).

    Example:
        >>> plan_frames(100, 10.0, every_s=2.0).tolist()
        [0, 20, 40, 60, 80]
        >>> plan_frames(100, 10.0, stride=10, max_frames=3).tolist()
        [0, 40, 90]
    """
    if stride is not None and every_s is not None:
        raise ValueError("give stride or every_s, not both")
    if stride is not None and stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if stride is None:
        step_s = DEFAULT_EVERY_S if every_s is None else float(every_s)
        if step_s <= 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        stride = max(1, round(step_s * fps)) if fps > 0 else 1
    frames = np.arange(0, n_frames, stride, dtype=np.int64)
    if max_frames is not None and len(frames) > max_frames:
        pick = np.unique(np.round(np.linspace(0, len(frames) - 1, max(1, max_frames))).astype(np.int64))
        frames = frames[pick]
    return frames


def read_video_frames(
    path: str | Path,
    *,
    stride: int | None = None,
    every_s: float | None = None,
    max_frames: int | None = None,
) -> ObjectTable:
    """One whole-frame object (origin ``image``, unlabelled) per sampled frame of a video or folder of videos.

    Args:
        path: A video file, or a folder searched recursively for videos.
        stride: Take every ``stride``-th frame ...
        every_s: ... or one frame per ``every_s`` seconds (default :data:`DEFAULT_EVERY_S`).
        max_frames: At most this many frames per video, spread evenly over it.

    Returns:
        An :class:`ObjectTable` (root = the folder, or the video's folder) with ``frame`` and ``time_s``
        columns; unreadable videos are reader findings (``unreadable_video``) and the others go on.

    Raises:
        DatasetFormatError: No video there, or none of them can be read (each one's reason is named).

    Example:
        >>> table = read_video_frames("line-camera.mp4", every_s=2)  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if path.is_file():
        if not is_video_file(path):
            raise DatasetFormatError(f"{path}: not a video file (expected one of .mp4, .avi, .mov, .mkv, ...)")
        root, videos = path.parent, [path]
    else:
        root, videos = path, list_videos(path)
        if not videos:
            raise DatasetFormatError(f"{path}: no video file found (searched recursively)")
    rows: list[pd.DataFrame] = []
    images: list[dict[str, object]] = []
    findings: list[Finding] = []
    for video in videos:
        source = video.relative_to(root).as_posix()
        try:
            info = probe_video(video)
        except VideoError as exc:
            findings.append(Finding("unreadable_video", str(exc), file=source))
            logger.warning("%s", exc)
            continue
        frames = plan_frames(info.n_frames, info.fps, stride=stride, every_s=every_s, max_frames=max_frames)
        digest = hash_file(video)
        n = len(frames)
        rows.append(
            pd.DataFrame(
                {
                    "source": source,
                    "frame": frames,
                    "split": "",
                    "class_id": -1,
                    "class_name": "",
                    "x1": 0.0,
                    "y1": 0.0,
                    "x2": float(info.width),
                    "y2": float(info.height),
                    "image_w": info.width,
                    "image_h": info.height,
                    "origin": "image",
                    "confidence": np.nan,
                    "label_ref": "",
                    "content_hash": digest,
                    "time_s": frames / info.fps if info.fps > 0 else np.nan,
                }
            )
        )
        images.append(
            {
                "source": source,
                "split": "",
                "width": info.width,
                "height": info.height,
                "content_hash": digest,
                "label_file": "",
                "n_objects": n,
                "error": "",
            }
        )
    if not rows:
        reasons = "; ".join(f.message for f in findings)
        raise DatasetFormatError(f"{path}: no readable video ({reasons})")
    data = pd.concat(rows, ignore_index=True)
    xyxy = data[["x1", "y1", "x2", "y2"]].to_numpy()
    data.insert(0, "object_id", compute_object_ids(data["content_hash"], data["frame"], xyxy, data["class_id"]))
    return ObjectTable(
        data=data,
        class_names=(),
        images=pd.DataFrame(images),
        root=root,
        format="video",
        findings=tuple(findings),
    )


def iter_selected_frames(
    path: str | Path, frames: np.ndarray, rows: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray | None, str]]:
    """Decode a video once, front to back, and yield ``(rows, image, "")`` for each frame in ``frames``.

    Args:
        path: Video file.
        frames: (N,) frame index of each row (repeats allowed: several objects of one frame).
        rows: (N,) the caller's row numbers, returned grouped by frame.

    Yields:
        ``(rows of that frame, (H, W, 3) RGB uint8, "")``; when the video cannot be read, or ends before
        some frames, one last ``(the rows left, None, reason)``. Decoding stops after the last wanted frame.
    """
    frames, rows = np.asarray(frames), np.asarray(rows)
    if not len(frames):
        return
    wanted, last = {int(f) for f in frames}, int(frames.max())
    try:
        for frame in iter_frames(path):
            if frame.index in wanted:
                yield rows[frames == frame.index], frame.image, ""
                wanted.discard(frame.index)
            if frame.index >= last:
                break
    except DinoscopeError as exc:
        yield rows[np.isin(frames, list(wanted))], None, str(exc)
        return
    if wanted:
        yield rows[np.isin(frames, list(wanted))], None, f"{path}: frame(s) {sorted(wanted)[:5]} not in the video"


def list_sources(path: str | Path, exclude: Path | None = None) -> tuple[Path, list[Path], list[Path]]:
    """(root, videos, images) for a video file, an image file or a folder (searched recursively).

    Args:
        path: The video, image or folder.
        exclude: A folder whose files are left out (the run directory, when it lies inside ``path``).

    Returns:
        The root that sources are recorded relative to (the folder, or the file's folder), then the videos
        and the images, each sorted by path.

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
