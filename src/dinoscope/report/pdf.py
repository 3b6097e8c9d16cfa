"""``--pdf``: the report printed by headless Chromium from ``print.html`` (the same sections as the HTML page).

Chromium draws text with the system's fonts through fontconfig and falls back font by font, so the PDF can
draw every character some installed font has; :func:`find_missing_glyphs` lists characters of the page that
no installed font covers (the original PDF silently showed boxes for them), and the build warns with the fix.
"""

from __future__ import annotations

import bisect
import html
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dinoscope.errors import DinoscopeError, MissingDependencyError

__all__ = ["find_browser", "find_missing_glyphs", "print_pdf", "require_browser"]

logger = logging.getLogger(__name__)

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge")
_INSTALL_HINT = (
    "--pdf needs Chromium or Chrome: install it (Debian/Ubuntu: apt-get install chromium) or set "
    "DINOSCOPE_CHROMIUM=/path/to/chrome; the HTML report does not need it"
)


def find_browser() -> str | None:
    """Path of a Chromium-family browser: ``$DINOSCOPE_CHROMIUM``, then the usual names on ``PATH``."""
    given = os.environ.get("DINOSCOPE_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The browser :func:`print_pdf` will use.

    Raises:
        MissingDependencyError: None is installed (the message says how to get one).
    """
    browser = find_browser()
    if browser is None:
        raise MissingDependencyError(_INSTALL_HINT)
    return browser


def print_pdf(page: Path, pdf: Path, timeout_s: float = 300.0) -> Path:
    """Print ``page`` (a local HTML file) to ``pdf`` with headless Chromium, backgrounds included.

    Raises:
        MissingDependencyError: No Chromium-family browser is installed.
        DinoscopeError: The browser failed or wrote no PDF (its last output lines are in the message).

    Example:
        >>> print_pdf(Path("runs/ppe/report/print.html"), Path("runs/ppe/report/report.pdf"))  # doctest: +SKIP
    """
    browser = require_browser()
    missing = find_missing_glyphs(page.read_text(encoding="utf-8"))
    if missing:
        logger.warning(
            "report PDF: no installed font draws %s; install one that does (e.g. apt-get install fonts-noto-core "
            "fonts-noto-cjk) and rebuild",
            "".join(sorted(missing))[:40],
        )
    with tempfile.TemporaryDirectory(prefix="dinoscope-chromium-") as profile:
        cmd = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--allow-file-access-from-files",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.resolve().as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to start its sandbox as root
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DinoscopeError(f"{browser}: printing {page} to PDF failed ({exc})") from exc
    if not pdf.is_file() or pdf.stat().st_size == 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise DinoscopeError(f"{browser} wrote no PDF (exit {done.returncode}): {tail or 'no output'}")
    return pdf


def find_missing_glyphs(page: str) -> set[str]:
    """Characters of an HTML page's text that no installed font can draw (empty when fontconfig is absent).

    Example:
        >>> find_missing_glyphs("<p>abc</p>")
        set()
    """
    text = html.unescape(re.sub(r"<[^>]*>", " ", page))
    wanted = {ch for ch in text if ord(ch) > 0x7E and not ch.isspace()}
    if not wanted:
        return set()
    fc_list = shutil.which("fc-list")
    if fc_list is None or sys.platform == "win32":
        return set()
    try:
        out = subprocess.run(
            [fc_list, "--format", "%{charset}\n"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    ranges = []
    for token in out.split():
        lo, _, hi = token.partition("-")
        try:
            ranges.append((int(lo, 16), int(hi or lo, 16)))
        except ValueError:
            continue
    starts, ends = _merge(ranges)
    return {ch for ch in wanted if (i := bisect.bisect_right(starts, ord(ch)) - 1) < 0 or ord(ch) > ends[i]}


def _merge(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, non-overlapping code point ranges as (starts, ends)."""
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in sorted(ranges):
        if ends and lo <= ends[-1] + 1:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    return starts, ends
