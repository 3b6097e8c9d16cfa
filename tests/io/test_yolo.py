from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import DatasetFormatError
from dinoscope.io.checks import run_checks
from dinoscope.io.yolo import label_path_for, read_yolo, split_of
from tests.helpers import YOLO_PLANTED, make_yolo_dataset, write_image, write_text


def test_ppe_exact_counts(ppe_dir: Path) -> None:
    table = read_yolo(ppe_dir)
    assert len(table.images) == 909
    assert len(table) == 4625
    assert table.class_counts().tolist() == [1631, 474, 714, 1806]
    assert table.class_names == ("capacete", "colete_refletivo", "sem_capacete", "sem_colete_refletivo")
    assert table.splits == ["train"]
    assert not table.findings
    assert table.data["object_id"].is_unique
    assert (table.image_wh == 416).all()


def test_ppe_box_conversion_matches_label_file(ppe_dir: Path) -> None:
    table = read_yolo(ppe_dir / "data.yaml")
    row = table.data.iloc[0]
    file, line = row["label_ref"].rsplit(":", 1)
    values = (ppe_dir / file).read_text().splitlines()[int(line) - 1].split()
    cx, cy, w, h = (float(v) for v in values[1:])
    expected = [(cx - w / 2) * 416, (cy - h / 2) * 416, (cx + w / 2) * 416, (cy + h / 2) * 416]
    assert int(values[0]) == row["class_id"]
    np.testing.assert_allclose(table.xyxy[0], expected, atol=1e-9)


def test_deeppcb_counts(deeppcb_dir: Path) -> None:
    table = read_yolo(deeppcb_dir)
    assert len(table.images) == 311
    assert table.class_counts().to_dict() == {
        "open": 352,
        "short": 266,
        "mousebite": 318,
        "spur": 284,
        "spurious_copper": 256,
        "pin_hole": 319,
    }


def test_planted_problems_reported_once_each(tmp_path: Path) -> None:
    table = read_yolo(make_yolo_dataset(tmp_path / "ds"))
    report = run_checks(table)
    found = Counter((f.kind, f.file, f.line) for f in report.findings)
    assert set(found) == YOLO_PLANTED
    assert all(n == 1 for n in found.values()), found


def test_planted_dataset_keeps_good_objects(tmp_path: Path) -> None:
    table = read_yolo(make_yolo_dataset(tmp_path / "ds"))
    assert table.splits == ["train", "val"]
    per_file = Counter(ref.rsplit(":", 1)[0] for ref in table.data["label_ref"])
    assert per_file["train/labels/t1.txt"] == 1  # the two malformed lines dropped, line 1 kept
    assert per_file["train/labels/t3.txt"] == 1  # out of range clipped and kept, pixel line dropped
    assert per_file["train/labels/t4.txt"] == 1  # degenerate dropped, tiny kept
    assert per_file["train/labels/t5.txt"] == 4
    assert "train/labels/t8.txt" not in per_file  # truncated image: its objects cannot be used
    clipped = table.data[table.data["label_ref"] == "train/labels/t3.txt:1"]
    assert clipped[["x1", "x2"]].to_numpy().tolist() == [[0.0, 64.0]]


def test_unknown_class_message_names_the_range(tmp_path: Path) -> None:
    table = read_yolo(make_yolo_dataset(tmp_path / "ds"))
    msg = next(f.message for f in table.findings if f.kind == "unknown_class")
    assert "class id 7" in msg and "0..3" in msg


def test_no_trailing_newline_is_not_merged(tmp_path: Path) -> None:
    for i in range(2):
        write_image(tmp_path / f"{i}.jpg", seed=i)
        write_text(tmp_path / f"{i}.txt", "0 0.5 0.5 0.2 0.2\n0 0.2 0.2 0.1 0.1")
    table = read_yolo(tmp_path)
    assert len(table) == 4
    assert table.class_names == ("class_0",)
    assert table.splits == ["all"]


def test_classes_txt_and_split_folders(tmp_path: Path) -> None:
    write_text(tmp_path / "classes.txt", "cat\ndog\n")
    for split in ("train", "val"):
        write_image(tmp_path / "images" / split / "x.PNG", seed=1, fmt="PNG")
        write_text(tmp_path / "labels" / split / "x.txt", "1 0.5 0.5 0.5 0.5")
    table = read_yolo(tmp_path)
    assert table.class_names == ("cat", "dog")
    assert sorted(table.data["split"]) == ["train", "val"]
    assert set(table.data["class_name"]) == {"dog"}


def test_yaml_names_dict_list_files_and_lists(tmp_path: Path) -> None:
    for i in range(4):
        write_image(tmp_path / "imgs" / f"{i}.jpg", seed=i)
        write_text(tmp_path / "imgs" / f"{i}.txt", f"{i % 2} 0.5 0.5 0.2 0.2")
    write_text(tmp_path / "train.txt", "./imgs/0.jpg\nimgs/1.jpg\n")
    write_text(tmp_path / "d.yaml", "train: [train.txt, imgs/2.jpg.missing]\nval: imgs\nnames: {0: x, 1: y}\n")
    with pytest.raises(DatasetFormatError, match=r"neither a folder nor a \.txt list"):
        read_yolo(tmp_path / "d.yaml")
    write_text(tmp_path / "d.yaml", "train: [train.txt]\nval: imgs\nnames: {0: x, 1: y}\n")
    table = read_yolo(tmp_path / "d.yaml")
    assert table.class_names == ("x", "y")
    splits = dict(zip(table.images["source"], table.images["split"], strict=True))
    assert splits == {"imgs/0.jpg": "train", "imgs/1.jpg": "train", "imgs/2.jpg": "val", "imgs/3.jpg": "val"}


def test_segmentation_and_invalid_polygons(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.jpg", 100, 50)
    bowtie = "0 0.1 0.1 0.9 0.9 0.9 0.1 0.1 0.9"
    write_text(tmp_path / "labels" / "a.txt", f"0 0.1 0.2 0.5 0.2 0.3 0.8\n{bowtie}\n0 0.5 0.5 0.2 0.2\n0 0.5")
    table = read_yolo(tmp_path)
    kinds = Counter((f.kind, f.line) for f in table.findings)
    assert kinds == Counter({("invalid_polygon", 2): 1, ("malformed_line", 4): 1})
    tri = table.data.iloc[0]
    np.testing.assert_allclose(tri["polygon"], [10, 10, 50, 10, 30, 40])
    np.testing.assert_allclose([tri["x1"], tri["y1"], tri["x2"], tri["y2"]], [10, 10, 50, 40])
    assert table.data["polygon"].isna().tolist() == [False, False, True]


def test_obb_detected_and_axis_aligned_box_derived(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 100, 100)
    write_text(tmp_path / "a.txt", "0 0.5 0.1 0.9 0.5 0.5 0.9 0.1 0.5\n0 0.5 0.5 0.1 0.1")
    table = read_yolo(tmp_path)
    assert "obb" in table.data.columns
    np.testing.assert_allclose(table.xyxy[0], [10, 10, 90, 90])
    assert len(table.data.iloc[0]["obb"]) == 8
    seg = read_yolo(tmp_path, task="segment")
    assert "polygon" in seg.data.columns and "obb" not in seg.data.columns


def test_label_paths_and_splits() -> None:
    assert label_path_for(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path_for(Path("/d/images/x/images/a.png")) == Path("/d/images/x/labels/a.txt")
    assert label_path_for(Path("/d/a.jpg")) == Path("/d/a.txt")
    assert split_of("images/valid/a.jpg") == "val"
    assert split_of("a.jpg") == "all"


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no such file"):
        read_yolo(tmp_path / "nope")
    with pytest.raises(DatasetFormatError, match="no image found"):
        read_yolo(tmp_path)
