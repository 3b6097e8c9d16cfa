"""Video files: finding them, opening them with PyAV and probing their size, rate, length and rotation.

PyAV is imported on first use (``pip install "dinoscope[video]"``). Every way a file can fail to open (missing,
empty, truncated, not a video, audio only) becomes one :class:`~dinoscope.errors.VideoError` naming the file
and the fix. Frames are decoded by :mod:`dinoscope.io.frames`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dinoscope._deps import require
from dinoscope.errors import VideoError
from dinoscope.io.images import list_files

if TYPE_CHECKING:
    import av.container
    import av.video.stream

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "is_video_file", "list_videos", "probe_video"]

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
_REENCODE = "re-encode it with: ffmpeg -i in.mp4 -c:v libx264 -pix_fmt yuv420p out.mp4"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (one decoded frame checks it and gives the rotation).

    Attributes:
        path: The video file.
        width: Width of the frames :func:`~dinoscope.io.frames.iter_frames` yields (after rotation), pixels.
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
