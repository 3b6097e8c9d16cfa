"""Detections brought from elsewhere (``--detections FILE``), looked up frame by frame like a detector's output.

The files are read by :func:`dinoscope.io.predictions.read_predictions` (per-frame YOLO txt files or a COCO
results JSON; the layouts are described there and in docs/video.md); this module only hands each frame's
boxes to the detection pass as :class:`~dinoscope.video.detectors.base.Detections`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dinoscope.io.predictions import Predictions, read_predictions
from dinoscope.video.detectors.base import Detections

__all__ = ["DetectionFile", "read_detection_file"]


class DetectionFile:
    """Detections looked up by source (video or image) and frame.

    Args:
        predictions: What :func:`~dinoscope.io.predictions.read_predictions` read.

    Attributes:
        predictions: The predictions.
        class_names: Names indexed by class id.
    """

    def __init__(self, predictions: Predictions) -> None:
        self.predictions = predictions
        self.class_names = predictions.class_names

    @property
    def description(self) -> dict[str, Any]:
        """Provenance for ``run.yaml``."""
        return self.predictions.description

    def lookup(self, stem: str, frame: int, width: int, height: int, single: bool) -> Detections:
        """Detections of one frame (``frame = -1`` for an image), boxes in pixels clipped to the frame."""
        return Detections(*self.predictions.boxes_of(stem, frame, width, height, single))


def read_detection_file(path: str | Path, names: Sequence[str] | None = None) -> DetectionFile:
    """Read a folder of YOLO txt files or a COCO results JSON as a detector's per-frame output.

    Args:
        path: A folder of ``.txt`` files or a ``.json`` file.
        names: Class names (overrides names found beside the detections; not the JSON's categories).

    Raises:
        DatasetFormatError: Missing path, unreadable JSON or an entry without a usable box.

    Example:
        >>> dets = read_detection_file("runs/detect/predict/labels")  # doctest: +SKIP
        >>> dets.lookup("cam1", 0, 640, 360, single=True).xyxy.shape  # doctest: +SKIP
        (2, 4)
    """
    return DetectionFile(read_predictions(path, names))
