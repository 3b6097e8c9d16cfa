"""Segmentation mask reader: instances from connected components, planted pairing problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoscope.errors import ConfigError, DatasetFormatError
from dinoscope.io.masks import read_masks
from dinoscope.table import ObjectTable
from tests.helpers import write_image

W, H = 32, 24


def _write_mask(path: Path, arr: np.ndarray, palette: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if palette:
        img = img.convert("P")  # keeps the values as indices
        colours = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [128, 128, 128] * 252  # index 1 red, 2 green, 3 blue
        img.putpalette(colours)
    img.save(path)
    return path


def _blank() -> np.ndarray:
    return np.zeros((H, W), dtype=np.uint8)


def _objects(table: ObjectTable) -> list[tuple]:
    d = table.data.sort_values("mask_ref")
    return [
        (r.mask_ref, r.class_name, (r.x1, r.y1, r.x2, r.y2), r.area_px)
        for r in d[["mask_ref", "class_name", "x1", "y1", "x2", "y2", "area_px"]].itertuples()
    ]


def _findings(table: ObjectTable) -> list[tuple[str, str]]:
    return sorted((f.kind, f.file) for f in table.findings)


def test_binary_masks_instances_and_boxes(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.jpg", W, H, seed=1)
    m = _blank()
    m[2:6, 3:10] = 255  # 4 x 7 block
    m[10, 20] = m[11, 21] = 255  # touching at a corner only: one instance with 8-connectivity
    _write_mask(tmp_path / "masks" / "a.png", m)
    table = read_masks(tmp_path)
    assert table.class_names == ("foreground",)
    assert _objects(table) == [
        ("masks/a.png#255:1", "foreground", (3, 2, 10, 6), 28),
        ("masks/a.png#255:2", "foreground", (20, 10, 22, 12), 2),
    ]
    assert set(table.data["label_ref"]) == {"masks/a.png"}
    assert list(table.images["label_file"]) == ["masks/a.png"]
    assert table.findings == ()


def test_zero_one_masks_named_by_argument(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", W, H, seed=1)
    m = _blank()
    m[0:3, 0:3] = 1
    m[5:7, 5:7] = 1
    _write_mask(tmp_path / "labels" / "a.png", m)
    table = read_masks(tmp_path, class_names=["crack"])
    assert table.class_names == ("crack",)
    assert table.class_counts().to_dict() == {"crack": 2}
    assert sorted(table.data["area_px"]) == [4, 9]


def test_palette_masks_keep_their_indices(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.jpg", W, H, seed=1)
    m = _blank()
    m[0:4, 0:4] = 1
    m[0:4, 4:8] = 2  # touches class 1 but is another class: a separate instance
    m[10:12, 10:12] = 255  # ignored
    path = _write_mask(tmp_path / "masks" / "a.png", m, palette=True)
    assert Image.open(path).mode == "P"
    (tmp_path / "classes.txt").write_text("_background_\nscratch\ndent\n", encoding="utf-8")
    table = read_masks(tmp_path)
    assert table.class_names == ("scratch", "dent")
    assert _objects(table) == [
        ("masks/a.png#1:1", "scratch", (0, 0, 4, 4), 16),
        ("masks/a.png#2:1", "dent", (4, 0, 8, 4), 16),
    ]
    assert table.findings == ()


def test_indexed_names_default_and_unknown_values(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", W, H, seed=1)
    m = _blank()
    m[0:2, 0:2] = 1
    m[5:7, 5:7] = 3
    _write_mask(tmp_path / "masks" / "a.png", m)
    assert read_masks(tmp_path).class_names == ("class_1", "class_2", "class_3")
    m[20:22, 0:2] = 4
    m[20:22, 10:12] = 4  # two instances of one unknown value: one finding
    _write_mask(tmp_path / "masks" / "a.png", m)
    table = read_masks(tmp_path, class_names=["a", "b", "c"])
    assert [(f.kind, f.file, f.value) for f in table.findings] == [("unknown_class", "masks/a.png", 4.0)]
    assert "mask value 4" in table.findings[0].message
    assert table.class_counts().to_dict() == {"a": 1, "b": 0, "c": 1}


def test_pairing_findings_and_splits(tmp_path: Path) -> None:
    m = _blank()
    m[1:3, 1:3] = 255
    write_image(tmp_path / "images" / "train" / "a.jpg", W, H, seed=1)
    _write_mask(tmp_path / "masks" / "train" / "a.png", m)
    write_image(tmp_path / "images" / "val" / "b.jpg", W, H, seed=2)
    _write_mask(tmp_path / "masks" / "val" / "b.png", m)
    write_image(tmp_path / "images" / "train" / "nomask.jpg", W, H, seed=3)
    _write_mask(tmp_path / "masks" / "train" / "orphan.png", m)
    write_image(tmp_path / "images" / "val" / "big.jpg", W * 2, H, seed=4)
    _write_mask(tmp_path / "masks" / "val" / "big.png", m)
    _write_mask(tmp_path / "masks" / "val" / "empty.png", _blank())
    write_image(tmp_path / "images" / "val" / "empty.jpg", W, H, seed=5)
    table = read_masks(tmp_path)
    assert _findings(table) == [
        ("background_image", "masks/val/empty.png"),
        ("label_without_image", "masks/train/orphan.png"),
        ("missing_label_file", "images/train/nomask.jpg"),
        ("size_mismatch", "masks/val/big.png"),
    ]
    mismatch = next(f for f in table.findings if f.kind == "size_mismatch")
    assert "32x24" in mismatch.message and "64x24" in mismatch.message
    assert sorted(zip(table.data["source"], table.data["split"], strict=True)) == [
        ("images/train/a.jpg", "train"),
        ("images/val/b.jpg", "val"),
    ]
    assert len(table.images) == 5


def test_forced_binary_merges_values(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", W, H, seed=1)
    m = _blank()
    m[0:4, 0:4] = 1
    m[0:4, 4:8] = 2
    _write_mask(tmp_path / "masks" / "a.png", m)
    table = read_masks(tmp_path, mode="binary")
    assert _objects(table) == [("masks/a.png#nonzero:1", "foreground", (0, 0, 8, 4), 32)]
    assert len(read_masks(tmp_path, mode="indexed")) == 2


def test_colour_mask_is_unreadable_annotation(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", W, H, seed=1)
    write_image(tmp_path / "masks" / "a.png", W, H, seed=2)  # RGB noise
    table = read_masks(tmp_path)
    assert _findings(table) == [("unreadable_annotations", "masks/a.png")]
    assert len(table) == 0


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="image folder not found"):
        read_masks(tmp_path)
    write_image(tmp_path / "images" / "a.png", W, H, seed=1)
    with pytest.raises(DatasetFormatError, match="no mask folder"):
        read_masks(tmp_path)
    _write_mask(tmp_path / "segs" / "a.png", _blank())
    assert len(read_masks(tmp_path, masks_dir="segs").images) == 1
    with pytest.raises(ConfigError, match="one class"):
        read_masks(tmp_path, masks_dir="segs", class_names=["a", "b"], mode="binary")
    with pytest.raises(ConfigError, match="mode"):
        read_masks(tmp_path, masks_dir="segs", mode="rgb")  # type: ignore[arg-type]
