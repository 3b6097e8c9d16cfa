from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from dinoscope.cli.main import app
from tests.helpers import YOLO_PLANTED, make_yolo_dataset

runner = CliRunner()
DINOSCOPE = [sys.executable, "-m", "dinoscope.cli.main"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def test_version_through_the_real_entry_point() -> None:
    exe = shutil.which("dinoscope", path=str(Path(sys.executable).parent))
    assert exe is not None, "console script 'dinoscope' is not installed in the environment"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    from dinoscope import __version__

    assert out.stdout.strip() == f"dinoscope {__version__}"


def test_check_ppe_summary(ppe_dir: Path) -> None:
    out = subprocess.run([*DINOSCOPE, "check", str(ppe_dir)], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "909 images, 4625 objects, 4 classes" in out.stdout
    for name, n in [("capacete", 1631), ("colete_refletivo", 474), ("sem_capacete", 714)]:
        assert any(name in line and str(n) in line for line in out.stdout.splitlines())


def test_check_json_and_out_files(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    result = runner.invoke(app, ["check", str(ds), "--json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {(f["kind"], f["file"], f["line"]) for f in doc["findings"]} == YOLO_PLANTED
    assert doc["counts"]["train"]["classes"]["c"] == 1 and doc["counts"]["val"]["images"] == 2
    assert doc["totals"]["images"] == 15
    frame = pd.read_parquet(tmp_path / "out" / "checks.parquet")
    assert len(frame) == len(YOLO_PLANTED) == len(pd.read_csv(tmp_path / "out" / "checks.csv"))
    again = runner.invoke(app, ["check", str(ds), "--out", str(tmp_path / "out")])
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert runner.invoke(app, ["check", str(ds), "--out", str(tmp_path / "out"), "--overwrite"]).exit_code == 0


def test_strict_fails_on_errors_and_terminal_lists_findings(tmp_path: Path) -> None:
    ds = make_yolo_dataset(tmp_path / "ds")
    out = subprocess.run([*DINOSCOPE, "check", str(ds), "--strict"], capture_output=True, text=True, env=ENV)
    assert out.returncode == 1
    assert "train/labels/t1.txt:2" in out.stdout and "malformed_line" in out.stdout
    assert "Findings by kind" in out.stdout


def test_error_is_one_red_line_and_debug_shows_traceback(tmp_path: Path) -> None:
    out = subprocess.run([*DINOSCOPE, "check", str(tmp_path / "missing")], capture_output=True, text=True, env=ENV)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing'}: no such file or folder"]
    debug = subprocess.run(
        [*DINOSCOPE, "--debug", "check", str(tmp_path / "missing")], capture_output=True, text=True, env=ENV
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_bad_option_value_is_a_config_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path), "--format", "pascal"])
    assert result.exit_code == 1
    assert "'format'" in result.stderr and "pascal" in result.stderr


def test_bundled_sample_checks_clean() -> None:
    sample = Path(__file__).resolve().parents[2] / "src/dinoscope/data/sample/ppe"
    result = runner.invoke(app, ["check", str(sample), "--json"])
    doc = json.loads(result.stdout)
    assert doc["totals"] == {"images": 36, "objects": 168, "background_images": 0, "unreadable_images": 0, "classes": 4}
    assert doc["n_errors"] == 0
