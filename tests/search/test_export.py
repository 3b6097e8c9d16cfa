"""`dinoscope export RUN DIR --to parquet|fiftyone`: tables pandas/DuckDB read, a dataset FiftyOne loads."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.embed.store import EmbeddingStore
from dinoscope.errors import ConfigError, OutputExistsError
from dinoscope.run import Run
from dinoscope.workflows.export import export

runner = CliRunner()


def test_parquet_tables_hold_every_finding_the_vectors_and_the_map(
    analysed_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run_dir, _ = analysed_run
    run = Run.open(run_dir)
    result = export(run=run_dir, out=tmp_path / "pq", to="parquet")
    objects = pd.read_parquet(tmp_path / "pq" / "objects.parquet")  # the README's one line
    table = run.read_objects()
    assert len(objects) == len(table) and list(objects["object_id"]) == list(table.object_id)
    for name in run.findings_names():  # every findings column is there, under its name or as <col>_id
        for col in run.read_findings(name).columns:
            assert col in objects.columns or f"{col}_id" in objects.columns, (name, col)
    assert {"x", "y", "class_x", "class_y", "outlier_quality", "label_ref"} <= set(objects.columns)
    outliers = run.read_findings("outliers").set_index("object_id")["outlier_quality"]
    got = objects.set_index("object_id").loc[outliers.index, "outlier_quality"]
    np.testing.assert_allclose(got.to_numpy(), outliers.to_numpy())

    vectors = pd.read_parquet(tmp_path / "pq" / "vectors.parquet")
    store = EmbeddingStore.open(run.embeddings_dir)
    assert len(vectors) == int(store.valid_mask().sum()) == result.counts["vectors"]
    first = np.asarray(vectors["vector"].iloc[0], dtype=np.float32)
    np.testing.assert_allclose(first, store.get([vectors["object_id"].iloc[0]])[0], rtol=1e-6)
    images = pd.read_parquet(tmp_path / "pq" / "images.parquet")
    assert len(images) == len(table.images)
    duckdb = pytest.importorskip("duckdb", reason="duckdb is in the dev extra")
    path = tmp_path / "pq" / "objects.parquet"  # the README's DuckDB line, on this export
    rows = duckdb.sql(f"SELECT class_name, avg(outlier_quality) FROM '{path}' GROUP BY 1").fetchall()
    expected = objects.groupby("class_name")["outlier_quality"].mean()
    assert len(rows) == len(expected) > 0
    for name, mean in rows:
        assert mean == pytest.approx(expected[name], rel=1e-9, nan_ok=True)


def test_parquet_export_refuses_to_overwrite_and_needs_a_folder(
    analysed_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run_dir, _ = analysed_run
    out = runner.invoke(app, ["export", str(run_dir), str(tmp_path / "pq"), "--to", "parquet"])
    assert out.exit_code == 0, out.output
    assert "objects" in out.output
    with pytest.raises(OutputExistsError):
        export(run=run_dir, out=tmp_path / "pq", to="parquet")
    export(run=run_dir, out=tmp_path / "pq", to="parquet", overwrite=True)
    with pytest.raises(ConfigError, match="give the folder"):
        export(run=run_dir, to="parquet")


_FIFTYONE_SCRIPT = """
import json, sys
import numpy as np
import fiftyone as fo
import fiftyone.core.service as fos
from dinoscope.workflows.export import export

try:
    fos.DatabaseService.find_mongod()
    import fiftyone.core.odm as foo

    foo.get_db_conn()
except Exception as exc:  # fiftyone-db 1.x installed offline has no mongod (its build downloads it)
    print(json.dumps({"skip": f"FiftyOne's database cannot start here ({type(exc).__name__}: {exc})"}))
    sys.exit(0)
run, out = sys.argv[1], sys.argv[2]
result = export(run=run, out=out, to="fiftyone")
ds = fo.Dataset.from_dir(out, dataset_type=fo.types.FiftyOneDataset)
dets = [d for s in ds for d in s["ground_truth"].detections]
with_vec = [d for d in dets if d.get_field("embedding") is not None]
print(json.dumps({
    "samples": len(ds), "detections": len(dets), "counts": result.counts,
    "fields": sorted(dets[0].field_names), "dim": int(np.asarray(with_vec[0]["embedding"]).shape[0]),
    "brain": ds.list_brain_runs(),
    "object_id": with_vec[0]["object_id"], "embedding": np.asarray(with_vec[0]["embedding"]).tolist(),
    "quality": [d["outlier_quality"] for d in dets if d.get_field("outlier_quality") is not None][:3],
    "exists": all(__import__("os").path.exists(s.filepath) for s in ds),
}))
"""


@pytest.mark.slow
def test_fiftyone_loads_the_exported_dataset(analysed_run: tuple[Path, Path], tmp_path: Path) -> None:
    if importlib.util.find_spec("fiftyone") is None:
        pytest.skip("fiftyone is not installed (pip install 'dinoscope[fiftyone]')")
    run_dir, _ = analysed_run
    env = {**os.environ, "FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_DATABASE_DIR": str(tmp_path / "fo-db")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2] / "src"), env.get("PYTHONPATH", "")])
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(_FIFTYONE_SCRIPT), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(run_dir), str(tmp_path / "fo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in got:
        pytest.skip(got["skip"] + "; pip install 'dinoscope[fiftyone]'")
    run = Run.open(run_dir)
    table = run.read_objects()
    assert got["samples"] == len(table.images) and got["detections"] == len(table)
    assert {"label", "bounding_box", "embedding", "object_id", "outlier_quality", "label_ref", "x", "y"} <= set(
        got["fields"]
    )
    assert got["brain"] == ["dinoscope_map"] and got["exists"]
    store = EmbeddingStore.open(run.embeddings_dir)
    assert got["dim"] == store.dim
    np.testing.assert_allclose(got["embedding"], store.get([got["object_id"]])[0], rtol=1e-5)
    assert all(0.0 <= q <= 1.0 for q in got["quality"])


_SAMPLES_SCRIPT = """
import json, sys
import numpy as np
from dinoscope.run import Run
from dinoscope.workflows.export import _vectors, export_tables
from dinoscope.workflows.export_fiftyone import _samples
import fiftyone as fo

run = Run.open(sys.argv[1])
table = run.read_objects()
objects = export_tables(run, table)
ids, vectors = _vectors(run, None)
samples, label_ids, points = _samples(fo, table, objects, dict(zip(ids, vectors)), table.root)
dets = [d for s in samples for d in s["ground_truth"].detections]
first = next(d for d in dets if d.has_field("outlier_quality") and d["outlier_quality"] is not None)
row = objects.set_index("object_id").loc[first["object_id"]]
print(json.dumps({
    "samples": len(samples), "detections": len(dets), "points": len(points), "labels": len(set(label_ids)),
    "box": first.bounding_box, "expected": [row.x1 / row.image_w, row.y1 / row.image_h,
    (row.x2 - row.x1) / row.image_w, (row.y2 - row.y1) / row.image_h],
    "quality": [first["outlier_quality"], float(row.outlier_quality)],
    "tags": sorted({t for s in samples for t in s.tags}),
    "embedding": float(np.linalg.norm(first["embedding"])),
}))
"""


def test_fiftyone_samples_carry_boxes_findings_and_embeddings(analysed_run: tuple[Path, Path], tmp_path: Path) -> None:
    """The samples and detections as the real fiftyone classes hold them (no database needed)."""
    if importlib.util.find_spec("fiftyone") is None:
        pytest.skip("fiftyone is not installed (pip install 'dinoscope[fiftyone]')")
    run_dir, _ = analysed_run
    env = {**os.environ, "FIFTYONE_DO_NOT_TRACK": "true", "FIFTYONE_DATABASE_DIR": str(tmp_path / "fo-db")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), str(Path(__file__).parents[2] / "src")])
    script = tmp_path / "samples.py"
    script.write_text(textwrap.dedent(_SAMPLES_SCRIPT), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(run_dir)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    table = Run.open(run_dir).read_objects()
    assert got["samples"] == len(table.images) and got["detections"] == len(table)
    assert got["points"] == got["labels"] > 0  # every mapped detection has its 2-D point
    np.testing.assert_allclose(got["box"], got["expected"], rtol=1e-9)
    assert got["quality"][0] == pytest.approx(got["quality"][1])
    assert set(got["tags"]) == set(table.images["split"]) and got["embedding"] == pytest.approx(1.0, abs=1e-5)
