"""``dinoscope report RUN`` through the real entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from dinoscope.cli.main import app
from tests.report.conftest import Planted


def test_cli_builds_and_prints_the_page_weight(planted_copy: Planted) -> None:
    result = CliRunner().invoke(app, ["report", str(planted_copy.run), "--no-figures", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "index.html" in result.output and "first view" in result.output and "thumbnails" in result.output


def test_cli_without_analysis_is_one_red_line(planted_copy: Planted, tmp_path: Path) -> None:
    run = tmp_path / "bare"
    shutil.copytree(planted_copy.run, run)
    (run / "summary.json").unlink()
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "dinoscope analyze" in lines[0]
