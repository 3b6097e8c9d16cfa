"""``analyze`` on the memory-bounded (on-disk) neighbour graph: the same findings as the in-memory path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("faiss")

from dinoscope.analysis.neighbors import build_neighbor_graph, choose_method
from dinoscope.embed.store import EmbeddingStore
from dinoscope.run import Run
from dinoscope.workflows.analyze import analyze
from tests.helpers import write_vector_run

PLANTED = {"outlier": 5, "dup_a": 70, "dup_b": 71, "swapped": 400}


def _run(root: Path, per: int = 200, dim: int = 64, seed: int = 0) -> Path:
    """3 classes of ``per`` objects (class 0 in 2 sub-groups) in a float16 store; a planted outlier, an exact
    duplicate pair across train/val and a swapped label."""
    rng = np.random.default_rng(seed)
    eye = np.eye(dim)
    vecs, cls = [], []
    for c in range(3):
        subs = [eye[c] * 4 + eye[3 + c] * 2.5, eye[c] * 4 - eye[3 + c] * 2.5] if c == 0 else [eye[c] * 4]
        for i in range(per):
            vecs.append(subs[i % len(subs)] + 0.3 * rng.normal(size=dim))
            cls.append(c)
    x, cls = np.array(vecs), np.array(cls)
    x[PLANTED["outlier"]] = rng.normal(size=dim) * 4 + eye[20] * 8
    x[PLANTED["dup_b"]] = x[PLANTED["dup_a"]]
    cls[PLANTED["swapped"]] = 1  # a class-2 object labelled class 1
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n, names = len(x), ("a", "b", "c")
    split = np.array(["train"] * n, dtype=object)
    split[PLANTED["dup_b"]] = "val"
    return write_vector_run(root, x, cls, names, split=split, dtype="float16")


def test_auto_goes_to_disk_only_past_the_memory_budget() -> None:
    assert choose_method(5_000, 768) == "exact"
    assert choose_method(200_000, 384) == "hnsw"  # 0.6 GB: fits any machine running the tests
    assert choose_method(10**12, 768) == "disk"
    assert choose_method(100, 8, "disk") == "disk"


def test_disk_graph_through_build_neighbor_graph_reads_the_store(tmp_path: Path) -> None:
    root = _run(tmp_path / "run")
    path = EmbeddingStore.open(Run.open(root).embeddings_dir).path
    x = np.load(path, mmap_mode="r")
    graph = build_neighbor_graph(x, 15, method="disk", store=path, workdir=tmp_path / "tmp")
    exact = build_neighbor_graph(np.asarray(x, dtype=np.float32), 15, method="exact")
    recall = np.mean([len(np.intersect1d(a, b)) / 15 for a, b in zip(graph.indices, exact.indices, strict=True)])
    assert graph.method == "disk" and recall >= 0.95, (recall, graph.info)
    assert not isinstance(graph.indices, np.memmap) and not list((tmp_path / "tmp").iterdir())  # files removed


def _findings(root: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p).set_index("object_id") for p in sorted((root / "findings").glob("*.parquet"))}


def test_analyze_on_the_disk_graph_finds_what_the_in_memory_path_finds(tmp_path: Path) -> None:
    memory, disk = _run(tmp_path / "memory"), _run(tmp_path / "disk")
    analyze(run=memory, map_method="none", neighbor_method="exact")
    analyze(run=disk, map_method="none", neighbor_method="disk")
    a, b = _findings(memory), _findings(disk)
    assert a.keys() == b.keys() and {"outliers", "duplicates", "label_errors", "clusters"} <= a.keys()
    ids = a["outliers"].index
    for name, frame in a.items():
        other = b[name].loc[frame.index]
        for col in (c for c in frame.columns if c.startswith("is_")):
            agree = float((frame[col].to_numpy() == other[col].to_numpy()).mean())
            assert agree >= 0.99, (name, col, agree)  # tolerance: <= 1 % of rows may flip
        for col in (c for c in frame.columns if c.endswith("_quality")):
            diff = np.nanmax(np.abs(frame[col].to_numpy(float) - other[col].to_numpy(float)))
            assert diff <= 0.05, (name, col, diff)
    for f in (a, b):  # the planted answers, on both paths
        assert f["outliers"]["outlier_quality"].idxmin() == ids[PLANTED["outlier"]]
        assert f["duplicates"].loc[ids[PLANTED["dup_b"]], "is_exact_duplicate"]
        assert f["label_errors"]["label_quality"].idxmin() == ids[PLANTED["swapped"]]
    yaml_text = (disk / "run.yaml").read_text()
    assert "neighbor_method: disk" in yaml_text
