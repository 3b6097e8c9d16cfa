"""Videos: probing, frame sampling and (later) detector backends.

PyAV is imported on first use, so ``import dinoscope.video`` stays light.

Example:
    >>> from dinoscope.video import iter_frames
    >>> frames = list(iter_frames("clip.mp4", every_s=1.0))  # doctest: +SKIP
"""

from __future__ import annotations

from dinoscope.video.frames import (
    VIDEO_EXTENSIONS,
    Frame,
    VideoInfo,
    is_video_file,
    iter_frames,
    list_videos,
    probe_video,
)

__all__ = ["VIDEO_EXTENSIONS", "Frame", "VideoInfo", "is_video_file", "iter_frames", "list_videos", "probe_video"]
