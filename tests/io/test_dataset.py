from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoscope.errors import DatasetFormatError
from dinoscope.io.checks import run_checks
from dinoscope.io.dataset import detect_format, read_dataset
from tests.helpers import write_image, write_text


def _coco(path: Path, file_names: list[str]) -> Path:
    doc = {
        "images": [{"id": i, "file_name": n, "width": 64, "height": 48} for i, n in enumerate(file_names)],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 3, "bbox": [1, 2, 10, 20]} for i in range(len(file_names))
        ],
        "categories": [{"id": 3, "name": "bolt"}],
    }
    return write_text(path, json.dumps(doc))


def test_detects_every_layout(tmp_path: Path) -> None:
    yolo = tmp_path / "yolo"
    write_image(yolo / "images" / "a.jpg")
    write_text(yolo / "labels" / "a.txt", "0 0.5 0.5 0.2 0.2")
    voc = tmp_path / "voc"
    write_text(voc / "Annotations" / "a.xml", "<annotation><filename>a.jpg</filename></annotation>")
    coco = tmp_path / "coco"
    write_image(coco / "images" / "a.jpg")
    _coco(coco / "annotations" / "instances_train.json", ["a.jpg"])
    mm = tmp_path / "mm"
    write_image(mm / "a.jpg")
    write_text(mm / "train.json", json.dumps({"metainfo": {"classes": ["x"]}, "data_list": []}))
    folders = tmp_path / "folders"
    write_image(folders / "cat" / "1.jpg")
    write_image(folders / "dog" / "2.jpg")
    masks = tmp_path / "masks"
    write_image(masks / "images" / "a.jpg")
    (masks / "masks").mkdir()
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(masks / "masks" / "a.png")
    plain = tmp_path / "plain"
    write_image(plain / "x" / "a.jpg")
    write_image(plain / "b.jpg")
    expected = {
        yolo: "yolo",
        voc: "voc",
        coco: "coco",
        mm: "mmpretrain",
        folders: "class-folders",
        masks: "masks",
        plain: "images",
        coco / "annotations" / "instances_train.json": "coco",
        mm / "train.json": "mmpretrain",
    }
    assert {p: detect_format(p) for p in expected} == expected


def test_read_dataset_dispatches_and_reports_nothing_found(tmp_path: Path) -> None:
    write_image(tmp_path / "plain" / "a.jpg")
    table = read_dataset(tmp_path / "plain")
    assert table.format == "images" and len(table) == 1 and table.class_names == ()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="no dataset found"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(DatasetFormatError, match="no such file"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(DatasetFormatError, match="unknown format"):
        read_dataset(tmp_path / "plain", format="pascal")  # type: ignore[arg-type]


def test_coco_folder_with_split_image_folders_shares_one_root(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_image(root / "train2017" / "a.jpg", seed=1)
    write_image(root / "val2017" / "b.jpg", seed=2)
    write_image(root / "val2017" / "c.jpg", seed=1)  # same bytes as train2017/a.jpg: leakage
    _coco(root / "annotations" / "instances_train2017.json", ["a.jpg"])
    _coco(root / "annotations" / "instances_val2017.json", ["b.jpg", "c.jpg"])
    table = read_dataset(root)
    assert Path(table.root) == root
    assert sorted(table.images["source"]) == ["train2017/a.jpg", "val2017/b.jpg", "val2017/c.jpg"]
    assert all((root / s).is_file() for s in table.data["source"])
    refs = sorted(r.rsplit(":", 1)[0] for r in table.data["label_ref"])
    assert refs == ["annotations/instances_train2017.json"] + ["annotations/instances_val2017.json"] * 2
    leaks = [f for f in run_checks(table).findings if f.kind == "cross_split_duplicate"]
    assert [(f.file, f.split) for f in leaks] == [("val2017/c.jpg", "val")]


def test_deeppcb_mmpretrain_json_through_read_dataset(deeppcb_dir: Path) -> None:
    table = read_dataset(deeppcb_dir / "ok_vs_defect.json")
    assert table.format == "mmpretrain" and len(table) == 622
    assert table.class_counts().to_dict() == {"negative": 311, "positive": 311}
