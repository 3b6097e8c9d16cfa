"""Videos under a detector: detector backends, per-class sampling and the detector-on-video pass.

Decoding is not here: a video is a source like any other, probed and decoded sequentially by
:mod:`dinoscope.io.video_files` (``probe_video``, ``list_videos``) and :mod:`dinoscope.io.frames`
(``iter_frames``).

- :mod:`dinoscope.video.detectors`: YOLOX / YOLOv8/11 ONNX and Ultralytics ``.pt`` detectors, and detections
  read from files (:mod:`dinoscope.io.predictions`);
- :mod:`dinoscope.video.sampling`: near-duplicate filter and per-class reservoir sampler;
- :mod:`dinoscope.video.detect`: the single decode-and-detect pass (:mod:`dinoscope.video.detection_log` holds what
  it keeps: the detection log, the sampled crops and the resulting object table);
- :mod:`dinoscope.video.pipeline`: ``detect_video`` and ``run_video`` (the ``dinoscope video`` command).
  See docs/video.md.

``import dinoscope.video`` stays light: detectors, PyAV and onnxruntime load when used.
"""

from __future__ import annotations

__all__: list[str] = []
