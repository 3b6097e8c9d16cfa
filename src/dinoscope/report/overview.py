"""The overview: headline figures, the colour-coded class table, dataset health, class distribution and the
run's configuration and provenance - static markup inside ``index.html``, readable without script.

Numbers come from ``summary.json`` (per class, dataset-wide), ``run.yaml`` (configuration, provenance) and the
check report; nothing is recomputed here.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from dinoscope._version import __version__
from dinoscope.analysis.recommend import DUPLICATE_SHARE, MIN_OBJECTS
from dinoscope.report.probe_section import render_probe
from dinoscope.report.view import (
    RATE_BAD,
    SPLIT_COLORS,
    View,
    esc,
    fmt_int,
    fmt_num,
    fmt_pct,
    table,
    tone_separability,
)
from dinoscope.types import FINDING_KINDS

__all__ = ["render_overview"]


def render_overview(view: View) -> str:
    """The overview section: headline figures, class table, dataset health, distribution, provenance."""
    return (
        '<div class="page-head"><h1>Overview</h1>'
        f'<p class="lede">{_lede(view)}</p></div>'
        f"{_kpis(view)}"
        f'<div class="card"><div class="card-head"><h2>Classes</h2>{_legend()}</div>{_class_table(view)}</div>'
        f"{render_probe(view)}"
        f'<div class="cols"><div class="card">{_health(view)}</div>'
        f'<div class="card">{_distribution(view)}</div></div>'
        f'<div class="card">{_provenance(view)}</div>'
    )


def _lede(view: View) -> str:
    s = view.data.summary
    model = view.data.provenance.get("embedding", {}).get("model", {}).get("name", "")
    text = f"{fmt_int(s.get('n_objects'))} objects in {fmt_int(s.get('n_classes'))} classes"
    if model:
        text += f", described by <b>{esc(model)}</b> features"
    return text + ". Click a class for its sub-groups, outliers, label-error candidates and duplicates."


def _totals(view: View) -> dict[str, int]:
    keys = ("n_clusters", "n_outliers", "n_near_duplicates", "n_label_errors")
    return {k: sum(int(c.get(k) or 0) for c in view.data.summary["classes"].values()) for k in keys}


def _kpis(view: View) -> str:
    s, d, t = view.data.summary, view.data.summary.get("dataset", {}), _totals(view)
    checks = view.data.checks
    n_warn = sum(f.severity.value == "warning" for f in checks.findings if f.severity)
    cards = [
        ("n_objects", s.get("n_objects"), "objects analysed", f"{fmt_int(checks.totals.get('images'))} images", ""),
        ("n_classes", s.get("n_classes"), "classes", "", ""),
        ("n_clusters", t["n_clusters"], "sub-groups", "across all classes", ""),
        ("n_outliers", t["n_outliers"], "outliers", "flagged, robust z > cutoff", "bad" if t["n_outliers"] else ""),
        (
            "n_near_duplicates",
            t["n_near_duplicates"],
            "near-duplicates",
            f"{fmt_int(d.get('n_duplicate_groups'))} groups, {fmt_int(d.get('n_duplicates_to_drop'))} to drop",
            "warn" if t["n_near_duplicates"] else "",
        ),
        ("n_label_errors", t["n_label_errors"], "label-error candidates", "", "warn" if t["n_label_errors"] else ""),
        (
            "n_leaked",
            d.get("n_leaked"),
            "leaked across splits",
            "near-duplicates in 2+ splits",
            "bad" if d.get("n_leaked") else "",
        ),
        ("n_errors", checks.n_errors, "label-file errors", f"{n_warn} warnings", "bad" if checks.n_errors else ""),
    ]
    html = "".join(
        f'<div class="kpi {tone}" data-key="{key}" data-value="{"" if value is None else value}">'
        f'<div class="v">{fmt_int(value)}</div><div class="k">{esc(label)}</div>'
        f'<div class="s">{esc(sub)}</div></div>'
        for key, value, label, sub, tone in cards
    )
    return f'<div class="kpis">{html}</div>'


def _legend() -> str:
    return (
        '<div class="legend-note"><span class="chip ok">fine</span><span class="chip warn">look</span>'
        '<span class="chip bad">act</span><span class="muted">click a column to sort, a row to open</span></div>'
    )


def _tone_rate(count: int | None, rate: float | None) -> str:
    if not count:
        return ""
    return "bad" if (rate or 0.0) >= RATE_BAD else "warn"


def _td(key: str, value: Any, text: str, tone: str = "", extra: str = "") -> str:
    raw = "" if value is None else value
    return f'<td class="num {tone}" data-key="{key}" data-value="{raw}">{text}{extra}</td>'


def _class_table(view: View) -> str:
    head = (
        "<thead><tr>"
        '<th data-sort="text">Class</th><th data-sort="num" class="num">Objects</th>'
        '<th data-sort="num" class="num">Sub-groups</th><th data-sort="num" class="num">Outliers</th>'
        '<th data-sort="num" class="num">Near-dups</th><th data-sort="num" class="num">Label errors</th>'
        '<th data-sort="num" class="num">Separability</th><th>Recommendation</th></tr></thead>'
    )
    n_max = max([int(c.get("n") or 0) for c in view.data.summary["classes"].values()] + [1])
    rows = [_class_row(view, c, n_max) for c in range(len(view.data.names))]
    body = "".join(rows)
    return (
        f'<div class="table-wrap"><table class="classes sortable" id="class-table">{head}'
        f"<tbody>{body}</tbody></table></div>"
    )


def _class_row(view: View, c: int, n_max: int) -> str:
    s = view.data.class_summary(c)
    n = int(s.get("n") or 0)
    icon = view.icon_style(c, 36)
    icon_html = f'<span class="icon" style="{icon}"></span>' if icon else '<span class="icon none"></span>'
    name = (
        f'<td class="name" data-value="{esc(view.data.names[c])}"><div class="nm">{icon_html}'
        f"{view.class_link(c)}</div></td>"
    )
    bar = f'<span class="bar"><i style="width:{100 * n / n_max:.1f}%;background:{view.colors[c]}"></i></span>'
    few = "warn" if n < MIN_OBJECTS else ""
    cells = [name, _td("n", n, fmt_int(n), few, bar)]
    k = s.get("n_clusters")
    cells.append(_td("n_clusters", k, fmt_int(k), "info" if (k or 0) >= 2 else "", _size_strip(s)))
    m, rate = s.get("n_outliers"), s.get("outlier_rate")
    cells.append(_td("n_outliers", m, fmt_int(m), _tone_rate(m, rate), f"<small>{fmt_pct(rate)}</small>" if m else ""))
    m, share = s.get("n_near_duplicates"), s.get("duplicate_share")
    tone = (
        ""
        if not m
        else "bad"
        if (share or 0) >= 4 * DUPLICATE_SHARE
        else "warn"
        if (share or 0) >= DUPLICATE_SHARE
        else ""
    )
    cells.append(_td("n_near_duplicates", m, fmt_int(m), tone, f"<small>{fmt_pct(share, 0)}</small>" if m else ""))
    m = s.get("n_label_errors")
    dest = next(iter(s.get("label_error_destinations") or {}), None)
    to = f"<small>→ {esc(dest)}</small>" if m and dest else ""
    cells.append(_td("n_label_errors", m, fmt_int(m), _tone_rate(m, (m or 0) / max(n, 1)), to))
    sep = s.get("separability")
    cells.append(_td("separability", sep, fmt_num(sep), tone_separability(sep)))
    recs = s.get("recommendations") or []
    more = f' <span class="muted">+{len(recs) - 1} more</span>' if len(recs) > 1 else ""
    first = esc(recs[0]) if recs else ""
    cells.append(f'<td class="rec" title="{esc(" | ".join(recs))}">{first}{more}</td>')
    return f'<tr data-class="{c}">{"".join(cells)}</tr>'


def _size_strip(s: dict[str, Any]) -> str:
    sizes = [int(v) for v in s.get("cluster_sizes") or []]
    n = int(s.get("n") or 0)
    if len(sizes) < 2 or not n:
        return ""
    segs = "".join(f'<i style="flex:{v}"></i>' for v in sizes[:12])
    rest = n - sum(sizes[:12])
    if rest > 0:
        segs += f'<i class="rest" style="flex:{rest}"></i>'
    return f'<span class="strip" title="sizes {" / ".join(map(str, sizes))}">{segs}</span>'


def _health(view: View) -> str:
    checks = view.data.checks
    kinds = checks.kind_counts()
    if kinds:
        sev = {f.kind: f.severity.value for f in checks.findings if f.severity}
        rows = "".join(
            f'<tr data-kind="{esc(k)}"><td><span class="chip {_sev_tone(sev.get(k, ""))}">{esc(sev.get(k, ""))}</span>'
            "</td>"
            f'<td><code>{esc(k)}</code></td><td class="num" data-value="{v}">{fmt_int(v)}</td>'
            f'<td class="muted">{esc(FINDING_KINDS[k][1])}</td></tr>'
            for k, v in kinds.items()
        )
        kinds_table = table(["severity", "kind", "#count", "what it means"], rows, "health-kinds")
    else:
        kinds_table = '<p class="empty">The label checks found no problem.</p>'
    return (
        f'<h2>Dataset health</h2><p class="muted">{fmt_int(checks.n_errors)} errors in the label files and images, '
        "from the same checks as <code>dinoscope check</code>.</p>"
        f"{kinds_table}{_worst_files(view)}{_split_table(view)}"
    )


def _sev_tone(severity: str) -> str:
    return {"error": "bad", "warning": "warn", "info": "info"}.get(severity, "")


def _worst_files(view: View, top: int = 10) -> str:
    per_file: dict[str, Counter[str]] = {}
    kinds: dict[str, set[str]] = {}
    for f in view.data.checks.findings:
        if not f.file:
            continue
        per_file.setdefault(f.file, Counter())[f.severity.value if f.severity else ""] += 1
        kinds.setdefault(f.file, set()).add(f.kind)
    if not per_file:
        return ""
    ranked = sorted(per_file.items(), key=lambda kv: (-kv[1]["error"], -kv[1]["warning"], -sum(kv[1].values()), kv[0]))
    rows = "".join(
        f'<tr><td class="path">{esc(file)}</td><td class="num">{fmt_int(c["error"])}</td>'
        f'<td class="num">{fmt_int(c["warning"])}</td><td class="muted">{esc(", ".join(sorted(kinds[file])))}</td></tr>'
        for file, c in ranked[:top]
    )
    more = f'<p class="muted">{len(ranked) - top} more files in checks.csv.</p>' if len(ranked) > top else ""
    worst = table(["file", "#errors", "#warnings", "kinds"], rows, "worst-files")
    return f"<h3>Files with the most findings</h3>{worst}{more}"


def _split_table(view: View) -> str:
    counts = view.data.checks.counts
    if not counts:
        return ""
    rows = "".join(
        f'<tr><td><i class="sw" style="background:{SPLIT_COLORS.get(split, "#8892a0")}"></i>{esc(split)}</td>'
        f'<td class="num">{fmt_int(c.get("images"))}</td><td class="num">{fmt_int(c.get("objects"))}</td>'
        f'<td class="num">{fmt_int(c.get("background_images"))}</td></tr>'
        for split, c in counts.items()
    )
    return (
        '<h3>Splits</h3><table class="compact"><thead><tr><th>split</th><th class="num">images</th>'
        f'<th class="num">objects</th><th class="num">background</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _distribution(view: View) -> str:
    counts = view.data.checks.counts
    splits = list(counts)
    per = [[int(counts[s].get("classes", {}).get(name, 0)) for s in splits] for name in view.data.names]
    top = max([sum(p) for p in per] + [1])
    single = len(splits) == 1
    rows = []
    for c, parts in enumerate(per):
        segs = "".join(
            f'<i style="width:{100 * v / top:.2f}%;background:{view.colors[c] if single else _split_color(s)}" '
            f'title="{esc(s)}: {v:,}"></i>'
            for s, v in zip(splits, parts, strict=True)
            if v
        )
        rows.append(
            f'<div class="dist-row"><span class="lbl">{view.class_link(c)}</span>'
            f'<span class="dist">{segs}</span><span class="num">{fmt_int(sum(parts))}</span></div>'
        )
    keys = "".join(f'<span><i class="sw" style="background:{_split_color(s)}"></i>{esc(s)}</span>' for s in splits)
    what = f"Objects per class ({esc(splits[0])} split)." if single else "Objects per class, by split:"
    return (
        f'<h2>Class distribution</h2><p class="muted">{what}</p>'
        f'{"" if single else f"<div class=keys>{keys}</div>"}<div class="dist-list">{"".join(rows)}</div>'
    )


def _split_color(split: str) -> str:
    return SPLIT_COLORS.get(split, "#8892a0")


def _provenance(view: View) -> str:
    p = view.data.provenance
    emb, model = p.get("embedding", {}), p.get("embedding", {}).get("model", {})
    crop, stats = emb.get("crop", {}), p.get("embed_stats", {})
    analysis = view.data.analysis_info
    acfg, maps = analysis.get("config", {}), analysis.get("maps", {})
    dino = p.get("dinoscope", {})
    timings = view.data.summary.get("timings_s", {})
    groups = {
        "Dataset": {
            "root": str(view.data.table.root or ""),
            "format": view.data.table.format,
            "images": fmt_int(view.data.checks.totals.get("images")),
            "objects in table": fmt_int(len(view.data.table)),
            "objects analysed": fmt_int(view.data.summary.get("n_objects")),
        },
        "Model": {
            "name": model.get("name"),
            "backend": model.get("backend"),
            "weights": model.get("weights"),
            "weights hash": model.get("weights_hash"),
            "loader": model.get("loader"),
            "input size": model.get("input_size"),
            "pooling": model.get("pooling"),
            "dimensions": model.get("embed_dim"),
            "crop": f"{crop.get('policy', '')}, context {crop.get('context_frac', '')}" if crop else None,
            "store": view.data.summary.get("store"),
        },
        "Embedding": {
            "device": emb.get("device"),
            "precision": emb.get("precision"),
            "computed / cached": f"{fmt_int(stats.get('n_computed'))} / {fmt_int(stats.get('n_cached'))}"
            if stats
            else None,
            "failed": stats.get("n_failed"),
            "speed": f"{fmt_num(stats.get('objects_per_s'), 1)} objects/s" if stats.get("objects_per_s") else None,
            "time": f"{fmt_num(stats.get('total_seconds'), 1)} s" if stats.get("total_seconds") else None,
        },
        "Analysis": {
            "neighbours k": acfg.get("k"),
            "sub-groups": acfg.get("cluster_method"),
            "2-D map": f"{maps.get('method', acfg.get('map_method', ''))}"
            + (f" (fit on {fmt_int(maps.get('n_fit'))})" if maps.get("n_fit") else ""),
            "seed": acfg.get("seed"),
            "time": f"{fmt_num(sum(float(v) for v in timings.values()), 1)} s" if timings else None,
        },
        "Provenance": {
            "created": dino.get("created"),
            "command": dino.get("command"),
            "host": dino.get("host"),
            **{f"{k}": v for k, v in (dino.get("versions") or {}).items()},
            "report": f"dinoscope {__version__}, {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        },
    }
    blocks = "".join(
        f'<div class="prov{" wide" if title == "Provenance" else ""}"><h3>{esc(title)}</h3><dl>'
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items.items() if v not in (None, "", "-"))
        + "</dl></div>"
        for title, items in groups.items()
    )
    return f'<h2>Run configuration and provenance</h2><div class="prov-grid" id="provenance">{blocks}</div>'
