from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dinoscope.io.yolo import read_yolo
from dinoscope.table import ObjectTable, compute_object_ids
from tests.helpers import make_yolo_dataset


@pytest.fixture
def table(tmp_path: Path) -> ObjectTable:
    return read_yolo(make_yolo_dataset(tmp_path / "ds"))


def test_mask_and_index_subsets_return_new_tables(table: ObjectTable) -> None:
    mask = table.data["class_name"] == "a"
    sub = table[mask]
    assert isinstance(sub, ObjectTable) and len(sub) == int(mask.sum())
    assert set(sub.data["class_name"]) == {"a"}
    assert sub.class_names == table.class_names and sub.images is table.images
    assert len(table[np.array([0, 2])]) == 2 and len(table[1:3]) == 2
    with pytest.raises(IndexError, match="length"):
        table[np.array([True, False])]


def test_parquet_round_trip_keeps_everything(table: ObjectTable, tmp_path: Path) -> None:
    path = table.to_parquet(tmp_path / "objects.parquet")
    back = ObjectTable.read_parquet(path)
    pd.testing.assert_frame_equal(back.data, table.data)
    pd.testing.assert_frame_equal(back.images, table.images)
    assert back.class_names == table.class_names and back.format == "yolo"
    assert back.findings == table.findings and back.root == table.root


def test_object_ids_are_stable_and_unique_for_identical_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 5, 5]], dtype=float)
    a = compute_object_ids(["h", "h", "h"], [-1, -1, -1], boxes, [0, 0, 0])
    b = compute_object_ids(["h", "h", "h"], [-1, -1, -1], boxes, [0, 0, 0])
    assert list(a) == list(b) and len(set(a)) == 3
    assert compute_object_ids(["other"], [-1], boxes[:1], [0])[0] != a[0]


def test_validation_names_the_problem(table: ObjectTable) -> None:
    with pytest.raises(ValueError, match="missing columns"):
        ObjectTable(data=table.data.drop(columns=["x1"]), class_names=table.class_names)
    bad = table.data.copy()
    bad.loc[0, "class_id"] = 99
    with pytest.raises(ValueError, match="class_id must be in"):
        ObjectTable(data=bad, class_names=table.class_names)
    flipped = table.data.copy()
    flipped.loc[0, "x2"] = -5.0
    with pytest.raises(ValueError, match="x1 <= x2"):
        ObjectTable(data=flipped, class_names=table.class_names)


def test_geometry_accessors_and_counts(table: ObjectTable) -> None:
    assert table.xyxy.shape == (len(table), 4) and table.image_wh.shape == (len(table), 2)
    counts = table.class_counts()
    assert list(counts.index) == ["a", "b", "c", "d"] and counts["d"] == 0 and counts["c"] == 1


def test_concat_joins_tables(table: ObjectTable) -> None:
    both = ObjectTable.concat([table[:2], table[2:]])
    assert len(both) == len(table)
