"""`run_pipeline` / `dinoscope analyze DATASET`: check -> embed -> analyses (-> report) in one run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.embed.registry import resolve_model
from dinoscope.errors import ConfigError, OutputExistsError
from dinoscope.table import ObjectTable
from dinoscope.workflows.pipeline import run_pipeline
from tests.helpers import make_yolo_dataset, write_image, write_text

runner = CliRunner()
FAST = {"model": "tiny-cnn", "workers": 0, "map_method": "pca", "report": False}


def test_pipeline_checks_embeds_and_analyses_a_planted_dataset(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    result = run_pipeline(dataset=ds / "data.yaml", out=tmp_path / "run", **FAST)
    run = tmp_path / "run"
    checks = json.loads((run / "checks" / "checks.json").read_text())
    assert checks["kinds"]["malformed_line"] >= 1 and checks["kinds"]["unknown_class"] == 1
    assert result.check_kinds == checks["kinds"]
    summary = json.loads((run / "summary.json").read_text())
    objects = ObjectTable.read_parquet(run / "objects.parquet")
    assert summary["n_objects"] == result.summary["n_objects"] <= len(objects)
    assert sum(c["n"] for c in summary["classes"].values()) == summary["n_objects"]
    for name in ("clusters", "outliers", "duplicates", "label_errors", "overlap", "leakage"):
        assert (run / "findings" / f"{name}.parquet").is_file(), name
    doc = yaml.safe_load((run / "run.yaml").read_text())
    assert doc["pipeline"]["model"] == "tiny-cnn" and doc["pipeline"]["config"]["dataset"].endswith("data.yaml")
    assert set(doc["pipeline"]["timings_s"]) >= {"read_check", "embed", "analyze"}


def test_filters_keep_only_the_chosen_classes_splits_and_sizes(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    result = run_pipeline(dataset=ds, out=tmp_path / "a", classes=["a", "1"], splits=["train"], **FAST)
    objects = ObjectTable.read_parquet(tmp_path / "a" / "objects.parquet")
    assert set(objects.data["class_name"]) == {"a", "b"} and set(objects.data["split"]) == {"train"}
    assert objects.class_names == ("a", "b") and set(result.summary["classes"]) == {"a", "b"}
    assert (objects.data["class_id"] == objects.data["dataset_class_id"]).all()  # a, b are the first two
    assert result.n_dropped > 0
    big = run_pipeline(dataset=ds, out=tmp_path / "b", min_object_size=10, **FAST)
    kept = ObjectTable.read_parquet(tmp_path / "b" / "objects.parquet").data
    assert big.n_dropped > 0 and (np.minimum(kept["x2"] - kept["x1"], kept["y2"] - kept["y1"]) >= 10).all()
    with pytest.raises(ConfigError, match=r"class 'zebra' is not in the dataset; its classes are: a, b, c, d"):
        run_pipeline(dataset=ds, out=tmp_path / "c", classes=["zebra"], **FAST)
    with pytest.raises(ConfigError, match=r"split\(s\) \['tset'\] not in the dataset"):
        run_pipeline(dataset=ds, out=tmp_path / "d", splits=["tset"], **FAST)


def test_existing_run_is_refused_then_resumed_from_cache(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    run_pipeline(dataset=ds, out=tmp_path / "run", **FAST)
    before = (tmp_path / "run" / "objects.parquet").read_bytes()
    with pytest.raises(OutputExistsError, match="--resume to continue it or --overwrite"):
        run_pipeline(dataset=ds, out=tmp_path / "run", **FAST)
    assert (tmp_path / "run" / "objects.parquet").read_bytes() == before  # nothing touched
    again = run_pipeline(dataset=ds, out=tmp_path / "run", resume=True, **FAST)
    assert again.summary["n_objects"] > 0
    stats = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())["embed_stats"]
    assert stats["n_computed"] == 0  # every vector was already in the run's store


def test_auto_model_falls_back_to_the_offline_model_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    model, note = resolve_model("auto")
    assert model == "efficientnet-lite0" and "dinov2-base weights are not on this machine" in note


def test_export_crops_keeps_every_box_under_its_own_name(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    write_image(ds / "images" / "cam1" / "img.jpg", 80, 60, seed=1)
    write_image(ds / "images" / "cam2" / "img.jpg", 80, 60, seed=2)  # the same stem in another folder
    write_text(ds / "labels" / "cam1" / "img.txt", "0 0.25 0.5 0.2 0.4\n0 0.75 0.5 0.2 0.4\n1 0.5 0.5 0.3 0.3\n")
    write_text(ds / "labels" / "cam2" / "img.txt", "0 0.5 0.5 0.2 0.4\n")
    write_text(ds / "classes.txt", "person\nbox\n")
    crops = tmp_path / "crops"
    run_pipeline(dataset=ds, out=tmp_path / "run", export_crops=crops, **FAST)
    index = pd.read_csv(crops / "crops.csv", keep_default_na=False)
    assert len(index) == 4 and index["file"].is_unique and (index["error"] == "").all()
    person = sorted(p.name for p in (crops / "person").iterdir())
    assert person == ["images__cam1__img_0.jpg", "images__cam1__img_1.jpg", "images__cam2__img_0.jpg"]
    with Image.open(crops / index.loc[0, "file"]) as im:  # 0.2 x 0.4 of 80 x 60 -> 16 x 24
        assert im.size == (16, 24)
    write_text(tmp_path / "full" / "mine.txt", "keep me")
    with pytest.raises(OutputExistsError, match="is not empty"):
        run_pipeline(dataset=ds, out=tmp_path / "run2", export_crops=tmp_path / "full", **FAST)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"


def test_cli_config_file_flags_win_and_unknown_keys_are_listed(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    cfg = write_text(
        tmp_path / "run.yaml", "model: tiny-cnn\nclasses: [b]\nmap_method: pca\nworkers: 0\nreport: false\n"
    )
    res = runner.invoke(app, ["analyze", str(ds), "--config", str(cfg), "--classes", "a", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    objects = ObjectTable.read_parquet(tmp_path / "r" / "objects.parquet")
    assert set(objects.data["class_name"]) == {"a"}  # the flag beat the file
    assert "report" not in res.output.lower() or "report:" not in res.output
    bad = write_text(tmp_path / "bad.yaml", "modle: tiny-cnn\nclusters: 3\n")
    res = runner.invoke(app, ["analyze", str(ds), "--config", str(bad), "-o", str(tmp_path / "r2")])
    assert res.exit_code == 1
    assert "unknown key 'modle'" in res.output and "unknown key 'clusters'" in res.output
    assert not (tmp_path / "r2").exists()


def test_cli_on_a_run_directory_reanalyses_and_refuses_dataset_flags(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    run_pipeline(dataset=ds, out=tmp_path / "run", **FAST)
    res = runner.invoke(app, ["analyze", str(tmp_path / "run"), "--map-method", "none", "--no-report"])
    assert res.exit_code == 0, res.output
    assert "Recommendations" in res.output
    res = runner.invoke(app, ["analyze", str(tmp_path / "run"), "--classes", "a"])
    assert res.exit_code != 0 and "--classes only apply to a dataset" in res.output


def test_video_needs_whole_images_or_a_detector(tmp_path: Path, bottle_video: Path) -> None:
    with pytest.raises(ConfigError, match=r"--whole-images .* `dinoscope video PATH --detector MODEL`"):
        run_pipeline(dataset=bottle_video, out=tmp_path / "run", **FAST)


def test_whole_image_frames_of_a_video_get_quality_flags(tmp_path: Path, bottle_video: Path) -> None:
    options = {**FAST, "report": True}  # the report's thumbnails come from the video's frames
    result = run_pipeline(dataset=bottle_video, out=tmp_path / "run", whole_images=True, every_s=5.0, **options)
    objects = ObjectTable.read_parquet(tmp_path / "run" / "objects.parquet").data
    assert len(objects) == 8 and (objects["frame"].diff().dropna() == 149).all()  # 29.8 fps x 5 s
    quality = pd.read_parquet(tmp_path / "run" / "findings" / "quality.parquet")
    assert len(quality) == 8 and (quality["error"] == "").all()
    assert (quality["sharpness"] > 0.005).all() and quality["brightness"].between(0.1, 0.9).all()
    assert result.summary["dataset"]["quality"]["n_quality_issues"] == int(quality["is_quality_issue"].sum())
    assert result.report == tmp_path / "run" / "report" / "index.html" and result.report.is_file()


@pytest.mark.slow
def test_ppe_end_to_end_through_the_cli(tmp_path: Path, ppe_dir: Path) -> None:
    # every box of the 909 images (tiny model: the plumbing at full size)
    res = runner.invoke(
        app,
        ["analyze", str(ppe_dir), "-m", "tiny-cnn", "--map-method", "pca", "--no-report", "-o", str(tmp_path / "p")],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["n_objects"] == 4625 and summary["n_classes"] == 4


def test_deeppcb_end_to_end_through_the_cli(tmp_path: Path, deeppcb_dir: Path) -> None:
    # two defect classes with the real offline backbone
    args = ["analyze", str(deeppcb_dir), "-m", "efficientnet-lite0", "--classes", "open,short"]
    res = runner.invoke(app, [*args, "--map-method", "pca", "-o", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["n_objects"] == 352 + 266
    assert {"open", "short"} <= set(summary["classes"])
    assert summary["classes"]["open"]["n"] == 352 and summary["classes"]["short"]["n"] == 266
    assert (tmp_path / "d" / "report" / "index.html").is_file() and "report:" in res.output


def create_interrupting(weights: str, **options: object) -> object:
    """Registry factory: the tiny model, raising KeyboardInterrupt (Ctrl-C) at its second batch."""
    from tests.embed.fakes import TinyCNN

    return TinyCNN(interrupt_after=1)


def test_interrupted_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    from dinoscope.embed.registry import register_model

    ds = make_yolo_dataset(tmp_path / "ds")
    register_model("tiny-cnn", "tests.pipeline.test_pipeline:create_interrupting", "seed0", "interrupting")
    options = {**FAST, "batch_size": 2, "no_cache": True}
    res = runner.invoke(
        app,
        [
            "analyze",
            str(ds),
            "-o",
            str(tmp_path / "run"),
            "-m",
            "tiny-cnn",
            "--batch-size",
            "2",
            "--no-cache",
            "--workers",
            "0",
            "--map-method",
            "pca",
            "--no-report",
        ],
    )
    assert res.exit_code == 1 and "interrupted after 2 new vectors" in res.output and "--resume" in res.output
    assert not (tmp_path / "run" / "summary.json").exists()
    register_model("tiny-cnn", "tests.embed.fakes:create_tiny", "seed0", "test model")
    resumed = run_pipeline(dataset=ds, out=tmp_path / "run", resume=True, **options)
    stats = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())["embed_stats"]
    assert stats["n_resumed"] == 2 and stats["n_computed"] == resumed.summary["n_objects"] - 2
    fresh = run_pipeline(dataset=ds, out=tmp_path / "fresh", **options)
    assert resumed.summary["classes"] == fresh.summary["classes"]
