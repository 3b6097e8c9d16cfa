"""``--pdf``: the same sections printed by headless Chromium, with fonts that draw every character."""

from __future__ import annotations

import re

import pytest

from dinoscope.errors import MissingDependencyError
from dinoscope.report import build_report, pdf
from tests.report.conftest import Planted


@pytest.mark.slow
def test_pdf_is_printed_from_the_same_html(planted_copy: Planted) -> None:
    if pdf.find_browser() is None:
        pytest.skip("no Chromium/Chrome to print with (apt-get install chromium); test_browser.py installs it")
    build_report(planted_copy.run, pdf=True, workers=0, figures=False)
    raw = (planted_copy.report / "report.pdf").read_bytes()
    assert raw.startswith(b"%PDF") and raw.count(b"/Subtype /Image") >= 3  # thumbnails printed, not dropped
    fonts = set(re.findall(rb"/BaseFont /[A-Z]{6}\+([\w-]+)", raw))
    assert fonts, "fonts are embedded"
    printed = (planted_copy.report / "print.html").read_text(encoding="utf-8")
    assert "<script" not in printed and printed.count('class="page print-page"') == 2 + 3  # overview, dataset, classes
    assert pdf.find_missing_glyphs(printed) == set()


def test_missing_glyphs_are_found() -> None:
    if pdf.shutil.which("fc-list") is None:
        pytest.skip("fontconfig (fc-list) is not installed")
    assert pdf.find_missing_glyphs("<p>plain &amp; simple é →</p>") == set()
    assert pdf.find_missing_glyphs("<p>\U000f0001</p>") == {"\U000f0001"}  # private use: no font has it


def test_pdf_without_a_browser_is_one_clear_error(planted_copy: Planted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "find_browser", lambda: None)
    with pytest.raises(MissingDependencyError, match="apt-get install chromium"):
        build_report(planted_copy.run, pdf=True, workers=0, figures=False)
    assert (planted_copy.report / "index.html").is_file()  # the previous report is kept
