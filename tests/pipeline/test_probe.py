"""`dinoscope probe`: end to end on tiny planted datasets with the tiny test model, outputs and bad input."""

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
from dinoscope.workflows.probe import probe
from tests.helpers import make_yolo_dataset, write_image

runner = CliRunner()
FAST = {"model": "tiny-cnn", "workers": 0}


def _pairs_json(root: Path, n_groups: int = 16) -> Path:
    """An MMPretrain JSON like DeepPCB's: per group a dark 'ok' image and a bright 'defect' one (group_id)."""
    rng = np.random.default_rng(0)
    entries = []
    for g in range(n_groups):
        base = rng.integers(0, 60, size=(40, 40, 3))
        for label, shift in ((0, 0), (1, 150)):
            path = root / ("ok" if label == 0 else "defect") / f"{g}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((base + shift + rng.integers(0, 20, size=(40, 40, 3))).astype(np.uint8)).save(path)
            entries.append({"img_path": path.relative_to(root).as_posix(), "gt_label": label, "group_id": f"g{g}"})
    doc = {"metainfo": {"classes": ["ok", "defect"]}, "data_list": entries}
    (root / "ann.json").write_text(json.dumps(doc), encoding="utf-8")
    return root / "ann.json"


def test_cli_probes_a_grouped_classification_set_and_a_second_call_computes_nothing(tmp_path: Path) -> None:
    ds = _pairs_json(tmp_path / "ds")
    run = tmp_path / "run"
    args = ["probe", str(ds), "-m", "tiny-cnn", "--workers", "0", "-o", str(run)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "kNN k=10" in result.stdout and "logistic regression" in result.stdout and "32 objects" in result.stdout
    doc = json.loads((run / "probes" / "metrics.json").read_text())
    assert doc["group_by"] == "group_id" and doc["evaluation"]["mode"] == "grouped k-fold"
    assert list(doc["models"]) == ["tiny-cnn"]
    protocols = doc["models"]["tiny-cnn"]["metrics"]
    assert list(protocols) == ["knn10", "knn20", "knn100", "knn200", "logreg"]  # a CNN: no [CLS ‖ mean patch]
    assert protocols["knn10"]["n"] == 32 and protocols["knn200"]["n"] == 32
    assert doc["models"]["tiny-cnn"]["protocols"]["knn200"]["k"] == [24, 26]  # capped at the training rows
    assert protocols["logreg"]["accuracy"]["value"] >= 0.9  # brightness is planted
    assert set(protocols["logreg"]["per_class"]) == {"ok", "defect"}
    assert np.asarray(protocols["logreg"]["confusion"]).sum() == 32
    splits = pd.read_parquet(run / "probes" / "splits.parquet")
    assert list(splits.columns) == ["object_id", "group", "split", "fold"]
    assert (splits.groupby("group")["fold"].nunique() == 1).all() and splits["fold"].nunique() == 5
    summary = pd.read_csv(run / "probes" / "summary.csv")
    assert len(summary) == 5 and {"accuracy_low", "auroc_high"} <= set(summary.columns)
    errors = pd.read_parquet(run / "probes" / "errors.parquet")
    assert set(errors.columns) >= {"object_id", "group", "protocol", "class_name", "predicted"}
    assert (errors["class_name"] != errors["predicted"]).all()
    by_protocol = errors.groupby("protocol").size()
    assert all(by_protocol.get(name, 0) == protocols[name]["n_errors"] for name in protocols)
    assert (errors["group"].isin(splits["group"])).all()

    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    stats = json.loads((run / "probes" / "metrics.json").read_text())["models"]["tiny-cnn"]["embedding"]
    assert stats["n_computed"] == 0 and stats["n_resumed"] == 32
    assert pd.read_csv(run / "probes" / "summary.csv").equals(summary)  # seeded: the same numbers


def test_compare_adds_a_dinov2_folder_with_its_linear_probe(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tests.patches.helpers import save_tiny_dinov2

    backbone = save_tiny_dinov2(tmp_path / "adapted" / "backbone")
    ds = _pairs_json(tmp_path / "ds", n_groups=10)
    result = probe(dataset=ds, out=tmp_path / "run", compare=f"{backbone}", **FAST)
    rows = result.summary.groupby("model")["protocol"].apply(list).to_dict()
    assert rows["tiny-cnn"] == ["knn10", "knn20", "knn100", "knn200", "logreg"]
    assert rows[str(backbone)] == ["knn10", "knn20", "knn100", "knn200", "logreg", "linear"]
    spec = result.metrics["models"][str(backbone)]["spec"]
    assert spec["pooling"] == "cls" and spec["backend"] == "hf-dinov2"
    stores = sorted(p.name for p in (tmp_path / "run" / "embeddings").glob("*.npy") if ".done" not in p.name)
    assert len(stores) == 3  # tiny-cnn, the DINOv2 CLS store and its [CLS ‖ mean patch] store
    doc = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    assert doc["embedding"]["model"]["name"] == "tiny-cnn"  # the run's own model, not the last compared one


def test_boxes_of_a_detection_set_are_grouped_by_image_and_its_split_is_used(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    result = probe(dataset=ds, out=tmp_path / "run", classes=["a", "b"], **FAST)
    ev = result.metrics["evaluation"]
    assert result.metrics["group_by"] == "source"
    assert ev["mode"] == "split" and ev["test_split"] == "val"
    splits = pd.read_parquet(tmp_path / "run" / "probes" / "splits.parquet")
    objects = pd.read_parquet(tmp_path / "run" / "objects.parquet")
    assert (splits["group"] == objects["source"]).all()
    assert set(splits.loc[splits["split"] == "train", "fold"]) <= {-1, -2} and (splits["fold"] == 0).any()


def test_probe_section_in_the_report_of_an_analysed_run(tmp_path: Path) -> None:
    from dinoscope.workflows.pipeline import run_pipeline

    ds = _pairs_json(tmp_path / "ds", n_groups=8)
    run_pipeline(dataset=ds, out=tmp_path / "run", map_method="pca", report=False, **FAST)
    result = probe(dataset=ds, out=tmp_path / "run", resume=True, **FAST)
    assert result.report is not None
    html = result.report.read_text(encoding="utf-8")
    assert 'id="probe-table"' in html and html.count('data-protocol="') == 5
    assert 'data-protocol="logreg"' in html and "grouped 5-fold" in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-by", "camera"], "--group-by 'camera': "),
        (["--classes", "ok"], "every labelled object is of class 'ok'; a probe needs at least two classes"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    ds = _pairs_json(tmp_path / "ds", n_groups=4)
    base = ["probe", str(ds), "-m", "tiny-cnn", "--workers", "0", "-o", str(tmp_path / "r")]
    result = runner.invoke(app, [*base, *args])
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unlabelled_images_are_refused_in_one_line(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / "imgs" / f"{i}.jpg", seed=i)
    result = runner.invoke(app, ["probe", str(tmp_path / "imgs"), "-m", "tiny-cnn", "-o", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "no labelled objects; a probe needs class labels" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_class_folders_are_grouped_by_image(tmp_path: Path) -> None:
    for c in ("cat", "dog"):
        for i in range(6):
            write_image(tmp_path / "ds" / c / f"{i}.jpg", seed=i + (0 if c == "cat" else 50))
    result = probe(dataset=tmp_path / "ds", out=tmp_path / "run", **FAST)
    assert result.metrics["group_by"] == "source" and result.metrics["evaluation"]["n_groups"] == 12
    assert result.metrics["classes"] == ["cat", "dog"] and set(result.summary["n"]) == {12}
