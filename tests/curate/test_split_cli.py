"""``dinoscope split`` through the real CLI: copies and groups never straddle splits; leakage re-checked."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from dinoscope.analysis.leakage import find_leakage
from dinoscope.cli.main import app
from dinoscope.io.dataset import read_dataset
from tests.curate.conftest import write_photos

runner = CliRunner()


def _photo(name: str) -> int:
    return int(re.match(r".*p(\d+)_c", name).group(1))


def test_split_keeps_copies_together_and_exports(tmp_path: Path) -> None:
    write_photos(tmp_path / "ds", list(range(16)), copies=3, labels=True)
    args = ["split", str(tmp_path / "ds"), "--val-ratio", "0.25", "--test-ratio", "0.25", "--model", "tiny-cnn",
            "--device", "cpu", "--no-cache", "--export", "yolo", "-o", str(tmp_path / "out")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "0 near-duplicates across splits" in res.output
    images = pd.read_csv(tmp_path / "out" / "split.csv")
    images["photo"] = [_photo(s) for s in images["source"]]
    assert (images.groupby("photo")["split"].nunique() == 1).all()  # the planted copies never straddle
    truth = find_leakage(images["photo"].to_numpy(), images["split"].to_numpy())
    assert truth.info["n_leaked"] == 0
    per_split = images.groupby("split")["photo"].nunique()
    assert per_split.to_dict() == {"test": 4, "train": 8, "val": 4}  # 16 photos at 50 / 25 / 25 %
    lists = {s: (tmp_path / "out" / "splits" / f"{s}.txt").read_text().splitlines() for s in ("train", "val", "test")}
    assert sum(map(len, lists.values())) == 48 and all(Path(p).is_absolute() for p in lists["val"])
    written = read_dataset(tmp_path / "out" / "dataset" / "data.yaml")
    assert sorted(written.splits) == ["test", "train", "val"] and len(written) == 48
    counts = written.data.groupby("split")["class_name"].value_counts().unstack()
    assert (counts > 0).all().all()  # both classes in every split (stratified)
    assert read_dataset(tmp_path / "ds").splits == ["train"]  # the source is untouched


def test_split_by_video_and_a_clear_line_for_group(tmp_path: Path) -> None:
    write_photos(tmp_path / "ds", list(range(10, 18)), copies=1, labels=True)  # (8 photos the tiny model tells apart)
    for i in range(10, 18):  # frames of two "videos": clip-a for even photos, clip-b for odd ones
        src = tmp_path / "ds" / "images" / f"p{i}_c0.png"
        src.rename(src.with_name(f"clip-{'ab'[i % 2]}_frame{i:03d}.png"))
        lab = tmp_path / "ds" / "labels" / f"p{i}_c0.txt"
        lab.rename(lab.with_name(f"clip-{'ab'[i % 2]}_frame{i:03d}.txt"))
    base = ["split", str(tmp_path / "ds"), "--model", "tiny-cnn", "--device", "cpu", "--no-cache",
            "--val-ratio", "0.5", "--test-ratio", "0"]  # fmt: skip
    res = runner.invoke(app, [*base, "--by", "video", "-o", str(tmp_path / "v")])
    assert res.exit_code == 0, res.output
    images = pd.read_csv(tmp_path / "v" / "split.csv")
    clip = np.array([Path(s).name[:6] for s in images["source"]])
    assert images.groupby(clip)["split"].nunique().max() == 1 and set(images["split"]) == {"train", "val"}
    bad = runner.invoke(app, [*base, "--by", "group", "-o", str(tmp_path / "g")])
    assert bad.exit_code == 1 and "group_id" in bad.output and "Traceback" not in bad.output
