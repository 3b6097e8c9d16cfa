"""The dataset-wide page: the map of all objects, class overlap, most confused pairs, duplicates and leakage
(``data/dataset.js``, loaded when the reader opens the page; static SVG for the PDF with ``static=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.recommend import CONFUSION_SHARE
from dinoscope.report.svg import svg_heatmap, svg_scatter
from dinoscope.report.view import (
    SPLIT_COLORS,
    View,
    esc,
    fmt_int,
    fmt_num,
    fmt_pct,
    table,
)
from dinoscope.report.widgets import dup_rows, dup_section, overlap_matrix, ranks

__all__ = ["dataset_payload", "loss_color", "loss_radius", "map_loss", "render_dataset"]


def render_dataset(view: View, static: bool = False) -> str:
    """The dataset-wide page: global map, class overlap, duplicate and leakage lists."""
    n_groups = int(view.data.summary.get("dataset", {}).get("n_duplicate_groups") or 0)
    return (
        '<div class="page-head"><h1>Dataset-wide</h1><p class="lede">How the classes sit together, which '
        "objects are copies of each other and which copies cross splits.</p></div>"
        + f'<div class="card">{_global_map(view, static)}</div>'
        + f'<div class="cols"><div class="card">{_overlap(view)}</div><div class="card">{_pairs(view)}</div></div>'
        + f'<div class="card" id="all-duplicates">{dup_section(view, view.plan.dup_groups, n_groups)}</div>'
        + f'<div class="card" id="leakage">{_leakage(view)}</div>'
    )


def _global_map(view: View, static: bool) -> str:
    drawn = view.plan.global_drawn
    n = int(view.data.summary.get("n_objects") or len(view.data.objects))
    if not len(drawn):
        return '<h2>Map of all objects</h2><p class="empty">No 2-D map in this run.</p>'
    caption = f"{fmt_int(len(drawn))} of {fmt_int(n)} objects drawn" + (
        "" if len(drawn) == n else " (seeded uniform sample)"
    )
    if map_loss(view) is not None:
        caption += "; coloured and sized by the detector's per-object loss (dark, small = 0; yellow, large = 1)"
    loss = map_loss(view)
    if static:
        o = view.data.objects
        x, y = o["x"].to_numpy()[drawn], o["y"].to_numpy()[drawn]
        if loss is None:
            cols = [view.colors[int(c)] for c in o["cls"].to_numpy()[drawn]]
            body = svg_scatter(x, y, cols, None, 760, 480)
        else:
            order = np.argsort(np.nan_to_num(loss, nan=-1.0), kind="stable")  # high loss drawn last
            cols = [loss_color(v) for v in loss[order]]
            body = svg_scatter(x[order], y[order], cols, None, 760, 480, radius=loss_radius(loss[order]))
        picker = ""
    else:
        body = '<div class="mapbox tall" data-map="global"></div>'
        by_loss = '<option value="loss" selected>loss (colour and size)</option>' if loss is not None else ""
        picker = (
            f'<label class="picker">colour by <select id="color-by">{by_loss}<option value="class">class</option>'
            '<option value="group">sub-group</option><option value="quality">outlier quality</option>'
            '<option value="split">split</option></select></label>'
        )
    return (
        f'<div class="card-head"><h2>Map of all objects</h2>{picker}</div>{body}'
        f'<div class="keys" id="global-keys"></div>'
        f'<p class="muted small" data-key="global_drawn" data-value="{len(drawn)}">{caption}.</p>'
    )


def _overlap(view: View) -> str:
    m = overlap_matrix(view)
    if m is None:
        return '<h2>Class overlap</h2><p class="empty">Class overlap needs two or more labelled classes.</p>'
    return (
        '<h2>Class overlap</h2><p class="muted">Row: a class; column: the class of its nearest neighbours '
        "(share of neighbours). Blue diagonal = neighbours of the same class; red = mixing. Hover for values.</p>"
        f'<div class="heatwrap">{svg_heatmap(m, view.data.names, view.colors)}</div>'
    )


def _pairs(view: View) -> str:
    d = view.data.summary.get("dataset", {})
    pairs = d.get("most_confused_pairs") or view.data.analysis_info.get("overlap", {}).get("confused_pairs") or []
    pairs = [p for p in pairs if float(p.get("overlap", 0)) >= 0.005][:15]  # what rounds to 0.00 is no pair
    if not pairs:
        return '<h2>Most confused pairs</h2><p class="empty">No class pair shares neighbours.</p>'
    index = {n: i for i, n in enumerate(view.data.names)}
    rows = []
    for p in pairs:
        a, b = index.get(p["a"]), index.get(p["b"])
        if a is None or b is None:
            continue
        worst = max(float(p.get("share_a_to_b", 0)), float(p.get("share_b_to_a", 0)))
        tone = "bad" if worst >= 2 * CONFUSION_SHARE else "warn" if worst >= CONFUSION_SHARE else ""
        rows.append(
            f"<tr><td>{view.class_link(a)}</td><td>{view.class_link(b)}</td>"
            f'<td class="num {tone}" data-value="{p.get("overlap")}">{fmt_num(p.get("overlap"))}</td>'
            f'<td class="num">{fmt_pct(p.get("share_a_to_b"), 0)}</td>'
            f'<td class="num">{fmt_pct(p.get("share_b_to_a"), 0)}</td>'
            f'<td class="num">{fmt_num(p.get("centroid_cosine"))}</td></tr>'
        )
    head = ["A", "B", "#overlap", "#A→B", "#B→A", "#cos"]
    return (
        f'<h2>Most confused pairs</h2><div class="table-wrap">{table(head, "".join(rows), "confused-pairs")}</div>'
        '<p class="muted small">A→B: share of A\'s neighbours labelled B; overlap: mean of both directions; cos: '
        "cosine between the class centroids.</p>"
    )


def _leakage(view: View) -> str:
    d = view.data.summary.get("dataset", {})
    n = d.get("n_leaked")
    pairs = d.get("leakage") or {}
    counts = ""
    if pairs:
        rows = "".join(
            f'<tr><td>{esc(k)}</td><td class="num">{esc(_leak_count(v))}</td></tr>' for k, v in pairs.items()
        )
        counts = table(["splits", "#objects"], rows)
    body = dup_rows(view, view.plan.leak_groups) if view.plan.leak_groups else ""
    empty = '<p class="empty">No near-duplicate crosses splits.</p>' if not n else ""
    count = f'<span class="count" data-key="n_leaked" data-value="{n}">{fmt_int(n)}</span>'
    return f"<h2>Leakage across splits {count}</h2>{empty}{counts}{body}"


def _leak_count(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return fmt_int(value) if isinstance(value, (int, float)) else str(value)


def dataset_payload(view: View) -> dict[str, Any]:
    """The global map's points: coordinates, class, sub-group, outlier quality, split and inspector refs."""
    o, drawn = view.data.objects, view.plan.global_drawn
    cls = o["cls"].to_numpy()[drawn]
    split_index = {s: i for i, s in enumerate(view.splits)}
    quality = (
        o["outlier_quality"].to_numpy(dtype=float)[drawn] if "outlier_quality" in o else np.full(len(drawn), np.nan)
    )
    loss = map_loss(view)
    thumbs = [
        -2 if r in view.images.failed else view.images.cell[r][1] if r in view.images.cell else -1
        for r in drawn.tolist()
    ]
    return {
        "map": {
            "x": np.round(o["x"].to_numpy(dtype=float)[drawn], 4).tolist() if len(drawn) else [],
            "y": np.round(o["y"].to_numpy(dtype=float)[drawn], 4).tolist() if len(drawn) else [],
            "c": cls.tolist(),
            "g": ranks(view, drawn, cls),
            "q": [None if v != v else round(float(v), 3) for v in quality],
            "o": (o["is_outlier"].fillna(False).to_numpy()[drawn].astype(bool).tolist() if "is_outlier" in o else []),
            "s": [split_index.get(str(s), 0) for s in o["split"].to_numpy()[drawn]],
            "k": [view.obj_index[int(c)].get(int(r), -1) for c, r in zip(cls.tolist(), drawn.tolist(), strict=True)],
            "t": thumbs,
            **({"l": [None if v != v else round(float(v), 3) for v in loss]} if loss is not None else {}),
        },
        "n": int(view.data.summary.get("n_objects") or len(o)),
        "split_colors": [SPLIT_COLORS.get(s, "#8892a0") for s in view.splits],
    }


def map_loss(view: View) -> np.ndarray | None:
    """(n drawn,) per-object loss of the map's points (NaN unknown), None when the run has no detection losses
    (``dinoscope errors`` writes a ``loss`` column into the object table)."""
    o = view.data.objects
    if "loss" not in o:
        return None
    loss = pd.to_numeric(o["loss"], errors="coerce").to_numpy(dtype=float)[view.plan.global_drawn]
    return loss if np.isfinite(loss).any() else None


def loss_color(value: float) -> str:
    """Dark blue (loss 0) to yellow (1); grey when unknown (the ramp of the model-errors page)."""
    if value != value:
        return "#c3c8d0"
    v = float(np.clip(value, 0.0, 1.0))
    return f"#{int(40 + 215 * v):02x}{int(30 + 190 * v):02x}{int(120 - 90 * v):02x}"


def loss_radius(loss: np.ndarray) -> np.ndarray:
    """(N,) dot radius in px: 1.5 at loss 0 up to 6 at loss 1 (2 when unknown)."""
    return np.where(np.isfinite(loss), 1.5 + 4.5 * np.clip(np.nan_to_num(loss), 0.0, 1.0), 2.0)
