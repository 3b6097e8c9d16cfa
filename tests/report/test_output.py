"""The report folder's safety rule: routine regeneration, never a user's file deleted or replaced silently."""

from __future__ import annotations

import json

import pytest

from dinoscope.errors import OutputExistsError
from dinoscope.io.images import hash_file
from dinoscope.report import build_report
from dinoscope.report.output import MARKER
from tests.report.conftest import Planted


def test_rebuilding_a_report_needs_no_flag_and_keeps_user_files(planted_copy: Planted) -> None:
    report = planted_copy.report
    (report / "notes.txt").write_text("mine", encoding="utf-8")
    stale = report / "figures" / "old.png"
    stale.write_bytes(b"x")
    marker = json.loads((report / MARKER).read_text())
    marker["files"]["figures/old.png"] = hash_file(stale)
    (report / MARKER).write_text(json.dumps(marker))  # as if a previous build had written it
    build_report(planted_copy.run, workers=0, figures=False)
    assert (report / "notes.txt").read_text() == "mine"
    assert not stale.exists()  # ours, no longer produced: removed
    assert (report / "index.html").is_file() and not list(report.parent.glob(".report.building-*"))


def test_an_edited_review_file_is_not_replaced_without_overwrite(planted_copy: Planted) -> None:
    review = planted_copy.report / "label_errors_review.csv"
    review.write_text(review.read_text() + "reviewed\n", encoding="utf-8")
    with pytest.raises(OutputExistsError, match=r"label_errors_review\.csv"):
        build_report(planted_copy.run, workers=0, figures=False)
    assert review.read_text().endswith("reviewed\n")
    build_report(planted_copy.run, workers=0, figures=False, overwrite=True)
    assert not review.read_text().endswith("reviewed\n")


def test_a_folder_dinoscope_did_not_make_is_refused(planted_copy: Planted, tmp_path) -> None:
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "index.html").write_text("not ours", encoding="utf-8")
    with pytest.raises(OutputExistsError, match=r"not written by `dinoscope report`"):
        build_report(planted_copy.run, out=out, workers=0, figures=False)
    assert (out / "index.html").read_text() == "not ours"
    build_report(planted_copy.run, out=out, workers=0, figures=False, overwrite=True)
    assert (out / MARKER).is_file() and "dinoscope" in (out / "index.html").read_text()


def test_a_failed_build_leaves_the_previous_report(planted_copy: Planted, monkeypatch: pytest.MonkeyPatch) -> None:
    import dinoscope.report.exports as exports

    before = (planted_copy.report / "index.html").read_bytes()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports, "write_findings", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(planted_copy.run, workers=0, figures=False)
    assert (planted_copy.report / "index.html").read_bytes() == before
    assert not list(planted_copy.run.glob(".report.building-*"))
