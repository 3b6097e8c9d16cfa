"""Scale check of the report (not a test): a synthetic run of C classes x N objects with real image files.

Usage: python tests/report/scale_check.py OUT [--classes 100] [--per-class 1000] [--per-image 5]

Writes small JPEGs (one coloured box per object), vectors with 3 sub-groups per class straight into the
store, runs ``analyze`` (PCA maps) and times ``build_report``; prints the build time and the page weight.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from dinoscope.embed.store import EmbeddingStore
from dinoscope.report import build_report
from dinoscope.run import Run
from dinoscope.table import ObjectTable, compute_object_ids
from dinoscope.workflows.analyze import analyze


def make_run(out: Path, n_classes: int, per_class: int, per_image: int, dim: int = 24, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = n_classes * per_class
    cls = np.repeat(np.arange(n_classes), per_class)
    rng.shuffle(cls)
    centres = rng.normal(size=(n_classes, dim)) * 3
    subs = rng.normal(size=(n_classes, 3, dim))
    vecs = centres[cls] + subs[cls, rng.integers(0, 3, n)] + 0.4 * rng.normal(size=(n, dim))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    n_images = -(-n // per_image)
    image_of = np.arange(n) // per_image
    slot = np.arange(n) % per_image
    data_dir = out / "dataset"
    (data_dir / "images").mkdir(parents=True, exist_ok=True)
    colors = rng.integers(30, 226, size=(n, 3)).astype(np.uint8)
    w, h, bw = 40 * per_image, 64, 36
    for i in range(n_images):
        arr = np.full((h, w, 3), 210, np.uint8)
        for k in range(per_image):
            j = i * per_image + k
            if j < n:
                arr[14:50, k * 40 + 2 : k * 40 + 2 + bw] = colors[j]
        Image.fromarray(arr).save(data_dir / "images" / f"{i:06d}.jpg", quality=85)
    names = [f"class_{c:03d}" for c in range(n_classes)]
    x1 = slot * 40 + 2.0
    data = pd.DataFrame(
        {
            "source": [f"images/{i:06d}.jpg" for i in image_of],
            "frame": -1,
            "split": np.where(rng.random(n) < 0.8, "train", "val"),
            "class_id": cls,
            "class_name": [names[c] for c in cls],
            "x1": x1,
            "y1": 14.0,
            "x2": x1 + bw,
            "y2": 50.0,
            "image_w": w,
            "image_h": h,
            "origin": "label",
            "confidence": np.nan,
            "label_ref": [f"labels/{i:06d}.txt:{k + 1}" for i, k in zip(image_of, slot, strict=True)],
            "content_hash": [f"h{i:06d}" for i in image_of],
        }
    )
    data.insert(
        0,
        "object_id",
        compute_object_ids(data["content_hash"], data["frame"], data[["x1", "y1", "x2", "y2"]].to_numpy(), cls),
    )
    run_dir = out / "run"
    run = Run.create(run_dir, overwrite=True)
    ObjectTable(data=data, class_names=tuple(names), root=data_dir.resolve(), format="yolo").to_parquet(
        run.objects_path
    )
    store = EmbeddingStore.create(run.embeddings_dir, "synthetic", list(data["object_id"]), dim, {"model": "synthetic"})
    store.write(np.arange(n), vecs.astype(np.float32))
    store.close()
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--per-image", type=int, default=5)
    parser.add_argument("--skip-analysis", action="store_true", help="reuse OUT/run as it is")
    args = parser.parse_args()
    run = args.out / "run"
    if not args.skip_analysis:
        t = time.perf_counter()
        run = make_run(args.out, args.classes, args.per_class, args.per_image)
        print(f"dataset + vectors: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        analyze(run=run, map_method="pca")
        print(f"analyze: {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    build_report(run, overwrite=True)
    seconds = time.perf_counter() - t
    weight = yaml.safe_load((run / "run.yaml").read_text())["report"]
    print(
        f"report: {seconds:.1f} s for {weight['n_files']} files; first view {weight['initial_bytes'] / 1024:.0f} KB, "
        f"largest class page {weight['largest_page_bytes'] / 1024:.0f} KB, "
        f"total {weight['total_bytes'] / 2**20:.1f} MB, "
        f"{weight['n_thumbnails']} thumbnails in {weight['n_sheets']} sheets"
    )


if __name__ == "__main__":
    main()
