"""The single decoding pass: frames -> detections -> sampled objects, their crops cut while the frame is in memory.

Each video is decoded once, sequentially, at the stride (:func:`~dinoscope.io.frames.iter_frames`);
frames go to the detector in batches; the detections of the chosen classes are filtered for
near-duplicates and offered to the per-class sampler (:mod:`dinoscope.video.sampling`), and the crops of
the detections it holds are cut from the frame at once (the model's input size, the run's crop spec).
A frame is dropped as soon as its batch is done; at most 2K crops per class are held. Nothing is written
to disk and read back.

Every detection is logged (source, frame, time, box, score, class, duplicate flag); with a checkpoint
folder the log of each finished video is saved, so a resumed run re-reads it instead of decoding again and
reaches the same selection.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dinoscope.embed.crops import cut_crops
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.errors import DinoscopeError, VideoError
from dinoscope.io._build import relpath
from dinoscope.io.frames import iter_frames
from dinoscope.io.images import hash_bytes, hash_file, read_image
from dinoscope.io.prefetch import batched, prefetch
from dinoscope.io.video_files import probe_video
from dinoscope.table import IMAGE_COLUMNS, ObjectTable, compute_object_ids
from dinoscope.video.detectors.base import Detections
from dinoscope.video.sampling import ClassSampler, DuplicateFilter

if TYPE_CHECKING:
    from dinoscope.embed.loader import MemoryCrops

__all__ = ["DetectStats", "FramePass", "VideoDetections"]

logger = logging.getLogger(__name__)
_LOG_COLUMNS = ("source", "frame", "time_s", "x1", "y1", "x2", "y2", "score", "detector_class_id", "duplicate")

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
        class_names: The detector's class names.
        keep: Detector class ids to keep (None: all).
        conf: Minimum score (detections without a score are kept).
        sampler: The per-class sampler.
        dedup: The near-duplicate filter, or None.
        model_spec: Cut crops for this model (None: no crops).
        crop: Crop policy.
        max_crop_bytes: Stop holding crops past this (the rest are cut by the embedding step).
        checkpoint: Folder for per-video logs (resume), or None.
        settings_key: Hash of the detection settings (a checkpoint from other settings is ignored).
    """

    def __init__(
        self,
        root: Path,
        detect: DetectFn,
        class_names: tuple[str, ...],
        keep: Sequence[int] | None,
        conf: float,
        sampler: ClassSampler,
        dedup: DuplicateFilter | None,
        model_spec: ModelSpec | None,
        crop: CropSpec,
        max_crop_bytes: float,
        checkpoint: Path | None = None,
        settings_key: str = "",
    ) -> None:
        self.root, self.detect, self.class_names, self.conf = root, detect, class_names, conf
        self.keep = None if keep is None else np.asarray(list(keep), dtype=np.int64)
        self.sampler, self.dedup, self.model_spec, self.crop = sampler, dedup, model_spec, crop
        self.max_crop_bytes, self.checkpoint, self.settings_key = max_crop_bytes, checkpoint, settings_key
        self.stats = DetectStats()
        self.failures: dict[str, str] = {}
        self._logs: list[pd.DataFrame] = []
        self._images: list[dict[str, Any]] = []
        self._next_key = 0
        self._budget_warned = False

    # --- sources ----------------------------------------------------------------------------------
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
        saved = self._checkpoint_file(source, content_hash)
        if saved is not None and saved.is_file():
            self._replay(pd.read_parquet(saved))
            self.stats.n_resumed += 1
            self._add_image(source, "all", info.width, info.height, content_hash)
            return
        rows: list[dict[str, Any]] = []
        if self.dedup is not None:
            self.dedup.reset()
        error = ""
        try:
            for frames in prefetch(batched(iter_frames(path, stride=stride, max_frames=max_frames), batch)):
                dets = self._timed_detect(path.stem, frames)
                for frame, det in zip(frames, dets, strict=True):
                    rows.append(self._frame(source, frame.index, frame.time_s, frame.image, det))
        except VideoError as exc:
            if single and not rows:
                raise
            error = str(exc)
        log = _frame_logs(rows)  # kept even after a failure: its detections already hold sampler keys
        log["content_hash"], log["image_w"], log["image_h"] = content_hash, info.width, info.height
        self._logs.append(log)
        if error:
            self._fail(source, error, info.width, info.height, content_hash)
            return
        self._add_image(source, "all", info.width, info.height, content_hash)
        if saved is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            tmp = saved.with_suffix(".tmp")
            log.to_parquet(tmp, index=False)
            tmp.replace(saved)

    def run_images(self, paths: Sequence[Path], batch: int) -> None:
        """Detect over still images (frame -1), ``batch`` at a time; unreadable images are recorded."""
        from dinoscope.io.yolo import split_of

        for start in range(0, len(paths), batch):
            loaded = []
            for path in paths[start : start + batch]:
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
            if not loaded:
                continue
            dets = self._timed_detect("", [_Still(item[1], item[3]) for item in loaded])
            for (source, _, content_hash, image), det in zip(loaded, dets, strict=True):
                h, w = image.shape[:2]
                if self.dedup is not None:
                    self.dedup.reset()
                log = _frame_logs([self._frame(source, -1, np.nan, image, det)])
                log["content_hash"], log["image_w"], log["image_h"] = content_hash, w, h
                self._logs.append(log)
                self._add_image(source, split_of(source, "all"), w, h, content_hash)

    # --- one frame --------------------------------------------------------------------------------
    def _timed_detect(self, stem: str, frames: Sequence[Any]) -> list[Detections]:
        started = time.perf_counter()
        try:
            return self.detect(stem, frames)
        finally:
            self.stats.seconds_detect += time.perf_counter() - started
            self.stats.n_frames += len(frames)

    def _frame(self, source: str, index: int, time_s: float, image: np.ndarray, det: Detections) -> dict[str, Any]:
        """Filter, de-duplicate, offer to the sampler and cut the held crops of one frame's detections."""
        ok = np.isnan(det.score) | (det.score >= self.conf)
        if self.keep is not None:
            ok &= np.isin(det.class_id, self.keep)
        det = det[ok]
        n = len(det)
        duplicate = self.dedup(image, det.xyxy, det.class_id) if self.dedup is not None and n else np.zeros(n, bool)
        keys = np.arange(self._next_key, self._next_key + n)
        self._next_key += n
        for key, cls, dup in zip(keys.tolist(), det.class_id.tolist(), duplicate.tolist(), strict=True):
            if not dup:
                self.sampler.offer(cls, key)
        held = [i for i, key in enumerate(keys.tolist()) if self.sampler.is_held(key)]
        if held and self.model_spec is not None and self._budget_left():
            s = self.model_spec
            crops = cut_crops(image, det.xyxy[held], self.crop, s.input_size, s.interpolation, s.mean)
            for i, crop in zip(held, crops, strict=True):
                self.sampler.put(int(keys[i]), crop)
        return {"source": source, "frame": index, "time_s": time_s, "det": det, "duplicate": duplicate}

    def _budget_left(self) -> bool:
        s = self.model_spec.input_size if self.model_spec else 0
        if len(self.sampler.crops) * s * s * 3 < self.max_crop_bytes:
            return True
        if not self._budget_warned:
            logger.warning(
                "more than %.0f MB of crops held in memory (--per-class 0 keeps every detection); the rest are "
                "cut while embedding, which decodes their frames again. Set --per-class to bound memory",
                self.max_crop_bytes / 2**20,
            )
            self._budget_warned = True
        return False

    def _replay(self, log: pd.DataFrame) -> None:
        """Feed a checkpointed video's detections to the sampler in their original order (no crops)."""
        n = len(log)
        keys = np.arange(self._next_key, self._next_key + n)
        self._next_key += n
        for key, cls, dup in zip(
            keys.tolist(), log["detector_class_id"].tolist(), log["duplicate"].tolist(), strict=True
        ):
            if not dup:
                self.sampler.offer(int(cls), key)
        self._logs.append(log)

    # --- bookkeeping ------------------------------------------------------------------------------
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

    def _checkpoint_file(self, source: str, content_hash: str) -> Path | None:
        if self.checkpoint is None:
            return None
        key = hashlib.blake2b(f"{self.settings_key}|{source}|{content_hash}".encode(), digest_size=10).hexdigest()
        return self.checkpoint / f"{key}.parquet"

    # --- result -----------------------------------------------------------------------------------
    def result(self, label_ref: str = "") -> tuple[ObjectTable, pd.DataFrame, dict[int, np.ndarray]]:
        """(sampled objects, every detection, crops by table row)."""
        logs = [log for log in self._logs if len(log)]
        log = (
            pd.concat(logs, ignore_index=True)
            if logs
            else _frame_logs([]).assign(content_hash="", image_w=0, image_h=0)
        )
        log["detection_index"] = np.arange(len(log))
        det_ids = log["detector_class_id"].to_numpy(dtype=np.int64)
        kept_ids = self.keep.tolist() if self.keep is not None else sorted(set(det_ids.tolist()))
        names = tuple(self.class_names[i] for i in kept_ids)
        to_table = {d: i for i, d in enumerate(kept_ids)}
        log["class_id"] = np.array([to_table[d] for d in det_ids.tolist()], dtype=np.int64)
        log["class_name"] = [names[i] for i in log["class_id"].tolist()]
        log["object_id"] = (
            compute_object_ids(
                log["content_hash"], log["frame"], log[["x1", "y1", "x2", "y2"]].to_numpy(), log["class_id"]
            )
            if len(log)
            else pd.Series(dtype=object)
        )
        chosen = sorted(k for keys in self.sampler.select().values() for k in keys)
        log["sampled"] = False
        log.loc[chosen, "sampled"] = True
        self.stats.n_detections = len(log)
        self.stats.n_duplicates = int(log["duplicate"].sum())
        self.stats.per_class = {str(k): int(v) for k, v in log["class_name"].value_counts().sort_index().items()}
        table = self._table(log.loc[chosen].reset_index(drop=True), names, label_ref)
        crops = {row: self.sampler.crops[key] for row, key in enumerate(chosen) if key in self.sampler.crops}
        self.stats.n_objects, self.stats.n_crops_in_memory = len(table), len(crops)
        return table, log, crops

    def _table(self, sampled: pd.DataFrame, names: tuple[str, ...], label_ref: str) -> ObjectTable:
        data = pd.DataFrame(
            {
                "object_id": sampled["object_id"].astype(object),
                "source": sampled["source"].astype(object),
                "frame": sampled["frame"].astype(np.int64),
                "split": sampled["source"].map({img["source"]: img["split"] for img in self._images}).fillna("all"),
                "class_id": sampled["class_id"],
                "class_name": sampled["class_name"].astype(object),
                "x1": sampled["x1"],
                "y1": sampled["y1"],
                "x2": sampled["x2"],
                "y2": sampled["y2"],
                "image_w": sampled["image_w"].astype(np.int64),
                "image_h": sampled["image_h"].astype(np.int64),
                "origin": "prediction",
                "confidence": sampled["score"].astype(np.float64),
                "label_ref": label_ref,
                "content_hash": sampled["content_hash"].astype(object),
                "time_s": sampled["time_s"].astype(np.float64),
                "detector_class_id": sampled["detector_class_id"].astype(np.int64),
                "detection_index": sampled["detection_index"].astype(np.int64),
            }
        )
        images = pd.DataFrame(self._images) if self._images else pd.DataFrame(columns=list(IMAGE_COLUMNS))
        if len(images):
            counts = data["source"].value_counts()
            images["n_objects"] = images["source"].map(counts).fillna(0).astype(np.int64)
        return ObjectTable(data=data, class_names=names, images=images, root=self.root, format="video")


class _Still:
    """An image handed to a detections-file lookup (``stem`` names it; ``index`` -1 marks a still)."""

    index = -1

    def __init__(self, stem: str, image: np.ndarray) -> None:
        self.stem, self.image = stem, image


def _frame_logs(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-frame records -> one row per detection (columns :data:`_LOG_COLUMNS`)."""
    counts = [len(r["det"]) for r in rows]
    if not sum(counts):
        frame = pd.DataFrame({c: pd.Series(dtype=float) for c in _LOG_COLUMNS})
        return frame.astype({"source": object, "frame": np.int64, "detector_class_id": np.int64, "duplicate": bool})
    xyxy = np.concatenate([r["det"].xyxy for r in rows])
    return pd.DataFrame(
        {
            "source": np.repeat([r["source"] for r in rows], counts).astype(object),
            "frame": np.repeat([r["frame"] for r in rows], counts).astype(np.int64),
            "time_s": np.repeat([r["time_s"] for r in rows], counts).astype(np.float64),
            "x1": xyxy[:, 0],
            "y1": xyxy[:, 1],
            "x2": xyxy[:, 2],
            "y2": xyxy[:, 3],
            "score": np.concatenate([r["det"].score for r in rows]),
            "detector_class_id": np.concatenate([r["det"].class_id for r in rows]),
            "duplicate": np.concatenate([r["duplicate"] for r in rows]),
        }
    )
