from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.errors import DinoscopeError
from dinoscope.run import Run
from dinoscope.table import ObjectTable
from dinoscope.workflows.analyze import analyze
from tests.helpers import write_vector_run


def _planted_run(
    root: Path, seed: int = 0, *, dtype: str = "float32", same_hash: bool = True
) -> tuple[Path, dict[str, int]]:
    """A run directory with 3 well-separated classes (2 sub-groups in class a), a planted outlier, an exact
    duplicate pair straddling train/val, and a swapped label - vectors written straight into the store."""
    rng = np.random.default_rng(seed)
    dim, per = 32, 60
    centres = np.eye(dim)[:3] * 4
    vecs, cls = [], []
    for c in range(3):
        sub = [centres[c] + np.eye(dim)[3 + c] * 2.5, centres[c] - np.eye(dim)[3 + c] * 2.5] if c == 0 else [centres[c]]
        for i in range(per):
            vecs.append(sub[i % len(sub)] + 0.3 * rng.normal(size=dim))
            cls.append(c)
    vecs, cls = np.array(vecs), np.array(cls)
    planted = {"outlier": 5, "dup_a": 70, "dup_b": 71, "swapped": 130}
    vecs[planted["outlier"]] = rng.normal(size=dim) * 4 + np.eye(dim)[20] * 8
    vecs[planted["dup_b"]] = vecs[planted["dup_a"]]
    cls[planted["swapped"]] = 1  # really a class-2 object labelled class 1
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    n = len(vecs)
    split = np.array(["train"] * n, dtype=object)
    split[planted["dup_b"]] = "val"
    names = ("a", "b", "c")
    hashes = [f"h{i:04d}" for i in range(n)]
    if same_hash:
        hashes[planted["dup_b"]] = hashes[planted["dup_a"]]
    write_vector_run(root, vecs, cls, names, split=split, hashes=hashes, dtype=dtype, spec={"model": "test"})
    return root, planted


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_identical_vectors_are_exact_duplicates_in_any_store_dtype(tmp_path: Path, dtype: str) -> None:
    # Different content hashes, identical vectors: only the vector distance can tell. A float16 store's raw
    # norms are ~1e-4 off 1, so this needs analyze to re-normalise before comparing with the identity tolerance.
    run, planted = _planted_run(tmp_path / "run", dtype=dtype, same_hash=False)
    analyze(run=run, map_method="none")
    dup = pd.read_parquet(run / "findings" / "duplicates.parquet")
    exact = set(np.flatnonzero(dup["is_exact_duplicate"].to_numpy()))
    assert exact == {planted["dup_a"], planted["dup_b"]}


def test_analyze_writes_findings_summary_and_thresholds(tmp_path: Path) -> None:
    run, planted = _planted_run(tmp_path / "run")
    result = analyze(run=run, map_method="pca")
    objects = ObjectTable.read_parquet(run / "objects.parquet")
    ids = objects.object_id
    for name in ("clusters", "outliers", "duplicates", "label_errors", "overlap", "leakage"):
        frame = pd.read_parquet(run / "findings" / f"{name}.parquet")
        assert set(frame["object_id"]) <= set(ids) and len(frame) == len(ids), name
    outliers = pd.read_parquet(run / "findings" / "outliers.parquet").set_index("object_id")
    assert outliers["outlier_quality"].idxmin() == ids[planted["outlier"]]
    dups = pd.read_parquet(run / "findings" / "duplicates.parquet").set_index("object_id")
    assert dups.loc[ids[planted["dup_b"]], "is_exact_duplicate"] or dups.loc[ids[planted["dup_b"]], "is_near_duplicate"]
    errors = pd.read_parquet(run / "findings" / "label_errors.parquet").set_index("object_id")
    assert errors["label_quality"].idxmin() == ids[planted["swapped"]]
    assert errors.loc[ids[planted["swapped"]], "suggested_class"] == 2
    leak = pd.read_parquet(run / "findings" / "leakage.parquet").set_index("object_id")
    assert leak.loc[ids[planted["dup_b"]], "is_leaked"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary, default=str))
    assert summary["classes"]["a"]["n_clusters"] == 2 and summary["classes"]["c"]["n"] == 59
    assert summary["classes"]["b"]["n_label_errors"] >= 1
    assert any("sub-types" in r for r in summary["classes"]["a"]["recommendations"])
    top = summary["dataset"]["most_confused_pairs"][0]  # the swapped class-2 object sits among class b's
    assert {top["a"], top["b"]} == {"b", "c"}
    mapped = pd.read_parquet(run / "map.parquet")
    assert list(mapped["object_id"]) == list(ids) and mapped[["x", "y", "class_x", "class_y"]].notna().all().all()
    doc = yaml.safe_load((run / "run.yaml").read_text())
    assert {"clusters", "outliers", "duplicates", "timings_s"} <= set(doc["analysis"])


def test_cli_prints_a_class_table(tmp_path: Path) -> None:
    run, _ = _planted_run(tmp_path / "run")
    out = CliRunner().invoke(app, ["analyze", str(run), "--map-method", "none"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "180 objects, 3 classes" in out.stdout and "Recommendations" in out.stdout
    assert "a: 2 sub-types" in out.stdout


def test_run_without_vectors_is_a_clear_error(tmp_path: Path) -> None:
    Run.create(tmp_path / "empty")
    with pytest.raises(DinoscopeError, match="dinoscope embed"):
        analyze(run=tmp_path / "empty")
