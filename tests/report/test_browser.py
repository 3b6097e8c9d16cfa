"""The report in a real browser: headless Chromium driven by Playwright, on a report of ../shared/data.

The test installs what it lacks when it can (``pip install playwright``; ``apt-get install chromium`` as
root), never downloads Playwright's own browsers, and is skipped with the precise reason otherwise. Set
``DINOSCOPE_TEST_NO_INSTALL=1`` to forbid installing. The overview screenshot is kept as a test artefact in
``$DINOSCOPE_TEST_ARTIFACTS`` (default: ``test-artifacts/report/`` at the repository root, git-ignored).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dinoscope.report.pdf import find_browser

REPO = Path(__file__).resolve().parents[2]


def _may_install() -> bool:
    return os.environ.get("DINOSCOPE_TEST_NO_INSTALL", "") in ("", "0")


def _playwright() -> Any:
    try:
        return importlib.import_module("playwright.sync_api")
    except ImportError:
        if not _may_install():
            pytest.skip("playwright is not installed and DINOSCOPE_TEST_NO_INSTALL forbids installing it")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "playwright"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"playwright is not installed and `pip install playwright` failed: {done.stderr.strip()[-200:]}")
    importlib.invalidate_caches()
    return importlib.import_module("playwright.sync_api")


def _chromium() -> str:
    found = find_browser()
    if found:
        return found
    if not _may_install():
        pytest.skip("no Chromium/Chrome on PATH and DINOSCOPE_TEST_NO_INSTALL forbids installing one")
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        pytest.skip("no Chromium/Chrome on PATH, and installing one needs root and apt-get (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"no Chromium, and `{' '.join(cmd)}` failed: {done.stderr.strip()[-200:]}")
    return find_browser() or pytest.skip("apt-get installed chromium but no browser is on PATH")


def _artifacts() -> Path:
    folder = Path(os.environ.get("DINOSCOPE_TEST_ARTIFACTS") or REPO / "test-artifacts" / "report")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _payload(report: Path, name: str) -> dict[str, Any]:
    text = (report / "data" / f"{name}.js").read_text(encoding="utf-8")
    return json.loads(re.fullmatch(r"DS\.put\(\"[^\"]+\",(.*)\);\n", text, flags=re.S).group(1))


#: Painted (non-transparent) pixels of the canvas under a selector.
_INK = """(sel) => {
  const c = document.querySelector(sel + ' canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
  return n;
}"""


@pytest.mark.slow
def test_report_in_headless_chromium(ppe_report: Path, ppe_dir: Path) -> None:
    sync_api = _playwright()
    browser_path = _chromium()
    report = ppe_report.parent
    summary = json.loads((report.parent / "summary.json").read_text(encoding="utf-8"))
    dataset_root = Path(_payload(report, "class-000")["root"])
    allowed = (report.resolve().as_uri(), (report / dataset_root).resolve().as_uri())
    console, requests, failed = [], [], []
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=args)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.on("console", lambda m: console.append(m) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: console.append(e))
        page.on("request", lambda r: requests.append(r.url))
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto(ppe_report.resolve().as_uri())
        page.wait_for_selector("html[data-ready]")
        page.screenshot(path=str(_artifacts() / "overview.png"), full_page=True)
        assert page.locator("#class-table tbody tr").count() == summary["n_classes"]

        # dataset-wide map: every drawn point, painted
        page.click('.tabs a[data-tab="dataset"]')
        page.wait_for_selector('[data-map="global"] canvas')
        n_global = len(_payload(report, "dataset")["map"]["x"])
        assert page.get_attribute('[data-map="global"]', "data-points") == str(n_global) == str(summary["n_objects"])
        assert page.evaluate(_INK, '[data-map="global"]') > 0
        page.select_option("#color-by", "quality")
        assert page.locator("#global-keys .grad").count() == 1

        # a class page through the sidebar: its sub-groups, its map, a thumbnail on hover
        name = max(summary["classes"], key=lambda k: summary["classes"][k]["n"])
        c = list(summary["classes"]).index(name)
        page.click(f'.class-list a[data-class="{c}"]')
        page.wait_for_selector('#page-class [data-map="class"] canvas')
        groups = page.locator('#groups .group:not([data-cluster="-1"])')
        assert groups.count() == summary["classes"][name]["n_clusters"] >= 1
        assert page.get_attribute('[data-map="class"]', "data-points") == str(
            len(_payload(report, f"class-{c:03d}")["map"]["k"])
        )
        x, y = page.evaluate("DS.maps['class'].screenPos(0)")
        page.mouse.move(x, y)
        page.wait_for_selector("#tip:not([hidden]) .th")
        assert f"thumbs/c{c:03d}-" in page.get_attribute("#tip .th", "style")

        # a thumbnail leads to its source: file, label line and the box on the image
        page.mouse.move(1, 1)
        page.locator("#groups a.th").first.click()
        page.wait_for_selector("#inspector .frame img")
        page.wait_for_function("document.querySelector('#inspector .frame img').naturalWidth > 0")
        info = page.inner_text("#inspector table.kv")
        assert "line" in info and ".txt" in info and page.locator("#inspector .frame rect").count() == 1

        # "similar objects": the object's nearest objects, shipped with the report; a shipped one opens in turn
        first_id = page.inner_text("#inspector table.kv code")
        page.click("#inspector button.similar")
        page.wait_for_selector("#inspector .similar-list .sim-item")
        assert page.locator("#inspector .similar-list .sim-item").count() == 8
        page.screenshot(path=str(_artifacts() / "similar.png"))
        page.locator("#inspector .similar-list a.th").first.click()
        page.wait_for_function(
            f"document.querySelector('#inspector table.kv code').innerText !== {json.dumps(first_id)}"
        )
        page.keyboard.press("Escape")
        browser.close()
    assert not console, [str(m.text if hasattr(m, "text") else m) for m in console]
    assert not failed, failed
    outside = [u for u in requests if not u.startswith(allowed)]
    assert not outside, f"requests outside the report and the dataset: {outside[:5]}"
    assert any("/thumbs/" in u for u in requests)
