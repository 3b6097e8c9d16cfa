"""`dinoscope search`: a query image, a box of it or an object of the run -> the most similar objects."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("faiss")

from dinoscope.cli.main import app
from dinoscope.errors import ConfigError, DatasetFormatError, DinoscopeError
from dinoscope.run import Run
from dinoscope.workflows.search import search

runner = CliRunner()


def _first_object(run_dir: Path) -> tuple[str, str]:
    data = Run.open(run_dir).read_objects().data
    row = data[data["label_ref"].str.endswith("t0.txt:1")].iloc[0]
    box = ",".join(f"{v:g}" for v in (row.x1, row.y1, row.x2, row.y2))
    return str(row.object_id), box


def test_a_box_of_a_dataset_image_finds_its_own_object_first_from_the_cache(analysed_run: tuple[Path, Path]) -> None:
    run_dir, ds = analysed_run
    object_id, box = _first_object(run_dir)
    result = search(run=run_dir, image=ds / "train/images/t0.jpg", box=box, k=5)
    assert result.embedded == "cache"  # the same file and box: the run's own vector, no model call
    top = result.hits.iloc[0]
    assert top.object_id == object_id and top.similarity == pytest.approx(1.0, abs=1e-3)
    assert top.label_ref.endswith("t0.txt:1") and len(result.hits) == 5
    assert np.all(np.diff(result.hits["similarity"].to_numpy()) <= 1e-6)
    page = result.page.read_text(encoding="utf-8")
    assert result.page.parent == run_dir / "searches" and page.count("<img") == 6  # the query + 5 results
    assert result.index["status"] in ("built", "read") and (run_dir / "index").is_dir()


def test_another_box_is_embedded_by_the_model_and_the_index_is_reused(analysed_run: tuple[Path, Path]) -> None:
    run_dir, ds = analysed_run
    search(run=run_dir, image=ds / "train/images/t0.jpg", k=3)
    result = search(run=run_dir, image=ds / "train/images/t0.jpg", box="1,1,30,30", k=3)
    assert result.embedded == "model" and result.index["status"] == "read"
    assert result.hits["similarity"].iloc[0] < 0.9999


def test_an_object_query_leaves_the_object_out(analysed_run: tuple[Path, Path]) -> None:
    run_dir, _ = analysed_run
    object_id, _ = _first_object(run_dir)
    result = search(run=run_dir, object=object_id, k=4)
    assert object_id not in set(result.hits["object_id"]) and len(result.hits) == 4
    assert result.embedded == "store"


def test_cli_prints_the_label_references_and_the_page(analysed_run: tuple[Path, Path]) -> None:
    run_dir, _ = analysed_run
    object_id, _ = _first_object(run_dir)
    out = runner.invoke(app, ["search", str(run_dir), "--object", object_id, "--k", "3"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert len(re.findall(r"\.txt:\d+", out.output)) == 3 and "searches" in out.output


def test_bad_queries_are_one_line_errors(analysed_run: tuple[Path, Path]) -> None:
    run_dir, ds = analysed_run
    with pytest.raises(ConfigError, match="exactly one query"):
        search(run=run_dir, k=3)
    with pytest.raises(ConfigError, match="four numbers"):
        search(run=run_dir, image=ds / "train/images/t0.jpg", box="1,2,3", k=3)
    with pytest.raises(DatasetFormatError, match="not inside"):
        search(run=run_dir, image=ds / "train/images/t0.jpg", box="10,10,500,20", k=3)
    with pytest.raises(DinoscopeError, match="no object 'nope'"):
        search(run=run_dir, object="nope", k=3)
    out = runner.invoke(app, ["search", str(run_dir), "--object", "nope"])
    assert out.exit_code != 0 and "no object" in out.output and "Traceback" not in out.output
