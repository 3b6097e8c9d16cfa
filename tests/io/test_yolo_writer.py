from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import OutputExistsError
from dinoscope.io.yolo import read_yolo
from dinoscope.io.yolo_writer import write_yolo
from tests.helpers import write_image, write_text


def _sorted(table):
    d = table.data.assign(
        name=table.data["source"].str.rsplit("/", n=1).str[-1],
        kx=table.data["x1"].round(1),
        ky=table.data["y1"].round(1),
    )
    return d.sort_values(["name", "class_id", "kx", "ky"]).reset_index(drop=True)


def test_round_trip_ppe_subset(ppe_dir: Path, tmp_path: Path) -> None:
    table = read_yolo(ppe_dir)
    sub = table[table.data["source"].isin(table.images["source"][:40])]
    sub = type(sub)(data=sub.data, class_names=sub.class_names, images=sub.images.iloc[:40], root=sub.root)
    yaml_path = write_yolo(sub, tmp_path / "out", images="link")
    back = read_yolo(yaml_path)
    assert len(back) == len(sub) and len(back.images) == 40 and not back.findings
    a, b = _sorted(sub), _sorted(back)
    assert (a["class_id"] == b["class_id"]).all()
    np.testing.assert_allclose(a[["x1", "y1", "x2", "y2"]], b[["x1", "y1", "x2", "y2"]], atol=416 * 1e-6)
    assert (a["content_hash"] == b["content_hash"]).all()  # the same image bytes


def test_round_trip_segments_backgrounds_and_name_clashes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "train" / "a.jpg", 100, 50, seed=1)
    write_text(src / "train" / "a.txt", "0 0.1 0.2 0.5 0.2 0.3 0.8\n1 0.5 0.5 0.2 0.2")
    write_image(src / "val" / "a.jpg", 100, 50, seed=2)
    write_text(src / "val" / "a.txt", "")
    write_image(src / "train" / "sub" / "a.png", 100, 50, seed=3)
    write_text(src / "train" / "sub" / "a.txt", "1 0.4 0.4 0.2 0.2")
    table = read_yolo(src, task="segment")
    back = read_yolo(write_yolo(table, tmp_path / "out"), task="segment")
    assert sorted(back.images["source"]) == ["images/train/a.jpg", "images/train/a_1.png", "images/val/a.jpg"]
    assert back.images.set_index("source").loc["images/val/a.jpg", "n_objects"] == 0
    poly = back.data.dropna(subset=["polygon"]).iloc[0]["polygon"]
    np.testing.assert_allclose(poly, [10, 10, 50, 10, 30, 40], atol=1e-3)
    assert (tmp_path / "out" / "labels" / "val" / "a.txt").read_text() == ""


def test_refuses_to_write_into_a_non_empty_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "src" / "a.jpg")
    write_text(tmp_path / "src" / "a.txt", "0 0.5 0.5 0.2 0.2")
    table = read_yolo(tmp_path / "src")
    (tmp_path / "out").mkdir()
    keep = write_text(tmp_path / "out" / "mine.txt", "precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_yolo(table, tmp_path / "out")
    write_yolo(table, tmp_path / "out", overwrite=True)
    assert keep.read_text() == "precious"
