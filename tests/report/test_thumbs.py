"""One image pass: every thumbnail cell shows its own object; videos are decoded once, straight through."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dinoscope.report import build_report
from dinoscope.report.thumb_sheets import CELL, GRID, sheet_name
from dinoscope.report.thumbs import ImageJobs, make_images
from tests.report.conftest import NAMES, Planted


def _cell_center(report: Path, c: int, cell: int) -> np.ndarray:
    with Image.open(report / sheet_name(c, cell // (GRID * GRID))) as sheet:
        arr = np.asarray(sheet.convert("RGB"))
    r, col = divmod(cell % (GRID * GRID), GRID)
    return arr[r * CELL + CELL // 2, col * CELL + CELL // 2].astype(int)


def test_every_thumbnail_shows_its_object(planted: Planted) -> None:
    objects = pd.read_parquet(planted.run / "objects.parquet")
    row_of = {oid: i for i, oid in enumerate(objects["object_id"])}
    checked = 0
    for c in range(len(NAMES)):
        page = planted.page(f"class-{c:03d}")
        for oid, cell in zip(page["objs"]["id"], page["objs"]["t"], strict=True):
            assert cell >= 0, "every object of a small run gets a thumbnail"
            got = _cell_center(planted.report, c, cell)
            assert np.abs(got - planted.colors[row_of[oid]].astype(int)).max() <= 16, (c, oid)
            checked += 1
    assert checked == len(objects)
    with Image.open(planted.report / "thumbs" / "classes.webp") as icons:
        assert icons.width == GRID * CELL


def test_video_frames_are_decoded_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("av")
    from dinoscope.io import frames as frames_module
    from tests.video.helpers import write_video

    colors = [np.array([40 + 17 * i, 200 - 13 * i, (90 * i) % 256], np.uint8) for i in range(12)]
    video = write_video(tmp_path / "data" / "cam.mp4", [np.full((48, 64, 3), c, np.uint8) for c in colors])
    wanted = [2, 5, 9]
    objects = pd.DataFrame(
        {
            "source": ["cam.mp4"] * 3,
            "frame": wanted,
            "x1": 8.0,
            "y1": 8.0,
            "x2": 40.0,
            "y2": 40.0,
            "image_w": 64,
            "image_h": 48,
        }
    )
    calls = []
    real = frames_module.iter_frames

    def counting(path: object, **kw: object) -> object:
        calls.append(path)
        return real(path, **kw)

    monkeypatch.setattr(frames_module, "iter_frames", counting)
    jobs = ImageJobs(thumbs={0: np.arange(3)}, context=np.array([1]))
    out = tmp_path / "report"
    result = make_images(objects, jobs, video.parent, out, workers=0)
    assert len(calls) == 1 and not result.failed
    for row, frame in enumerate(wanted):
        c, cell = result.cell[row]
        assert np.abs(_cell_center(out, c, cell) - colors[frame].astype(int)).max() <= 20
    with Image.open(out / result.context[1]) as ctx:
        assert np.abs(np.asarray(ctx.convert("RGB"))[24, 32].astype(int) - colors[5].astype(int)).max() <= 20


def test_missing_images_leave_blank_cells_and_a_warning(
    planted_copy: Planted, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    moved = tmp_path / "moved"
    planted_copy.dataset.rename(moved)
    try:
        with caplog.at_level(logging.WARNING, logger="dinoscope"):
            build_report(planted_copy.run, workers=0, figures=False, max_thumbnails=20)
        assert "dataset images were not found" in caplog.text
        assert set(planted_copy.page("class-000")["objs"]["t"]) <= {-2, -1}
        build_report(planted_copy.run, workers=0, figures=False, dataset_root=moved)
        assert min(planted_copy.page("class-000")["objs"]["t"]) >= 0
    finally:
        moved.rename(planted_copy.dataset)
