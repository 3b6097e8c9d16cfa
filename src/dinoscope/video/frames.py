"""Video files: probing and sequential frame sampling with PyAV.

Frames are decoded straight through, never with a seek per frame: every decoder has to decode from the
previous keyframe anyway, so per-frame seeking decodes the same frames many times (8x slower in our
measurements, and inexact with OpenCV). Only the frames that are selected are converted to RGB, which is
most of the cost of a decoded frame. ``keyframes_only`` asks the decoder to skip every other frame
(``skip_frame="NONKEY"``), about 80x faster, for sampling scenes.

Frames come out upright: a display rotation stored in the file (phones write one) is applied, like the
EXIF orientation of photos in :mod:`dinoscope.io.images`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope._deps import require
from dinoscope.errors import VideoError
from dinoscope.io.images import list_files

if TYPE_CHECKING:
    import av.container
    import av.video.stream

__all__ = ["VIDEO_EXTENSIONS", "Frame", "VideoInfo", "is_video_file", "iter_frames", "list_videos", "probe_video"]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
_REENCODE = "re-encode it with: ffmpeg -i in.mp4 -c:v libx264 -pix_fmt yuv420p out.mp4"
_TIME_EPS_S = 1e-6  # float slack when comparing frame times with requested times


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (one decoded frame checks it and gives the rotation).

    Attributes:
        path: The video file.
        width: Width of the frames :func:`iter_frames` yields (after rotation), pixels.
        height: Height of those frames, pixels.
        fps: Average frame rate (0.0 when the container does not tell).
        n_frames: Number of frames; from the container when it stores it, else ``round(duration_s * fps)``.
        duration_s: Duration of the video stream in seconds (0.0 when unknown).
        codec: Decoder name, e.g. ``"h264"``.
        n_frames_exact: False when ``n_frames`` is an estimate.
        rotation_deg: Counter-clockwise rotation applied to decoded frames to make them upright.
    """

    path: Path
    width: int
    height: int
    fps: float
    n_frames: int
    duration_s: float
    codec: str
    n_frames_exact: bool = True
    rotation_deg: int = 0


@dataclass(frozen=True)
class Frame:
    """One decoded video frame.

    Attributes:
        index: 0-based position in the video in presentation order. Exact when decoding from the start;
            after a seek (``start_s > 0``) or with ``keyframes_only`` it is ``round(time_s * fps)``, exact
            for constant-frame-rate videos.
        time_s: Presentation time in seconds from the start of the stream (``pts * time_base``), or
            ``index / fps`` when the frame has no timestamp.
        image: (H, W, 3) RGB uint8, upright.
    """

    index: int
    time_s: float
    image: np.ndarray


def is_video_file(path: str | Path) -> bool:
    """True for a supported video extension, in any letter case."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_videos(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Video files under ``folder`` (hidden files and folders skipped), sorted by path.

    Args:
        folder: Folder to search; a missing folder gives an empty list.
        recursive: Also search sub-folders.

    Returns:
        Paths with an extension in :data:`VIDEO_EXTENSIONS` (any letter case).

    Example:
        >>> list_videos("datasets/videos")  # doctest: +SKIP
        [PosixPath('datasets/videos/cam1.mp4'), PosixPath('datasets/videos/cam2.MOV')]
    """
    return list_files(folder, is_video_file, recursive)


def _av() -> ModuleType:
    return require("av", "video", "decoding videos")


@contextmanager
def _open_video(path: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """Open a file and its first video stream, turning every failure into one clear :class:`VideoError`."""
    av = _av()
    if not path.is_file():
        what = "is a folder, not a video file" if path.is_dir() else "not found"
        raise VideoError(f"{path}: video file {what}; expected a video file (check the path)")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes); expected a video (copy or export it again)")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(
            f"{path}: cannot open as a video ({_reason(exc)}); expected a complete video file "
            f"({', '.join(sorted(VIDEO_EXTENSIONS))}); if the file is truncated copy it again, else {_REENCODE}"
        ) from exc
    try:
        if not container.streams.video:
            raise VideoError(
                f"{path}: contains no video stream (streams: {[s.type for s in container.streams] or 'none'}); "
                "expected a video, not an audio or data file"
            )
        yield container, container.streams.video[0]
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _fps(stream: av.video.stream.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame rate, frame count, duration and codec of a video, checked by decoding its first frame.

    Args:
        path: Video file.

    Returns:
        The :class:`VideoInfo`.

    Raises:
        VideoError: The file is missing, empty, not a video, or its first frame cannot be decoded.
        MissingDependencyError: PyAV is not installed (``pip install "dinoscope[video]"``).

    Example:
        >>> info = probe_video("bottle-detection.mp4")  # doctest: +SKIP
        >>> info.width, info.height, round(info.fps, 1), info.n_frames
        (640, 360, 29.8, 1189)
    """
    path = Path(path)
    with _open_video(path) as (container, stream):
        fps, duration_s = _fps(stream), _duration_s(container, stream)
        n_frames, exact = int(stream.frames or 0), bool(stream.frames)
        if not exact:
            n_frames = round(duration_s * fps)
        try:
            first = next(container.decode(stream), None)
        except _av().FFmpegError as exc:
            raise VideoError(f"{path}: the first frame cannot be decoded ({_reason(exc)}); {_REENCODE}") from exc
        if first is None:
            raise VideoError(f"{path}: the video stream holds no decodable frame; expected at least one frame")
        rotation = _rotation(first)
        width, height = (first.height, first.width) if rotation % 180 else (first.width, first.height)
        return VideoInfo(
            path=path,
            width=int(width),
            height=int(height),
            fps=fps,
            n_frames=n_frames,
            duration_s=duration_s,
            codec=stream.codec_context.name,
            n_frames_exact=exact,
            rotation_deg=rotation,
        )


def _rotation(frame: Any) -> int:
    """Counter-clockwise quarter turns (in degrees, 0/90/180/270) that make a decoded frame upright."""
    degrees = getattr(frame, "rotation", 0) or 0
    return round(float(degrees) / 90.0) % 4 * 90


def _check_sampling(
    stride: int, every_s: float | None, start_s: float, end_s: float | None, max_frames: int | None
) -> None:
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1; got {stride!r}")
    if every_s is not None and (every_s <= 0 or stride != 1):
        raise ValueError(f"every_s must be > 0 and cannot be combined with stride; got every_s={every_s}, {stride=}")
    if start_s < 0 or (end_s is not None and end_s <= start_s):
        raise ValueError(f"need 0 <= start_s < end_s; got start_s={start_s}, end_s={end_s}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0; got {max_frames}")


class _Selector:
    """Decides which decoded frames are kept: every ``stride``-th, or the first at/after each time step."""

    def __init__(self, stride: int, every_s: float | None, start_s: float) -> None:
        self.stride, self.every_s, self.start_s = stride, every_s, start_s
        self.n_seen = 0
        self.next_s = start_s

    def __call__(self, time_s: float) -> bool:
        if self.every_s is None:
            keep = self.n_seen % self.stride == 0
            self.n_seen += 1
            return keep
        if time_s + _TIME_EPS_S < self.next_s:
            return False
        n_steps = math.floor((time_s - self.start_s + _TIME_EPS_S) / self.every_s) + 1
        self.next_s = self.start_s + n_steps * self.every_s
        return True


def iter_frames(
    path: str | Path,
    *,
    stride: int = 1,
    every_s: float | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_frames: int | None = None,
    keyframes_only: bool = False,
) -> Iterator[Frame]:
    """Decode a video straight through and yield the selected frames as upright RGB arrays.

    Selection, among the frames with ``start_s <= time_s < end_s``: every ``stride``-th frame counting
    from the first one, or (``every_s``) the first frame at or after each time ``start_s + k * every_s``
    (a time step without a frame of its own is covered by the next frame, which is yielded once). With
    ``keyframes_only`` only keyframes are decoded and the selection applies to them.

    The file is read once, sequentially; when ``start_s > 0`` there is one seek to the keyframe before it.
    A decoding error midway logs a warning naming the frame and ends the iteration, keeping the frames
    decoded before it.

    Args:
        path: Video file.
        stride: Keep every ``stride``-th frame (1 = all).
        every_s: Keep one frame per this many seconds instead (exclusive with ``stride``).
        start_s: First time to consider, seconds.
        end_s: Stop before this time, seconds (None = end of the video).
        max_frames: Stop after yielding this many frames.
        keyframes_only: Decode keyframes only (fast scene sampling; indices come from timestamps).

    Returns:
        An iterator of :class:`Frame` in presentation order, ``image`` of shape (H, W, 3) uint8. The file
        is opened on the first ``next`` and closed when the iterator ends or is closed.

    Raises:
        ValueError: An invalid sampling argument (raised by the call itself).
        VideoError: On iteration: the file is missing, empty, not a video, or no frame can be decoded.

    Example:
        >>> for frame in iter_frames("bottle-detection.mp4", every_s=10):  # doctest: +SKIP
        ...     print(frame.index, round(frame.time_s, 2), frame.image.shape)
        0 0.0 (360, 640, 3)
        299 10.02 (360, 640, 3)
    """
    _check_sampling(stride, every_s, start_s, end_s, max_frames)
    return _frames(Path(path), _Selector(stride, every_s, start_s), start_s, end_s, max_frames, keyframes_only)


def _frames(
    path: Path, select: _Selector, start_s: float, end_s: float | None, max_frames: int | None, keyframes_only: bool
) -> Iterator[Frame]:
    """The generator behind :func:`iter_frames` (which checks its arguments before the first ``next``)."""
    if max_frames == 0:
        return
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        fps, origin, time_base = _fps(stream), stream.start_time or 0, stream.time_base
        exact_index = not keyframes_only and not (start_s > 0 and _seek(container, stream, start_s, origin))
        n_yielded, n_decoded, failed = 0, 0, []
        for n_decoded, av_frame in enumerate(_decode(path, container, stream, failed), start=1):
            if av_frame.pts is not None and time_base:
                time_s = float((av_frame.pts - origin) * time_base)
            else:
                time_s = (n_decoded - 1) / fps if fps else 0.0
            if time_s + _TIME_EPS_S < start_s:
                continue
            if end_s is not None and time_s + _TIME_EPS_S >= end_s:
                return
            if not select(time_s):
                continue
            index = n_decoded - 1 if exact_index or not fps else round(time_s * fps)
            yield Frame(index=index, time_s=time_s, image=_to_rgb(av_frame))
            n_yielded += 1
            if max_frames is not None and n_yielded >= max_frames:
                return
        n_listed = int(stream.frames or 0)
        if exact_index and not failed and n_listed and n_decoded < n_listed - max(2, n_listed // 100):
            logger.warning(
                "%s: decoding ended after %d of the %d frames the container lists; the file may be truncated "
                "(copy it again) or damaged (%s)",
                path,
                n_decoded,
                n_listed,
                _REENCODE,
            )


def _seek(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start_s: float, origin: int
) -> bool:
    """Seek to the keyframe at or before ``start_s``; False (decode from the start) if the file cannot seek."""
    av = _av()
    try:
        container.seek(origin + int(start_s / stream.time_base), stream=stream, backward=True, any_frame=False)
    except (av.FFmpegError, OverflowError, ValueError) as exc:
        logger.debug("%s: seek to %.3f s failed (%s); decoding from the start", container.name, start_s, exc)
        try:
            container.seek(0)  # back to the first packet; frames before start_s are skipped while decoding
        except av.FFmpegError as exc2:
            raise VideoError(f"{container.name}: cannot seek ({_reason(exc2)}); {_REENCODE}") from exc2
        return False
    return True


def _decode(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream, failed: list[str]
) -> Iterator[Any]:
    """The stream's decoded frames; a decoding error ends them with a warning (or an error before any frame).

    Frames are counted from where decoding started (the start of the file unless ``iter_frames`` seeked);
    the reason of a failure is appended to ``failed``.
    """
    av = _av()
    frames = container.decode(stream)
    n_decoded, last_s = 0, 0.0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except (av.FFmpegError, EOFError) as exc:
            failed.append(_reason(exc))
            if n_decoded == 0:
                raise VideoError(f"{path}: no frame can be decoded ({_reason(exc)}); {_REENCODE}") from exc
            logger.warning(
                "%s: decoding stopped at frame %d, after %.2f s (%s); the frames before it were used. The file "
                "may be truncated or damaged: copy it again, or %s",
                path,
                n_decoded,
                last_s,
                _reason(exc),
                _REENCODE,
            )
            return
        n_decoded += 1
        last_s = float(frame.time or 0.0)
        yield frame


def _to_rgb(av_frame: Any) -> np.ndarray:
    image = av_frame.to_ndarray(format="rgb24")
    rotation = _rotation(av_frame)
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
    return image
