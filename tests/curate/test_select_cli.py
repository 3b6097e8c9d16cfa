"""``dinoscope select`` through the real CLI: a planted pool of photos with copies, some copies of labelled ones."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from dinoscope import embed
from dinoscope.cli.main import app
from tests.curate.conftest import write_photos

runner = CliRunner()


def _photo(name: str) -> int:
    return int(re.match(r"p(\d+)_c", Path(name).name).group(1))


def test_select_never_picks_copies_and_writes_its_outputs(tmp_path: Path) -> None:
    write_photos(tmp_path / "labelled", [0, 1, 2, 3], copies=1, labels=True)
    write_photos(tmp_path / "pool", list(range(4, 16)), copies=3)
    write_photos(tmp_path / "pool", [0, 1], copies=3)  # copies of labelled photos (p0_c0 is byte-identical)
    embed(dataset=tmp_path / "labelled", out=tmp_path / "lab", model="tiny-cnn", device="cpu", no_cache=True)
    args = ["select", str(tmp_path / "pool"), "--labeled", str(tmp_path / "lab"), "--budget", "20", "--model",
            "tiny-cnn", "--device", "cpu", "--no-cache", "-o", str(tmp_path / "sel")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    chosen = pd.read_csv(tmp_path / "sel" / "selected.csv")
    assert list(chosen.columns) == ["object_id", "source", "strategy", "score"]
    photos = [_photo(s) for s in chosen["source"]]
    assert len(photos) == len(set(photos)) == 12  # one per new photo: the budget of 20 stops short
    assert not {0, 1} & set(photos)  # never a copy of a labelled photo
    assert "8 fewer than the budget" in res.output
    links = sorted((tmp_path / "sel" / "images").iterdir())
    assert len(links) == 12 and all(p.is_symlink() and p.resolve().is_file() for p in links)
    assert len((tmp_path / "sel" / "selected.txt").read_text().splitlines()) == 12
    page = (tmp_path / "sel" / "report" / "select.html").read_text()
    assert page.count("<circle") == 4 + 42 and "#d62728" in page
    again = runner.invoke(app, args)  # the output exists: refused in one line
    assert again.exit_code == 1 and "--overwrite" in again.output and "Traceback" not in again.output


def test_select_coverage_and_a_clear_line_without_losses(tmp_path: Path) -> None:
    write_photos(tmp_path / "labelled", [0, 1], copies=1, labels=True)
    write_photos(tmp_path / "pool", list(range(2, 10)), copies=2)
    embed(dataset=tmp_path / "labelled", out=tmp_path / "lab", model="tiny-cnn", device="cpu", no_cache=True)
    base = ["select", str(tmp_path / "pool"), "--labeled", str(tmp_path / "lab"), "--budget", "4", "--model",
            "tiny-cnn", "--device", "cpu", "--no-cache", "--copy-images", "none"]  # fmt: skip
    res = runner.invoke(app, [*base, "--strategy", "coverage", "-o", str(tmp_path / "cov")])
    assert res.exit_code == 0, res.output
    chosen = pd.read_csv(tmp_path / "cov" / "selected.csv")
    assert len(chosen) == 4 and set(chosen["strategy"]) == {"coverage"}
    assert len({_photo(s) for s in chosen["source"]}) == 4
    assert not (tmp_path / "cov" / "images").exists()
    res = runner.invoke(app, [*base, "--strategy", "loss", "-o", str(tmp_path / "loss")])
    assert res.exit_code == 1 and "dinoscope errors" in res.output and "Traceback" not in res.output


def test_select_loss_strategy_reads_the_errors_run(tmp_path: Path) -> None:
    from tests.pipeline.test_errors import planted_dataset

    data, preds = planted_dataset(tmp_path / "ds")
    res = runner.invoke(app, ["errors", str(data), "-p", str(preds), "-o", str(tmp_path / "run"), "-m", "tiny-cnn",
                              "--workers", "0", "--map-method", "none", "--no-report"])  # fmt: skip
    assert res.exit_code == 0, res.output
    write_photos(tmp_path / "pool", list(range(10, 16)), copies=2)
    res = runner.invoke(app, ["select", str(tmp_path / "pool"), "--labeled", str(tmp_path / "run"), "--budget", "3",
                              "--strategy", "loss", "--model", "tiny-cnn", "--device", "cpu", "--copy-images", "copy",
                              "-o", str(tmp_path / "sel")])  # fmt: skip
    assert res.exit_code == 0, res.output
    chosen = pd.read_csv(tmp_path / "sel" / "selected.csv")
    assert len(chosen) == 3 and set(chosen["strategy"]) == {"loss"} and (chosen["score"] > 0).all()
    assert len({_photo(s) for s in chosen["source"]}) == 3
    assert all(not p.is_symlink() for p in (tmp_path / "sel" / "images").iterdir())  # copies, not links
