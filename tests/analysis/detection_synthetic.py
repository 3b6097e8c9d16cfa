"""Synthetic ground truth and predictions for the detection-evaluation tests, and pycocotools on the same inputs."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from dinoscope.analysis.detection_match import Instances


def random_scene(seed: int, n_images: int = 40, n_classes: int = 4, crowd_frac: float = 0.05) -> tuple[list, list]:
    """(ground truth, predictions): jittered copies of objects (some with a wrong class), and random boxes.

    Ground truth rows are ``(image, class, xyxy, crowd)``; predictions ``(image, class, xyxy, score)``, scores
    rounded to 0.01 so that ties occur.
    """
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for i in range(n_images):
        for _ in range(rng.integers(0, 8)):
            x, y = rng.uniform(0, 200, 2)
            w, h = rng.uniform(5, 80, 2)
            gts.append((i, int(rng.integers(n_classes)), [x, y, x + w, y + h], bool(rng.random() < crowd_frac)))
    for i, c, b, _ in gts:
        for _ in range(rng.integers(0, 3)):
            box = np.array(b) + rng.normal(0, 6, 4)
            if box[2] > box[0] + 1 and box[3] > box[1] + 1:
                cls = c if rng.random() < 0.85 else int(rng.integers(n_classes))
                dts.append((i, cls, box.tolist(), float(np.round(rng.random(), 2))))
    for i in range(n_images):
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 200, 2)
            w, h = rng.uniform(5, 80, 2)
            dts.append((i, int(rng.integers(n_classes)), [x, y, x + w, y + h], float(np.round(rng.random(), 2))))
    return gts, dts


def instances(gts: list, dts: list) -> tuple[Instances, Instances]:
    """(ground truth, predictions) as :class:`Instances`."""
    gt = Instances([g[0] for g in gts], [g[1] for g in gts], [g[2] for g in gts], crowd=[g[3] for g in gts])
    dt = Instances([d[0] for d in dts], [d[1] for d in dts], [d[2] for d in dts], score=[d[3] for d in dts])
    return gt, dt


def pycocotools_eval(
    gts: list, dts: list, n_images: int, n_classes: int, iou_type: str = "bbox", masks: tuple | None = None
) -> Any:
    """COCOeval (evaluate, accumulate, summarize) on the same inputs; ``masks`` = (gt RLEs, prediction RLEs)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns = []
    for n, (i, c, b, crowd) in enumerate(gts):
        ann = {"id": n + 1, "image_id": i + 1, "category_id": c + 1, "iscrowd": int(crowd)}
        ann.update(bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]], area=(b[2] - b[0]) * (b[3] - b[1]))
        if masks is not None:
            ann["segmentation"] = masks[0][n]
        anns.append(ann)
    doc = {
        "images": [{"id": i + 1, "width": 300, "height": 300} for i in range(n_images)],
        "categories": [{"id": c + 1, "name": str(c)} for c in range(n_classes)],
        "annotations": anns,
    }
    results = []
    for n, (i, c, b, s) in enumerate(dts):
        entry = {"image_id": i + 1, "category_id": c + 1, "score": s}
        if masks is not None:
            entry["segmentation"] = masks[1][n]
        else:
            entry["bbox"] = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
        results.append(entry)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = doc
        coco.createIndex()
        found = coco.loadRes(results)
        ev = COCOeval(coco, found, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
