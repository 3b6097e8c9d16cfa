"""Class-folder and plain image-folder readers on tiny datasets with planted answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import DatasetFormatError
from dinoscope.io.folders import read_class_folders, read_image_folder
from dinoscope.table import ObjectTable, compute_object_ids
from tests.helpers import write_image


def _kinds(table: ObjectTable) -> list[tuple[str, str]]:
    return sorted((f.kind, f.file) for f in table.findings)


def _row(table: ObjectTable, source: str) -> dict:
    rows = table.data[table.data["source"] == source]
    assert len(rows) == 1, f"{source}: {len(rows)} rows"
    return rows.iloc[0].to_dict()


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    write_image(tmp_path / "cat" / "a.jpg", 40, 30, seed=1)
    write_image(tmp_path / "cat" / "sub" / "b.png", 20, 10, seed=2)
    write_image(tmp_path / "dog" / "c.png", 16, 16, seed=3)
    (tmp_path / "empty").mkdir()
    write_image(tmp_path / "loose.jpg", 8, 8, seed=4)
    return tmp_path


def test_flat_layout_whole_image_objects(flat: Path) -> None:
    table = read_class_folders(flat)
    assert table.class_names == ("cat", "dog", "empty")
    assert table.class_counts().to_dict() == {"cat": 2, "dog": 1, "empty": 0}
    assert sorted(table.data["source"]) == ["cat/a.jpg", "cat/sub/b.png", "dog/c.png"]
    a, b, c = _row(table, "cat/a.jpg"), _row(table, "cat/sub/b.png"), _row(table, "dog/c.png")
    assert [a["x1"], a["y1"], a["x2"], a["y2"]] == [0, 0, 40, 30]
    assert [b["x2"], b["y2"], b["class_id"]] == [20, 10, 0]
    assert (c["class_id"], c["class_name"], c["label_ref"]) == (1, "dog", "dog")
    assert set(table.data["origin"]) == {"label"}
    assert set(table.data["split"]) == {"all"}
    assert table.format == "class-folders"


def test_image_outside_class_folders_reported_once_and_left_out(flat: Path) -> None:
    table = read_class_folders(flat)
    assert _kinds(table) == [("missing_label_file", "loose.jpg")]
    assert "class folder" in table.findings[0].message
    assert "loose.jpg" not in set(table.images["source"])


def test_split_layout_shares_class_ids(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "cat" / "1.jpg", seed=1)
    write_image(tmp_path / "train" / "dog" / "2.jpg", seed=2)
    write_image(tmp_path / "valid" / "cat" / "3.jpg", seed=3)
    write_image(tmp_path / "valid" / "bird" / "4.jpg", seed=4)
    write_image(tmp_path / "test" / "5.jpg", seed=5)  # in a split folder but no class folder
    table = read_class_folders(tmp_path)
    assert table.class_names == ("bird", "cat", "dog")
    got = {r["source"]: (r["split"], r["class_id"]) for _, r in table.data.iterrows()}
    assert got == {
        "train/cat/1.jpg": ("train", 1),
        "train/dog/2.jpg": ("train", 2),
        "valid/cat/3.jpg": ("val", 1),
        "valid/bird/4.jpg": ("val", 0),
    }
    assert [(f.kind, f.file, f.split) for f in table.findings] == [("missing_label_file", "test/5.jpg", "test")]


def test_unreadable_image_is_a_finding_not_an_object(tmp_path: Path) -> None:
    write_image(tmp_path / "cat" / "ok.png", seed=1)
    (tmp_path / "cat" / "bad.jpg").write_bytes(b"not an image")
    table = read_class_folders(tmp_path)
    assert list(table.data["source"]) == ["cat/ok.png"]
    assert _kinds(table) == [("unreadable_image", "cat/bad.jpg")]


def test_class_folders_errors(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    with pytest.raises(DatasetFormatError, match="no image in any class folder"):
        read_class_folders(tmp_path)
    with pytest.raises(DatasetFormatError, match="does not exist"):
        read_class_folders(tmp_path / "nope")
    with pytest.raises(DatasetFormatError, match="is a file"):
        read_class_folders(write_image(tmp_path / "x.png"))


def test_image_folder_unlabelled_objects(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "a.jpg", 32, 24, seed=1)
    write_image(tmp_path / "val" / "deep" / "b.png", 10, 12, seed=2)
    write_image(tmp_path / "misc" / "c.png", seed=3)
    write_image(tmp_path / ".hidden" / "d.png", seed=4)
    table = read_image_folder(tmp_path)
    assert table.class_names == ()
    assert sorted(table.data["source"]) == ["misc/c.png", "train/a.jpg", "val/deep/b.png"]
    assert set(table.data["class_id"]) == {-1}
    assert set(table.data["class_name"]) == {""}
    assert set(table.data["origin"]) == {"image"}
    assert {r["source"]: r["split"] for _, r in table.data.iterrows()}["val/deep/b.png"] == "val"
    assert _row(table, "misc/c.png")["split"] == "all"
    b = _row(table, "val/deep/b.png")
    assert [b["x1"], b["y1"], b["x2"], b["y2"]] == [0, 0, 10, 12]
    expected = compute_object_ids(table.data["content_hash"], table.data["frame"], table.xyxy, [-1] * len(table))
    assert list(table.object_id) == list(expected)  # ids derive from class -1, not a placeholder class
    assert table.findings == ()


def test_image_folder_table_survives_parquet(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "a.png", seed=1)
    write_image(tmp_path / "imgs" / "b.png", 2, 1, seed=2)  # tiny: reported without a class name
    table = read_image_folder(tmp_path / "imgs")
    assert [(f.kind, f.file, f.class_name) for f in table.findings] == [("tiny_box", "b.png", "")]
    back = ObjectTable.read_parquet(table.to_parquet(tmp_path / "objects.parquet"))
    assert back.class_names == ()
    assert np.array_equal(back.class_id, [-1, -1])


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no image found"):
        read_image_folder(tmp_path)
