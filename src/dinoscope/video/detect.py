"""The single decoding pass: frames -> detections -> sampled objects, their crops cut while the frame is in memory.

Each video is decoded once, sequentially, at the stride (:func:`~dinoscope.io.frames.iter_frames`);
frames go to the detector in batches, decoded ahead in a thread (:func:`~dinoscope.io.prefetch.prefetch`);
each frame's detections go to the :class:`~dinoscope.video.detection_log.DetectionLog`, which filters them,
flags near-duplicates, offers them to the per-class sampler and cuts the crops of those it holds at once
(the model's input size, the run's crop spec). A frame is dropped as soon as its batch is done; at most 2K
crops per class are held. Nothing is written to disk and read back.

Every detection is logged (source, frame, time, box, score, class, duplicate flag); with a checkpoint
folder the log of each finished video is saved, so a resumed run re-reads it instead of decoding again and
reaches the same selection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dinoscope.errors import DinoscopeError, VideoError
from dinoscope.io.frames import iter_frames
from dinoscope.io.images import hash_bytes, hash_file, read_image
from dinoscope.io.paths import relpath
from dinoscope.io.prefetch import batched, prefetch
from dinoscope.io.video_files import probe_video
from dinoscope.table import ObjectTable
from dinoscope.video.detection_log import DetectionLog, checkpoint_file, write_checkpoint
from dinoscope.video.detectors.base import Detections

if TYPE_CHECKING:
    from dinoscope.embed.loader import MemoryCrops

__all__ = ["DetectFn", "DetectStats", "FramePass", "VideoDetections"]

logger = logging.getLogger(__name__)

#: Detect frames: ``(source stem, frames) -> one Detections per frame``.
DetectFn = Callable[[str, Sequence[Any]], list[Detections]]


@dataclass
class DetectStats:
    """What the pass did.

    Attributes:
        n_sources: Videos and images given.
        n_failed: Sources that could not be read (see ``VideoDetections.failures``).
        n_resumed: Videos whose detections came from a checkpoint instead of decoding.
        n_frames: Frames (and images) decoded and sent to detection.
        n_detections: Detections of the chosen classes at or above the confidence threshold.
        n_duplicates: Of those, near-identical repeats that were skipped.
        n_objects: Detections sampled as objects.
        n_crops_in_memory: Sampled objects whose crop was cut during the pass (others are cut when embedding).
        seconds: Wall time of the pass.
        seconds_detect: Of which in the detector.
        per_class: Detections per class name (duplicates included).
    """

    n_sources: int = 0
    n_failed: int = 0
    n_resumed: int = 0
    n_frames: int = 0
    n_detections: int = 0
    n_duplicates: int = 0
    n_objects: int = 0
    n_crops_in_memory: int = 0
    seconds: float = 0.0
    seconds_detect: float = 0.0
    per_class: dict[str, int] = field(default_factory=dict)


@dataclass
class VideoDetections:
    """The result of :func:`~dinoscope.video.pipeline.detect_video`.

    Attributes:
        table: The sampled objects (origin ``prediction``; ``time_s``, ``detector_class_id`` and
            ``detection_index`` as metadata columns).
        crops: Their crops cut in memory, by table row (None when no model spec was given).
        detections: Every detection of the chosen classes, one row each, with ``duplicate``, ``sampled`` and
            ``object_id``.
        stats: Counts and timings.
        detector: Description of the detector (recorded in ``run.yaml``).
        failures: Source -> reason, for sources that could not be read.
    """

    table: ObjectTable
    crops: MemoryCrops | None
    detections: pd.DataFrame
    stats: DetectStats
    detector: dict[str, Any]
    failures: dict[str, str] = field(default_factory=dict)


class FramePass:
    """Runs the single pass over sources and builds :class:`VideoDetections`.

    Args:
        root: Sources are recorded relative to it.
        detect: The detection function (a detector's batched ``detect`` or a detections-file lookup).
        log: What the pass keeps of each frame's detections (filter, sampler, crops).
        checkpoint: Folder for per-video logs (resume), or None.
        settings_key: Hash of the detection settings (a checkpoint from other settings is ignored).
    """

    def __init__(
        self,
        root: Path,
        detect: DetectFn,
        log: DetectionLog,
        checkpoint: Path | None = None,
        settings_key: str = "",
    ) -> None:
        self.root, self.detect, self.log = root, detect, log
        self.checkpoint, self.settings_key = checkpoint, settings_key
        self.stats = DetectStats()
        self.failures: dict[str, str] = {}
        self._images: list[dict[str, Any]] = []

    def run_video(self, path: Path, stride: int, max_frames: int | None, batch: int, single: bool) -> None:
        """Detect over one video (from its checkpoint when there is one); a read failure is recorded."""
        source = relpath(path, self.root)
        self.stats.n_sources += 1
        try:
            info = probe_video(path)
            content_hash = hash_file(path)
        except (VideoError, OSError) as exc:
            error = exc if isinstance(exc, VideoError) else VideoError(f"{path}: cannot read ({exc.strerror or exc})")
            if single:
                raise error from exc
            self._fail(source, str(error))
            return
        saved = checkpoint_file(self.checkpoint, self.settings_key, source, content_hash)
        if saved is not None and saved.is_file():
            self.log.replay(pd.read_parquet(saved))
            self.stats.n_resumed += 1
            self._add_image(source, "all", info.width, info.height, content_hash)
            return
        records, error = self._decode_and_detect(path, source, stride, max_frames, batch, single)
        # logged even after a failure: its detections already hold sampler keys
        log = self.log.add_log(records, content_hash, info.width, info.height)
        if error:
            self._fail(source, error, info.width, info.height, content_hash)
            return
        self._add_image(source, "all", info.width, info.height, content_hash)
        if saved is not None:
            write_checkpoint(log, saved)

    def _decode_and_detect(
        self, path: Path, source: str, stride: int, max_frames: int | None, batch: int, single: bool
    ) -> tuple[list[dict[str, Any]], str]:
        """(frame records, why decoding stopped early or "") of one video, decoded once at the stride."""
        records: list[dict[str, Any]] = []
        self.log.start_sequence()
        try:
            for frames in prefetch(batched(iter_frames(path, stride=stride, max_frames=max_frames), batch)):
                dets = self._timed_detect(path.stem, frames)
                for frame, det in zip(frames, dets, strict=True):
                    records.append(self.log.add_frame(source, frame.index, frame.time_s, frame.image, det))
        except VideoError as exc:
            if single and not records:
                raise
            return records, str(exc)
        return records, ""

    def run_images(self, paths: Sequence[Path], batch: int) -> None:
        """Detect over still images (frame -1), ``batch`` at a time; unreadable images are recorded."""
        from dinoscope.io.yolo import split_of

        for start in range(0, len(paths), batch):
            loaded = self._read_images(paths[start : start + batch])
            if not loaded:
                continue
            dets = self._timed_detect("", [_Still(stem, image) for _, stem, _, image in loaded])
            for (source, _, content_hash, image), det in zip(loaded, dets, strict=True):
                h, w = image.shape[:2]
                self.log.start_sequence()
                record = self.log.add_frame(source, -1, np.nan, image, det)
                self.log.add_log([record], content_hash, w, h)
                self._add_image(source, split_of(source, "all"), w, h, content_hash)

    def _read_images(self, paths: Sequence[Path]) -> list[tuple[str, str, str, np.ndarray]]:
        """(source, stem, content hash, RGB image) of each readable image; the others are recorded as failed."""
        loaded = []
        for path in paths:
            source = relpath(path, self.root)
            self.stats.n_sources += 1
            try:
                data = path.read_bytes()
                image = read_image(data)
            except OSError as exc:
                self._fail(source, f"{path}: cannot read ({exc.strerror or exc})")
                continue
            except DinoscopeError as exc:  # read_image names the bytes, not the file
                self._fail(source, str(exc).replace("<bytes>", str(path)))
                continue
            loaded.append((source, path.stem, hash_bytes(data), image))
        return loaded

    def _timed_detect(self, stem: str, frames: Sequence[Any]) -> list[Detections]:
        started = time.perf_counter()
        try:
            return self.detect(stem, frames)
        finally:
            self.stats.seconds_detect += time.perf_counter() - started
            self.stats.n_frames += len(frames)

    def _fail(self, source: str, reason: str, w: int = 0, h: int = 0, content_hash: str = "") -> None:
        logger.warning("%s", reason)
        self.stats.n_failed += 1
        self.failures[source] = reason
        self._add_image(source, "all", w, h, content_hash, error=reason)

    def _add_image(self, source: str, split: str, w: int, h: int, content_hash: str, error: str = "") -> None:
        self._images.append(
            {
                "source": source,
                "split": split,
                "width": w,
                "height": h,
                "content_hash": content_hash,
                "label_file": "",
                "n_objects": 0,
                "error": error,
            }
        )

    def result(self, label_ref: str = "") -> tuple[ObjectTable, pd.DataFrame, dict[int, np.ndarray]]:
        """(sampled objects, every detection, crops by table row); the counts go to :attr:`stats`."""
        table, log, crops = self.log.build(self._images, self.root, label_ref)
        self.stats.n_detections = len(log)
        self.stats.n_duplicates = int(log["duplicate"].sum())
        self.stats.per_class = {str(k): int(v) for k, v in log["class_name"].value_counts().sort_index().items()}
        self.stats.n_objects, self.stats.n_crops_in_memory = len(table), len(crops)
        return table, log, crops


class _Still:
    """An image handed to a detections-file lookup (``stem`` names it; ``index`` -1 marks a still)."""

    index = -1

    def __init__(self, stem: str, image: np.ndarray) -> None:
        self.stem, self.image = stem, image
