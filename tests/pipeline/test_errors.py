"""``dinoscope errors``: planted errors typed at their file:line through the real CLI, the run's outputs, the
embedded object table and the report page; one-line errors for bad prediction files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.run import Run
from tests.analysis.test_tide import GT, GT_TYPES, PRED
from tests.helpers import write_image, write_text

runner = CliRunner()
SIDE = 400


#: Scores of the merge and the two halves raised above the true hits, so that they count at the operating point
#: (the best-F1 threshold, here 0.9) where over/under-segmentation is judged.
HIGH = {5: 0.99, 6: 0.98, 7: 0.97}


def planted_dataset(root: Path) -> tuple[Path, Path]:
    """A YOLO dataset (scene.jpg holds the planted scene of tests/analysis/test_tide.py, easy.jpg one object
    found well) and the YOLO txt predictions; returns (data.yaml, predictions folder)."""

    def line(cls: int, box: list[float], score: float | None = None) -> str:
        x1, y1, x2, y2 = (v / SIDE for v in box)
        text = f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"
        return text + (f" {score}" if score is not None else "")

    write_image(root / "images/scene.jpg", SIDE, SIDE, seed=1)
    write_image(root / "images/easy.jpg", SIDE, SIDE, seed=2)
    write_text(root / "labels/scene.txt", "".join(line(c, b) + "\n" for c, b in GT))
    write_text(root / "labels/easy.txt", line(1, [100, 100, 200, 220]) + "\n")
    write_text(root / "data.yaml", "path: .\ntrain: images\nnames: [cat, dog]\n")
    preds = root.parent / "preds"
    write_text(preds / "scene.txt", "".join(line(c, b, HIGH.get(i, s)) + "\n" for i, (c, b, s, _) in enumerate(PRED)))
    write_text(preds / "easy.txt", line(1, [102, 100, 200, 221], 0.95) + "\n")
    return root / "data.yaml", preds


def _line(ref: str) -> tuple[str, int]:
    """``.../labels/scene.txt:3`` -> (``scene.txt``, 3)."""
    path, line = ref.rsplit(":", 1)
    return Path(path).name, int(line)


def test_errors_types_every_planted_error_at_its_file_and_line(tmp_path: Path) -> None:
    data, preds = planted_dataset(tmp_path / "ds")
    res = runner.invoke(app, ["errors", str(data), "--predictions", str(preds), "-o", str(tmp_path / "run"),
                              "--no-embed"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "mAP@0.5" in res.output and "TIDE" in res.output
    run = Run.open(tmp_path / "run")
    errors = run.read_findings("detection_errors")
    assert set(errors.columns) >= {"object_id", "origin", "label_ref", "error_type", "matched_id", "iou", "loss"}
    typed = {(o, *_line(r)): str(t) for o, r, t in zip(errors["origin"], errors["label_ref"], errors["error_type"],
                                                        strict=True)}  # fmt: skip
    assert [typed[("label", "scene.txt", n)] for n in range(1, len(GT) + 1)] == GT_TYPES
    assert [typed[("prediction", "scene.txt", n)] for n in range(1, len(PRED) + 1)] == [p[3] for p in PRED]
    assert typed[("label", "easy.txt", 1)] == typed[("prediction", "easy.txt", 1)] == "tp"
    metrics = json.loads((tmp_path / "run/eval/metrics.json").read_text())
    assert metrics["operating_point"]["score_threshold"] == 0.9
    seg = run.read_findings("segmentation_errors").set_index("object_id")
    ids = {(o, *_line(r)): i for o, r, i in zip(errors["origin"], errors["label_ref"], errors["object_id"],
                                                strict=True)}  # fmt: skip
    merged = ids[("prediction", "scene.txt", 6)]
    assert seg.loc[merged, "is_under_segmented"]
    assert sorted(seg.loc[merged, "involved_ids"]) == sorted(
        [ids[("label", "scene.txt", 5)], ids[("label", "scene.txt", 6)]]
    )
    assert seg.loc[ids[("label", "scene.txt", 7)], "is_over_segmented"]  # the split object
    assert seg["is_over_segmented"].sum() == 3 and seg["is_under_segmented"].sum() == 3  # object + its 2 pieces
    assert 0 < metrics["map50"] < 1 and metrics["per_class"]["dog"]["n_gt"] == 2
    assert metrics["segmentation"]["containment"] == 0.8 and metrics["tide"]["counts"]["label"]["miss"] == 3
    images = pd.read_parquet(tmp_path / "run/eval/images.parquet").set_index("source")
    assert images.loc["images/scene.jpg", "loss"] > images.loc["images/easy.jpg", "loss"]
    assert images.loc["images/scene.jpg", "n_under_segmented"] == 1
    objects = run.read_objects().data
    assert set(objects["origin"]) == {"label", "prediction"} and "loss" in objects


def test_errors_embeds_both_sides_and_writes_the_report_page(tmp_path: Path) -> None:
    data, preds = planted_dataset(tmp_path / "ds")
    res = runner.invoke(app, ["errors", str(data), "-p", str(preds), "-o", str(tmp_path / "run"), "-m", "tiny-cnn",
                              "--workers", "0", "--map-method", "pca"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run = Run.open(tmp_path / "run")
    assert "clusters" in run.findings_names() and run.read_map() is not None
    assert len(run.read_findings("clusters")) == len(run.read_objects())
    page = (tmp_path / "run/report/errors.html").read_text()
    assert "Map coloured and sized by loss" in page and "<circle" in page and "data:image/jpeg" in page
    assert 'href="errors.html"' in (tmp_path / "run/report/index.html").read_text()


def test_a_bad_prediction_line_is_one_red_line_with_file_and_line(tmp_path: Path) -> None:
    data, preds = planted_dataset(tmp_path / "ds")
    write_text(preds / "easy.txt", "1 0.5 0.5 0.2\n")
    res = runner.invoke(app, ["errors", str(data), "-p", str(preds), "-o", str(tmp_path / "run"), "--no-embed"])
    assert res.exit_code == 1
    assert f"{preds / 'easy.txt'}:1: expected 'class cx cy w h [score]'" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["errors", str(data), "-o", str(tmp_path / "run2")])
    assert res.exit_code != 0 and "exactly one of predictions" in res.output


def test_polygons_on_both_sides_are_evaluated_as_masks(tmp_path: Path) -> None:
    root = tmp_path / "seg"
    write_image(root / "images/a.jpg", 100, 100, seed=3)
    write_text(root / "labels/a.txt", "0 0.2 0.2 0.6 0.2 0.6 0.6 0.2 0.6\n1 0.7 0.7 0.9 0.7 0.8 0.9\n")
    write_text(root / "data.yaml", "path: .\ntrain: images\nnames: [square, triangle]\n")
    # the square found as a square; the triangle predicted as its bounding box (box IoU 1, mask IoU 0.5)
    write_text(
        tmp_path / "preds/a.txt", "0 0.2 0.2 0.6 0.2 0.6 0.6 0.2 0.6 0.9\n1 0.7 0.7 0.9 0.7 0.9 0.9 0.7 0.9 0.8\n"
    )
    res = runner.invoke(app, ["errors", str(root / "data.yaml"), "-p", str(tmp_path / "preds"), "--task", "segment",
                              "-o", str(tmp_path / "run"), "--no-embed"])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run/eval/metrics.json").read_text())
    assert metrics["iou_type"] == "mask" and metrics["map50"] == pytest.approx(1.0)
    assert metrics["mask"]["per_class"]["square"]["ap50_95"] > 0.9
    assert metrics["mask"]["per_class"]["triangle"]["ap50_95"] < 0.2  # IoU ~0.5: only the 0.5 threshold
    errors = Run(tmp_path / "run").read_findings("detection_errors")
    tri = errors[(errors["origin"] == "prediction") & (errors["class_name"] == "triangle")]
    assert tri["iou"].item() < 0.6 and str(tri["error_type"].item()) in {"tp", "loc"}


def test_splits_narrow_the_evaluation_to_the_images_of_those_splits(tmp_path: Path) -> None:
    data, preds = planted_dataset(tmp_path / "ds")
    write_text(data, "path: .\ntrain: images\nval: val/images\nnames: [cat, dog]\n")
    write_image(tmp_path / "ds/val/images/v.jpg", SIDE, SIDE, seed=5)
    write_text(tmp_path / "ds/val/labels/v.txt", "0 0.5 0.5 0.2 0.2\n")
    write_text(preds / "v.txt", "0 0.5 0.5 0.2 0.2 0.8\n")
    res = runner.invoke(app, ["errors", str(data), "-p", str(preds), "--splits", "val", "-o", str(tmp_path / "run"),
                              "--no-embed"])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "run/eval/metrics.json").read_text())
    assert metrics["counts"] == {"n_images": 1, "n_gt": 1, "n_pred": 1, "n_crowd": 0}
    assert metrics["map50_95"] == pytest.approx(1.0)
