"""Real data: YOLOX-Nano's predictions on ../shared/data/coco-mini, mAP equal to pycocotools (precision="fp32":
the detector runs in onnxruntime fp32 on CPU; the comparison itself is exact arithmetic on the same boxes)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.conftest import SHARED

pytestmark = pytest.mark.slow  # the detector over 39 images: ~10 s on 2 cores

COCO_MINI = SHARED / "data/coco-mini"
YOLOX = SHARED / "models/yolox-nano/yolox_nano.onnx"


@pytest.fixture(scope="module")
def yolox_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """``dinoscope errors coco-mini/instances.json --detector yolox_nano.onnx`` (no embedding), and the results
    JSON rebuilt from its findings (category ids of instances.json, image ids, xywh boxes, scores)."""
    if not (COCO_MINI / "instances.json").is_file() or not YOLOX.is_file():
        pytest.skip("../shared coco-mini or yolox-nano is not available")
    pytest.importorskip("onnxruntime")
    from dinoscope.run import Run
    from dinoscope.workflows.errors import find_errors

    out = tmp_path_factory.mktemp("yolox") / "run"
    result = find_errors(dataset=COCO_MINI / "instances.json", detector=YOLOX, out=out, embed=False, report=False)
    doc = json.loads((COCO_MINI / "instances.json").read_text())
    image_id = {im["file_name"]: im["id"] for im in doc["images"]}
    cat_id = {c["name"]: c["id"] for c in doc["categories"]}
    errors = Run(out).read_findings("detection_errors")
    preds = errors[errors["origin"] == "prediction"]
    results = [
        {"image_id": image_id[Path(r.source).name], "category_id": cat_id[r.class_name], "score": r.confidence,
         "bbox": [r.x1, r.y1, r.x2 - r.x1, r.y2 - r.y1]}
        for r in preds.itertuples()
    ]  # fmt: skip
    path = out.parent / "results.json"
    path.write_text(json.dumps(results))
    return result.metrics, path


def test_yolox_nano_map_on_coco_mini_equals_pycocotools(yolox_run: tuple[dict, Path]) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    metrics, results = yolox_run
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(COCO_MINI / "instances.json"))
        ev = COCOeval(gt, gt.loadRes(str(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert metrics["counts"]["n_crowd"] == 3 and metrics["counts"]["n_gt"] == 276
    assert metrics["map50_95"] == pytest.approx(ev.stats[0], abs=1e-3)
    assert metrics["map50"] == pytest.approx(ev.stats[1], abs=1e-3)
    assert 0.3 < metrics["map50_95"] < 0.5  # YOLOX-Nano: 25.8 on COCO val; these 39 images are easier


def test_yolox_nano_errors_on_coco_mini_are_typed_and_explained(yolox_run: tuple[dict, Path]) -> None:
    metrics, _ = yolox_run
    tide = metrics["tide"]
    assert abs(tide["ap50"] - metrics["map50"]) < 0.02  # TIDE's matching at 0.5 ~ COCO's at 0.5
    counts = tide["counts"]
    assert sum(counts["label"].values()) == 276 and counts["label"]["ignored"] == 3  # the crowd regions
    assert sum(counts["prediction"].values()) == metrics["counts"]["n_pred"]
    assert counts["prediction"]["tp"] == counts["label"]["tp"]
    assert max(tide["dap"], key=tide["dap"].get) in {"loc", "miss", "bkg", "cls"}
    assert all(0 <= v < 0.2 for v in tide["dap"].values())
