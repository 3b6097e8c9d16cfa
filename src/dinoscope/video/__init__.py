"""Videos: probing, frame sampling, detector backends and the detector-on-video pipeline.

- :mod:`dinoscope.video.frames`: probe and decode sequentially (PyAV, imported on first use);
- :mod:`dinoscope.video.detectors`: YOLOX / YOLOv8/11 ONNX and Ultralytics ``.pt`` detectors, detection files;
- :mod:`dinoscope.video.pipeline`: ``detect_video`` (one decode pass -> sampled objects and their crops) and
  ``run_video`` (the ``dinoscope video`` command). See docs/video.md.

``import dinoscope.video`` stays light: detectors, PyAV and onnxruntime load when used.

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
