"""Files beside the report: numeric cluster statistics, findings, the label-error review list, samples, figures."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.report.conftest import NAMES, Planted


def test_cluster_statistics_has_the_original_columns_as_numbers(planted: Planted) -> None:
    stats = pd.read_csv(planted.report / "cluster_statistics.csv")
    assert list(stats.columns[:6]) == ["class", "n_samples", "n_clusters", "n_outliers", "outlier_rate", "eps_used"]
    for col in stats.columns[1:]:
        assert pd.api.types.is_numeric_dtype(stats[col]), col
    summary = planted.summary()["classes"]
    info = yaml.safe_load((planted.run / "run.yaml").read_text())["analysis"]["clusters"]["classes"]
    for c, row in stats.iterrows():
        entry = summary[row["class"]]
        assert row["class"] == NAMES[c]
        assert (row["n_samples"], row["n_clusters"], row["n_outliers"]) == (
            entry["n"],
            entry["n_clusters"],
            entry["n_outliers"],
        )
        assert row["outlier_rate"] == pytest.approx(entry["outlier_rate"], abs=1e-6)
        assert row["eps_used"] == pytest.approx(info[str(c)]["eps"], rel=1e-5)
        assert row["separability"] == pytest.approx(entry["separability"], rel=1e-5)


def test_findings_csv_has_one_row_per_object_with_names_and_ids(planted: Planted) -> None:
    findings = pd.read_csv(planted.report / "findings.csv")
    objects = pd.read_parquet(planted.run / "objects.parquet")
    assert len(findings) == len(objects) == planted.summary()["n_objects"]
    assert set(findings["object_id"]) == set(objects["object_id"])
    for col in (
        "cluster",
        "is_outlier",
        "outlier_quality",
        "duplicate_group",
        "suggested_class_name",
        "duplicate_of_id",
    ):
        assert col in findings.columns, col
    dup_b = findings.set_index("object_id").loc[objects["object_id"][planted.rows["dup_b"]]]
    assert dup_b["duplicate_of_id"] == objects["object_id"][planted.rows["dup_a"]]  # a row number became an id
    checks = pd.read_csv(planted.report / "checks.csv")
    assert "cross_split_duplicate" in set(checks["kind"])


def test_label_error_review_lists_file_line_and_classes(planted: Planted) -> None:
    review = pd.read_csv(planted.report / "label_errors_review.csv")
    assert list(review.columns[:6]) == ["file", "line", "image", "frame", "current_class", "suggested_class"]
    assert len(review) == sum(c["n_label_errors"] for c in planted.summary()["classes"].values())
    assert review["label_quality"].is_monotonic_increasing
    swapped = review[review["image"] == f"train/images/img{planted.rows['swapped']:03d}.png"].iloc[0]
    assert (swapped["file"], swapped["line"]) == (f"train/labels/img{planted.rows['swapped']:03d}.txt", 1)
    assert (swapped["current_class"], swapped["suggested_class"]) == ("beta", "gamma")
    doc = yaml.safe_load((planted.report / "label_errors_review.yaml").read_text(encoding="utf-8"))
    assert doc["n_candidates"] == len(review) == len(doc["candidates"])
    assert doc["candidates"][0]["object_id"] == review["object_id"].iloc[0]


def test_sample_folders_per_subgroup(planted: Planted) -> None:
    alpha = planted.report / "samples" / "000_alpha"
    groups = sorted(p.name for p in alpha.glob("group-*"))
    sizes = planted.summary()["classes"]["alpha"]["cluster_sizes"]
    assert groups == [f"group-{i + 1:02d}_{n}-objects" for i, n in enumerate(sizes)]
    crops = sorted((alpha / groups[0]).glob("*.jpg"))
    assert len(crops) == min(24, sizes[0])
    assert (alpha / "outliers").is_dir()
    with Image.open(crops[0]) as im:
        assert max(im.size) >= 40  # the 40 x 32 box with a margin, not a thumbnail


def test_figures_for_slides(planted: Planted) -> None:
    figures = planted.report / "figures"
    names = {p.name for p in figures.glob("*.png")}
    assert {"class-distribution.png", "class-overlap.png"} <= names
    for c, name in enumerate(NAMES):
        assert f"class-{c:03d}-{name}-map.png" in names
        assert f"class-{c:03d}-{name}-groups.png" in names
    with Image.open(figures / "class-000-alpha-groups.png") as im:
        assert im.width >= 8 * 100  # a row of readable thumbnails, not a third of an inch each
