"""A class page: recommendations, headline numbers, its map, sub-groups, outliers, label-error candidates and
near-duplicates, as an HTML fragment plus the data its map and the object inspector read.

Each page is written to ``data/class-<i>.js`` as ``DS.put("class-<i>", {html, objs, map, ...})``: the browser
adds it as a ``<script>`` element when the reader opens the class (reading local files with the fetch API is
blocked under ``file://``), so a 100-class report opens as fast as a 4-class one. With ``static=True`` the map
is an SVG drawing, for ``print.html`` and the PDF.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dinoscope.report.select import ClassPlan
from dinoscope.report.svg import svg_scatter
from dinoscope.report.view import (
    UNCLUSTERED_COLOR,
    View,
    class_colors,
    esc,
    fmt_int,
    fmt_num,
    fmt_pct,
    hbar,
    tone_separability,
)
from dinoscope.report.widgets import dup_section, group_colors, key, overlap_matrix, ranks, tiles

__all__ = ["class_payload", "render_class"]


def render_class(view: View, c: int, static: bool = False) -> str:
    """The page of class ``c``: header, recommendations, map, sub-groups, outliers, label errors, duplicates."""
    plan, s, name = view.plan.classes[c], view.data.class_summary(c), view.data.names[c]
    n_all = int(view.data.summary.get("n_objects") or 0)
    splits = view.data.objects["split"].iloc[plan.rows].value_counts()
    split_text = " · ".join(f"{esc(k)} {fmt_int(v)}" for k, v in splits.items())
    recs = "".join(f"<li>{esc(r)}</li>" for r in s.get("recommendations") or [])
    head = (
        f'<div class="page-head" data-class="{c}"><div class="crumbs"><a href="#/overview">Overview</a> / class</div>'
        f'<h1><i class="sw big" style="background:{view.colors[c]}"></i>{esc(name)}</h1>'
        f'<p class="lede"><b data-key="n" data-value="{s.get("n")}">{fmt_int(s.get("n"))}</b> objects'
        f" ({fmt_pct((s.get('n') or 0) / max(n_all, 1))} of the dataset) · {split_text}</p>"
        f'<ul class="recs">{recs}</ul></div>'
    )
    if not len(plan.rows):
        return head + '<p class="empty">No object of this class was analysed.</p>'
    return (
        head
        + _class_stats(view, c)
        + f'<div class="cols map-cols"><div class="card">{_class_map(view, plan, static)}</div>'
        f'<div class="card">{_group_bars(view, plan)}{_neighbour_bars(view, c)}</div></div>'
        + f'<div class="card" id="groups">{_groups(view, plan)}</div>'
        + f'<div class="card" id="outliers">{_outliers(view, plan)}</div>'
        + (
            f'<div class="card" id="label-errors">{_label_errors(view, plan)}</div>'
            if "is_label_error" in view.data.objects
            else ""
        )
        + f'<div class="card" id="duplicates">{dup_section(view, plan.dup_groups, plan.n_dup_groups)}</div>'
    )


def _stat(name: str, value: Any, text: str, label: str, tone: str = "") -> str:
    raw = "" if value is None else value
    return (
        f'<div class="stat {tone}" data-key="{name}" data-value="{raw}"><div class="v">{text}</div>'
        f'<div class="k">{esc(label)}</div></div>'
    )


def _class_stats(view: View, c: int) -> str:
    s = view.data.class_summary(c)
    sep = s.get("separability")
    tone = tone_separability(sep)
    stats = [
        _stat("n_clusters", s.get("n_clusters"), fmt_int(s.get("n_clusters")), "sub-groups"),
        _stat("unclustered_share", s.get("unclustered_share"), fmt_pct(s.get("unclustered_share")), "in no sub-group"),
        _stat(
            "n_outliers",
            s.get("n_outliers"),
            fmt_int(s.get("n_outliers")),
            "outliers",
            "bad" if s.get("n_outliers") else "",
        ),
        _stat(
            "n_near_duplicates",
            s.get("n_near_duplicates"),
            fmt_int(s.get("n_near_duplicates")),
            "near-duplicates",
            "warn" if s.get("n_near_duplicates") else "",
        ),
        _stat(
            "n_label_errors",
            s.get("n_label_errors"),
            fmt_int(s.get("n_label_errors")),
            "label-error candidates",
            "warn" if s.get("n_label_errors") else "",
        ),
        _stat("separability", sep, fmt_num(sep), "separability", tone),
    ]
    return f'<div class="stats">{"".join(stats)}</div>'


def _neighbour_bars(view: View, c: int) -> str:
    """Where the class's nearest neighbours come from (the class's row of the overlap matrix)."""
    m = overlap_matrix(view)
    if m is None:
        return ""
    order = [int(j) for j in np.argsort(-m[c]) if m[c, j] > 0][:6]
    bars = "".join(hbar(view.class_link(j), m[c, j], view.colors[j], fmt_pct(m[c, j], 0)) for j in order)
    return (
        '<h2>Neighbours from</h2><p class="muted small">Classes of the nearest neighbours of this class\'s objects '
        f'(own class first when well separated).</p><div class="hbars wide">{bars}</div>'
    )


def _class_map(view: View, plan: ClassPlan, static: bool) -> str:
    n, drawn = len(plan.rows), len(plan.drawn)
    if not drawn:
        return '<h2>Map</h2><p class="empty">No 2-D map of this class in the run.</p>'
    caption = f"{fmt_int(drawn)} of {fmt_int(n)} objects drawn"
    if drawn < n:
        caption += " (seeded sample; listed objects always included)"
    colors = group_colors(plan)
    legend = "".join(key(colors[g.cluster], f"group {i + 1}", g.size) for i, g in enumerate(plan.groups))
    if plan.n_unclustered:
        legend += key(UNCLUSTERED_COLOR, "no group", plan.n_unclustered)
    legend += '<span><i class="sw ring"></i>outlier</span>'
    if static:
        o, rows = view.data.objects, plan.drawn
        cluster = o["cluster"].fillna(-1).to_numpy()[rows] if "cluster" in o else np.full(drawn, -1)
        palette = class_colors(max(1, plan.n_groups))
        cols = [palette[plan.ranks[int(k)]] if int(k) in plan.ranks else UNCLUSTERED_COLOR for k in cluster]
        flag = o["is_outlier"].fillna(False).to_numpy()[rows].astype(bool) if "is_outlier" in o else None
        body = svg_scatter(o["class_x"].to_numpy()[rows], o["class_y"].to_numpy()[rows], cols, flag)
    else:
        body = f'<div class="mapbox" data-map="class" data-class="{plan.cls}"></div>'
    return (
        f'<h2>Map <span class="muted small">coloured by sub-group</span></h2>{body}'
        f'<div class="keys">{legend}</div><p class="muted small" data-key="drawn" data-value="{drawn}">{caption}; '
        "hover a point for its thumbnail, click to inspect, scroll to zoom, drag to pan, double-click to reset.</p>"
    )


def _group_bars(view: View, plan: ClassPlan) -> str:
    if not plan.n_groups and not plan.n_unclustered:
        return '<h2>Sub-group sizes</h2><p class="empty">No sub-groups in this run.</p>'
    colors = group_colors(plan)
    top = max([g.size for g in plan.groups] + [plan.n_unclustered, 1])
    bars = [hbar(f"group {i + 1}", g.size / top, colors[g.cluster], fmt_int(g.size)) for i, g in enumerate(plan.groups)]
    if plan.n_unclustered:
        bars.append(hbar("no group", plan.n_unclustered / top, UNCLUSTERED_COLOR, fmt_int(plan.n_unclustered)))
    more = plan.n_groups - len(plan.groups)
    note = f'<p class="muted small">{more} smaller groups not shown.</p>' if more > 0 else ""
    return f'<h2>Sub-group sizes</h2><div class="hbars">{"".join(bars)}</div>{note}'


def _groups(view: View, plan: ClassPlan) -> str:
    if not plan.groups and not plan.n_unclustered:
        return '<h2>Sub-groups</h2><p class="empty">No sub-group analysis in this run.</p>'
    colors = group_colors(plan)
    rows = []
    for i, g in enumerate(plan.groups):
        share = g.size / max(len(plan.rows), 1)
        cohesion = f" · cohesion {fmt_num(g.cohesion)}" if g.cohesion is not None else ""
        if g.stability is not None:  # how often resamples find the group again (its confidence)
            cohesion += (
                f' · <span class="stability" title="found again over resamples">stability {fmt_num(g.stability)}</span>'
            )

        extras = [" medoid" if view.value(int(r), "is_medoid", False) else "" for r in g.shown.tolist()]
        rows.append(
            f'<div class="group" data-cluster="{g.cluster}" data-size="{g.size}"><div class="ghead">'
            f'<i class="sw" style="background:{colors[g.cluster]}"></i><b>group {i + 1}</b>'
            f'<span class="muted">{fmt_int(g.size)} objects · {fmt_pct(share)}{cohesion}</span></div>'
            f"{tiles(view, g.shown, extras=extras)}</div>"
        )
    if plan.n_unclustered:
        rows.append(
            f'<div class="group" data-cluster="-1" data-size="{plan.n_unclustered}"><div class="ghead">'
            f'<i class="sw" style="background:{UNCLUSTERED_COLOR}"></i><b>no group</b>'
            f'<span class="muted">{fmt_int(plan.n_unclustered)} objects in no sub-group (a sample)</span></div>'
            f"{tiles(view, plan.unclustered)}</div>"
        )
    more = plan.n_groups - len(plan.groups)
    note = f'<p class="muted">{more} smaller groups are listed in findings.csv.</p>' if more > 0 else ""
    return (
        f'<h2>Sub-groups <span class="count">{fmt_int(plan.n_groups)}</span></h2>'
        '<p class="muted">Each row is one sub-type of the class, largest first: its medoid (outlined) and '
        f"representatives that cover it.</p>{''.join(rows)}{note}"
    )


def _outliers(view: View, plan: ClassPlan) -> str:
    s = view.data.class_summary(plan.cls)
    n = s.get("n_outliers")
    if "outlier_quality" not in view.data.objects:
        return '<h2>Outliers</h2><p class="empty">No outlier analysis in this run.</p>'
    caps = []
    for r in plan.outliers.tolist():
        reason = view.value(r, "outlier_reason", "") or ""
        caps.append(f"{fmt_num(view.value(r, 'outlier_quality'))}{' · ' + esc(reason) if reason else ''}")
    if plan.outliers_flagged:
        more = (n or 0) - len(plan.outliers)
        intro = "Ranked worst first by <code>outlier_quality</code> (low = unusual)."
        tail = f'<p class="muted">{more} more in findings.csv.</p>' if more > 0 else ""
        body = tiles(view, plan.outliers, caps)
    else:
        intro = "None flagged. For reference, the least typical objects of the class (not flagged):"
        tail = ""
        body = tiles(view, plan.outliers, caps, extras=[" dim"] * len(plan.outliers))
    return (
        f'<h2>Outliers <span class="count" data-key="n_outliers" data-value="{n}">{fmt_int(n)}</span></h2>'
        f'<p class="muted">{intro}</p>{body}{tail}'
    )


def _label_errors(view: View, plan: ClassPlan) -> str:
    """Candidates grouped by suggested class (largest destination first), lowest label quality first."""
    s = view.data.class_summary(plan.cls)
    n = s.get("n_label_errors")
    dest = s.get("label_error_destinations") or {}
    names = view.data.names
    by_target: dict[int, list[int]] = {}
    for r in plan.label_errors.tolist():
        sug = view.value(r, "suggested_class", -1)
        by_target.setdefault(int(sug) if sug is not None else -1, []).append(r)
    blocks = []
    for target, rows in sorted(by_target.items(), key=lambda kv: -len(kv[1])):
        name = names[target] if 0 <= target < len(names) else "?"
        caps = [f"{fmt_pct(view.value(r, 'suggested_share'), 0)} vote" for r in rows]
        total = dest.get(name, len(rows))
        link = view.class_link(target, name) if 0 <= target < len(names) else "?"
        blocks.append(
            f'<div class="group" data-suggested="{esc(name)}"><div class="ghead"><b>→ {link}</b>'
            f'<span class="muted">{fmt_int(total)} candidate{"s" if total != 1 else ""}</span></div>'
            f"{tiles(view, np.asarray(rows), caps)}</div>"
        )
    body = "".join(blocks) or '<p class="empty">No label-error candidate: the neighbours agree with the labels.</p>'
    more = (n or 0) - len(plan.label_errors)
    tail = f'<p class="muted">{more} more in label_errors_review.csv.</p>' if more > 0 else ""
    return (
        f'<h2>Label-error candidates <span class="count" data-key="n_label_errors" data-value="{n}">{fmt_int(n)}</span>'
        '</h2><p class="muted">Objects whose nearest neighbours vote for another class, grouped by the class they '
        "vote for; lowest <code>label_quality</code> first, the caption is that class's share of the vote.</p>"
        f"{body}{tail}"
    )


def class_payload(view: View, c: int) -> dict[str, Any]:
    """What the class page's map and inspector read (``objs`` in the order of the class data file)."""
    plan, o = view.plan.classes[c], view.data.objects
    rows = plan.objs
    sources = sorted(set(o["source"].iloc[rows].astype(str)))
    src_index = {s: i for i, s in enumerate(sources)}
    ctx_files = sorted({view.images.context[r] for r in rows.tolist() if r in view.images.context})
    ctx_index = {f: i for i, f in enumerate(ctx_files)}
    split_index = {s: i for i, s in enumerate(view.splits)}

    def col(name: str, default: Any, digits: int | None = None) -> list[Any]:
        if name not in o.columns:
            return [default] * len(rows)
        values = o[name].iloc[rows]
        if digits is not None:
            return [None if v != v else round(float(v), digits) for v in values.to_numpy(dtype=float)]
        return [default if (v is None or v != v) else (v.item() if hasattr(v, "item") else v) for v in values]

    thumbs = [
        -2 if r in view.images.failed else view.images.cell[r][1] if r in view.images.cell else -1
        for r in rows.tolist()
    ]
    objs = {
        "id": col("object_id", ""),
        "src": [src_index[str(s)] for s in o["source"].iloc[rows]],
        "fr": col("frame", -1),
        "box": np.round(o[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float)[rows], 1).tolist(),
        "wh": o[["image_w", "image_h"]].to_numpy()[rows].tolist(),
        "sp": [split_index.get(str(s), 0) for s in o["split"].iloc[rows]],
        "ref": col("label_ref", ""),
        "g": ranks(view, rows, o["cls"].to_numpy()[rows]),
        "oq": col("outlier_quality", None, 3),
        "o": [bool(v) for v in col("is_outlier", False)],
        "why": col("outlier_reason", ""),
        "lq": col("label_quality", None, 3),
        "le": [bool(v) for v in col("is_label_error", False)],
        "sug": col("suggested_class", -1),
        "ss": col("suggested_share", None, 3),
        "dg": col("duplicate_group", -1),
        "keep": [bool(v) for v in col("keep", True)],
        "lk": [bool(v) for v in col("is_leaked", False)],
        "sq": col("separability_quality", None, 3),
        "t": thumbs,
        "ctx": [ctx_index.get(view.images.context.get(r, ""), -1) for r in rows.tolist()],
    }
    index = view.obj_index[c]
    drawn = plan.drawn
    payload: dict[str, Any] = {
        "c": c,
        "n": len(plan.rows),
        "objs": objs,
        "sources": sources,
        "ctx": ctx_files,
        "gcol": class_colors(max(1, plan.n_groups))[: plan.n_groups],
        "map": {
            "k": [index[int(r)] for r in drawn.tolist()],
            "x": np.round(o["class_x"].to_numpy(dtype=float)[drawn], 4).tolist() if len(drawn) else [],
            "y": np.round(o["class_y"].to_numpy(dtype=float)[drawn], 4).tolist() if len(drawn) else [],
        },
        "root": _root_prefix(view),
    }
    return payload


def _root_prefix(view: View) -> str | None:
    link = view.source_link("x")
    return None if link is None else link[:-1]
