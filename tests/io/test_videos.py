"""Videos as whole-frame objects: frame plans, a folder with one broken video."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import DatasetFormatError
from dinoscope.io.videos import iter_selected_frames, plan_frames, read_video_frames


def test_plan_frames() -> None:
    assert plan_frames(10, 5.0).tolist() == [0, 5]
    assert plan_frames(10, 5.0, stride=3).tolist() == [0, 3, 6, 9]
    assert plan_frames(1000, 25.0, stride=1, max_frames=5).tolist() == [0, 250, 500, 749, 999]
    assert plan_frames(0, 25.0).tolist() == []
    with pytest.raises(ValueError, match="stride or every_s"):
        plan_frames(10, 5.0, stride=2, every_s=1.0)


def test_folder_with_a_broken_video_keeps_the_others(tmp_path: Path, bottle_video: Path) -> None:
    shutil.copy(bottle_video, tmp_path / "good.mp4")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    table = read_video_frames(tmp_path, every_s=10.0)
    assert set(table.data["source"]) == {"good.mp4"} and len(table) == 4
    assert [f.kind for f in table.findings] == ["unreadable_video"] and table.findings[0].file == "broken.mp4"
    assert table.data["object_id"].is_unique and (table.data["origin"] == "image").all()
    with pytest.raises(DatasetFormatError, match="no readable video"):
        read_video_frames(tmp_path / "broken.mp4")


def test_iter_selected_frames_decodes_once_in_order(bottle_video: Path) -> None:
    frames = np.array([30, 0, 30, 5000])
    out = list(iter_selected_frames(bottle_video, frames, np.arange(4)))
    assert [r.tolist() for r, _, _ in out] == [[1], [0, 2], [3]]
    assert out[0][1].shape == (360, 640, 3) and out[-1][1] is None and "5000" in out[-1][2]
