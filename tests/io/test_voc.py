"""Pascal VOC reader: planted problems with file and line, 1-based box conversion, splits and layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dinoscope.errors import DatasetFormatError
from dinoscope.io.voc import read_voc
from tests.helpers import write_image


def _object(name: str, box: tuple | None, difficult: int = 0, truncated: int = 0) -> str:
    lines = ["  <object>", f"    <name>{name}</name>", "    <pose>Unspecified</pose>"]
    lines += [f"    <truncated>{truncated}</truncated>", f"    <difficult>{difficult}</difficult>"]
    if box is not None:
        tags = ("xmin", "ymin", "xmax", "ymax")
        lines += ["    <bndbox>", *(f"      <{t}>{v}</{t}>" for t, v in zip(tags, box, strict=True)), "    </bndbox>"]
    return "\n".join([*lines, "  </object>"])


def voc_xml(filename: str, objects: list[str], size: tuple[int, int] = (64, 48)) -> str:
    """A VOC annotation; the n-th <object> starts on the line that :func:`line_of` finds."""
    head = [
        "<annotation>",
        "  <folder>VOC2012</folder>",
        f"  <filename>{filename}</filename>",
        f"  <size>\n    <width>{size[0]}</width>\n    <height>{size[1]}</height>\n    <depth>3</depth>\n  </size>",
        "  <segmented>0</segmented>",
    ]
    return "\n".join([*head, *objects, "</annotation>"]) + "\n"


def line_of(text: str, needle: str, nth: int = 0) -> int:
    """1-based line of the nth line containing ``needle``."""
    return [i for i, ln in enumerate(text.splitlines(), start=1) if needle in ln][nth]


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text


def make_voc(root: Path) -> set[tuple[str, str, int]]:
    """A VOC dataset with one planted problem of each kind; returns the expected (kind, file, line) set."""
    for i, stem in enumerate(["a", "b", "c", "d", "e", "g"]):
        write_image(root / "JPEGImages" / f"{stem}.jpg", 64, 48, seed=i)
    write_image(root / "JPEGImages" / "f.png", 64, 48, seed=9)
    _write(root / "classes.txt", "cat\ndog\nbird\n")
    ann = root / "Annotations"
    a = _write(
        ann / "a.xml",
        voc_xml(
            "a.jpg",
            [
                _object("cat", (1, 1, 10, 20)),
                _object("dog", (11, 5, 30, 40), difficult=1, truncated=1),
                _object("horse", (1, 1, 5, 5)),
                _object("cat", None),
                _object("dog", (1, "abc", 5, 5)),
            ],
        ),
    )
    b = _write(ann / "b.xml", voc_xml("b.jpg", [_object("cat", (2, 2, 20, 20))], size=(100, 100)))
    _write(ann / "c.xml", voc_xml("c.jpg", []))
    _write(ann / "d.xml", "<annotation>\n  <filename>d.jpg</filename>\n  <object>\n    <name>cat</name>\n\n")
    ghost = _write(ann / "ghost.xml", voc_xml("ghost.jpg", [_object("cat", (1, 1, 5, 5))]))
    _write(ann / "f.xml", voc_xml("renamed.jpg", [_object("bird", (5, 5, 15, 15))]))
    g = _write(ann / "g.xml", voc_xml("g.jpg", [_object("cat", (50, 40, 80, 60)), _object("dog", (20, 5, 19, 9))]))
    _write(root / "ImageSets" / "Main" / "train.txt", "a\nb\nc\n")
    _write(root / "ImageSets" / "Main" / "val.txt", "d\ng\n")
    _write(root / "ImageSets" / "Main" / "trainval.txt", "a\nb\nc\nd\ng\nf\n")
    return {
        ("unknown_class", "Annotations/a.xml", line_of(a, "<object>", 2)),
        ("malformed_line", "Annotations/a.xml", line_of(a, "<object>", 3)),
        ("malformed_line", "Annotations/a.xml", line_of(a, "<object>", 4)),
        ("size_mismatch", "Annotations/b.xml", line_of(b, "<size>")),
        ("background_image", "Annotations/c.xml", 0),
        ("unreadable_annotations", "Annotations/d.xml", 6),
        ("label_without_image", "Annotations/ghost.xml", line_of(ghost, "<filename>")),
        ("missing_label_file", "JPEGImages/e.jpg", 0),
        ("coords_out_of_range", "Annotations/g.xml", line_of(g, "<object>", 0)),
        ("degenerate_box", "Annotations/g.xml", line_of(g, "<object>", 1)),
    }


@pytest.fixture
def voc(tmp_path: Path):
    expected = make_voc(tmp_path / "VOC")
    return read_voc(tmp_path / "VOC"), expected


def test_each_planted_problem_is_reported_once_with_file_and_line(voc) -> None:
    table, expected = voc
    assert Counter((f.kind, f.file, f.line) for f in table.findings) == Counter(expected)


def test_messages_name_the_problem(voc) -> None:
    table, _ = voc
    by_kind = {f.kind: f.message for f in table.findings}
    assert "'horse'" in by_kind["unknown_class"] and "classes.txt" in by_kind["unknown_class"]
    assert "100x100" in by_kind["size_mismatch"] and "64x48" in by_kind["size_mismatch"]
    assert "line 6" in by_kind["unreadable_annotations"]
    assert "'ghost.jpg'" in by_kind["label_without_image"] and "JPEGImages/" in by_kind["label_without_image"]


def test_one_based_boxes_become_zero_based_xyxy(voc) -> None:
    table, _ = voc
    a = table.data[table.data["source"] == "JPEGImages/a.jpg"].sort_values("label_ref")
    assert a[["class_name", "x1", "y1", "x2", "y2"]].values.tolist() == [
        ["cat", 0.0, 0.0, 10.0, 20.0],
        ["dog", 10.0, 4.0, 30.0, 40.0],
    ]
    assert a["difficult"].tolist() == [False, True] and a["truncated"].tolist() == [False, True]
    assert table.data["difficult"].dtype == bool


def test_label_ref_is_the_line_of_the_object(voc) -> None:
    table, _ = voc
    text = (table.root / "Annotations" / "a.xml").read_text(encoding="utf-8")
    refs = set(table.data.loc[table.data["source"] == "JPEGImages/a.jpg", "label_ref"])
    assert refs == {
        f"Annotations/a.xml:{line_of(text, '<object>', 0)}",
        f"Annotations/a.xml:{line_of(text, '<object>', 1)}",
    }


def test_classes_txt_sets_names_and_ids(voc) -> None:
    table, _ = voc
    assert table.class_names == ("cat", "dog", "bird")
    assert set(zip(table.data["class_name"], table.data["class_id"], strict=True)) == {
        ("cat", 0),
        ("dog", 1),
        ("bird", 2),
    }


def test_image_found_by_xml_stem_when_filename_is_wrong(voc) -> None:
    table, _ = voc
    f = table.data[table.data["source"] == "JPEGImages/f.png"]
    assert f[["class_name", "x1", "y1", "x2", "y2"]].values.tolist() == [["bird", 4.0, 4.0, 15.0, 15.0]]


def test_image_sets_give_splits(voc) -> None:
    table, _ = voc
    splits = dict(zip(table.images["source"], table.images["split"], strict=True))
    assert splits == {
        "JPEGImages/a.jpg": "train",
        "JPEGImages/b.jpg": "train",
        "JPEGImages/c.jpg": "train",
        "JPEGImages/d.jpg": "val",
        "JPEGImages/g.jpg": "val",
        "JPEGImages/f.png": "trainval",  # listed only in trainval.txt
        "JPEGImages/e.jpg": "all",  # listed nowhere
    }
    assert set(table.data.loc[table.data["source"] == "JPEGImages/g.jpg", "split"]) == {"val"}


def test_xml_beside_images_with_split_folders_and_names_from_the_xml(tmp_path: Path) -> None:
    for split, stem, name in (("train", "x", "zebra"), ("val", "y", "ant")):
        write_image(tmp_path / split / f"{stem}.jpg", 64, 48)
        _write(tmp_path / split / f"{stem}.xml", voc_xml(f"{stem}.jpg", [_object(name, (3, 4, 13, 24))]))
    table = read_voc(tmp_path)
    assert table.findings == ()
    assert table.class_names == ("ant", "zebra")
    rows = table.data.sort_values("source")[["source", "split", "class_name", "x1", "y1", "x2", "y2", "label_ref"]]
    assert rows.values.tolist() == [
        ["train/x.jpg", "train", "zebra", 2.0, 3.0, 13.0, 24.0, "train/x.xml:10"],
        ["val/y.jpg", "val", "ant", 2.0, 3.0, 13.0, 24.0, "val/y.xml:10"],
    ]


def test_bad_inputs_raise(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="not a folder"):
        read_voc(tmp_path / "missing")
    write_image(tmp_path / "a.jpg")
    with pytest.raises(DatasetFormatError, match="no VOC XML"):
        read_voc(tmp_path)
    _write(tmp_path / "a.xml", voc_xml("a.jpg", [_object("cat", (1, 1, 5, 5))]))
    _write(tmp_path / "classes.txt", "cat\ndog\ncat\n")
    with pytest.raises(DatasetFormatError, match=r"classes\.txt.*'cat'"):
        read_voc(tmp_path)
