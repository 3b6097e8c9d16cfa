"""Helpers that write tiny images and datasets with planted answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, width: int = 64, height: int = 48, seed: int = 0, fmt: str | None = None) -> Path:
    """Write a random-noise RGB image (distinct per seed) and return its path."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` exactly (no newline added) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


#: (kind, file, line) of every problem planted by :func:`make_yolo_dataset`.
YOLO_PLANTED = {
    ("malformed_line", "train/labels/t1.txt", 2),
    ("malformed_line", "train/labels/t1.txt", 3),
    ("unknown_class", "train/labels/t2.txt", 1),
    ("coords_out_of_range", "train/labels/t3.txt", 1),
    ("pixel_coordinates", "train/labels/t3.txt", 2),
    ("degenerate_box", "train/labels/t4.txt", 1),
    ("tiny_box", "train/labels/t4.txt", 2),
    ("duplicate_box", "train/labels/t5.txt", 2),
    ("stacked_box", "train/labels/t5.txt", 4),
    ("missing_label_file", "train/images/t6.jpg", 0),
    ("background_image", "train/labels/t7.txt", 0),
    ("truncated_image", "train/images/t8.jpg", 0),
    ("unreadable_image", "train/images/t9.jpg", 0),
    ("duplicate_basename", "train/images/t10.png", 0),
    ("duplicate_image", "train/images/t11.jpg", 0),
    ("label_without_image", "train/labels/orphan.txt", 0),
    ("cross_split_duplicate", "val/images/v0.jpg", 0),
    ("empty_class", "", 0),
    ("singleton_class", "", 0),
    ("class_imbalance", "", 0),
}


def make_yolo_dataset(root: Path) -> Path:
    """A YOLO detection dataset (train + val, 64x48 images) with one problem of each kind planted.

    Classes: a (many), b (several), c (one object: singleton), d (none: empty). See :data:`YOLO_PLANTED`.
    """
    write_text(root / "data.yaml", "path: .\ntrain: train/images\nval: val/images\nnames: [a, b, c, d]\n")
    img, lab = root / "train/images", root / "train/labels"
    good = "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.2 0.2"
    labels = {
        "t0": good + "\n2 0.7 0.7 0.2 0.2",
        "t1": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n1 0.5 abc 0.1 0.1\n",
        "t2": "7 0.5 0.5 0.2 0.2",
        "t3": "0 0.5 0.5 1.4 0.2\n1 120 80 40 30",
        "t4": "0 0.5 0.5 0 0.2\n1 0.5 0.5 0.002 0.3",
        "t5": "0 0.4 0.4 0.3 0.3\n0 0.4 0.4 0.3 0.3\n1 0.5 0.5 0.4 0.4\n1 0.5 0.5 0.4 0.38",
        "t7": "",
        "t8": good,
        "t9": good,
        "t10": good,
        "t11": "0 0.6 0.6 0.2 0.2",
    }
    for i in range(12):
        write_image(img / f"t{i}.jpg", seed=i)
    write_image(img / "t10.png", seed=100)
    (img / "t11.jpg").write_bytes((img / "t0.jpg").read_bytes())
    data = (img / "t8.jpg").read_bytes()
    (img / "t8.jpg").write_bytes(data[: len(data) // 2])
    (img / "t9.jpg").write_text("this is not an image", encoding="utf-8")
    for stem, text in labels.items():
        write_text(lab / f"{stem}.txt", text)
    write_text(lab / "orphan.txt", good)
    write_image(root / "val/images/v1.jpg", seed=50)
    (root / "val/images/v0.jpg").write_bytes((img / "t1.jpg").read_bytes())
    write_text(root / "val/labels/v0.txt", good)
    write_text(root / "val/labels/v1.txt", "1 0.5 0.5 0.3 0.3")
    return root


def copy_ppe_subset(ppe_dir: Path, dest: Path, n_images: int) -> Path:
    """The first ``n_images`` train images of the real PPE set with their labels and data.yaml, copied to ``dest``."""
    for image in sorted((ppe_dir / "train" / "images").iterdir())[:n_images]:
        label = ppe_dir / "train" / "labels" / (image.stem + ".txt")
        for src, dst in ((image, dest / "train/images" / image.name), (label, dest / "train/labels" / label.name)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.exists():
                shutil.copyfile(src, dst)
    shutil.copyfile(ppe_dir / "data.yaml", dest / "data.yaml")
    return dest


def write_vector_run(
    root: Path,
    vectors: np.ndarray,
    cls: np.ndarray,
    names: tuple[str, ...],
    *,
    split: np.ndarray | None = None,
    hashes: list[str] | None = None,
    dtype: str = "float32",
    spec: dict | None = None,
) -> Path:
    """A run at ``root`` whose objects are ``vectors`` (one 10x10 box on its own image each, class ``cls``),
    stored as the run's only embedding store ``synthetic``: the analyses' synthetic fixtures."""
    import pandas as pd

    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.run import Run
    from dinoscope.table import ObjectTable, compute_object_ids

    n = len(vectors)
    hashes = hashes if hashes is not None else [f"h{i:05d}" for i in range(n)]
    data = pd.DataFrame(
        {
            "source": [f"img/{i}.jpg" for i in range(n)],
            "frame": -1,
            "split": split if split is not None else "train",
            "class_id": cls,
            "class_name": [names[c] for c in cls],
            "x1": 0.0,
            "y1": 0.0,
            "x2": 10.0,
            "y2": 10.0,
            "image_w": 10,
            "image_h": 10,
            "origin": "label",
            "confidence": np.nan,
            "label_ref": "",
            "content_hash": hashes,
        }
    )
    data.insert(0, "object_id", compute_object_ids(hashes, [-1] * n, np.tile([0.0, 0.0, 10.0, 10.0], (n, 1)), cls))
    run = Run.create(root)
    ObjectTable(data=data, class_names=names).to_parquet(run.objects_path)
    ids = list(data["object_id"])
    with EmbeddingStore.create(run.embeddings_dir, "synthetic", ids, vectors.shape[1], spec or {}, dtype=dtype) as st:
        st.write(np.arange(n), np.asarray(vectors, dtype=np.float32))
    return root
