"""The main report's map coloured and sized by loss when the run has detection losses (``dinoscope errors``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.report.dataset_page import loss_color, loss_radius
from dinoscope.report.svg import svg_scatter
from tests.pipeline.test_errors import planted_dataset

runner = CliRunner()


def test_errors_run_map_defaults_to_loss(tmp_path: Path) -> None:
    data, preds = planted_dataset(tmp_path / "ds")
    res = runner.invoke(app, ["errors", str(data), "-p", str(preds), "-o", str(tmp_path / "run"), "-m", "tiny-cnn",
                              "--workers", "0", "--map-method", "pca"])  # fmt: skip
    assert res.exit_code == 0, res.output
    text = (tmp_path / "run" / "report" / "data" / "dataset.js").read_text()
    page = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert 'value="loss" selected' in page["html"] and "sized by the detector's per-object loss" in page["html"]
    payload = page["map"]
    loss = [v for v in payload["l"] if v is not None]
    assert len(payload["l"]) == len(payload["x"]) and max(loss) > min(loss)  # one loss per drawn point


def test_plain_run_keeps_class_colours_and_static_map_sizes_by_loss() -> None:
    loss = np.array([0.0, 0.5, 1.0, np.nan])
    radius = loss_radius(loss)
    assert radius.tolist() == [1.5, 3.75, 6.0, 2.0]
    svg = svg_scatter(np.arange(4.0), np.arange(4.0), [loss_color(v) for v in loss], radius=radius)
    assert re.findall(r'r="([\d.]+)"', svg) == ["1.5", "3.8", "6.0", "2.0"]
    assert loss_color(1.0) == "#ffdc1e" and loss_color(float("nan")) == "#c3c8d0"
