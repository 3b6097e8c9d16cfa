"""COCO reader and writer: planted problems, box conversions, masks, category ids and the round trip."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dinoscope.errors import DatasetFormatError, OutputExistsError
from dinoscope.io._build import TableBuilder
from dinoscope.io.coco import read_coco, split_from_name
from dinoscope.io.coco_writer import write_coco
from tests.helpers import write_image

mask_api = pytest.importorskip("pycocotools.mask")

JSON_REL = "../annotations/instances_val2017.json"  # the table's root is the images folder


def _write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def _rle(mask: np.ndarray) -> dict[str, Any]:
    """Compressed RLE of a (H, W) 0/1 mask, counts as str (as in COCO JSON files)."""
    rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode()}


def _uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed RLE: run lengths of the column-major flattened mask, starting with zeros."""
    flat = mask.astype(np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def _box_mask(h: int, w: int, xyxy: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    x1, y1, x2, y2 = xyxy
    mask[y1:y2, x1:x2] = 1
    return mask


def _ann(index: int, image_id: Any, category_id: Any, bbox: Any = None, **kw: Any) -> dict[str, Any]:
    out = {"id": 100 + index, "image_id": image_id, "category_id": category_id, "iscrowd": 0, **kw}
    if bbox is not None:
        out["bbox"] = bbox
    return out


# Categories with arbitrary ids, listed out of order: class ids follow the category ids (1, 3, 90).
CATEGORIES = [{"id": 90, "name": "bird"}, {"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}]
TWO_PART_POLYGON = [[0, 0, 2, 0, 2, 2], [10, 5, 30, 5, 30, 15, 10, 15]]  # the largest part second

#: (kind, line) of every planted problem in the JSON (file: JSON_REL).
PLANTED = {
    ("size_mismatch", 2),  # images[1] says 100x100, the file is 64x48
    ("background_image", 3),  # images[2] has no annotation
    ("label_without_image", 4),  # images[3] names a file that does not exist
    ("unreadable_annotations", 6),  # images[5] has no file_name
    ("label_without_image", 3),  # annotation 3 refers to image id 99
    ("unknown_class", 4),  # category 5 does not exist
    ("malformed_line", 5),  # bbox with 3 numbers
    ("coords_out_of_range", 6),  # box past the right and bottom edges (kept, clipped)
    ("degenerate_box", 7),  # zero width
    ("unreadable_annotations", 12),  # not an object
    ("tiny_box", 13),  # 1 x 1 px
    ("invalid_polygon", 14),  # self-intersecting bow tie
}


def make_coco(root: Path) -> Path:
    """root/images/*.jpg (64x48) + root/annotations/instances_val2017.json with PLANTED problems."""
    for name, seed in (("a", 0), ("b", 1), ("c", 2), ("d", 3)):
        write_image(root / "images" / f"{name}.jpg", 64, 48, seed=seed)
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
        {"id": 2, "file_name": "b.jpg", "width": 100, "height": 100},
        {"id": 3, "file_name": "c.jpg", "width": 64, "height": 48},
        {"id": 4, "file_name": "missing.jpg", "width": 64, "height": 48},
        {"id": 5, "file_name": "d.jpg", "width": 64, "height": 48},
        {"id": 6, "width": 64, "height": 48},
    ]
    annotations = [
        _ann(1, 1, 3, [10, 5, 20, 10], segmentation=TWO_PART_POLYGON),
        _ann(2, 1, 90, [0, 0, 8, 8], iscrowd=1),
        _ann(3, 99, 1, [1, 1, 5, 5]),
        _ann(4, 1, 5, [1, 1, 5, 5]),
        _ann(5, 1, 1, [1, 2, 3]),
        _ann(6, 1, 1, [50, 40, 30, 20]),
        _ann(7, 2, 1, [5, 5, 0, 10]),
        _ann(8, 4, 1, [1, 1, 5, 5]),
        _ann(9, 5, 1, segmentation=_rle(_box_mask(48, 64, (3, 2, 9, 5)))),
        _ann(10, 5, 3, segmentation=_uncompressed_rle(_box_mask(48, 64, (30, 10, 40, 20)))),
        _ann(11, 2, 1, [2, 2, 10, 10]),
        "not an annotation",
        _ann(13, 1, 1, [3, 3, 1, 1]),
        _ann(14, 1, 3, [20, 20, 10, 10], segmentation=[[20, 20, 30, 30, 30, 20, 20, 30]]),
    ]
    doc = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    return _write_json(root / "annotations" / "instances_val2017.json", doc)


@pytest.fixture
def coco_table(tmp_path: Path):
    return read_coco(make_coco(tmp_path / "ds"))


def _row(table, line: int) -> dict[str, Any]:
    rows = table.data[table.data["label_ref"] == f"{JSON_REL}:{line}"]
    assert len(rows) == 1, f"expected one object from annotation {line}, got {len(rows)}"
    return rows.iloc[0].to_dict()


def test_each_planted_problem_is_reported_once_with_file_and_line(coco_table) -> None:
    found = Counter((f.kind, f.file, f.line) for f in coco_table.findings)
    assert found == Counter((kind, JSON_REL, line) for kind, line in PLANTED)
    kept = sorted(int(ref.rsplit(":", 1)[1]) for ref in coco_table.data["label_ref"])
    assert kept == [1, 2, 6, 9, 10, 11, 13, 14]


def test_size_mismatch_message_names_both_sizes(coco_table) -> None:
    (finding,) = [f for f in coco_table.findings if f.kind == "size_mismatch"]
    assert "100x100" in finding.message and "64x48" in finding.message and "b.jpg" in finding.message


def test_root_is_the_sibling_images_folder_and_split_comes_from_the_name(coco_table, tmp_path: Path) -> None:
    assert coco_table.root.resolve() == (tmp_path / "ds" / "images").resolve()
    assert set(coco_table.images["source"]) == {"a.jpg", "b.jpg", "c.jpg", "d.jpg"}
    assert set(coco_table.data["split"]) == {"val"}


def test_categories_with_arbitrary_ids_map_to_contiguous_class_ids(coco_table) -> None:
    assert coco_table.class_names == ("cat", "dog", "bird")
    pairs = set(zip(coco_table.data["category_id"], coco_table.data["class_id"], strict=True))
    assert pairs == {(1, 0), (3, 1), (90, 2)}
    assert {n: i for i, n in enumerate(coco_table.class_names)}[_row(coco_table, 2)["class_name"]] == 2


def test_bbox_xywh_becomes_xyxy_and_out_of_range_boxes_are_clipped(coco_table) -> None:
    first = _row(coco_table, 1)
    assert (first["x1"], first["y1"], first["x2"], first["y2"]) == (10.0, 5.0, 30.0, 15.0)
    assert first["class_name"] == "dog" and first["annotation_id"] == 101
    past = _row(coco_table, 6)
    assert (past["x1"], past["y1"], past["x2"], past["y2"]) == (50.0, 40.0, 64.0, 48.0)


def test_polygon_keeps_largest_part_and_counts_parts(coco_table) -> None:
    first = _row(coco_table, 1)
    assert first["segmentation_type"] == "polygon" and first["n_polygon_parts"] == 2
    assert first["polygon"] == [10.0, 5.0, 30.0, 5.0, 30.0, 15.0, 10.0, 15.0]
    assert _row(coco_table, 11)["n_polygon_parts"] == 0 and _row(coco_table, 11)["segmentation_type"] == "none"


def test_iscrowd_is_kept_as_bool(coco_table) -> None:
    assert coco_table.data["iscrowd"].dtype == bool
    assert _row(coco_table, 2)["iscrowd"] and not _row(coco_table, 1)["iscrowd"]


def test_compressed_and_uncompressed_rle_give_the_mask_box(coco_table) -> None:
    compressed, uncompressed = _row(coco_table, 9), _row(coco_table, 10)
    assert (compressed["x1"], compressed["y1"], compressed["x2"], compressed["y2"]) == (3.0, 2.0, 9.0, 5.0)
    assert (uncompressed["x1"], uncompressed["y1"], uncompressed["x2"], uncompressed["y2"]) == (30.0, 10.0, 40.0, 20.0)
    assert compressed["segmentation_type"] == uncompressed["segmentation_type"] == "rle"
    rle = json.loads(uncompressed["mask_rle"])  # kept compressed, readable by pycocotools
    rle = {"size": rle["size"], "counts": rle["counts"].encode()}
    assert mask_api.area(rle) == 100 and mask_api.toBbox(rle).tolist() == [30.0, 10.0, 10.0, 10.0]


def test_bad_uncompressed_rle_is_malformed(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 64, 48)
    ann = _ann(1, 1, 1, segmentation={"size": [48, 64], "counts": [5, 10]})
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [ann], "categories": [CATEGORIES[1]]}
    table = read_coco(_write_json(tmp_path / "x.json", doc))
    assert [(f.kind, f.file, f.line) for f in table.findings] == [("malformed_line", "x.json", 1)]
    assert "3072" in table.findings[0].message and len(table) == 0


def test_bad_json_raises_with_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"images": [\n  {"id": 1,,}\n]}', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"bad\.json:2: not valid JSON"):
        read_coco(path)


def test_json_without_images_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="'images' list"):
        read_coco(_write_json(tmp_path / "x.json", {"annotations": [], "categories": []}))


def test_missing_categories_are_made_up_and_reported(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 64, 48)
    doc = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [_ann(1, 1, 7, [1, 1, 9, 9])]}
    table = read_coco(_write_json(tmp_path / "train.json", doc))
    assert table.class_names == ("category_7",) and len(table) == 1
    assert [(f.kind, f.line) for f in table.findings] == [("unreadable_annotations", 0)]
    assert set(table.data["split"]) == {"train"}


@pytest.mark.parametrize(
    ("json_rel", "image_dir", "expected_json_ref"),
    [
        ("instances.json", "", "instances.json"),  # JSON beside its images
        ("instances.json", "images", "../instances.json"),  # images/ beside the JSON
        ("annotations/instances_train2017.json", "train2017", "../annotations/instances_train2017.json"),
        ("annotations/instances_train2017.json", "images/train2017", "../../annotations/instances_train2017.json"),
    ],
)
def test_image_folder_is_found(tmp_path: Path, json_rel: str, image_dir: str, expected_json_ref: str) -> None:
    for i in range(3):
        write_image(tmp_path / image_dir / f"{i}.jpg", 32, 32, seed=i)
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 32, "height": 32} for i in range(3)]
    doc = {"images": images, "annotations": [_ann(1, 0, 1, [1, 1, 9, 9])], "categories": [CATEGORIES[1]]}
    table = read_coco(_write_json(tmp_path / json_rel, doc))
    assert table.root.resolve() == (tmp_path / image_dir).resolve()
    assert not [f for f in table.findings if f.kind == "label_without_image"]
    assert table.data["label_ref"].tolist() == [f"{expected_json_ref}:1"]


def test_explicit_images_dir_wins_and_must_exist(tmp_path: Path) -> None:
    write_image(tmp_path / "pics" / "0.jpg", 32, 32)
    doc = {"images": [{"id": 0, "file_name": "0.jpg"}], "annotations": [], "categories": []}
    path = _write_json(tmp_path / "meta" / "x.json", doc)
    assert read_coco(path, images_dir=tmp_path / "pics").images["width"].tolist() == [32]
    with pytest.raises(DatasetFormatError, match="images_dir is not a folder"):
        read_coco(path, images_dir=tmp_path / "nowhere")


def test_split_from_name() -> None:
    assert split_from_name("annotations/instances_val2017.json") == "val"
    assert split_from_name("train/_annotations.coco.json") == "train"
    assert split_from_name("x/test.json") == "test"
    assert split_from_name("x/instances.json") == "all"


def _clean_coco(root: Path) -> Path:
    """A problem-free dataset: polygon, RLE, crowd, arbitrary category ids and a category without objects."""
    for i in range(3):
        write_image(root / f"{i}.jpg", 64, 48, seed=i)
    images = [{"id": 10 + i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in range(3)]
    categories = [{"id": 7, "name": "cat"}, {"id": 20, "name": "empty"}, {"id": 42, "name": "dog"}]
    annotations = [
        {"id": 5, "image_id": 10, "category_id": 7, "bbox": [1.5, 2.25, 10, 20], "iscrowd": 0, "area": 200},
        {"id": 6, "image_id": 10, "category_id": 42, "bbox": [10, 5, 20, 10], "segmentation": TWO_PART_POLYGON[1:]},
        {"id": 9, "image_id": 11, "category_id": 42, "segmentation": _rle(_box_mask(48, 64, (3, 2, 9, 5))),
         "iscrowd": 1},
    ]  # fmt: skip
    return _write_json(root / "instances_train.json", {"images": images, "annotations": annotations,
                                                       "categories": categories})  # fmt: skip


def test_round_trip_keeps_boxes_classes_ids_and_masks(tmp_path: Path) -> None:
    first = read_coco(_clean_coco(tmp_path / "ds"))
    assert [f.kind for f in first.findings] == ["background_image"]
    out = write_coco(first, tmp_path / "out" / "instances_train.json")
    written = json.loads(out.read_text(encoding="utf-8"))
    # ids of classes with objects are kept; a class without objects gets the next free id (the table has no
    # row to remember 20 by), which keeps the class order on reading back
    assert [c["id"] for c in written["categories"]] == [7, 8, 42]
    assert sorted(a["area"] for a in written["annotations"]) == [18.0, 200.0, 200.0]
    second = read_coco(out, images_dir=tmp_path / "ds")
    assert second.class_names == first.class_names == ("cat", "empty", "dog")
    assert len(second.images) == len(first.images) == 3
    columns = ["source", "class_id", "x1", "y1", "x2", "y2", "category_id", "annotation_id", "iscrowd", "mask_rle"]
    assert second.data[columns].to_dict("records") == first.data[columns].to_dict("records")
    assert second.data["polygon"].tolist()[1] == first.data["polygon"].tolist()[1]
    assert (second.object_id == first.object_id).all()


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    table = read_coco(_clean_coco(tmp_path / "ds"))
    out = write_coco(table, tmp_path / "out.json")
    with pytest.raises(OutputExistsError, match=r"out\.json.*overwrite=True"):
        write_coco(table, out)
    out.write_text("{}", encoding="utf-8")
    write_coco(table, out, overwrite=True)
    assert len(json.loads(out.read_text(encoding="utf-8"))["annotations"]) == 3


def test_write_table_without_category_ids_uses_class_id_plus_one(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 64, 48)
    builder = TableBuilder(tmp_path, ["x", "y"], "test")
    builder.add_images([tmp_path / "a.jpg"], ["train"])
    builder.add_object("a.jpg", 1, (1, 2, 11, 22))
    builder.add_object("a.jpg", 0, (5, 5, 9, 9))
    table = builder.build().with_columns(class_id=[1, -1])  # the second object is unlabelled: left out
    doc = json.loads(write_coco(table, tmp_path / "o.json").read_text(encoding="utf-8"))
    assert doc["categories"] == [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]
    (ann,) = doc["annotations"]
    assert ann["category_id"] == 2 and ann["bbox"] == [1.0, 2.0, 10.0, 20.0] and ann["area"] == 200.0
    assert doc["images"] == [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}]
