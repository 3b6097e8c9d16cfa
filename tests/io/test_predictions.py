"""Prediction files read without a video: YOLO txt folders and COCO results JSON as plain boxes per frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import ConfigError, DatasetFormatError
from dinoscope.io.class_names import parse_names, read_class_names
from dinoscope.io.predictions import read_predictions
from tests.helpers import write_text


def test_yolo_txt_boxes_are_scaled_to_the_frame_and_clipped(tmp_path: Path) -> None:
    # a 100x50 frame: a 20x10 box centred at (30, 15), and a box running off the right edge
    write_text(tmp_path / "cam_3.txt", "1 0.3 0.3 0.2 0.2 0.75\n0 0.95 0.5 0.2 0.2\n")  # Ultralytics: frame 2
    write_text(tmp_path / "classes.txt", "person\nbottle\n")
    preds = read_predictions(tmp_path)
    assert preds.kind == "yolo-txt" and preds.class_names == ("person", "bottle")
    boxes = preds.boxes_of("cam", 2, 100, 50, single=False)
    np.testing.assert_allclose(boxes.xyxy, [[20, 10, 40, 20], [85, 20, 100, 30]])
    assert boxes.class_id.tolist() == [1, 0] and boxes.class_id.dtype == np.int64
    assert boxes.score[0] == 0.75 and np.isnan(boxes.score[1])
    assert len(preds.boxes_of("cam", 3, 100, 50, single=False).xyxy) == 0  # no file for that frame
    assert len(preds.boxes_of("other", 2, 100, 50, single=False).xyxy) == 0


def test_coco_json_categories_become_class_ids_in_their_order(tmp_path: Path) -> None:
    doc = {
        "annotations": [
            {"frame": 4, "video": "cam.mp4", "category_id": 9, "bbox": [-5, 0, 20, 10], "score": 0.5},
            {"image_id": "a", "category_id": 2, "bbox": [1, 2, 3, 4]},
            {"image_id": 1, "category_id": 2, "bbox": [0, 0, 0, 4]},  # empty box: dropped
        ],
        "categories": [{"id": 9, "name": "dog"}, {"id": 2, "name": "cat"}],
    }
    write_text(tmp_path / "dets.json", json.dumps(doc))
    preds = read_predictions(tmp_path / "dets.json")
    assert preds.kind == "coco-json" and preds.class_names == ("cat", "dog")
    assert preds.description == {"backend": "file", "family": "coco-json", "file": str(preds.path), "classes": 2}
    video = preds.boxes_of("cam", 4, 100, 50, single=False)
    np.testing.assert_allclose(video.xyxy, [[0, 0, 15, 10]])  # clipped at the left edge
    assert video.class_id.tolist() == [1] and video.score.tolist() == [0.5]
    image = preds.boxes_of("a", -1, 100, 50, single=False)
    np.testing.assert_allclose(image.xyxy, [[1, 2, 4, 6]])
    assert image.class_id.tolist() == [0] and np.isnan(image.score[0])
    assert len(preds.boxes_of("", 1, 100, 50, single=True).xyxy) == 0


def test_class_ids_beyond_the_names_are_refused_and_missing_names_are_made_up(tmp_path: Path) -> None:
    write_text(tmp_path / "a/frame_0.txt", "3 0.5 0.5 0.1 0.1\n")
    assert read_predictions(tmp_path / "a").class_names == ("class_0", "class_1", "class_2", "class_3")
    with pytest.raises(DatasetFormatError, match="class id 3 but only 2 class names"):
        read_predictions(tmp_path / "a", names=["x", "y"])


def test_class_name_files_and_metadata(tmp_path: Path) -> None:
    write_text(tmp_path / "names.txt", "person\n\nbicycle\n")
    write_text(tmp_path / "data.yaml", "names: {0: person, 1: bicycle}\n")
    assert read_class_names(tmp_path / "names.txt") == read_class_names(tmp_path / "data.yaml") == ("person", "bicycle")
    assert parse_names("['a', 'b']") == ("a", "b") and parse_names({1: "a"}) is None
    with pytest.raises(ConfigError, match="not found"):
        read_class_names(tmp_path / "missing.txt")
