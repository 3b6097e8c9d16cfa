"""The detection stage of ``dinoscope video``: a trained detector (or a detections file) over videos and
images in one sequential decode, K objects sampled per class, their crops cut in memory.

:func:`detect_video` is the library entry point; :func:`detect_from_config` is what the ``video`` workflow
composes with the embedding and analysis stages (:mod:`dinoscope.workflows.video`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from dinoscope.config import StrictModel, build_config
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.errors import DinoscopeError
from dinoscope.io.class_names import read_class_names
from dinoscope.io.videos import list_sources
from dinoscope.options import ClassesOptions, DeviceOptions, FrameOptions, SourceOptions
from dinoscope.video.detect import FramePass, VideoDetections
from dinoscope.video.detection_log import DetectionLog
from dinoscope.video.detectors.base import Detector, resolve_classes
from dinoscope.video.sampling import ClassSampler, DuplicateFilter

__all__ = ["DetectConfig", "DetectOptions", "DetectorOptions", "detect_from_config", "detect_video", "settings_key"]

logger = logging.getLogger(__name__)


class DetectorOptions(StrictModel):
    """A detector model file and its class names (``video``, ``errors``)."""

    detector: Path | None = Field(
        None,
        description="Detector: .onnx (YOLOX, YOLOv8/11 export) or .pt (Ultralytics).",
        json_schema_extra={"short": "-d"},
    )
    names: Path | None = Field(None, description="Class-names file (one per line, or YAML names:).")


class DetectOptions(DetectorOptions):
    """The detector and how its detections become objects."""

    detections: Path | None = Field(
        None, description="Instead of a detector: folder of per-frame YOLO txt files or a COCO results JSON."
    )
    per_class: int = Field(200, ge=0, description="Objects per class, spread over its detections (0: all).")
    conf: float = Field(0.25, ge=0.0, le=1.0, description="Minimum detector score.")
    iou: float | None = Field(None, gt=0.0, le=1.0, description="NMS IoU threshold (default: the detector family's).")
    dedup: bool = Field(True, description="Skip near-identical consecutive detections.")
    dedup_iou: float = Field(0.9, gt=0.0, le=1.0, description="Dedup: IoU with the previous frame's detection.")
    dedup_diff: float = Field(3.0, ge=0.0, description="Dedup: mean grey-level difference of the thumbnails.")
    batch_frames: int = Field(8, ge=1, description="Frames per detector call.")
    max_crop_mb: float = Field(2048.0, gt=0.0, description="Memory for crops held during the pass (per_class 0).")

    @model_validator(mode="after")
    def _one_detector(self) -> DetectOptions:
        if (self.detector is None) == (self.detections is None):
            raise ValueError("give exactly one of detector (a model file) and detections (a file of detections)")
        return self


class DetectConfig(SourceOptions, ClassesOptions, FrameOptions, DetectOptions, DeviceOptions):
    """Settings of the detection pass (``stride``: every N-th frame, default 1; ``device``: the detector's)."""


def detect_video(
    source: str | Path,
    detector: str | Path | Detector | None = None,
    *,
    model_spec: ModelSpec | None = None,
    crop: CropSpec | None = None,
    checkpoint_dir: Path | None = None,
    **options: Any,
) -> VideoDetections:
    """Run a detector over videos (or images) in one sequential decode and sample objects per class.

    Args:
        source: A video, a folder of videos and/or images, or an image.
        detector: A model file (``.onnx``, ``.pt``) or a :class:`Detector` already built; None with
            ``detections=FILE``.
        model_spec: When given, the sampled objects' crops are cut for this embedding model while their frame
            is in memory (``result.crops``); else no crop is cut.
        crop: Crop policy for those crops (default :class:`CropSpec`).
        checkpoint_dir: Folder for per-video detection logs (a later call with the same settings re-reads them).
        **options: Fields of :class:`DetectConfig` (``classes``, ``stride``, ``per_class``, ``conf``, ...).

    Returns:
        :class:`VideoDetections`: the object table (``source`` relative to the folder given, or to the file's
        folder), every detection, the in-memory crops and the counts.

    Raises:
        VideoError: The only video given cannot be read (in a folder, unreadable videos are reported in
            ``failures`` and the others still run).
        ConfigError: Invalid options (all reported at once), unknown ``classes``.

    Example:
        >>> found = detect_video("clip.mp4", "yolox_nano.onnx", classes=["bottle"], stride=5)  # doctest: +SKIP
        >>> found.table.data[["frame", "time_s", "confidence"]].head(2)  # doctest: +SKIP
    """
    built = detector if isinstance(detector, Detector) else None
    if built is not None:  # recorded by its file name (checkpoints are keyed by it)
        detector = Path(str(built.description.get("file", type(built).__name__)))
    config = build_config(DetectConfig, source=source, detector=detector, **options)
    return detect_from_config(config, built, model_spec, crop or CropSpec(), checkpoint_dir)


def detect_from_config(
    config: DetectConfig,
    built: Detector | None,
    model_spec: ModelSpec | None,
    crop: CropSpec,
    checkpoint_dir: Path | None,
    exclude: Path | None = None,
) -> VideoDetections:
    """The detection pass of a validated config (see :func:`detect_video`); ``exclude``: a folder inside the
    source not to read (the run directory)."""
    started = time.perf_counter()
    root, videos, images = list_sources(config.source, exclude=exclude)
    names = read_class_names(config.names) if config.names else None
    detect, class_names, description, label_ref = _detection_source(config, built, names, len(videos) == 1)
    keep = resolve_classes(config.classes, class_names)
    log = DetectionLog(
        class_names,
        keep,
        config.conf,
        ClassSampler(config.per_class),
        DuplicateFilter(config.dedup_iou, config.dedup_diff) if config.dedup else None,
        model_spec,
        crop,
        config.max_crop_mb * 2**20,
    )
    frame_pass = FramePass(root, detect, log, checkpoint_dir, settings_key(config))
    single = config.source.is_file()
    for video in videos:
        frame_pass.run_video(video, config.stride or 1, config.max_frames, config.batch_frames, single)
    frame_pass.run_images(images, config.batch_frames)
    if frame_pass.stats.n_failed == frame_pass.stats.n_sources:
        reasons = "; ".join(frame_pass.failures.values())
        raise DinoscopeError(f"{config.source}: no video or image could be read ({reasons})")
    table, log, crops = frame_pass.result(label_ref)
    frame_pass.stats.seconds = time.perf_counter() - started
    memory = None
    if crops:
        import numpy as np

        from dinoscope.embed.loader import MemoryCrops

        rows = np.fromiter(crops, dtype=np.int64, count=len(crops))
        memory = MemoryCrops(rows, np.stack([crops[r] for r in rows.tolist()]))
    return VideoDetections(table, memory, log, frame_pass.stats, description, frame_pass.failures)


def _detection_source(
    config: DetectConfig, built: Detector | None, names: tuple[str, ...] | None, single_video: bool
) -> tuple[Any, tuple[str, ...], dict[str, Any], str]:
    """(detect function, class names, description, label_ref) for a model or a detections file.

    The model is created here, once; with a detections file, each frame's boxes are looked up by video stem
    and frame index.
    """
    if config.detections is not None:
        from dinoscope.io.predictions import read_predictions
        from dinoscope.video.detectors.base import Detections

        file = read_predictions(config.detections, names)

        def lookup(stem: str, frames: Sequence[Any]) -> list[Any]:
            out = []
            for f in frames:
                h, w = f.image.shape[:2]
                out.append(Detections(*file.boxes_of(getattr(f, "stem", stem), f.index, w, h, single_video)))
            return out

        return lookup, file.class_names, file.description, str(config.detections)
    if built is None:
        from dinoscope.video.detectors import create_detector

        built = create_detector(config.detector, conf=config.conf, iou=config.iou, names=names, device=config.device)
    model = built

    def detect(stem: str, frames: Sequence[Any]) -> list[Any]:
        return model.detect([f.image for f in frames])

    return detect, tuple(model.class_names), dict(model.description), ""


def settings_key(config: DetectConfig) -> str:
    """Hash of everything that changes a video's detection log (its checkpoint is reused only if equal)."""
    keys = ("detector", "detections", "names", "classes", "stride", "max_frames", "conf", "iou", "dedup")
    values = {k: str(getattr(config, k)) for k in keys}
    values.update(dedup_iou=config.dedup_iou, dedup_diff=config.dedup_diff)
    for k in ("detector", "detections"):
        path = getattr(config, k)
        if path is not None and Path(path).is_file():
            stat = Path(path).stat()
            values[f"{k}_stat"] = f"{stat.st_size}-{stat.st_mtime_ns}"
    return hashlib.blake2b(json.dumps(values, sort_keys=True).encode(), digest_size=8).hexdigest()
