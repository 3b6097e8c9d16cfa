"""What every part of the HTML shares: the run data, the plan, where each thumbnail is, colours and formats."""

from __future__ import annotations

import colorsys
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from dinoscope.report.data import RunData
from dinoscope.report.select import ReportPlan
from dinoscope.report.thumb_sheets import CELL, GRID, sheet_name
from dinoscope.report.thumbs import ThumbResult

__all__ = [
    "RATE_BAD",
    "SEPARABILITY_GOOD",
    "SEPARABILITY_POOR",
    "View",
    "class_colors",
    "esc",
    "fmt_int",
    "fmt_num",
    "fmt_pct",
    "hbar",
    "table",
    "tone_separability",
]

# Tableau 10 then 10 softer companions: distinct, colour-blind aware first choices for classes.
_PALETTE = (
    *("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"),
    *("#1f77b4", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#17becf"),
)
SPLIT_COLORS = {"train": "#4e79a7", "val": "#f28e2b", "valid": "#f28e2b", "test": "#59a14f"}
UNCLUSTERED_COLOR = "#b8bec8"
#: Separability (own-class share of neighbours) below POOR is red - the neighbours outvote the label - and
#: below GOOD amber (docs/report.md).
SEPARABILITY_POOR = 0.5
SEPARABILITY_GOOD = 0.75
#: Outlier and label-error rates from which a cell turns red (amber from the first one).
RATE_BAD = 0.05


def tone_separability(sep: float | None) -> str:
    """``bad`` / ``warn`` / ``ok`` colour class of a separability value ("" when missing)."""
    if sep is None:
        return ""
    return "bad" if sep < SEPARABILITY_POOR else "warn" if sep < SEPARABILITY_GOOD else "ok"


def esc(value: object) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def fmt_int(value: object) -> str:
    """``1,234``; ``-`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{int(value):,}"


def fmt_pct(value: object, digits: int = 1) -> str:
    """``12.5%`` from a fraction; ``-`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value) * 100:.{digits}f}%"


def fmt_num(value: object, digits: int = 2) -> str:
    """A float with ``digits`` decimals; ``-`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def table(head: list[str], rows: str, table_id: str = "", cls: str = "compact") -> str:
    """A table from header names (a ``#`` prefix right-aligns a numeric column) and body rows markup."""
    ths = "".join(f'<th class="num">{esc(h[1:])}</th>' if h.startswith("#") else f"<th>{esc(h)}</th>" for h in head)
    ident = f' id="{table_id}"' if table_id else ""
    return f'<table class="{cls}"{ident}><thead><tr>{ths}</tr></thead><tbody>{rows}</tbody></table>'


def hbar(label: str, frac: float, color: str, value: str) -> str:
    """One horizontal bar: a label, a bar ``frac`` of the track wide, a value."""
    return (
        f'<div class="hbar"><span class="lbl">{label}</span><span class="track"><i style="width:{100 * frac:.1f}%;'
        f'background:{color}"></i></span><span class="num">{value}</span></div>'
    )


def class_colors(n: int) -> list[str]:
    """``n`` distinct colours: the palette first, then golden-angle hues."""
    out = list(_PALETTE[:n])
    for i in range(len(out), n):
        hue = (i * 0.618034) % 1.0
        r, g, b = colorsys.hls_to_rgb(hue, 0.55 if i % 2 else 0.45, 0.55)
        out.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return out


@dataclass
class View:
    """The report being written: data, selection, images and the choices shared by every page.

    Attributes:
        data: The run.
        plan: What is shown.
        images: Where thumbnails and context images went.
        out: The report folder (final location, for relative links).
        colors: One colour per class.
        splits: Split names in a natural order.
        obj_index: Per class, {row: position in that class's data file}.
    """

    data: RunData
    plan: ReportPlan
    images: ThumbResult
    out: Path
    colors: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    obj_index: list[dict[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.colors = class_colors(len(self.data.names))
        order = {"train": 0, "val": 1, "valid": 1, "test": 2}
        self.splits = sorted(set(self.data.objects["split"].astype(str)), key=lambda s: (order.get(s, 3), s))
        self.obj_index = [{int(r): k for k, r in enumerate(p.objs.tolist())} for p in self.plan.classes]
        self._cls = self.data.objects["cls"].to_numpy()
        groups = self.data.objects.get("duplicate_group")
        counts = groups[groups >= 0].value_counts() if groups is not None else {}
        self.dup_sizes: dict[int, int] = {int(k): int(v) for k, v in dict(counts).items()}

    # --- objects ----------------------------------------------------------------------------------
    def value(self, row: int, column: str, default: Any = None) -> Any:
        """One finding or object value of a row (``default`` when the column is absent or empty)."""
        objects = self.data.objects
        if column not in objects.columns:
            return default
        value = objects[column].iat[row]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return default
        return value.item() if isinstance(value, np.generic) else value

    def ref(self, row: int) -> str:
        """``class:index`` of a row in its class data file (what the inspector opens)."""
        c = int(self._cls[row])
        return f"{c}:{self.obj_index[c].get(int(row), -1)}"

    def source_link(self, source: str) -> str | None:
        """URL of a source file relative to the report folder (None when the images were not found)."""
        if self.data.root is None:
            return None
        rel = os.path.relpath(self.data.root / source, self.out)
        return quote(Path(rel).as_posix())

    # --- thumbnails -------------------------------------------------------------------------------
    def thumb_style(self, row: int, size: int = CELL) -> str | None:
        """Inline CSS showing a row's cell of its sheet at ``size`` px (None when it has no thumbnail)."""
        where = self.images.cell.get(int(row))
        if where is None or int(row) in self.images.failed:
            return None
        c, i = where
        return _cell_style(sheet_name(c, i // (GRID * GRID)), i % (GRID * GRID), size)

    def icon_style(self, c: int, size: int = 40) -> str | None:
        """Inline CSS of a class's icon (the medoid of its largest sub-group)."""
        i = self.images.icons.get(c)
        return None if i is None else _cell_style("thumbs/classes.webp", i, size)

    def thumb(self, row: int, size: int = CELL, caption: str = "", extra: str = "", title: str = "") -> str:
        """A thumbnail tile that opens the object inspector."""
        style = self.thumb_style(row, size)
        inner = "" if style else '<span class="nothumb">no image</span>'
        cap = f'<span class="cap">{caption}</span>' if caption else ""
        tip = esc(title or self.value(row, "source", ""))
        return (
            f'<a class="th{extra}" href="#" data-o="{self.ref(row)}" title="{tip}" '
            f'style="width:{size}px;height:{size}px;{style or ""}">{inner}{cap}</a>'
        )

    def class_link(self, c: int, text: str | None = None) -> str:
        """A link to a class page with its colour swatch."""
        name = self.data.names[c]
        return (
            f'<a class="cl" href="#/class/{c}"><i class="sw" style="background:{self.colors[c]}"></i>'
            f"{esc(text if text is not None else name)}</a>"
        )


def _cell_style(sheet: str, i: int, size: int) -> str:
    r, col = divmod(i, GRID)
    scale = size / CELL
    return (
        f"background-image:url({sheet});background-size:{GRID * size}px auto;"
        f"background-position:-{round(col * CELL * scale)}px -{round(r * CELL * scale)}px"
    )
