"""MMPretrain annotation JSON reader: the real DeepPCB OK/defect file and planted problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dinoscope.errors import DatasetFormatError
from dinoscope.io.images import read_image
from dinoscope.io.mmpretrain import read_mmpretrain
from tests.helpers import write_image


def _write_json(path: Path, data_list: list[Any], classes: list[str] | None = ("a", "b")) -> Path:
    doc: dict[str, Any] = {"data_list": data_list}
    if classes is not None:
        doc["metainfo"] = {"classes": list(classes)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_deeppcb_ok_vs_defect(deeppcb_dir: Path) -> None:
    table = read_mmpretrain(deeppcb_dir / "ok_vs_defect.json")
    assert len(table) == 622
    assert table.class_names == ("negative", "positive")
    assert table.class_counts().to_dict() == {"negative": 311, "positive": 311}
    assert table.findings == ()
    groups = table.data.groupby("group_id")["class_name"].apply(sorted)
    assert len(groups) == 311
    assert all(g == ["negative", "positive"] for g in groups)
    assert set(table.data["split"]) == {"all"}
    assert (table.images["error"] == "").all() and len(table.images) == 622
    assert (table.data[["x2", "y2"]].to_numpy() == 640).all()
    first = table.data.iloc[0]
    assert (first["source"], first["label_ref"], first["group_id"]) == (
        "images/77000000.jpg",
        "ok_vs_defect.json:1",
        "77000000",
    )
    for source in table.data.groupby("class_name")["source"].first():
        assert read_image(deeppcb_dir / source).shape == (640, 640, 3)


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    write_image(tmp_path / "img" / "p.jpg", 30, 20, seed=1)
    write_image(tmp_path / "img" / "q.png", 12, 14, seed=2)
    entries = [
        {"img_path": "img/p.jpg", "gt_label": 0, "group_id": 7, "camera": "left", "split": "x"},  # 1 ok
        {"img_path": "img/q.png", "gt_label": [1], "group_id": "8", "scores": [0.1, 0.9]},  # 2 ok
        {"img_path": "img/q.png", "gt_label": [0, 1]},  # 3 multi-label
        {"img_path": "img/p.jpg"},  # 4 no gt_label
        {"gt_label": 0},  # 5 no img_path
        {"img_path": "img/p.jpg", "gt_label": 5},  # 6 unknown class
        {"img_path": "img/missing.jpg", "gt_label": 1},  # 7 no such image
        {"img_path": "img/p.jpg", "gt_label": 0, "group_id": None},  # 8 duplicate listing of entry 1
        "img/q.png 1",  # 9 not an object
        {"img_path": "img/q.png", "gt_label": "1"},  # 10 label as text
    ]
    return _write_json(tmp_path / "ann.json", entries)


def test_planted_findings_each_once(planted: Path) -> None:
    table = read_mmpretrain(planted)
    got = sorted((f.kind, f.file, f.line) for f in table.findings)
    assert got == [
        ("label_without_image", "ann.json", 7),
        ("malformed_line", "ann.json", 3),
        ("malformed_line", "ann.json", 4),
        ("malformed_line", "ann.json", 5),
        ("malformed_line", "ann.json", 9),
        ("malformed_line", "ann.json", 10),
        ("unknown_class", "ann.json", 6),
    ]
    by_line = {f.line: f.message for f in table.findings}
    assert "multi-label entries not supported" in by_line[3]
    assert "gt_label" in by_line[4] and "img_path" in by_line[5]


def test_planted_rows_and_extra_columns(planted: Path) -> None:
    table = read_mmpretrain(planted)
    d = table.data
    assert list(d["label_ref"]) == ["ann.json:1", "ann.json:2", "ann.json:8"]
    assert list(d["source"]) == ["img/p.jpg", "img/q.png", "img/p.jpg"]
    assert list(d["class_id"]) == [0, 1, 0]
    assert d["object_id"].is_unique  # the duplicate listing keeps its own row
    assert list(d["group_id"]) == ["7", "8", ""]
    assert list(d["camera"]) == ["left", "", ""]
    assert list(d["entry_split"]) == ["x", "", ""]  # a key that clashes with a table column is prefixed
    assert list(d["split"]) == ["all"] * 3
    assert "scores" not in d.columns  # non-scalar values are not kept
    assert d.iloc[1][["x1", "y1", "x2", "y2"]].tolist() == [0, 0, 12, 14]
    assert len(table.images) == 2 and list(table.images["label_file"]) == ["ann.json"] * 2


@pytest.mark.parametrize(
    ("name", "split"),
    [("train.json", "train"), ("meta_val.json", "val"), ("test-list.json", "test"), ("x.json", "all")],
)
def test_split_from_file_name(tmp_path: Path, name: str, split: str) -> None:
    write_image(tmp_path / "a.png", seed=1)
    table = read_mmpretrain(_write_json(tmp_path / name, [{"img_path": "a.png", "gt_label": 1}]))
    assert list(table.data["split"]) == [split]
    assert list(table.images["split"]) == [split]


def test_data_root_and_missing_metainfo(tmp_path: Path) -> None:
    write_image(tmp_path / "data" / "a.png", seed=1)
    ann = _write_json(tmp_path / "meta" / "ann.json", [{"img_path": "a.png", "gt_label": 2}], classes=None)
    table = read_mmpretrain(ann, data_root=tmp_path / "data")
    assert table.class_names == ("class_0", "class_1", "class_2")
    assert list(table.data["source"]) == ["a.png"]
    missing = read_mmpretrain(ann)  # relative to the JSON's folder: the image is not there
    assert [(f.kind, f.line) for f in missing.findings] == [("label_without_image", 1)]
    assert len(missing) == 0


def test_folder_reads_every_annotation_file(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", seed=1)
    write_image(tmp_path / "b.png", seed=2)
    _write_json(tmp_path / "train.json", [{"img_path": "a.png", "gt_label": 0}, {"img_path": "b.png", "gt_label": 1}])
    _write_json(tmp_path / "val.json", [{"img_path": "a.png", "gt_label": 0, "group_id": "g"}])  # a leak
    (tmp_path / "other.json").write_text("{}", encoding="utf-8")
    table = read_mmpretrain(tmp_path)
    assert sorted(zip(table.data["source"], table.data["split"], strict=True)) == [
        ("a.png", "train"),
        ("a.png", "val"),
        ("b.png", "train"),
    ]
    assert table.data["object_id"].is_unique
    assert sorted(table.data["group_id"]) == ["", "", "g"]


def test_unreadable_files_raise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"data_list": [\n{"img_path": }]}', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"bad\.json:2: not valid JSON"):
        read_mmpretrain(bad)
    no_list = tmp_path / "nolist.json"
    no_list.write_text('{"metainfo": {"classes": ["a"]}}', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="data_list"):
        read_mmpretrain(no_list)
    with pytest.raises(DatasetFormatError, match="no such annotation file"):
        read_mmpretrain(tmp_path / "absent.json")
    with pytest.raises(DatasetFormatError, match="no JSON with a 'data_list'"):
        read_mmpretrain(tmp_path)
