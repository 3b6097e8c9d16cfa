"""The before/after page of ``dinoscope adapt`` and ``--epochs``, on tiny offline models (precision="fp32")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lightly")

from dinoscope.workflows.adapt import adapt
from tests.adapt.helpers import write_tiny_dinov2, write_toy_images

FAST = dict(batch_size=4, local_crops=1, workers=0, precision="fp32", device="cpu", input_size=28)


def _page_values(html: str, key: str) -> dict[str, str]:
    row = re.search(rf'<tr data-key="{re.escape(key)}">(.*?)</tr>', html)
    assert row, key
    return dict(re.findall(r'data-side="(\w+)" data-value="([^"]*)"', row.group(1)))


@pytest.mark.slow
def test_before_after_page_holds_probe_and_analysis_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 images, batch 4, --epochs 1 = 4 steps; the page's two columns are the probe's and analyze's numbers.

    The training checks' kNN scores are planted rising, so the last check (step 4) is exported: two backbones."""
    from dinoscope.adapt import monitor

    scores = iter([0.5, 0.6, 0.7])
    monkeypatch.setattr(monitor, "knn_score", lambda v, e: {"knn_balanced_accuracy": next(scores), "knn_accuracy": 0.5})
    dinov2 = write_tiny_dinov2(tmp_path / "dinov2")
    images = write_toy_images(tmp_path / "images", n=16)
    labelled = write_toy_images(tmp_path / "labelled", n=16, seed=1, classes=True)
    out = tmp_path / "run"
    result = adapt(dataset=images, model=str(dinov2), out=out, epochs=1, checkpoint_every=2, eval=labelled,
                   head_warmup=0, lr=1e-3, **FAST)  # fmt: skip
    assert result.steps == 4 and result.settings["epochs"] == 1 and result.best["step"] == 4
    assert result.comparison == out / "compare.html" and result.comparison.is_file()

    metrics = json.loads((out / "compare" / "probes" / "probes" / "metrics.json").read_text())["models"]
    original, adapted = metrics[str(dinov2)]["metrics"], metrics[str(result.backbone)]["metrics"]
    rows = {r["key"]: r for r in json.loads((out / "compare.json").read_text())["rows"]}
    html = result.comparison.read_text()
    for protocol, metric in (("knn10", "accuracy"), ("knn20", "accuracy"), ("logreg", "balanced_accuracy"),
                             ("logreg", "macro_f1"), ("logreg", "auroc"), ("linear", "accuracy")):  # fmt: skip
        key = f"{protocol}.{metric}"
        want = (original[protocol][metric]["value"], adapted[protocol][metric]["value"])
        assert (rows[key]["original"], rows[key]["adapted"]) == want
        assert 0.0 <= want[0] <= 1.0 and 0.0 <= want[1] <= 1.0
        shown = _page_values(html, key)
        assert (float(shown["original"]), float(shown["adapted"])) == pytest.approx(want, abs=0)

    from dinoscope.report.adapt_page import headline_numbers

    for side in ("original", "adapted"):
        summary = json.loads((out / "compare" / side / "summary.json").read_text())
        for key, value in headline_numbers(summary).items():
            assert rows[key][side] == value
    assert rows["n_objects"]["original"] == rows["n_objects"]["adapted"] == 16
    assert _page_values(html, "sub_groups")["adapted"] == str(rows["sub_groups"]["adapted"])
    csv = pd.read_csv(out / "compare.csv")
    assert set(csv.section) == {"probe", "analysis", "checks"} and len(csv) == len(rows)
    # two different backbones (the probes of 16 objects may round to the same accuracies)
    assert rows["effective_rank"]["change"] != 0 and rows["feature_std"]["change"] != 0
    # the vectors went through the stores and the content cache: the probe took the analyses' vectors from the
    # cache and computed only the [CLS ‖ mean patch] vectors of its linear probe
    for model in (str(dinov2), str(result.backbone)):
        assert metrics[model]["embedding"]["n_cached"] == 16 and metrics[model]["embedding"]["n_computed"] == 16


def test_without_eval_the_page_shows_the_collapse_figures(tmp_path: Path) -> None:
    dinov2 = write_tiny_dinov2(tmp_path / "dinov2")
    images = write_toy_images(tmp_path / "images", n=8)
    result = adapt(dataset=images, model=str(dinov2), out=tmp_path / "run", steps=1, checkpoint_every=1,
                   head_warmup=0, **FAST)  # fmt: skip
    html = result.comparison.read_text()
    assert "--eval DATASET" in html and 'data-key="knn10.accuracy"' not in html
    before, after = result.checks[0]["figures"], result.checks[-1]["figures"]
    shown = _page_values(html, "effective_rank")
    assert float(shown["original"]) == before["effective_rank"] and float(shown["adapted"]) == after["effective_rank"]
    assert not (tmp_path / "run" / "compare").exists()


def test_steps_and_epochs_together_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dinoscope.cli.main import app

    args = ["adapt", str(tmp_path), "--model", "efficientnet-lite0", "--out", str(tmp_path / "run"), "--steps", "3",
            "--epochs", "2"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code != 0
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "--steps and --epochs" in lines[0], res.output
    assert not (tmp_path / "run").exists()


def test_epochs_become_steps_from_images_batch_and_processes() -> None:
    from dinoscope.adapt.session import steps_of_epochs

    assert steps_of_epochs(None, 100, 16, 1) is None
    assert steps_of_epochs(1, 16, 4, 1) == 4
    assert steps_of_epochs(2, 17, 4, 1) == 10  # the last, partial batch of an epoch is a step
    assert steps_of_epochs(3, 100, 16, 2) == 12


def test_rows_and_page_from_planted_numbers(tmp_path: Path) -> None:
    from dinoscope.report.adapt_page import build_comparison_page, comparison_rows

    probes = ({"knn10": {"accuracy": {"value": 0.8, "low": 0.7, "high": 0.9}}},
              {"knn10": {"accuracy": {"value": 0.85, "low": 0.75, "high": 0.93}}})  # fmt: skip
    summary = {"n_objects": 10, "classes": {"a": {"n_clusters": 2, "n_outliers": 1, "n_label_errors": 3},
                                            "b": {"n_clusters": 1}}, "dataset": {"n_duplicate_groups": 1}}  # fmt: skip
    adapted = {**summary, "classes": {"a": {"n_clusters": 3, "n_label_errors": 2}}}
    rows = comparison_rows(probes, {"original": summary, "adapted": adapted}, {"effective_rank": 9.0}, {})
    by_key = {r["key"]: r for r in rows}
    assert by_key["knn10.accuracy"]["change"] == pytest.approx(0.05) and by_key["knn10.accuracy"]["adapted_low"] == 0.75
    groups = by_key["sub_groups"]
    assert (groups["original"], groups["adapted"], groups["change"]) == (3, 3, 0)
    assert by_key["label_error_candidates"]["change"] == -1 and by_key["outliers"]["adapted"] == 0
    assert by_key["effective_rank"]["adapted"] is None and by_key["effective_rank"]["change"] is None
    html = build_comparison_page(tmp_path / "p.html", rows, {"original backbone": "m"}).read_text()
    assert _page_values(html, "knn10.accuracy") == {"original": "0.8", "adapted": "0.85"}
    assert 'class="num up">+0.050' in html and "compare/original" in html
    assert "compare/original" not in build_comparison_page(tmp_path / "q.html", rows[-1:], {}).read_text()
