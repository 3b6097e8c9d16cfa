"""Ultralytics ``.pt`` detectors (YOLOv5u/8/11 and later), through the optional ``ultralytics`` package.

Ultralytics is AGPL-3.0, so it is an optional extra imported only when a ``.pt`` file is given; exporting the
model to ONNX (``yolo export model=best.pt format=onnx``) runs it without that dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dinoscope._deps import require
from dinoscope.errors import BackendError
from dinoscope.video.detectors.base import Detections, check_names

__all__ = ["UltralyticsDetector"]

_ALTERNATIVE = "export the model to ONNX with `yolo export model=best.pt format=onnx` and pass the .onnx file"


class UltralyticsDetector:
    """A ``.pt`` model run by ``ultralytics.YOLO`` (its own letterbox and NMS).

    Args:
        path: The ``.pt`` file.
        conf: Keep boxes scoring at least this.
        iou: NMS overlap threshold (default: Ultralytics' 0.7).
        names: Class names overriding the checkpoint's.
        max_det: Most boxes per frame.
        device: ``auto`` (Ultralytics chooses), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Example:
        >>> det = UltralyticsDetector("best.pt")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        conf: float = 0.25,
        iou: float | None = None,
        names: Sequence[str] | None = None,
        max_det: int = 300,
        device: str = "auto",
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"{self.path}: detector file not found; pass the path of an .onnx or .pt model")
        ul = require("ultralytics", "ultralytics", "running Ultralytics .pt detectors", alternative=_ALTERNATIVE)
        try:
            self._model = ul.YOLO(str(self.path))
        except Exception as exc:  # ultralytics raises many types on a bad checkpoint
            raise BackendError(f"{self.path}: Ultralytics cannot load this checkpoint ({exc}); {_ALTERNATIVE}") from exc
        own = self._model.names
        own_names = tuple(str(own[i]) for i in sorted(own)) if isinstance(own, dict) else tuple(own)
        self.class_names = check_names(tuple(names) if names else own_names, len(own_names), str(self.path))
        self.conf, self.iou, self.max_det = float(conf), float(iou if iou is not None else 0.7), int(max_det)
        self.device = None if device == "auto" else device.replace("cuda:", "")
        self.description = {
            "backend": "ultralytics",
            "family": "ultralytics",
            "file": str(self.path),
            "classes": len(self.class_names),
            "conf": self.conf,
            "iou": self.iou,
        }

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per (H, W, 3) RGB uint8 frame (Ultralytics takes BGR arrays)."""
        if not len(frames):
            return []
        results = self._model.predict(
            [np.ascontiguousarray(f[:, :, ::-1]) for f in frames],
            conf=self.conf,
            iou=self.iou,
            max_det=self.max_det,
            device=self.device,
            verbose=False,
        )
        out = []
        for r in results:
            boxes = r.boxes
            out.append(
                Detections(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy().astype(np.int64))
            )
        return out
