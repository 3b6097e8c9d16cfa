"""``--detections``: per-frame YOLO txt files and COCO results JSON, on a synthetic video and on images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoscope.errors import DatasetFormatError
from dinoscope.video.detection import detect_video
from tests.helpers import write_text
from tests.video.helpers import BLOCKS_HW, BLUE_BOX, RED_BOX, write_blocks_video

pytest.importorskip("av")


def _yolo_line(box: tuple[float, ...], score: float | None = 0.9) -> str:
    h, w = BLOCKS_HW
    x1, y1, x2, y2 = box
    line = f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
    return line + (f" {score}" if score is not None else "")


def test_yolo_txt_names_map_to_the_right_frames(tmp_path: Path) -> None:
    video = write_blocks_video(tmp_path / "clips/blocks.mp4")
    labels = tmp_path / "labels"
    both = _yolo_line(RED_BOX) + "\n" + _yolo_line(BLUE_BOX, None) + "\n"
    write_text(labels / "frame_000002.txt", both)  # 0-based frame index
    write_text(labels / "blocks_4.txt", both)  # Ultralytics: 1-based count -> frame 3
    write_text(labels / "blocks/frame_5.txt", _yolo_line(RED_BOX))  # per-video sub-folder, 0-based
    write_text(labels / "classes.txt", "block\n")
    found = detect_video(video, detections=labels, per_class=0, dedup=False)
    d = found.table.data
    assert found.table.class_names == ("block",) and found.detector["family"] == "yolo-txt"
    assert d["frame"].tolist() == [2, 2, 3, 3, 5] and d["source"].unique().tolist() == ["blocks.mp4"]
    np.testing.assert_allclose(d[["x1", "y1", "x2", "y2"]].to_numpy(), [RED_BOX, BLUE_BOX] * 2 + [RED_BOX], atol=1e-3)
    np.testing.assert_allclose(d["time_s"], d["frame"] / 10, atol=1e-6)
    assert d["confidence"].iloc[0] == 0.9 and np.isnan(d["confidence"].iloc[1])  # no score column: NaN
    assert d["object_id"].is_unique and (d["origin"] == "prediction").all()


def test_coco_results_json_with_categories_and_frames(tmp_path: Path) -> None:
    video = write_blocks_video(tmp_path / "blocks.mp4")
    entries = [
        {"image_id": f, "category_id": 7, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s}
        for f in (1, 6)
        for b, s in ((RED_BOX, 0.8), (BLUE_BOX, 0.2))
    ]
    doc = {"annotations": entries, "categories": [{"id": 3, "name": "ball"}, {"id": 7, "name": "block"}]}
    write_text(tmp_path / "dets.json", json.dumps(doc))
    found = detect_video(video, detections=tmp_path / "dets.json", classes=["block"], conf=0.5, dedup=False)
    d = found.table.data
    assert found.table.class_names == ("block",) and d["detector_class_id"].tolist() == [1, 1]
    assert d["frame"].tolist() == [1, 6] and d["confidence"].tolist() == [0.8, 0.8]  # blue is under --conf
    np.testing.assert_allclose(d[["x1", "y1", "x2", "y2"]].to_numpy(), [RED_BOX, RED_BOX])
    assert found.stats.n_frames == 10 and found.stats.n_detections == 2


def test_coco_results_list_on_images_matches_image_ids_to_stems(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a.png", "007.png"):
        (tmp_path / "imgs").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)).save(tmp_path / "imgs" / name)
    results = [
        {"image_id": "a", "category_id": 0, "bbox": [1, 2, 10, 20], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [5, 5, 30, 30], "score": 0.7},  # Ultralytics: int(stem)
    ]
    write_text(tmp_path / "preds.json", json.dumps(results))
    write_text(tmp_path / "names.txt", "dog\ncat\n")
    found = detect_video(tmp_path / "imgs", detections=tmp_path / "preds.json", names=tmp_path / "names.txt")
    d = found.table.data.sort_values("source")
    assert d["source"].tolist() == ["007.png", "a.png"] and d["class_name"].tolist() == ["cat", "dog"]
    assert (d["frame"] == -1).all() and d["time_s"].isna().all()
    np.testing.assert_allclose(d[["x1", "y1", "x2", "y2"]].to_numpy(), [[5, 5, 35, 35], [1, 2, 11, 22]])


def test_bad_detection_files_are_clear_errors(tmp_path: Path) -> None:
    video = write_blocks_video(tmp_path / "blocks.mp4", n_frames=2)
    write_text(tmp_path / "labels/frame_0.txt", "0 0.5 0.5 0.1\n")
    with pytest.raises(DatasetFormatError, match=r"frame_0\.txt:1: expected 'class cx cy w h \[score\]'"):
        detect_video(video, detections=tmp_path / "labels")
    with pytest.raises(DatasetFormatError, match="--detections does not exist"):
        detect_video(video, detections=tmp_path / "nowhere")
    write_text(tmp_path / "bad.json", json.dumps([{"image_id": 0, "category_id": 0}]))
    with pytest.raises(DatasetFormatError, match=r"bad\.json:1: entry 1 needs 'bbox'"):
        detect_video(video, detections=tmp_path / "bad.json")
