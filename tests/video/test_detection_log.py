"""The detection log: filtering, sampler keys, replay of a checkpointed log, and the table it builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dinoscope.embed.spec import CropSpec
from dinoscope.video.detection_log import DetectionLog, checkpoint_file, write_checkpoint
from dinoscope.video.detectors.base import Detections
from dinoscope.video.sampling import ClassSampler

NAMES = ("person", "bottle", "cup")
FRAME = np.zeros((40, 60, 3), np.uint8)


def _log(keep: list[int] | None = None) -> DetectionLog:
    return DetectionLog(NAMES, keep, 0.5, ClassSampler(0), None, None, CropSpec(), 2**30)


def _detections(boxes: list[tuple[float, float, int]]) -> Detections:
    """(x1, score, class id) per box; every box 10 px wide and high."""
    xyxy = [[x, 0, x + 10, 10] for x, _, _ in boxes]
    return Detections(np.array(xyxy, float).reshape(-1, 4), [s for _, s, _ in boxes], [c for _, _, c in boxes])


def _images(*sources: str) -> list[dict[str, object]]:
    row = {"split": "all", "width": 60, "height": 40, "content_hash": "h", "label_file": "", "n_objects": 0}
    return [{"source": s, **row, "error": ""} for s in sources]


def test_low_scores_and_other_classes_are_dropped_and_classes_renumbered(tmp_path: Path) -> None:
    log = _log(keep=[2, 1])
    records = [
        log.add_frame("a.mp4", 0, 0.0, FRAME, _detections([(0, 0.9, 1), (10, 0.4, 1), (20, 0.8, 0)])),
        log.add_frame("a.mp4", 3, 0.3, FRAME, _detections([(30, np.nan, 2)])),  # no score: kept
    ]
    log.add_log(records, "h", 60, 40)
    table, detections, crops = log.build(_images("a.mp4"), tmp_path, label_ref="dets.json")
    assert table.class_names == ("cup", "bottle") and crops == {}
    assert detections["detector_class_id"].tolist() == [1, 2] and detections["class_id"].tolist() == [1, 0]
    assert detections["sampled"].all() and detections["detection_index"].tolist() == [0, 1]
    d = table.data
    assert d["frame"].tolist() == [0, 3] and d["x1"].tolist() == [0.0, 30.0] and (d["label_ref"] == "dets.json").all()
    assert table.images["n_objects"].tolist() == [2]


def test_a_replayed_checkpoint_gives_the_same_selection(tmp_path: Path) -> None:
    first = DetectionLog(NAMES, None, 0.0, ClassSampler(2), None, None, CropSpec(), 2**30)
    records = [first.add_frame("a.mp4", i, i / 10, FRAME, _detections([(i, 0.9, 1)])) for i in range(7)]
    saved = checkpoint_file(tmp_path / "ckpt", "settings", "a.mp4", "h")
    assert saved is not None and checkpoint_file(None, "settings", "a.mp4", "h") is None
    write_checkpoint(first.add_log(records, "h", 60, 40), saved)
    second = DetectionLog(NAMES, None, 0.0, ClassSampler(2), None, None, CropSpec(), 2**30)
    second.replay(pd.read_parquet(saved))
    tables = [log.build(_images("a.mp4"), tmp_path)[0].data for log in (first, second)]
    assert len(tables[0]) == 2
    pd.testing.assert_frame_equal(tables[0], tables[1])
