"""Static PNG figures for slides (matplotlib, extra ``report``): per class a map with its sub-group sizes and
a montage of its sub-groups with readable thumbnails; for the dataset the class distribution and overlap.

The montage is one image (thumbnails pasted into a canvas at ``MONTAGE_PX``, shown once with ``imshow``),
not a grid of subplots, so it stays sharp and takes a fraction of a second per class. Text uses fonts
that can draw every character of the class names (see :func:`font_families`).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dinoscope._deps import require
from dinoscope.analysis.overlap import share_matrix
from dinoscope.errors import MissingDependencyError
from dinoscope.report.data import RunData
from dinoscope.report.exports import slug
from dinoscope.report.select import ReportPlan
from dinoscope.report.thumb_render import MONTAGE_PX
from dinoscope.report.view import SPLIT_COLORS, UNCLUSTERED_COLOR, class_colors

__all__ = ["figures_available", "font_families", "write_figures"]

logger = logging.getLogger(__name__)

_DPI = 120
_MONTAGE_COLS = 8
_MONTAGE_ROWS = 8


def figures_available() -> bool:
    """True when matplotlib can be imported."""
    try:
        require("matplotlib", "report", "static PNG figures")
    except MissingDependencyError:
        return False
    return True


def font_families(texts: list[str]) -> list[str]:
    """Font families that together draw every character of ``texts``: DejaVu Sans first, then installed fonts
    covering what it lacks. Characters no installed font has are logged once.
    """
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    needed = {ch for t in texts for ch in t if not ch.isspace()}
    families = ["DejaVu Sans"]
    missing = _missing(font_manager.findfont("DejaVu Sans"), needed, FT2Font)
    for entry in font_manager.fontManager.ttflist if missing else []:
        if entry.name in families:
            continue
        covered = missing - _missing(entry.fname, missing, FT2Font)
        if covered:
            families.append(entry.name)
            missing -= covered
        if not missing:
            break
    if missing:
        logger.warning(
            "report figures: no installed font draws %s; install one that does (e.g. apt-get install fonts-noto-cjk)",
            "".join(sorted(missing))[:40],
        )
    return families


def _missing(path: str, chars: set[str], ft2font: Any) -> set[str]:
    try:
        charmap = ft2font(path).get_charmap()
    except (OSError, RuntimeError):
        return set(chars)
    return {ch for ch in chars if ord(ch) not in charmap}


def write_figures(data: RunData, plan: ReportPlan, montage: dict[int, bytes], out: Path) -> list[Path]:
    """Write every PNG figure into ``out / "figures"``; returns their paths.

    Args:
        data: The run.
        plan: The report's selection (sub-groups, drawn points).
        montage: {row: PNG bytes of a ``MONTAGE_PX`` crop} from the image pass.
        out: The report folder.
    """
    mpl = require("matplotlib", "report", "static PNG figures", "pass figures=False / --no-figures")
    mpl.use("Agg", force=False)
    import matplotlib.pyplot as plt

    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    style = {
        "font.family": font_families(data.names),
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    written = []
    with plt.rc_context(style):
        written.append(_distribution(data, folder / "class-distribution.png", plt))
        matrix = share_matrix(data.analysis_info.get("overlap", {}).get("neighbor_share"), len(data.names))
        if matrix is not None:
            written.append(_overlap(data, np.nan_to_num(matrix), folder / "class-overlap.png", plt))
        for cp in plan.classes:
            stem = f"class-{cp.cls:03d}-{slug(cp.name)}"
            if len(cp.drawn) or cp.groups:
                written.append(_class_map(data, cp, folder / f"{stem}-map.png", plt))
            if cp.groups:
                written.append(_montage(data, cp, montage, folder / f"{stem}-groups.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any, tight: bool = True) -> Path:
    fig.savefig(path, dpi=fig.dpi if not tight else _DPI, bbox_inches="tight" if tight else None, facecolor="white")
    plt.close(fig)
    return path


def _class_map(data: RunData, cp: Any, path: Path, plt: Any) -> Path:
    o = data.objects
    colors = class_colors(max(1, cp.n_groups))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=_DPI, gridspec_kw={"width_ratios": [1.6, 1]})
    # A fixed layout, not bbox_inches="tight" (which draws the figure twice): half the time per class.
    fig.subplots_adjust(left=0.02, right=0.95, top=0.9, bottom=0.13, wspace=0.24)
    if len(cp.drawn):
        rank = (
            np.array([cp.ranks.get(int(k), -1) for k in o["cluster"].fillna(-1).to_numpy()[cp.drawn]])
            if "cluster" in o
            else np.full(len(cp.drawn), -1)
        )
        col = [colors[r % len(colors)] if r >= 0 else UNCLUSTERED_COLOR for r in rank]
        x, y = o["class_x"].to_numpy()[cp.drawn], o["class_y"].to_numpy()[cp.drawn]
        size = 14 if len(x) < 2000 else 6
        ax.scatter(x, y, c=col, s=size, alpha=0.8, linewidths=0)
        if "is_outlier" in o:
            flag = o["is_outlier"].fillna(False).to_numpy()[cp.drawn].astype(bool)
            ax.scatter(
                x[flag], y[flag], s=size * 4, facecolors="none", edgecolors="#c62828", linewidths=1.4, label="outlier"
            )
            if flag.any():
                ax.legend(loc="best", frameon=False)
        shown = (
            f"{len(cp.drawn):,} of {len(cp.rows):,} objects"
            if len(cp.drawn) < len(cp.rows)
            else f"{len(cp.rows):,} objects"
        )
        ax.set_title(f"{cp.name}: 2-D map by sub-group ({shown})", loc="left")
    ax.set_xticks([])
    ax.set_yticks([])
    labels = [f"group {cp.ranks[g.cluster] + 1}" for g in cp.groups] + (["no group"] if cp.n_unclustered else [])
    sizes = [g.size for g in cp.groups] + ([cp.n_unclustered] if cp.n_unclustered else [])
    bar_colors = [colors[cp.ranks[g.cluster] % len(colors)] for g in cp.groups] + (
        [UNCLUSTERED_COLOR] if cp.n_unclustered else []
    )
    bx.barh(range(len(sizes))[::-1], sizes, color=bar_colors, height=0.6)
    bx.set_ylim(min(-0.7, len(sizes) - 3.3), len(sizes) - 0.3)  # few bars: thin, at the top
    bx.set_yticks(range(len(sizes))[::-1], labels)
    for i, v in enumerate(sizes):
        bx.text(v, len(sizes) - 1 - i, f" {v:,}", va="center", fontsize=8)
    bx.set_title("sub-group sizes", loc="left")
    bx.set_xlabel("objects")
    return _save(fig, path, plt, tight=False)


def _montage(data: RunData, cp: Any, montage: dict[int, bytes], path: Path, plt: Any) -> Path:
    """One row per sub-group (largest first): its label, then its representatives at ``MONTAGE_PX``.

    The thumbnails are pasted into one canvas and placed with ``figimage``: pixel for pixel, no resampling.
    """
    groups = cp.groups[:_MONTAGE_ROWS]
    cell, gap, left, top = MONTAGE_PX, 8, 150, 56
    width = left + _MONTAGE_COLS * (cell + gap)
    height = top + len(groups) * (cell + gap)
    canvas = np.full((height, width, 3), 255, np.uint8)
    for r, g in enumerate(groups):
        for k, row in enumerate(g.shown.tolist()[:_MONTAGE_COLS]):
            raw = montage.get(int(row))
            if raw is None:
                continue
            tile = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
            y0 = top + r * (cell + gap) + (cell - tile.shape[0]) // 2
            x0 = left + k * (cell + gap) + (cell - tile.shape[1]) // 2
            canvas[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    fig.figimage(canvas, xo=0, yo=0, origin="upper")
    n = max(len(cp.rows), 1)
    for r, g in enumerate(groups):
        y = 1 - (top + r * (cell + gap) + cell / 2) / height
        label = f"group {cp.ranks[g.cluster] + 1}\n{g.size:,} objects\n{g.size / n:.0%} of the class"
        fig.text(12 / width, y, label, ha="left", va="center", fontsize=10)
    more = cp.n_groups - len(groups)
    title = f"{cp.name}: {cp.n_groups} sub-group{'s' if cp.n_groups != 1 else ''}"
    if more > 0:
        title += f" ({more} smaller not shown)"
    fig.text(12 / width, 1 - 28 / height, title, ha="left", va="center", fontsize=13, fontweight="bold")
    return _save(fig, path, plt, tight=False)


def _distribution(data: RunData, path: Path, plt: Any) -> Path:
    counts = data.checks.counts
    splits = list(counts)
    names = data.names
    height = min(40.0, 1.2 + 0.26 * len(names))
    fig, ax = plt.subplots(figsize=(8, height))
    left = np.zeros(len(names))
    for s in splits:
        v = np.array([counts[s].get("classes", {}).get(n, 0) for n in names], float)
        ax.barh(np.arange(len(names))[::-1], v, left=left, color=SPLIT_COLORS.get(s, "#8892a0"), label=s)
        left += v
    ax.set_yticks(np.arange(len(names))[::-1], names)
    ax.set_xlabel("objects")
    ax.set_title("objects per class and split", loc="left")
    if len(splits) > 1:
        ax.legend(frameon=False)
    return _save(fig, path, plt)


def _overlap(data: RunData, matrix: np.ndarray, path: Path, plt: Any) -> Path:
    n = len(matrix)
    side = min(14.0, 3 + 0.3 * n)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(matrix, cmap="Blues" if n == 1 else "magma_r", vmin=0, vmax=1)
    if n <= 60:
        ax.set_xticks(range(n), data.names, rotation=60, ha="right", fontsize=7 if n > 20 else 9)
        ax.set_yticks(range(n), data.names, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("class of the neighbours")
    ax.set_ylabel("class")
    ax.set_title("class overlap: share of nearest neighbours", loc="left")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path, plt)
