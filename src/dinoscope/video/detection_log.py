"""What the detection pass keeps of each frame: the log of every detection, the sampled crops, the result table.

:class:`DetectionLog` takes one frame's detections at a time: it keeps those of the chosen classes at or
above the confidence threshold, flags near-duplicates (:class:`~dinoscope.video.sampling.DuplicateFilter`),
offers the others to the per-class sampler (:class:`~dinoscope.video.sampling.ClassSampler`) under a running
key, and cuts the crops of the detections the sampler holds while the frame is still in memory. A video's
log can be saved and replayed (checkpoints): the same detections in the same order give the same keys, so a
resumed run reaches the same selection. At the end the log becomes the object table of the sampled
detections.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.embed.crops import cut_crops
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.table import IMAGE_COLUMNS, ObjectTable, compute_object_ids
from dinoscope.video.detectors.base import Detections
from dinoscope.video.sampling import ClassSampler, DuplicateFilter

__all__ = ["LOG_COLUMNS", "DetectionLog", "checkpoint_file", "write_checkpoint"]

logger = logging.getLogger(__name__)

#: Columns of one frame's log (one row per detection); a video's log adds content_hash, image_w, image_h.
LOG_COLUMNS = ("source", "frame", "time_s", "x1", "y1", "x2", "y2", "score", "detector_class_id", "duplicate")


class DetectionLog:
    """Every detection of the chosen classes, its sampler key and the crops the sampler holds.

    Args:
        class_names: The detector's class names.
        keep: Detector class ids to keep (None: all).
        conf: Minimum score (detections without a score are kept).
        sampler: The per-class sampler.
        dedup: The near-duplicate filter, or None.
        model_spec: Cut crops for this model (None: no crops).
        crop: Crop policy.
        max_crop_bytes: Stop holding crops past this (the rest are cut by the embedding step).
    """

    def __init__(
        self,
        class_names: tuple[str, ...],
        keep: Sequence[int] | None,
        conf: float,
        sampler: ClassSampler,
        dedup: DuplicateFilter | None,
        model_spec: ModelSpec | None,
        crop: CropSpec,
        max_crop_bytes: float,
    ) -> None:
        self.class_names, self.conf = class_names, conf
        self.keep = None if keep is None else np.asarray(list(keep), dtype=np.int64)
        self.sampler, self.dedup, self.model_spec, self.crop = sampler, dedup, model_spec, crop
        self.max_crop_bytes = max_crop_bytes
        self.logs: list[pd.DataFrame] = []
        self._next_key = 0
        self._budget_warned = False

    def start_sequence(self) -> None:
        """A new video or image: near-duplicates are only looked for within one sequence."""
        if self.dedup is not None:
            self.dedup.reset()

    def add_frame(self, source: str, index: int, time_s: float, image: np.ndarray, det: Detections) -> dict[str, Any]:
        """Filter, de-duplicate, offer to the sampler and cut the held crops of one frame's detections.

        Returns:
            The frame's record for :meth:`add_log` (``source``, ``frame``, ``time_s``, ``det``, ``duplicate``).
        """
        ok = np.isnan(det.score) | (det.score >= self.conf)
        if self.keep is not None:
            ok &= np.isin(det.class_id, self.keep)
        det = det[ok]
        n = len(det)
        duplicate = self.dedup(image, det.xyxy, det.class_id) if self.dedup is not None and n else np.zeros(n, bool)
        keys = self._offer(det.class_id.tolist(), duplicate.tolist())
        held = [i for i, key in enumerate(keys.tolist()) if self.sampler.is_held(key)]
        if held and self.model_spec is not None and self._budget_left():
            s = self.model_spec
            crops = cut_crops(image, det.xyxy[held], self.crop, s.input_size, s.interpolation, s.mean)
            for i, crop in zip(held, crops, strict=True):
                self.sampler.put(int(keys[i]), crop)
        return {"source": source, "frame": index, "time_s": time_s, "det": det, "duplicate": duplicate}

    def add_log(self, records: list[dict[str, Any]], content_hash: str, width: int, height: int) -> pd.DataFrame:
        """Log the records of one video's (or image's) frames, one row per detection, and return that log."""
        log = _frame_logs(records)
        log["content_hash"], log["image_w"], log["image_h"] = content_hash, width, height
        self.logs.append(log)
        return log

    def replay(self, log: pd.DataFrame) -> None:
        """Feed a checkpointed video's detections to the sampler in their original order (no crops)."""
        self._offer(log["detector_class_id"].tolist(), log["duplicate"].tolist())
        self.logs.append(log)

    def _offer(self, class_ids: list[int], duplicate: list[bool]) -> np.ndarray:
        """Give the detections the next keys and offer those that are not duplicates to the sampler."""
        keys = np.arange(self._next_key, self._next_key + len(class_ids))
        self._next_key += len(class_ids)
        for key, cls, dup in zip(keys.tolist(), class_ids, duplicate, strict=True):
            if not dup:
                self.sampler.offer(int(cls), key)
        return keys

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

    def build(
        self, images: list[dict[str, Any]], root: Path, label_ref: str = ""
    ) -> tuple[ObjectTable, pd.DataFrame, dict[int, np.ndarray]]:
        """(sampled objects, every detection, crops by table row) once every source is done.

        Args:
            images: One record per source (columns :data:`~dinoscope.table.IMAGE_COLUMNS`).
            root: Sources are relative to it.
            label_ref: Where the detections came from (a detections file), recorded on every object.
        """
        log = self._full_log()
        chosen = sorted(k for keys in self.sampler.select().values() for k in keys)
        log["sampled"] = False
        log.loc[chosen, "sampled"] = True
        names = tuple(self.class_names[i] for i in self._kept_ids(log))
        sampled = log.loc[chosen].reset_index(drop=True)
        table = _object_table(sampled, names, images, root, label_ref)
        crops = {row: self.sampler.crops[key] for row, key in enumerate(chosen) if key in self.sampler.crops}
        return table, log, crops

    def _kept_ids(self, log: pd.DataFrame) -> list[int]:
        det_ids = log["detector_class_id"].to_numpy(dtype=np.int64)
        return self.keep.tolist() if self.keep is not None else sorted(set(det_ids.tolist()))

    def _full_log(self) -> pd.DataFrame:
        """Every logged detection with its index, table class id and name, and object id."""
        logs = [log for log in self.logs if len(log)]
        log = (
            pd.concat(logs, ignore_index=True)
            if logs
            else _frame_logs([]).assign(content_hash="", image_w=0, image_h=0)
        )
        log["detection_index"] = np.arange(len(log))
        kept_ids = self._kept_ids(log)
        to_table = {d: i for i, d in enumerate(kept_ids)}
        det_ids = log["detector_class_id"].to_numpy(dtype=np.int64)
        log["class_id"] = np.array([to_table[d] for d in det_ids.tolist()], dtype=np.int64)
        log["class_name"] = [self.class_names[kept_ids[i]] for i in log["class_id"].tolist()]
        log["object_id"] = (
            compute_object_ids(
                log["content_hash"], log["frame"], log[["x1", "y1", "x2", "y2"]].to_numpy(), log["class_id"]
            )
            if len(log)
            else pd.Series(dtype=object)
        )
        return log


def _object_table(
    sampled: pd.DataFrame, names: tuple[str, ...], images: list[dict[str, Any]], root: Path, label_ref: str
) -> ObjectTable:
    """The object table of the sampled detections (origin ``prediction``) and of their sources."""
    data = pd.DataFrame(
        {
            "object_id": sampled["object_id"].astype(object),
            "source": sampled["source"].astype(object),
            "frame": sampled["frame"].astype(np.int64),
            "split": sampled["source"].map({img["source"]: img["split"] for img in images}).fillna("all"),
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
    table_images = pd.DataFrame(images) if images else pd.DataFrame(columns=list(IMAGE_COLUMNS))
    if len(table_images):
        counts = data["source"].value_counts()
        table_images["n_objects"] = table_images["source"].map(counts).fillna(0).astype(np.int64)
    return ObjectTable(data=data, class_names=names, images=table_images, root=root, format="video")


def _frame_logs(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-frame records -> one row per detection (columns :data:`LOG_COLUMNS`)."""
    counts = [len(r["det"]) for r in records]
    if not sum(counts):
        frame = pd.DataFrame({c: pd.Series(dtype=float) for c in LOG_COLUMNS})
        return frame.astype({"source": object, "frame": np.int64, "detector_class_id": np.int64, "duplicate": bool})
    xyxy = np.concatenate([r["det"].xyxy for r in records])
    return pd.DataFrame(
        {
            "source": np.repeat([r["source"] for r in records], counts).astype(object),
            "frame": np.repeat([r["frame"] for r in records], counts).astype(np.int64),
            "time_s": np.repeat([r["time_s"] for r in records], counts).astype(np.float64),
            "x1": xyxy[:, 0],
            "y1": xyxy[:, 1],
            "x2": xyxy[:, 2],
            "y2": xyxy[:, 3],
            "score": np.concatenate([r["det"].score for r in records]),
            "detector_class_id": np.concatenate([r["det"].class_id for r in records]),
            "duplicate": np.concatenate([r["duplicate"] for r in records]),
        }
    )


def checkpoint_file(folder: Path | None, settings_key: str, source: str, content_hash: str) -> Path | None:
    """Where a video's log is saved: keyed by the detection settings, the source and its content (None: off)."""
    if folder is None:
        return None
    key = hashlib.blake2b(f"{settings_key}|{source}|{content_hash}".encode(), digest_size=10).hexdigest()
    return folder / f"{key}.parquet"


def write_checkpoint(log: pd.DataFrame, path: Path) -> None:
    """Save a finished video's log atomically (a crash never leaves half a checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    log.to_parquet(tmp, index=False)
    tmp.replace(path)
