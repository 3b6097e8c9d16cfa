"""The registry of analyses: one entry drives the run, summary.json, the CLI table, findings.csv and the report.

The planted run (tests.report.conftest) has an outlier at row 5 (class alpha) and a gamma object labelled
beta at row 130; the extra analysis registered here flags objects far from their class centroid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dinoscope.analysis.base import AnalysisResult
from dinoscope.analysis.quality import MEASURES, find_quality_issues
from dinoscope.analysis.registry import (
    Analysis,
    AnalysisContext,
    TableColumn,
    get_analysis,
    register_analysis,
    registered_analyses,
    unregister_analysis,
)
from dinoscope.analysis.stage import run_analyses
from dinoscope.cli.main import app
from dinoscope.errors import ConfigError
from dinoscope.options import AnalysisOptions
from dinoscope.report import build_report
from tests.report.conftest import NAMES, make_planted_run
from tests.report.dom import parse

SHIPPED = ("clusters", "outliers", "duplicates", "label_errors", "overlap", "leakage", "quality")
#: Robust z (of the log distance to the class centroid) above which an object is far from its class.
FAR_Z = 3.5


def find_far_from_centroid(ctx: AnalysisContext) -> AnalysisResult:
    """Flag objects whose cosine similarity to their class centroid is far below the class's typical one."""
    sim = np.zeros(len(ctx.vectors))
    for c in np.unique(ctx.class_id):
        rows = np.flatnonzero(ctx.class_id == c)
        centre = ctx.vectors[rows].mean(axis=0)
        sim[rows] = ctx.vectors[rows] @ (centre / np.linalg.norm(centre))
    dist = -np.log(np.clip(sim, 1e-6, None))
    z = np.zeros(len(sim))
    for c in np.unique(ctx.class_id):
        rows = np.flatnonzero(ctx.class_id == c)
        med = np.median(dist[rows])
        mad = np.median(np.abs(dist[rows] - med)) or 1e-9
        z[rows] = 0.6745 * (dist[rows] - med) / mad
    findings = pd.DataFrame({"is_far": z > FAR_Z, "centroid_quality": 1 / (1 + np.exp(z - FAR_Z)), "centroid_z": z})
    return AnalysisResult("norm", findings, info={"z_cutoff": FAR_Z})


NORM = Analysis(
    "norm",
    find_far_from_centroid,
    title="Far from the centroid",
    description="objects unusually far from their class centroid",
    class_numbers=lambda frame, rows, names: {"n_far": int(frame["is_far"].iloc[rows].fillna(False).sum())},
    dataset_numbers=lambda result, frame: {"n_far": int(result.findings["is_far"].sum())},
    advice=lambda num: [f"{num['n_far']} far from the class centroid"] if num.get("n_far") else [],
    table_columns=(TableColumn("far", "n_far"),),
    columns=("is_far", "centroid_quality", "centroid_z"),
)


@pytest.fixture
def norm() -> Iterator[Analysis]:
    """The extra analysis, registered for one test only."""
    register_analysis(NORM)
    try:
        yield NORM
    finally:
        unregister_analysis("norm")


def test_the_shipped_analyses_in_run_order() -> None:
    assert [a.name for a in registered_analyses()] == list(SHIPPED)
    import dinoscope.report.data as data

    assert data.ANALYSES == SHIPPED
    headers = [col.header for a in registered_analyses() for col in a.table_columns]
    assert headers == ["groups", "outliers", "dups", "label err", "separ."]  # the CLI table as it always was


def test_registering_checks_names_order_and_requirements(norm: Analysis) -> None:
    assert registered_analyses()[-1] is norm and get_analysis("norm") is norm
    with pytest.raises(ConfigError, match="already registered"):
        register_analysis(NORM)
    with pytest.raises(ConfigError, match="file stem"):
        register_analysis(Analysis("Bad Name", find_far_from_centroid))
    with pytest.raises(ConfigError, match="requires nothing_yet"):
        register_analysis(Analysis("later", find_far_from_centroid, requires=("nothing_yet",)))
    with pytest.raises(ConfigError, match="required by label_errors, leakage"):
        unregister_analysis("duplicates")
    assert [a.name for a in registered_analyses()] == [*SHIPPED, "norm"]


def test_needs_decide_what_runs(norm: Analysis) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    split = np.array(["train"] * 60, dtype=object)
    options = AnalysisOptions(map_method="none")
    unlabelled, _, timings = run_analyses(
        vectors, np.zeros(60, int), names=["(unlabelled)"], labelled=False, split=split, options=options
    )
    # no labels: no label errors, no overlap; no object table: no image quality; the extra analysis runs
    assert list(unlabelled) == ["clusters", "outliers", "duplicates", "leakage", "norm"]
    assert list(timings) == ["neighbors", "class_neighbors", *unlabelled]
    labelled, _, _ = run_analyses(
        vectors, np.arange(60) % 2, names=["a", "b"], labelled=True, split=split, options=options
    )
    assert list(labelled) == ["clusters", "outliers", "duplicates", "label_errors", "overlap", "leakage", "norm"]


def test_declared_columns_are_the_columns_written(tmp_path: Path) -> None:
    run, _, _, _ = make_planted_run(tmp_path)
    for name in SHIPPED[:-1]:
        written = list(pd.read_parquet(run / "findings" / f"{name}.parquet").columns)
        assert written == ["object_id", *get_analysis(name).columns], name
    measures = pd.DataFrame(np.full((4, len(MEASURES)), 0.5), columns=list(MEASURES)).assign(error="")
    assert list(find_quality_issues(measures).findings.columns) == list(get_analysis("quality").columns)


def test_a_registered_analysis_reaches_findings_summary_cli_and_report(tmp_path: Path, norm: Analysis) -> None:
    run, _, rows, _ = make_planted_run(tmp_path)  # analysed with "norm" registered
    ids = pd.read_parquet(run / "objects.parquet")["object_id"]
    findings = pd.read_parquet(run / "findings" / "norm.parquet").set_index("object_id")
    assert list(findings.columns) == list(norm.columns)
    assert findings.loc[ids[rows["outlier"]], "is_far"] and findings.loc[ids[rows["swapped"]], "is_far"]
    alpha = findings.loc[ids[:60], "centroid_quality"]
    assert alpha.idxmin() == ids[rows["outlier"]]

    summary = json.loads((run / "summary.json").read_text())
    per_class = {name: summary["classes"][name]["n_far"] for name in NAMES}
    assert per_class["alpha"] >= 1 and per_class["beta"] >= 1
    assert summary["dataset"]["n_far"] == int(findings["is_far"].sum()) == sum(per_class.values())
    assert f"{per_class['alpha']} far from the class centroid" in summary["classes"]["alpha"]["recommendations"]
    assert summary["classes"]["alpha"]["n_clusters"] == 2  # the shipped numbers are all still there
    assert "norm" in summary["timings_s"]

    out = CliRunner().invoke(app, ["analyze", str(run), "--map-method", "none", "--no-report"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    header = next(line for line in lines if "label err" in line)
    assert [h.strip() for h in header.strip("┃│ ").split("┃")] == [
        "class", "n", "groups", "outliers", "dups", "label err", "separ.", "far",
    ]  # fmt: skip
    alpha_row = next(line for line in lines if line.startswith("│ alpha"))
    assert alpha_row.strip("│ ").split("│")[-1].strip() == str(per_class["alpha"])

    index = build_report(run, workers=0, figures=False)
    csv = pd.read_csv(index.parent / "findings.csv").set_index("object_id")
    assert {"is_far", "centroid_quality", "centroid_z"} <= set(csv.columns)
    assert csv.loc[ids[rows["outlier"]], "is_far"]
    page = parse(index.read_text(encoding="utf-8"))
    listed = {r.attrs["data-analysis"]: r for r in page.find_all("tr", **{"data-analysis": None})}
    assert list(listed) == [*SHIPPED[:-1], "norm"]  # boxes, not whole images: no quality
    cells = listed["norm"].find_all("td")
    assert cells[0].text == "Far from the centroid" and cells[2].text == "is_far, centroid_quality, centroid_z"
    assert "suggested_class_name" in listed["label_errors"].find_all("td")[2].text
