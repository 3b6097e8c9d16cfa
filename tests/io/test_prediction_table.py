"""Predictions of a dataset's images as an object table: YOLO txt (boxes, polygons, scores), COCO results JSON
(boxes, RLE masks, polygons), class and image mapping, and one-line errors at file:line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import DatasetFormatError, DinoscopeError
from dinoscope.io.dataset import read_dataset
from dinoscope.io.prediction_table import object_masks, read_prediction_table
from dinoscope.table import ObjectTable
from tests.helpers import write_image, write_text


def tiny_dataset(root: Path) -> ObjectTable:
    """Two 100x80 images, classes cat and dog, one cat box in a.jpg."""
    write_image(root / "images/a.jpg", 100, 80, seed=1)
    write_image(root / "images/b.jpg", 100, 80, seed=2)
    write_text(root / "labels/a.txt", "0 0.5 0.5 0.2 0.25\n")
    write_text(root / "labels/b.txt", "")
    write_text(root / "data.yaml", "path: .\ntrain: images\nnames: [cat, dog]\n")
    return read_dataset(root / "data.yaml")


def test_yolo_txt_boxes_and_polygons_with_scores(tmp_path: Path) -> None:
    gt = tiny_dataset(tmp_path / "ds")
    preds = tmp_path / "preds"
    write_text(preds / "a.txt", "0 0.5 0.5 0.2 0.25 0.9\n1 0.1 0.1 0.3 0.1 0.2 0.4 0.75\n\n1 0.5 0.5 0.1 0.1\n")
    write_text(preds / "zzz.txt", "0 0.5 0.5 0.2 0.2 0.5\n")  # no such image: left out with a warning
    table = read_prediction_table(preds, gt)
    d = table.data
    assert (d["origin"] == "prediction").all() and d["source"].tolist() == ["images/a.jpg"] * 3
    assert d["class_name"].tolist() == ["cat", "dog", "dog"]
    np.testing.assert_allclose(d[["x1", "y1", "x2", "y2"]].to_numpy()[0], [40, 30, 60, 50])
    np.testing.assert_allclose(d[["x1", "y1", "x2", "y2"]].to_numpy()[1], [10, 8, 30, 32])  # polygon's box
    assert d["confidence"].tolist()[:2] == [0.9, 0.75] and np.isnan(d["confidence"].iloc[2])
    assert d["polygon"].iloc[1] == pytest.approx([10, 8, 30, 8, 20, 32]) and d["polygon"].iloc[0] is None
    assert [r.rsplit("/", 1)[-1] for r in d["label_ref"]] == ["a.txt:1", "a.txt:2", "a.txt:4"]
    assert not set(table.object_id) & set(gt.object_id)  # its own id space
    masks = object_masks(table)
    assert masks[0] is None and masks[1]["size"] == [80, 100]


@pytest.mark.parametrize(
    ("line", "why"),
    [("0 0.5 0.5 0.2", "expected 'class cx cy w h"), ("cat 0.5 0.5 0.2 0.2", "class a whole number"),
     ("0 0.5 0.5 0.2 nan", "expected"), ("7 0.5 0.5 0.2 0.2 0.9", "class id 7 is not among the 2 classes")],
)  # fmt: skip
def test_a_malformed_yolo_line_is_one_error_at_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    gt = tiny_dataset(tmp_path / "ds")
    write_text(tmp_path / "preds/a.txt", f"0 0.5 0.5 0.2 0.25 0.9\n{line}\n")
    with pytest.raises(DatasetFormatError, match=why) as info:
        read_prediction_table(tmp_path / "preds", gt)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'preds/a.txt'}:2:")


def test_coco_results_json_with_rle_masks_and_image_stems(tmp_path: Path) -> None:
    mask_api = pytest.importorskip("pycocotools.mask")
    gt = tiny_dataset(tmp_path / "ds")
    m = np.zeros((80, 100), np.uint8, order="F")
    m[20:40, 30:70] = 1
    rle = mask_api.encode(m)
    rle["counts"] = rle["counts"].decode()
    entries = [
        {"image_id": "a", "category_id": 1, "segmentation": rle, "score": 0.8},  # no bbox: from the mask
        {"file_name": "b.jpg", "category_id": 0, "bbox": [1, 2, 3, 4], "score": 0.3},
        {"image_id": "nope", "category_id": 0, "bbox": [1, 2, 3, 4], "score": 0.3},
    ]
    write_text(tmp_path / "res.json", json.dumps(entries))
    d = read_prediction_table(tmp_path / "res.json", gt).data
    assert d["source"].tolist() == ["images/a.jpg", "images/b.jpg"] and d["class_name"].tolist() == ["dog", "cat"]
    np.testing.assert_allclose(d[["x1", "y1", "x2", "y2"]].to_numpy()[0], [30, 20, 70, 40])
    assert json.loads(d["mask_rle"].iloc[0])["size"] == [80, 100] and d["mask_rle"].iloc[1] == ""
    assert d["label_ref"].iloc[1].endswith("res.json:2")


def test_coco_json_errors_name_the_entry(tmp_path: Path) -> None:
    gt = tiny_dataset(tmp_path / "ds")
    write_text(tmp_path / "res.json", json.dumps([{"image_id": "a", "category_id": 0, "bbox": [1, 2], "score": 1}]))
    with pytest.raises(DatasetFormatError, match=r"res.json:1: entry 1 needs 'bbox'"):
        read_prediction_table(tmp_path / "res.json", gt)
    write_text(tmp_path / "res.json", json.dumps([{"image_id": "a", "category_id": 5, "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(DatasetFormatError, match=r"res.json:1: category_id 5 is not a class of the dataset"):
        read_prediction_table(tmp_path / "res.json", gt)


def test_predictions_for_no_image_of_the_dataset_are_refused(tmp_path: Path) -> None:
    gt = tiny_dataset(tmp_path / "ds")
    write_text(tmp_path / "preds/other.txt", "0 0.5 0.5 0.2 0.2 0.5\n")
    with pytest.raises(DinoscopeError, match="no prediction names an image of the dataset"):
        read_prediction_table(tmp_path / "preds", gt)


def test_prediction_names_are_mapped_to_the_dataset_classes_by_name(tmp_path: Path) -> None:
    gt = tiny_dataset(tmp_path / "ds")
    write_text(tmp_path / "preds/classes.txt", "dog\ncat\n")
    write_text(tmp_path / "preds/a.txt", "0 0.5 0.5 0.2 0.25 0.9\n")  # id 0 = dog for this model
    assert read_prediction_table(tmp_path / "preds", gt).data["class_name"].tolist() == ["dog"]
    write_text(tmp_path / "preds/classes.txt", "dog\nbird\n")
    with pytest.raises(DatasetFormatError, match="'bird' are not classes of the dataset"):
        read_prediction_table(tmp_path / "preds", gt)
