"""The page shell - ``index.html`` (interactive) and ``print.html`` (static, for the PDF) - and the exports page.

``index.html`` holds the overview (:mod:`~dinoscope.report.overview`) and the exports page as static markup;
the dataset-wide page and the class pages (:mod:`~dinoscope.report.dataset_page`,
:mod:`~dinoscope.report.class_page`) are ``data/*.js`` files the script adds when the reader opens them.
"""

from __future__ import annotations

import json
from typing import Any

from dinoscope._version import __version__
from dinoscope.report.exports import findings_sections
from dinoscope.report.view import View, esc, fmt_int, fmt_num, table
from dinoscope.run import Run

__all__ = ["render_exports", "render_index", "render_print"]


def render_index(view: View, overview: str, exports: str, meta: dict[str, Any]) -> str:
    """The interactive page: overview inline, other pages loaded from ``data/*.js`` on navigation."""
    boot = {
        "names": view.data.names,
        "colors": view.colors,
        "splits": view.splits,
        "counts": [int(view.data.class_summary(c).get("n", 0)) for c in range(len(view.data.names))],
        "cell": 96,
        "grid": 8,
        "meta": meta,
    }
    return _shell(
        view,
        body=f'<section class="page" id="page-overview" data-page="overview">{overview}</section>'
        '<section class="page" id="page-dataset" data-page="dataset" hidden></section>'
        '<section class="page" id="page-class" data-page="class" hidden></section>'
        f'<section class="page" id="page-exports" data-page="exports" hidden>{exports}</section>',
        scripts=f'<script id="ds-boot" type="application/json">{_json(boot)}</script>'
        '<script src="assets/report.js"></script>',
    )


def render_print(view: View, parts: list[str]) -> str:
    """A static page holding every section in order, for printing to PDF (no script)."""
    body = "".join(f'<section class="page print-page">{p}</section>' for p in parts)
    return _shell(view, body=body, scripts="", printing=True)


def _shell(view: View, body: str, scripts: str, printing: bool = False) -> str:
    title = f"{_dataset_name(view)} - dinoscope report"
    classes = "" if printing else _sidebar(view)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Files of the report's folder and the dataset's ("file:" for browsers that give each local file its
        # own origin), nothing from a network, and no fetch / XHR / WebSocket at all.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self' file: data: 'unsafe-inline'; "
        "connect-src 'none'\">"
        f'<meta name="generator" content="dinoscope {esc(__version__)}">'
        f"<title>{esc(title)}</title>"
        '<link rel="stylesheet" href="assets/report.css"></head>'
        f'<body class="{"printing" if printing else ""}">'
        f"{_topbar(view, printing)}"
        f'<div class="layout">{classes}<main id="main">{body}</main></div>'
        '<div id="tip" class="tip" hidden></div>'
        '<div id="inspector" class="modal" hidden></div>'
        f"{scripts}</body></html>\n"
    )


def _dataset_name(view: View) -> str:
    root = view.data.table.root
    return root.name if root is not None and root.name else view.data.run_dir.name


def _topbar(view: View, printing: bool) -> str:
    tabs = (
        ""
        if printing
        else (
            '<nav class="tabs">'
            '<a href="#/overview" data-tab="overview">Overview</a>'
            '<a href="#/dataset" data-tab="dataset">Dataset-wide</a>'
            + ('<a href="errors.html">Model errors</a>' if Run(view.data.run_dir).metrics_path.is_file() else "")
            + '<a href="#/exports" data-tab="exports">Exports</a></nav>'
        )
    )
    created = view.data.provenance.get("dinoscope", {}).get("created", "")
    return (
        '<header class="topbar"><div class="brand"><span class="logo">dinoscope</span>'
        f'<span class="title">{esc(_dataset_name(view))}</span>'
        f'<span class="sub">run {esc(view.data.run_dir.name)}{" · " + esc(created[:10]) if created else ""}</span>'
        f"</div>{tabs}</header>"
    )


def _sidebar(view: View) -> str:
    items = []
    for c, name in enumerate(view.data.names):
        s = view.data.class_summary(c)
        flags = ""
        if s.get("n_label_errors"):
            flags += f'<b class="dot warn" title="{s["n_label_errors"]} label-error candidates"></b>'
        if s.get("n_outliers"):
            flags += f'<b class="dot bad" title="{s["n_outliers"]} outliers"></b>'
        items.append(
            f'<a href="#/class/{c}" data-class="{c}" data-name="{esc(name.lower())}">'
            f'<i class="sw" style="background:{view.colors[c]}"></i><span class="nm">{esc(name)}</span>'
            f'{flags}<span class="n">{fmt_int(s.get("n"))}</span></a>'
        )
    return (
        '<nav class="sidebar"><div class="side-head">Classes '
        f'<span class="muted">{len(view.data.names)}</span></div>'
        '<input id="class-filter" type="search" placeholder="Filter classes" aria-label="Filter classes">'
        f'<div class="class-list">{"".join(items)}</div></nav>'
    )


def _json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")


_DESCRIPTIONS = {
    "cluster_statistics.csv": "one row per class: n_samples, n_clusters, n_outliers, outlier_rate, eps_used, ...",
    "findings.csv": "one row per analysed object with every finding (flags, qualities, groups, suggested class)",
    "checks.csv": "dataset health findings (file, line, kind, severity, message)",
    "label_errors_review.csv": "label-error candidates to review: file, line, current and suggested class, decision",
    "label_errors_review.yaml": "the same review list as YAML",
    "report.pdf": "this report as a PDF (printed from print.html)",
    "print.html": "every section on one static page (for printing)",
}


def render_exports(view: View, files: dict[str, int], meta: dict[str, Any]) -> str:
    """The exports page: every file written beside the report with its size, figures, and the page weight."""
    rows = "".join(
        f'<tr><td><a href="{esc(f)}">{esc(f)}</a></td><td class="num">{_size(files[f])}</td>'
        f'<td class="muted">{esc(text)}</td></tr>'
        for f, text in _DESCRIPTIONS.items()
        if f in files
    )
    figures = sorted(f for f in files if f.startswith("figures/"))
    fig_html = "".join(
        f'<a class="fig" href="{esc(f)}" title="{esc(f)}"><img loading="lazy" alt="" src="{esc(f)}">'
        f'<span>{esc(f.split("/", 1)[1])} <span class="muted">{_size(files[f])}</span></span></a>'
        for f in figures
    )
    samples = [f for f in files if f.startswith("samples/")]
    if samples:
        sample_html = (
            f'<p>{fmt_int(len(samples))} crops in <a href="samples/">samples/</a>, one folder per class and '
            f"sub-group ({_size(sum(files[f] for f in samples))}).</p>"
        )
    else:
        sample_html = '<p class="muted">Not exported (<code>dinoscope report RUN --export-samples</code>).</p>'
    no_figures = '<p class="muted">No figures (matplotlib missing, or --no-figures).</p>'
    return (
        '<div class="page-head"><h1>Exports</h1><p class="lede">Files written beside this report; the whole '
        "folder works offline and can be copied or zipped as it is.</p></div>"
        f'<div class="card"><h2>Tables and review lists</h2>{table([], rows, "export-files")}</div>'
        f"{_analyses(view) if 'findings.csv' in files else ''}"
        f'<div class="cols"><div class="card"><h2>Figures for slides</h2>'
        f"{f'<ul class=figs>{fig_html}</ul>' if figures else no_figures}</div>"
        f'<div class="card"><h2>Sample crops</h2>{sample_html}<h2>Page weight</h2>{_weight(meta)}</div></div>'
    )


def _analyses(view: View) -> str:
    """The analyses of the run (from the registry): what each finds and its columns in findings.csv."""
    rows = "".join(
        f'<tr data-analysis="{esc(s.name)}"><td>{esc(s.title)}</td><td class="muted">{esc(s.description)}</td>'
        f"<td><code>{esc(', '.join(s.columns))}</code></td></tr>"
        for s in findings_sections(view.data)
    )
    return (
        '<div class="card"><h2>Analyses in findings.csv</h2>'
        f"{table(['analysis', 'what it finds', 'columns'], rows, 'export-analyses')}</div>"
    )


def _weight(meta: dict[str, Any]) -> str:
    items = [
        ("first view", "initial_bytes", _size(meta.get("initial_bytes", 0)), "index.html, styles, script, icons"),
        ("largest class page", "largest_page_bytes", _size(meta.get("largest_page_bytes", 0)), "data + thumbnails"),
        (
            "whole report",
            "total_bytes",
            f"{_size(meta.get('total_bytes', 0))} in {fmt_int(meta.get('n_files'))} files",
            "",
        ),
        (
            "thumbnails",
            "n_thumbnails",
            f"{fmt_int(meta.get('n_thumbnails'))} in {fmt_int(meta.get('n_sheets'))} sheets",
            "",
        ),
        ("built in", "build_s", f"{fmt_num(meta.get('build_s'), 1)} s", ""),
    ]
    body = "".join(
        f'<dt>{label}</dt><dd data-key="{key}" data-value="{meta.get(key, "")}">{text}'
        f"{f' <span class=muted>({note})</span>' if note else ''}</dd>"
        for label, key, text, note in items
    )
    return f'<dl class="weight" id="page-weight">{body}</dl>'


def _size(n: float) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
