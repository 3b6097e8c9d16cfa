"""Detector backends: a :class:`Detector` turns RGB frames into :class:`Detections`.

:func:`create_detector` chooses the backend from the file: ``*.onnx`` -> onnxruntime (YOLOX or YOLOv8/11,
told apart by the output layout), ``*.pt`` -> Ultralytics (optional extra, imported lazily).

Example:
    >>> det = create_detector("yolox_nano.onnx", conf=0.3)  # doctest: +SKIP
    >>> det.class_names[39], det.detect([frame])[0].xyxy.shape  # doctest: +SKIP
    ('bottle', (3, 4))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dinoscope.errors import BackendError
from dinoscope.io.class_names import read_class_names
from dinoscope.video.detectors.base import (
    Detections,
    Detector,
    compute_nms,
    letterbox,
    resolve_classes,
)

__all__ = [
    "DETECTOR_SUFFIXES",
    "Detections",
    "Detector",
    "compute_nms",
    "create_detector",
    "letterbox",
    "resolve_classes",
]

#: Detector file suffixes and the backend that runs them.
DETECTOR_SUFFIXES = {".onnx": "onnxruntime (YOLOX, YOLOv8/11 exports)", ".pt": "ultralytics (optional extra)"}


def create_detector(
    path: str | Path,
    *,
    conf: float = 0.25,
    iou: float | None = None,
    names: Sequence[str] | str | Path | None = None,
    max_det: int = 300,
    device: str = "auto",
) -> Detector:
    """The detector for a model file, chosen by its suffix (and, for ONNX, by its output layout).

    Args:
        path: ``.onnx`` (YOLOX or YOLOv8/11 export) or ``.pt`` (Ultralytics checkpoint).
        conf: Keep boxes scoring at least this.
        iou: NMS overlap threshold (default: the family's own).
        names: Class names, or a file of them (``.txt`` one per line, or a YAML ``names:``); default: the
            model's metadata, then a names file beside it (``classes.txt``, ``coco_classes.txt``, ...).
        max_det: Most boxes per frame.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        BackendError: Unknown suffix, unreadable model or unsupported output layout.
        MissingDependencyError: onnxruntime or ultralytics is not installed (names the extra).
    """
    path = Path(path)
    if isinstance(names, (str, Path)):
        names = read_class_names(names)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from dinoscope.video.detectors.onnx import OnnxDetector

        return OnnxDetector(path, conf=conf, iou=iou, names=names, max_det=max_det, device=device)
    if suffix == ".pt":
        from dinoscope.video.detectors.ultralytics import UltralyticsDetector

        return UltralyticsDetector(path, conf=conf, iou=iou, names=names, max_det=max_det, device=device)
    known = ", ".join(f"{s} ({b})" for s, b in DETECTOR_SUFFIXES.items())
    raise BackendError(f"{path}: unknown detector file type {suffix or '(none)'!r}; supported: {known}")
