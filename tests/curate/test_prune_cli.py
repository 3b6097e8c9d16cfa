"""``dinoscope prune`` through the real CLI: photos with copies, whole images kept, lists, summary and export."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from dinoscope import embed
from dinoscope.cli.main import app
from dinoscope.io.dataset import read_dataset
from tests.curate.conftest import write_photos

runner = CliRunner()


def _photo(name: str) -> int:
    return int(re.match(r".*p(\d+)_c", name).group(1))


def test_prune_keeps_one_copy_per_photo_and_exports(tmp_path: Path) -> None:
    write_photos(tmp_path / "ds", list(range(12)), copies=3, labels=True)
    embed(dataset=tmp_path / "ds", out=tmp_path / "run", model="tiny-cnn", device="cpu", no_cache=True,
          whole_images=True)  # fmt: skip
    args = ["prune", str(tmp_path / "run"), "--keep", "12", "--class-floor", "0", "--export", "yolo",
            "-o", str(tmp_path / "pruned")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    kept = pd.read_csv(tmp_path / "pruned" / "kept.csv", keep_default_na=False)
    dropped = pd.read_csv(tmp_path / "pruned" / "dropped.csv", keep_default_na=False)
    assert list(kept.columns[:3]) == ["object_id", "source", "reason"]
    photos = [_photo(s) for s in kept["source"]]
    assert sorted(photos) == list(range(12))  # one copy of every photo
    assert len(dropped) == 24 and set(dropped["reason"]) == {"near_duplicate"}
    summary = pd.read_csv(tmp_path / "pruned" / "dropped_summary.csv")
    assert summary["n_objects"].sum() == 36 and summary["dropped_near_duplicate"].sum() == 24
    written = read_dataset(tmp_path / "pruned" / "dataset" / "data.yaml")
    assert len(written.images) == len(kept)  # the whole kept images
    assert (tmp_path / "ds" / "images" / "p0_c1.png").is_file()  # the source is untouched


def test_prune_box_run_keeps_whole_images_and_class_floors(tmp_path: Path) -> None:
    write_photos(tmp_path / "ds", list(range(10)), copies=2, labels=True)
    for i in range(5):  # background images
        (tmp_path / "ds" / "images" / f"bg{i}.png").write_bytes(
            (tmp_path / "ds" / "images" / f"p{i}_c0.png").read_bytes()
        )
        (tmp_path / "ds" / "labels" / f"bg{i}.txt").write_text("", encoding="utf-8")
    embed(dataset=tmp_path / "ds", out=tmp_path / "run", model="tiny-cnn", device="cpu", no_cache=True)
    res = runner.invoke(app, ["prune", str(tmp_path / "run"), "--keep", "0.2", "--class-floor", "5",
                              "-o", str(tmp_path / "pruned")])  # fmt: skip
    assert res.exit_code == 0, res.output
    kept = pd.read_csv(tmp_path / "pruned" / "kept.csv")
    counts = kept["class_name"].value_counts()
    assert counts.get("cat", 0) >= 5 and counts.get("dog", 0) >= 5  # floors win over the 5 images asked for
    assert (kept["reason"] == "background_share").sum() == 1  # 20 % of the 5 background images
    bad = runner.invoke(app, ["prune", str(tmp_path / "run"), "--keep", "2.5", "-o", str(tmp_path / "p2")])
    assert bad.exit_code == 1 and "whole" in bad.output and "Traceback" not in bad.output


def test_prune_errors_run_keeps_the_failing_image(tmp_path: Path) -> None:
    from tests.pipeline.test_errors import planted_dataset

    data, preds = planted_dataset(tmp_path / "ds")  # scene.jpg: every planted error; easy.jpg: one clean hit
    res = runner.invoke(app, ["errors", str(data), "-p", str(preds), "-o", str(tmp_path / "run"), "-m", "tiny-cnn",
                              "--workers", "0", "--map-method", "none", "--no-report"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["prune", str(tmp_path / "run"), "--keep", "0.5", "--class-floor", "0",
                              "-o", str(tmp_path / "pruned")])  # fmt: skip
    assert res.exit_code == 0, res.output
    kept = pd.read_csv(tmp_path / "pruned" / "kept.csv")
    assert set(kept["source"]) == {"images/scene.jpg"} and "high_loss" in set(kept["reason"])
    dropped = pd.read_csv(tmp_path / "pruned" / "dropped.csv")
    assert set(dropped["source"]) == {"images/easy.jpg"}  # predictions never appear: ground truth only
