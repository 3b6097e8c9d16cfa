"""Static SVG drawings: the maps of the printed report and the class-overlap heatmap (no script needed)."""

from __future__ import annotations

import numpy as np

from dinoscope.report.view import esc

__all__ = ["svg_heatmap", "svg_scatter"]


def svg_scatter(
    x: np.ndarray,
    y: np.ndarray,
    colors: list[str],
    outlier: np.ndarray | None = None,
    width: int = 560,
    height: int = 400,
    radius: np.ndarray | None = None,
) -> str:
    """A scatter plot of (N,) ``x, y`` with one colour per point; outliers drawn last as ringed points;
    ``radius`` (N,) sizes each point (e.g. by loss) instead of one radius for all.

    Example:
        >>> svg_scatter(np.array([0.0, 1.0]), np.array([0.0, 1.0]), ["#000", "#f00"]).startswith("<svg")
        True
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pad = 10
    if not len(x):
        return f'<svg class="static-map" viewBox="0 0 {width} {height}" width="{width}" height="{height}"></svg>'
    sx, sy = _scale(x, pad, width - pad), _scale(y, height - pad, pad)
    r = 3.0 if len(x) < 2_000 else 2.0 if len(x) < 10_000 else 1.2
    flag = np.zeros(len(x), bool) if outlier is None else np.asarray(outlier, bool)
    radii = np.full(len(x), r) if radius is None else np.asarray(radius, dtype=float)
    dots = [
        f'<circle cx="{sx[i]:.1f}" cy="{sy[i]:.1f}" r="{radii[i]:.1f}" fill="{colors[i]}"/>'
        for i in np.flatnonzero(~flag)
    ]
    rings = [
        f'<circle cx="{sx[i]:.1f}" cy="{sy[i]:.1f}" r="{r + 2.5}" fill="{colors[i]}"/>' for i in np.flatnonzero(flag)
    ]
    return (
        f'<svg class="static-map" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><g fill-opacity="0.8">{"".join(dots)}</g>'
        f'<g stroke="#d62728" stroke-width="2">{"".join(rings)}</g></svg>'
    )


def _scale(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    finite = v[np.isfinite(v)]
    a, b = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    span = (b - a) or 1.0
    return lo + (v - a) / span * (hi - lo)


def svg_heatmap(matrix: np.ndarray, names: list[str], colors: list[str], max_px: int = 560) -> str:
    """Class x class shares as coloured cells (row = class, column = class of its neighbours), hover titles.

    Args:
        matrix: (C, C) shares in [0, 1]; rows sum to about 1 (``neighbor_share`` of the overlap analysis).
        names: Class names.
        colors: Class colours (swatches on the axes).
        max_px: Size of the cell area.
    """
    m = np.asarray(matrix, dtype=float)
    n = len(m)
    cell = max(4, min(64, max_px // max(n, 1)))
    labelled = n <= 40
    text_px = 6.2 * max((len(_short(s)) for s in names), default=4) + 14 if labelled else 0
    left, top = int(text_px), int(text_px * 0.72 + 8) if labelled else 0
    out, vals = [], []
    for i in range(n):
        for j in range(n):
            v = m[i, j]
            x, y = left + j * cell, top + i * cell
            title = f"{names[i]} → {names[j]}: {v:.1%} of neighbours"
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_diag(v) if i == j else _off(v)}">'
                f"<title>{esc(title)}</title></rect>"
            )
            if cell >= 34 and v >= 0.005:
                ink = "#fff" if (v > 0.55 if i == j else v > 0.3) else "#3d4451"
                vals.append(f'<text class="val" x="{x + cell / 2}" y="{y + cell / 2 + 4}" fill="{ink}">{v:.0%}</text>')
    labels = []
    if labelled:
        for i, name in enumerate(names):
            mid = i * cell + cell / 2
            labels.append(f'<text x="{left - 8}" y="{top + mid + 4:.1f}" text-anchor="end">{esc(_short(name))}</text>')
            labels.append(
                f'<text transform="translate({left + mid + 4:.1f},{top - 6}) rotate(-45)">{esc(_short(name))}</text>'
            )
            labels.append(f'<rect x="{left - 5}" y="{top + i * cell}" width="3" height="{cell}" fill="{colors[i]}"/>')
            labels.append(f'<rect x="{left + i * cell}" y="{top - 5}" width="{cell}" height="3" fill="{colors[i]}"/>')
    w, h = int(left + cell * n + text_px * 0.72 + 4), top + cell * n + 2
    return (
        f'<svg class="heatmap" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
        f'<g stroke="#fff" stroke-width="{1 if cell > 8 else 0}">{"".join(out)}</g>{"".join(vals)}'
        f'<g class="lbl">{"".join(labels)}</g></svg>'
    )


def _short(name: str, n: int = 24) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def _off(v: float) -> str:
    """White to red for the share of neighbours in another class (full red at 50%)."""
    t = min(1.0, v / 0.5)
    r, g, b = 255 - t * (255 - 214), 255 - t * (255 - 39), 255 - t * (255 - 40)
    return f"rgb({r:.0f},{g:.0f},{b:.0f})"


def _diag(v: float) -> str:
    """White to blue for the share of neighbours in the object's own class."""
    t = min(1.0, max(0.0, v))
    r, g, b = 255 - t * (255 - 78), 255 - t * (255 - 121), 255 - t * (255 - 167)
    return f"rgb({r:.0f},{g:.0f},{b:.0f})"
