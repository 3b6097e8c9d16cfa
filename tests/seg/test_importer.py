"""seg import: every CVAT export format with its traps, imported to images/ + masks/ with a status per file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoscope.errors import ConfigError
from dinoscope.io.seg_exports import detect_export_format, read_segmentation_export
from dinoscope.seg.importer import import_export
from tests.seg_fixtures import LINE_WIDTH, WRITERS, expected, write_images


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_import_every_format_with_its_traps(tmp_path: Path, fmt: str) -> None:
    export = WRITERS[fmt](tmp_path / "export")
    images = write_images(tmp_path / "frames")
    assert detect_export_format(export) == fmt
    result = import_export(export, tmp_path / "out", images=images, labels=["crack"], line_width=LINE_WIDTH)
    status = {r["name"].split(".")[0]: r["status"] for r in result.rows}
    want = expected(fmt)
    assert status == {
        "a": "imported",
        "b": "imported" if want["b"] is not None else "empty",
        "c": "empty",
        "d": "imported",
        "e": "size_mismatch",
        "f": "missing",
        "g": "unlisted",
    }
    assert result.chosen == ("crack",) and set(result.labels) == {"crack", "stain"}
    for name, mask in want.items():
        stored = np.asarray(Image.open(tmp_path / "out" / "masks" / f"{name}.png"))
        assert stored.dtype == np.uint8 and stored.ndim == 2 and set(np.unique(stored)) <= {0, 255}
        assert (tmp_path / "out" / "images" / f"{name}.png").is_file()
        if mask is None:
            assert not stored.any(), name
        elif name == "d":  # brush masks are exact in every format
            assert np.array_equal(stored > 0, mask), name
        else:  # polygons: pycocotools and PIL rasterise edges a little differently
            assert _iou(stored > 0, mask) > 0.85, (name, _iou(stored > 0, mask))
    assert not (tmp_path / "out" / "masks" / "e.png").exists()
    with (tmp_path / "out" / "import.csv").open(encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 7


def test_colours_not_line_order_decide_the_class(tmp_path: Path) -> None:
    export = WRITERS["cvat-mask"](tmp_path / "export")
    stain = read_segmentation_export(export, labels=["stain"]).entries[0].read()
    crack = read_segmentation_export(export, labels=["crack"]).entries[0].read()
    assert stain is not None and crack is not None
    assert stain[35:40, 45:55].all() and not stain[15:20, 15:20].any()
    assert crack[15:20, 15:20].all() and not crack[35:40, 45:55].any()


def test_all_labels_by_default_and_unknown_label_is_one_clear_error(tmp_path: Path) -> None:
    export = WRITERS["cvat-xml"](tmp_path / "export")
    both = read_segmentation_export(export).entries[0].read()
    assert both is not None and both[15:20, 15:20].all() and both[35:40, 45:55].all()
    with pytest.raises(ConfigError, match=r"no label 'rust'.*crack"):
        read_segmentation_export(export, labels=["rust"])


def test_plain_mask_folder(tmp_path: Path) -> None:
    write_images(tmp_path / "ds" / "images")
    (tmp_path / "ds" / "masks").mkdir()
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[5:10, 5:10] = 1
    Image.fromarray(mask).save(tmp_path / "ds" / "masks" / "a.png")
    result = import_export(tmp_path / "ds", tmp_path / "out")
    assert result.format == "masks" and result.counts["imported"] == 1 and result.counts["unlisted"] == 5
    assert np.asarray(Image.open(tmp_path / "out" / "masks" / "a.png"))[5:10, 5:10].min() == 255


def test_refuses_to_overwrite_and_needs_images(tmp_path: Path) -> None:
    export = WRITERS["coco"](tmp_path / "export")
    with pytest.raises(ConfigError, match="--images"):
        import_export(export, tmp_path / "out")
    images = write_images(tmp_path / "frames")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("x")
    from dinoscope.errors import OutputExistsError

    with pytest.raises(OutputExistsError):
        import_export(export, tmp_path / "out", images=images)


def test_zip_as_cvat_downloads_it(tmp_path: Path) -> None:
    import shutil

    export = WRITERS["cvat-xml"](tmp_path / "export")
    write_images(export / "images")  # exported "with images"
    archive = Path(shutil.make_archive(str(tmp_path / "task_7"), "zip", export))
    result = import_export(archive, tmp_path / "out", labels=["crack"])
    assert result.format == "cvat-xml" and result.counts["imported"] == 3 and result.counts["missing"] == 1
    assert (tmp_path / "out" / "masks" / "b.png").is_file()
