"""The Run: one owner of the run directory, its layout version, and old runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dinoscope.errors import DinoscopeError, OutputExistsError
from dinoscope.run import LAYOUT_VERSION, Run
from tests.helpers import make_yolo_dataset


def test_new_run_records_its_layout_and_refuses_to_be_replaced(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run")
    assert run.layout == LAYOUT_VERSION == yaml.safe_load(run.yaml_path.read_text())["dinoscope"]["layout"]
    with pytest.raises(OutputExistsError, match=r"--resume .* --overwrite"):
        Run.create(tmp_path / "run")
    assert Run.create(tmp_path / "run", resume=True).path == run.path


def test_artefacts_round_trip_through_the_run(tmp_path: Path) -> None:
    from dinoscope.io.yolo import read_yolo

    run = Run.create(tmp_path / "run")
    table = read_yolo(make_yolo_dataset(tmp_path / "ds"))
    run.write_objects(table)
    assert run.read_objects().object_id.tolist() == table.object_id.tolist()
    frame = pd.DataFrame({"object_id": table.object_id, "is_outlier": np.zeros(len(table), bool)})
    run.write_findings("outliers", frame)
    assert run.findings_names() == ["outliers"] and run.read_findings("outliers").equals(frame)
    assert run.read_map() is None
    run.write_summary({"n_objects": np.int64(len(table))})
    assert run.read_summary() == {"n_objects": len(table)}
    assert run.room("predictions").is_dir() and run.room("predictions") == run.path / "predictions"
    with pytest.raises(ValueError, match="unknown run folder"):
        run.room("tmp")


def test_store_name_is_the_only_store_or_a_clear_error(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run")
    with pytest.raises(DinoscopeError, match="no vectors yet"):
        run.store_name()
    for name in ("a", "b"):
        np.save(run.store_path(name), np.zeros((1, 2), np.float32))
        np.save(run.embeddings_dir / f"{name}.done.npy", np.zeros(1, bool))
        run.store_path(name).with_suffix(".json").write_text("{}")
    assert run.store_names() == ["a", "b"]
    with pytest.raises(DinoscopeError, match="pick one with --store"):
        run.store_name()
    assert run.store_name("b") == "b"
    with pytest.raises(DinoscopeError, match="no store 'c'; stores: a, b"):
        run.store_name("c")


def test_a_run_from_the_previous_version_opens(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run")
    doc = yaml.safe_load(run.yaml_path.read_text())
    del doc["dinoscope"]["layout"]  # runs written before the layout was recorded
    run.yaml_path.write_text(yaml.safe_dump(doc))
    assert Run.open(run.path).layout == 1
    assert Run.create(run.path, resume=True).layout == 1


def test_an_incompatible_run_is_one_line_with_the_fix(tmp_path: Path) -> None:
    from dinoscope.cli.main import app

    run = Run.create(tmp_path / "run")
    doc = yaml.safe_load(run.yaml_path.read_text())
    doc["dinoscope"]["layout"] = 99
    run.yaml_path.write_text(yaml.safe_dump(doc))
    with pytest.raises(DinoscopeError, match=r"layout 99 was written by a newer dinoscope.*--overwrite"):
        Run.open(run.path)
    result = CliRunner().invoke(app, ["report", str(run.path)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "layout 99" in lines[0] and "re-create" in lines[0]


def test_not_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DinoscopeError, match="not a dinoscope run"):
        Run.open(tmp_path)
