from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoscope.errors import DatasetFormatError
from dinoscope.io.images import hash_bytes, is_image_file, list_images, probe_image, probe_images, read_image
from tests.helpers import write_image


def _exif_rotated_jpeg(path: Path, orientation: int) -> np.ndarray:
    arr = np.zeros((40, 60, 3), dtype=np.uint8)
    arr[:, :30] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    return arr


def test_exif_orientation_is_honoured_by_probe_and_decode(tmp_path: Path) -> None:
    path = tmp_path / "r.jpg"
    _exif_rotated_jpeg(path, orientation=6)  # rotate 90 degrees clockwise for display
    probe = probe_image(path)
    assert (probe.width, probe.height) == (40, 60)
    img = read_image(path)
    assert img.shape == (60, 40, 3) and img.dtype == np.uint8
    assert img[5, 20, 0] > 200 and img[5, 20, 1] < 60  # red half is now on top


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "CMYK"])
def test_every_mode_decodes_to_rgb_uint8(tmp_path: Path, mode: str) -> None:
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8))
    img = base.convert("L").convert("I;16") if mode == "I;16" else base.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("I;16", "CMYK") else "x.png")
    img.save(path)
    out = read_image(path)
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8


def test_extensions_any_case(tmp_path: Path) -> None:
    for name in ("a.JPG", "b.jpeg", "c.Png", "d.bmp", "e.WEBP", "f.tif", "g.TIFF"):
        fmt = {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF", "tiff": "TIFF"}.get(name.split(".")[1].lower())
        write_image(tmp_path / "sub" / name, fmt=fmt)
    (tmp_path / "sub" / "notes.txt").write_text("x")
    (tmp_path / ".hidden").mkdir()
    write_image(tmp_path / ".hidden" / "h.jpg")
    found = list_images(tmp_path)
    assert [p.name for p in found] == ["a.JPG", "b.jpeg", "c.Png", "d.bmp", "e.WEBP", "f.tif", "g.TIFF"]
    assert all(read_image(p).shape == (48, 64, 3) for p in found)
    assert is_image_file("X.TIFF") and not is_image_file("x.gif")


def test_probe_reports_truncated_unreadable_and_empty(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:400])
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    probes = {p.name: probe_image(p) for p in tmp_path.iterdir()}
    assert probes["good.jpg"].error == "" and probes["good.jpg"].width == 64
    assert probes["good.jpg"].content_hash == hash_bytes(good.read_bytes())
    assert probes["cut.jpg"].error_kind == "truncated_image"
    assert probes["text.png"].error_kind == "unreadable_image"
    assert probes["empty.jpg"].error_kind == "unreadable_image"
    assert probe_image(tmp_path / "missing.jpg").error_kind == "unreadable_image"


def test_jpeg_with_trailing_bytes_after_eoi_is_not_truncated(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.jpg")
    path.write_bytes(path.read_bytes() + b"CAMERA-TRAILER-DATA")
    assert probe_image(path).error == ""


def test_probe_images_in_parallel_matches_serial(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(20)]
    assert probe_images(paths) == [probe_image(p) for p in paths]


def test_read_image_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_text("nope")
    with pytest.raises(DatasetFormatError, match=r"bad\.jpg: cannot decode"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(DatasetFormatError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def test_draft_mode_decodes_big_jpeg_smaller(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.jpg", 800, 600)
    small = read_image(path, max_side=200)
    assert 200 <= max(small.shape[:2]) < 800
    assert read_image(path.read_bytes()).shape == (600, 800, 3)
