"""Pieces shared by the class pages and the dataset-wide page: thumbnail rows, duplicate groups, colours."""

from __future__ import annotations

import numpy as np

from dinoscope.report.select import ClassPlan
from dinoscope.report.view import View, class_colors, esc, fmt_int

__all__ = ["dup_rows", "dup_section", "group_colors", "key", "overlap_matrix", "ranks", "tiles"]


def group_colors(plan: ClassPlan) -> dict[int, str]:
    """Colour of each shown sub-group by cluster label: the rank palette shared by the maps and figures."""
    palette = class_colors(max(1, plan.n_groups))
    return {g.cluster: palette[plan.ranks[g.cluster]] for g in plan.groups}


def overlap_matrix(view: View) -> np.ndarray | None:
    """(C, C) neighbour shares of the overlap analysis (run.yaml), None when the run has none."""
    from dinoscope.analysis.overlap import share_matrix

    return share_matrix(view.data.analysis_info.get("overlap", {}).get("neighbor_share"), len(view.data.names))


def key(color: str, label: str, count: int | None = None, cls: str = "sw") -> str:
    """A legend entry: a colour swatch, a label and an optional count."""
    small = f" <small>{fmt_int(count)}</small>" if count is not None else ""
    return f'<span><i class="{cls}" style="background:{color}"></i>{label}{small}</span>'


def tiles(view: View, rows: np.ndarray, captions: list[str] | None = None, extras: list[str] | None = None) -> str:
    """A wrapping row of thumbnails that open the inspector; ``captions`` and CSS ``extras`` per row."""
    out = [
        view.thumb(int(r), caption=captions[i] if captions else "", extra=extras[i] if extras else "")
        for i, r in enumerate(rows.tolist())
    ]
    return f'<div class="thumbs">{"".join(out)}</div>'


def dup_section(view: View, groups: list[np.ndarray], n_groups: int) -> str:
    """A near-duplicate section: its count (``n_groups`` in all), the groups shown, and where the rest are."""
    title = "Near-duplicate groups"
    if not groups:
        return f'<h2>{title} <span class="count">0</span></h2><p class="empty">No near-duplicates.</p>'
    more = n_groups - len(groups)
    tail = f'<p class="muted">{more} more groups in findings.csv.</p>' if more > 0 else ""
    intro = "Exact and near copies (the copy to keep first: largest, then train before val/test)."
    count = f'<span class="count" data-key="n_dup_groups" data-value="{n_groups}">{fmt_int(n_groups)}</span>'
    return f'<h2>{title} {count}</h2><p class="muted">{intro}</p>{dup_rows(view, groups)}{tail}'


def dup_rows(view: View, groups: list[np.ndarray]) -> str:
    """One row of thumbnails per duplicate group: size, classes and splits, red when it crosses splits."""
    rows = []
    names, cls, sizes = view.data.names, view.data.objects["cls"].to_numpy(), view.dup_sizes
    for g in groups:
        gid = int(view.value(int(g[0]), "duplicate_group", -1))
        classes = sorted({names[int(cls[r])] for r in g.tolist()})
        splits = sorted({str(view.value(int(r), "split", "")) for r in g.tolist()})
        caps = [
            f"{esc(view.value(int(r), 'split', ''))}{' · keep' if view.value(int(r), 'keep', True) else ''}"
            for r in g.tolist()
        ]
        warn = " bad" if len(splits) > 1 else ""
        mixed = ' <span class="chip bad">classes differ</span>' if len(classes) > 1 else ""
        rows.append(
            f'<div class="group{warn}" data-dup="{gid}"><div class="ghead">'
            f"<b>{fmt_int(sizes.get(gid, len(g)))} copies</b>"
            f'<span class="muted">{esc(", ".join(classes))} · {esc(", ".join(splits))}</span>{mixed}</div>'
            f"{tiles(view, g, caps)}</div>"
        )
    return f'<div class="dupgrid">{"".join(rows)}</div>'


def ranks(view: View, rows: np.ndarray, cls: np.ndarray) -> list[int]:
    """Sub-group rank (0 = largest group of its class; -1 = no group) of each row."""
    if "cluster" not in view.data.objects:
        return [-1] * len(rows)
    cluster = view.data.objects["cluster"].fillna(-1).to_numpy().astype(int)[rows]
    plans = view.plan.classes
    return [plans[int(c)].ranks.get(int(k), -1) for c, k in zip(cls.tolist(), cluster.tolist(), strict=True)]
