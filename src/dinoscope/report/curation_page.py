"""A stand-alone page for the curation commands: the map with a chosen set drawn over the rest (``select``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dinoscope.report.svg import svg_scatter
from dinoscope.report.view import esc, fmt_int

__all__ = ["STATUS_COLORS", "build_selection_page"]

#: Colour of each row status on the map.
STATUS_COLORS = {"labeled": "#9aa4b2", "pool": "#d6dbe3", "selected": "#d62728"}


def build_selection_page(
    path: Path, coords: np.ndarray, status: np.ndarray, *, title: str, facts: dict[str, str]
) -> Path:
    """Write a self-contained HTML page: a 2-D map where chosen rows are drawn large, over the others.

    Args:
        path: The page to write.
        coords: (N, 2) map coordinates.
        status: (N,) ``labeled``, ``pool`` or ``selected``.
        title: Page title.
        facts: Lines shown above the map (label -> value).

    Example:
        >>> build_selection_page(Path("select.html"), xy, status, title="select", facts={})  # doctest: +SKIP
    """
    status = np.asarray(status).astype(str)
    order = np.argsort([list(STATUS_COLORS).index(s) for s in status], kind="stable")  # chosen drawn last
    colors = [STATUS_COLORS.get(s, "#000") for s in status[order]]
    chosen = status[order] == "selected"
    svg = svg_scatter(coords[order, 0], coords[order, 1], colors, chosen, 760, 480)
    counts = {s: int((status == s).sum()) for s in STATUS_COLORS}
    keys = "".join(
        f"<span><i style='background:{c}'></i> {esc(s)} ({fmt_int(counts[s])})</span> "
        for s, c in STATUS_COLORS.items()
    )
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    html = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>body{{font:14px system-ui,sans-serif;margin:24px;color:#223}}"
        "th{text-align:left;padding-right:12px;color:#556}.keys i{display:inline-block;width:10px;height:10px;"
        "border-radius:5px;margin:0 4px}</style></head><body>"
        f"<h1>{esc(title)}</h1><table>{rows}</table><div class='keys'>{keys}</div>{svg}"
        "<p>Chosen images are drawn large (ringed); grey: labelled; light: the rest of the pool.</p></body></html>"
    )
    path.write_text(html, encoding="utf-8")
    return path
