"""Benchmark: `dinoscope errors` on 100,000 ground-truth objects and 100,000 predictions, beside pycocotools.

Writes a YOLO dataset of 10,000 small images with 10 objects each (4 classes) and YOLO txt predictions made
from them (jittered copies, some with a wrong class, some dropped, some background boxes), then measures side
by side:
1. ``dinoscope errors DATASET --predictions P --no-embed``, end to end: read the dataset and the predictions,
   COCO mAP, PR curves, confusion matrix, TIDE types and dAP, over/under-segmentation, loss, the findings files;
2. pycocotools' COCOeval (evaluate + accumulate, boxes) on the same objects, for the mAP alone.
Prints both times, the ratio and the two mAPs. Usage: python benchmarks/errors.py [--images 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dinoscope.workflows.errors import find_errors

N_CLASSES, PER_IMAGE, SIDE = 4, 10, (160, 120)


def build(root: Path, n_images: int, seed: int = 0) -> tuple[list, list]:
    """The dataset and predictions on disk; returns (gt, predictions) rows for pycocotools."""
    rng = np.random.default_rng(seed)
    for folder in ("images", "labels", "preds"):
        (root / folder).mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images\nnames: [a, b, c, d]\n")
    base = rng.integers(0, 256, (SIDE[1], SIDE[0], 3), dtype=np.uint8)
    gts, dts = [], []
    for i in range(n_images):
        img = base.copy()
        img[0, :8] = np.frombuffer(i.to_bytes(8, "little") * 3, np.uint8)[:8, None]  # a distinct file each
        Image.fromarray(img).save(root / "images" / f"{i:06d}.jpg", quality=70)
        xy = rng.uniform(0, 0.8, (PER_IMAGE, 2))
        wh = rng.uniform(0.05, 0.2, (PER_IMAGE, 2))
        cls = rng.integers(0, N_CLASSES, PER_IMAGE)
        lines, preds = [], []
        for c, (x, y), (w, h) in zip(cls, xy, wh, strict=True):
            lines.append(f"{c} {x + w / 2:.5f} {y + h / 2:.5f} {w:.5f} {h:.5f}")
            gts.append((i, int(c), [x * SIDE[0], y * SIDE[1], (x + w) * SIDE[0], (y + h) * SIDE[1]]))
            if rng.random() < 0.1:
                continue  # missed
            jx, jy, jw, jh = rng.normal(0, 0.01, 4)
            pc = int(c) if rng.random() < 0.9 else int(rng.integers(N_CLASSES))
            preds.append((pc, x + jx, y + jy, max(w + jw, 0.01), max(h + jh, 0.01), float(rng.random())))
        while len(preds) < PER_IMAGE:  # background boxes
            x, y = rng.uniform(0, 0.8, 2)
            preds.append((int(rng.integers(N_CLASSES)), x, y, 0.1, 0.1, float(rng.random() * 0.5)))
        (root / "labels" / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")
        text = [f"{c} {x + w / 2:.5f} {y + h / 2:.5f} {w:.5f} {h:.5f} {s:.4f}" for c, x, y, w, h, s in preds]
        (root / "preds" / f"{i:06d}.txt").write_text("\n".join(text) + "\n")
        for c, x, y, w, h, s in preds:
            dts.append((i, c, [x * SIDE[0], y * SIDE[1], (x + w) * SIDE[0], (y + h) * SIDE[1]], round(s, 4)))
    return gts, dts


def pycocotools_map(gts: list, dts: list, n_images: int) -> tuple[float, float]:
    """(seconds for COCOeval evaluate + accumulate, mAP@0.5:0.95)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: list[float]) -> list[float]:
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    doc = {
        "images": [{"id": i + 1, "width": SIDE[0], "height": SIDE[1]} for i in range(n_images)],
        "categories": [{"id": c + 1, "name": str(c)} for c in range(N_CLASSES)],
        "annotations": [
            {"id": n + 1, "image_id": i + 1, "category_id": c + 1, "bbox": xywh(b), "area": 1.0, "iscrowd": 0}
            for n, (i, c, b) in enumerate(gts)
        ],
    }
    results = [{"image_id": i + 1, "category_id": c + 1, "bbox": xywh(b), "score": s} for i, c, b, s in dts]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = doc
        coco.createIndex()
        found = coco.loadRes(results)
        started = time.perf_counter()
        ev = COCOeval(coco, found, "bbox")
        ev.evaluate()
        ev.accumulate()
        seconds = time.perf_counter() - started
        ev.summarize()
    return seconds, float(ev.stats[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--no-pycocotools", action="store_true", help="Skip the pycocotools side.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gts, dts = build(root, args.images)
        started = time.perf_counter()
        result = find_errors(
            dataset=root / "data.yaml", predictions=root / "preds", out=root / "run", embed=False, report=False
        )
        ours = time.perf_counter() - started
        m = result.metrics
        print(f"{len(gts)} ground-truth objects, {len(dts)} predictions, {args.images} images")
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
        print(f"dinoscope errors (end to end, no embedding): {ours:.1f} s ({stages})")
        print(f"  mAP@0.5:0.95 {m['map50_95']:.4f}, mAP@0.5 {m['map50']:.4f}; evaluation alone {m['seconds']:.1f} s")
        if not args.no_pycocotools:
            seconds, ref = pycocotools_map(gts, dts, args.images)
            print(f"pycocotools COCOeval evaluate+accumulate (mAP only): {seconds:.1f} s, mAP@0.5:0.95 {ref:.4f}")
            print(f"ratio pycocotools / dinoscope evaluation: {seconds / m['seconds']:.1f}x")


if __name__ == "__main__":
    main()
