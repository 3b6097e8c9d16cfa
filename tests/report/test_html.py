"""The report's markup shows exactly the numbers of summary.json and the planted answers (parsed, not diffed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.report.conftest import NAMES, Planted
from tests.report.dom import Node, parse

TABLE_KEYS = ("n", "n_clusters", "n_outliers", "n_near_duplicates", "n_label_errors", "separability")


def _index(planted: Planted) -> Node:
    return parse(planted.index.read_text(encoding="utf-8"))


def _value(node: Node) -> float | None:
    raw = node.attrs["data-value"]
    return None if raw in ("", "None") else float(raw)


def test_class_table_shows_the_summary_numbers(planted: Planted) -> None:
    summary = planted.summary()
    table = _index(planted).find("table", id="class-table")
    rows = table.find_all("tr", data_class=None)
    assert [r.find("td", cls="name").attrs["data-value"] for r in rows] == list(NAMES)
    for row in rows:
        entry = summary["classes"][NAMES[int(row.attrs["data-class"])]]
        for key in TABLE_KEYS:
            cell = row.find("td", data_key=key)
            assert _value(cell) == pytest.approx(entry[key]), (row.attrs["data-class"], key)
        assert cell.text == f"{entry['separability']:.2f}"  # the visible text, not only the attribute
        assert row.find("td", data_key="n").text.startswith(f"{entry['n']:,}")
        assert entry["recommendations"][0] in row.find("td", cls="rec").text


def test_headline_figures_are_sums_of_the_summary(planted: Planted) -> None:
    summary = planted.summary()
    doc = _index(planted)
    kpi = {n.attrs["data-key"]: n for n in doc.find_all("div", cls="kpi")}
    assert _value(kpi["n_objects"]) == summary["n_objects"] == 3 * 60
    for key in ("n_clusters", "n_outliers", "n_near_duplicates", "n_label_errors"):
        assert _value(kpi[key]) == sum(c[key] for c in summary["classes"].values()), key
        assert kpi[key].find("div", cls="v").text == f"{int(_value(kpi[key])):,}"
    assert _value(kpi["n_leaked"]) == summary["dataset"]["n_leaked"] >= 1


def test_table_colours_flag_what_needs_action(planted: Planted) -> None:
    summary = planted.summary()
    rows = _index(planted).find("table", id="class-table").find_all("tr", data_class=None)
    for row in rows:
        entry = summary["classes"][NAMES[int(row.attrs["data-class"])]]
        outliers = row.find("td", data_key="n_outliers").classes
        assert bool(outliers & {"warn", "bad"}) == bool(entry["n_outliers"])
        sep = row.find("td", data_key="separability").classes
        assert ("bad" in sep) == (entry["separability"] < 0.5)


def test_class_pages_show_subgroups_and_planted_findings(planted: Planted) -> None:
    summary = planted.summary()
    for c, name in enumerate(NAMES):
        page = planted.page(f"class-{c:03d}")
        doc = parse(page["html"])
        entry = summary["classes"][name]
        assert _value(doc.find(data_key="n")) == entry["n"]
        groups = [
            g for g in doc.find("div", id="groups").find_all("div", cls="group") if g.attrs["data-cluster"] != "-1"
        ]
        assert len(groups) == entry["n_clusters"]
        assert [int(g.attrs["data-size"]) for g in groups] == entry["cluster_sizes"]
        assert _value(doc.find("span", data_key="n_outliers")) == entry["n_outliers"]
        assert _value(doc.find("span", data_key="n_label_errors")) == entry["n_label_errors"]
    alpha = planted.page("class-000")
    assert len([g for g in parse(alpha["html"]).find("div", id="groups").find_all("div", cls="group")
                if g.attrs["data-cluster"] != "-1"]) == 2  # fmt: skip


def _ids(planted: Planted, page: dict, node: Node) -> list[str]:
    """Object ids of the thumbnails under ``node`` (through the page's object table)."""
    refs = [a.attrs["data-o"] for a in node.find_all("a", cls="th")]
    return [page["objs"]["id"][int(r.split(":")[1])] for r in refs]


def test_planted_outlier_is_listed_first(planted: Planted) -> None:
    import pandas as pd

    ids = pd.read_parquet(planted.run / "objects.parquet")["object_id"].to_numpy()
    page = planted.page("class-000")
    outliers = parse(page["html"]).find("div", id="outliers")
    assert _ids(planted, page, outliers)[0] == ids[planted.rows["outlier"]]


def test_planted_label_error_shows_its_suggested_class(planted: Planted) -> None:
    import pandas as pd

    ids = pd.read_parquet(planted.run / "objects.parquet")["object_id"].to_numpy()
    page = planted.page("class-001")  # the swapped object is labelled beta, really gamma
    section = parse(page["html"]).find("div", id="label-errors")
    block = section.find("div", cls="group", data_suggested="gamma")
    assert ids[planted.rows["swapped"]] in _ids(planted, page, block)


def test_duplicates_and_leakage_pages(planted: Planted) -> None:
    import pandas as pd

    ids = pd.read_parquet(planted.run / "objects.parquet")["object_id"].to_numpy()
    page = planted.page("dataset")
    doc = parse(page["html"])
    summary = planted.summary()
    dups = doc.find("div", id="all-duplicates")
    assert _value(dups.find("span", data_key="n_dup_groups")) == summary["dataset"]["n_duplicate_groups"]
    leak = doc.find("div", id="leakage")
    assert _value(leak.find("span", data_key="n_leaked")) == summary["dataset"]["n_leaked"]
    pair = {ids[planted.rows["dup_a"]], ids[planted.rows["dup_b"]]}
    groups = [g for g in leak.find_all("div", cls="group")]
    assert any(pair <= set(_ids(planted, _page_of(planted, g), g)) for g in groups)
    assert any("bad" in g.classes for g in groups)  # a group across splits is marked


def _page_of(planted: Planted, group: Node) -> dict:
    c = int(group.find("a", cls="th").attrs["data-o"].split(":")[0])
    return planted.page(f"class-{c:03d}")


def test_map_payloads_match_the_counts_shown(planted: Planted) -> None:
    summary = planted.summary()
    for c, name in enumerate(NAMES):
        page = planted.page(f"class-{c:03d}")
        drawn = parse(page["html"]).find(data_key="drawn")
        assert len(page["map"]["k"]) == len(page["map"]["x"]) == _value(drawn) == summary["classes"][name]["n"]
        assert f"{summary['classes'][name]['n']} of {summary['classes'][name]['n']}" in drawn.text
    data = planted.page("dataset")
    assert len(data["map"]["x"]) == summary["n_objects"] == _value(parse(data["html"]).find(data_key="global_drawn"))


def test_health_section_lists_check_kinds(planted: Planted) -> None:
    table = _index(planted).find("table", id="health-kinds")
    kinds = {
        r.attrs["data-kind"]: int(r.find("td", cls="num").attrs["data-value"])
        for r in table.find_all("tr", data_kind=None)
    }
    assert kinds.get("cross_split_duplicate") == 1  # the planted byte-identical image in val


def test_provenance_names_the_model_and_versions(planted: Planted) -> None:
    text = _index(planted).find("div", id="provenance").text
    assert "dinoscope" in text and "python" in text and "pca" in text


NETWORK = re.compile(
    r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import|\bfetch\(|XMLHttpRequest|WebSocket"""
)


def test_nothing_refers_to_the_network(planted: Planted) -> None:
    files = [p for p in planted.report.rglob("*") if p.suffix in {".html", ".js", ".css"}]
    assert {p.name for p in files} >= {"index.html", "report.js", "report.css", "dataset.js"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not NETWORK.search(text), f"{path.relative_to(planted.report)}: {NETWORK.search(text).group(0)}"


def test_thumbnails_and_links_stay_inside_the_report_or_dataset(planted: Planted) -> None:
    doc = _index(planted)
    for link in doc.find_all("link") + doc.find_all("script", src=None):
        target = link.attrs.get("href") or link.attrs["src"]
        assert (planted.report / target).is_file(), target
    page = planted.page("class-000")
    for style in re.findall(r"url\(([^)]+)\)", page["html"]):
        assert (planted.report / style).is_file(), style
    assert (planted.report / page["root"] / page["sources"][0]).resolve() == (
        planted.dataset / page["sources"][0]
    ).resolve()
    for ctx in page["ctx"]:
        assert (planted.report / ctx).is_file()


def test_report_weight_is_recorded_in_the_run(planted: Planted) -> None:
    import yaml

    entry = yaml.safe_load((planted.run / "run.yaml").read_text())["report"]
    assert "report" not in planted.summary()  # summary.json stays the analysis' own
    assert entry["index"] == str(planted.index)
    assert 0 < entry["initial_bytes"] < entry["total_bytes"]
    total = sum(p.stat().st_size for p in planted.report.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert entry["total_bytes"] == pytest.approx(total, rel=0.01)
    weight = _index(planted).find("dl", id="page-weight")
    assert _value(weight.find("dd", data_key="initial_bytes")) == entry["initial_bytes"]


def test_index_is_self_contained_without_script(planted: Planted) -> None:
    """The overview is plain markup: a reader without JavaScript (or a crawler) still gets the numbers."""
    doc = _index(planted)
    assert doc.find("section", id="page-overview").find("table", id="class-table")
    assert not Path(planted.report / "print.html").exists()  # only written with --pdf


def test_unlabelled_run_without_map(tmp_path: Path) -> None:
    """Whole-image runs (one unnamed class, no label errors or overlap) and runs analysed without a map."""
    import json

    import numpy as np
    import pandas as pd
    from PIL import Image

    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.report import build_report
    from dinoscope.run import Run
    from dinoscope.table import ObjectTable, compute_object_ids
    from dinoscope.workflows.analyze import analyze

    n, rng = 40, np.random.default_rng(3)
    data_dir = tmp_path / "images"
    data_dir.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(data_dir / f"{i}.png")
    hashes = [f"h{i}" for i in range(n)]
    frame = pd.DataFrame(
        {
            "source": [f"{i}.png" for i in range(n)],
            "frame": -1,
            "split": "train",
            "class_id": -1,
            "class_name": "",
            "x1": 0.0,
            "y1": 0.0,
            "x2": 40.0,
            "y2": 30.0,
            "image_w": 40,
            "image_h": 30,
            "origin": "image",
            "confidence": np.nan,
            "label_ref": "",
            "content_hash": hashes,
        }
    )
    frame.insert(
        0, "object_id", compute_object_ids(hashes, [-1] * n, frame[["x1", "y1", "x2", "y2"]].to_numpy(), [-1] * n)
    )
    run = Run.create(tmp_path / "run")
    ObjectTable(data=frame, class_names=(), root=data_dir, format="images").to_parquet(run.objects_path)
    vecs = rng.normal(size=(n, 8)).astype(np.float32)
    store = EmbeddingStore.create(run.embeddings_dir, "s", list(frame["object_id"]), 8, {"model": "test"})
    store.write(np.arange(n), vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    store.close()
    analyze(run=run.path, map_method="none")
    index = build_report(run.path, workers=0, figures=True)
    summary = json.loads((run.path / "summary.json").read_text())
    rows = parse(index.read_text()).find("table", id="class-table").find_all("tr", data_class=None)
    assert [r.find("td", cls="name").attrs["data-value"] for r in rows] == list(summary["classes"])
    text = (index.parent / "data" / "class-000.js").read_text()
    assert "No 2-D map" in text and 'id="label-errors"' not in text
    dataset = (index.parent / "data" / "dataset.js").read_text()
    assert "No 2-D map in this run" in dataset and "two or more labelled classes" in dataset


def test_pages_are_loaded_on_demand(planted: Planted) -> None:
    """index.html holds the overview only; each class and the dataset-wide page are separate data files."""
    text = planted.index.read_text(encoding="utf-8")
    assert 'id="groups"' not in text and 'data-map="class"' not in text
    assert sorted(p.name for p in (planted.report / "data").glob("*.js")) == [
        "class-000.js",
        "class-001.js",
        "class-002.js",
        "dataset.js",
    ]
    import yaml

    assert yaml.safe_load((planted.run / "run.yaml").read_text())["report"]["initial_bytes"] < 200_000


@pytest.mark.parametrize("method", ["auto", "spectral"])
def test_subgroups_show_their_stability(planted_copy: Planted, method: str) -> None:
    """Sub-groups (default auto method, and spectral) carry a stability (their confidence); the class page shows it."""
    import pandas as pd

    from dinoscope.report import build_report
    from dinoscope.workflows.analyze import analyze

    analyze(run=planted_copy.run, map_method="pca", cluster_method=method)
    build_report(planted_copy.run, workers=0, figures=False)
    clusters = pd.read_parquet(planted_copy.run / "findings" / "clusters.parquet")
    alpha = clusters.merge(pd.read_parquet(planted_copy.run / "objects.parquet"), on="object_id")
    alpha = alpha[(alpha["class_id"] == 0) & (alpha["cluster"] >= 0)]
    expected = alpha.groupby("cluster")["cluster_stability"].first().sort_index()
    doc = parse(planted_copy.page("class-000")["html"])
    shown = {
        int(g.attrs["data-cluster"]): float(g.find("span", cls="stability").text.split()[-1])
        for g in doc.find("div", id="groups").find_all("div", cls="group")
        if g.attrs["data-cluster"] != "-1"
    }
    assert len(shown) == len(expected) >= 1
    assert shown == pytest.approx({int(c): round(float(v), 2) for c, v in expected.items()})
