"""The before/after page of ``dinoscope adapt``: the original vs the adapted backbone, in numbers.

Three tables, each read from what the workflows wrote (nothing is recomputed here):

- **feature probes** on the labelled ``--eval`` set (``dinoscope probe``'s ``probes/metrics.json``: the same
  group-aware folds for both backbones): kNN k = 10 / 20 accuracy; logistic regression (and, for ViTs with a
  class token, the DINOv2 linear probe) accuracy, balanced accuracy, macro-F1, AUROC, with 95% intervals;
- **analysis headline numbers** of ``dinoscope analyze`` on the same set with each backbone (``summary.json``):
  sub-groups, outliers, label-error candidates, near-duplicate groups;
- **the training checks**: the collapse monitor's figures (and the kNN of ``--eval``) of the original backbone
  (step 0) and of the exported check.

:func:`comparison_rows` turns those into rows (``section, key, metric, original, adapted, change``: the JSON and
CSV beside the page); :func:`build_comparison_page` writes the self-contained HTML.

Example:
    >>> rows = comparison_rows(None, {}, {"effective_rank": 9.0}, {"effective_rank": 8.5})
    >>> rows[0]["metric"], rows[0]["change"]
    ('effective rank (training images)', -0.5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dinoscope.report.view import esc, table

__all__ = ["ANALYSIS_NUMBERS", "CHECK_FIGURES", "build_comparison_page", "comparison_rows", "headline_numbers"]

#: (protocol, metric) pairs of the probe table.
_PROBES = (
    ("knn10", "accuracy"),
    ("knn20", "accuracy"),
    *((p, m) for p in ("logreg", "linear") for m in ("accuracy", "balanced_accuracy", "macro_f1", "auroc")),
)
_PROTOCOLS = {"knn10": "kNN k=10", "knn20": "kNN k=20", "logreg": "logistic regression", "linear": "linear [CLS‖mean]"}
_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "macro_f1": "macro-F1", "auroc": "AUROC"}
#: Headline numbers of ``summary.json``: key -> title.
ANALYSIS_NUMBERS = {
    "n_objects": "objects analysed",
    "sub_groups": "sub-groups (all classes)",
    "outliers": "outliers",
    "label_error_candidates": "label-error candidates",
    "near_duplicate_groups": "near-duplicate groups",
}
#: Check figures of ``adapt.yaml``: key -> title.
CHECK_FIGURES = {
    "feature_std": "feature spread (training images)",
    "effective_rank": "effective rank (training images)",
    "teacher_entropy": "teacher head entropy (training images)",
    "knn_accuracy": "monitor kNN k=20 accuracy (--eval)",
    "knn_balanced_accuracy": "monitor kNN k=20 balanced acc. (--eval)",
}
_SECTIONS = {
    "probe": "Feature probes on the evaluation set (dinoscope probe)",
    "analysis": "Analysis of the evaluation set with each backbone (dinoscope analyze)",
    "checks": "Checks during training: the original (step 0) vs the exported check",
}


_FOOTER = "Intervals: 95% bootstrap over groups. The same numbers: compare.json and compare.csv beside this page."
_RUNS = (
    " Each backbone's analysis run: compare/original and compare/adapted (<code>dinoscope report</code> builds "
    "their full reports); the probes: compare/probes."
)


def headline_numbers(summary: dict[str, Any]) -> dict[str, int]:
    """The analysis headline numbers of one ``summary.json``, summed over classes.

    Example:
        >>> headline_numbers({"n_objects": 9, "classes": {"a": {"n_clusters": 2, "n_outliers": 1}}, "dataset": {}})
        {'n_objects': 9, 'sub_groups': 2, 'outliers': 1, 'label_error_candidates': 0, 'near_duplicate_groups': 0}
    """
    classes = summary.get("classes", {}).values()
    return {
        "n_objects": int(summary.get("n_objects", 0)),
        "sub_groups": sum(int(c.get("n_clusters", 0)) for c in classes),
        "outliers": sum(int(c.get("n_outliers", 0)) for c in classes),
        "label_error_candidates": sum(int(c.get("n_label_errors", 0)) for c in classes),
        "near_duplicate_groups": int(summary.get("dataset", {}).get("n_duplicate_groups", 0)),
    }


def comparison_rows(
    probes: tuple[dict[str, Any], dict[str, Any]] | None,
    summaries: dict[str, dict[str, Any]],
    before: dict[str, float],
    after: dict[str, float],
) -> list[dict[str, Any]]:
    """Rows ``section, key, metric, original, adapted, change`` (+ ``*_low``/``*_high`` for the probes).

    Args:
        probes: The original's and the adapted backbone's metrics by protocol (``probes/metrics.json``'s
            ``models[m]["metrics"]``), or None without a labelled evaluation set.
        summaries: ``{"original": summary.json, "adapted": summary.json}`` ({} without one).
        before: The step-0 check's figures; ``after``: the exported check's.
    """
    rows: list[dict[str, Any]] = []
    if probes is not None:
        for protocol, metric in _PROBES:
            a, b = (p.get(protocol, {}).get(metric) for p in probes)
            if a is None or b is None:
                continue
            row = _row("probe", f"{protocol}.{metric}", f"{_PROTOCOLS[protocol]} - {_METRICS[metric]}", a["value"],
                       b["value"])  # fmt: skip
            row.update(original_low=a.get("low"), original_high=a.get("high"))
            row.update(adapted_low=b.get("low"), adapted_high=b.get("high"))
            rows.append(row)
    if summaries:
        numbers = {name: headline_numbers(s) for name, s in summaries.items()}
        for key, title in ANALYSIS_NUMBERS.items():
            rows.append(_row("analysis", key, title, numbers["original"][key], numbers["adapted"][key]))
    for key, title in CHECK_FIGURES.items():
        if key in before or key in after:
            rows.append(_row("checks", key, title, before.get(key), after.get(key)))
    return rows


def _row(section: str, key: str, metric: str, original: Any, adapted: Any) -> dict[str, Any]:
    change = None if original is None or adapted is None else adapted - original
    if isinstance(change, float):
        change = round(change, 12)
    return {"section": section, "key": key, "metric": metric, "original": original, "adapted": adapted,
            "change": change}  # fmt: skip


def build_comparison_page(path: Path, rows: list[dict[str, Any]], facts: dict[str, str], note: str = "") -> Path:
    """Write the self-contained before/after page.

    Args:
        path: The ``.html`` file.
        rows: :func:`comparison_rows`.
        facts: Lines shown above the tables (label -> value): the models, the evaluation set, the protocol.
        note: A sentence shown first (e.g. why there are no probes).
    """
    parts = [f"<p class='note'>{esc(note)}</p>" if note else ""]
    for section, title in _SECTIONS.items():
        body = "".join(_tr(r) for r in rows if r["section"] == section)
        if body:
            parts.append(f"<h2>{esc(title)}</h2>" + table(["", "#original", "#adapted", "#change"], body, section))
    facts_html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts.items())
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>dinoscope adapt: before / after</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:24px;color:#223;max-width:1000px}"
        "th{text-align:left;padding:2px 12px 2px 0;color:#556}td{padding:2px 12px 2px 0}.num{text-align:right;"
        "font-variant-numeric:tabular-nums}small{color:#778}.up{color:#1a7f37}.down{color:#b42318}"
        ".note{background:#fff6e0;padding:8px 12px;border-left:4px solid #e0a800}</style></head><body>"
        f"<h1>Before / after adaptation</h1><table>{facts_html}</table>{''.join(parts)}"
        f"<p><small>{_FOOTER}{_RUNS if any(r['section'] == 'analysis' for r in rows) else ''}</small></p>"
        "</body></html>"
    )
    path.write_text(html, encoding="utf-8")
    return path


def _tr(row: dict[str, Any]) -> str:
    cells = [f"<td>{esc(row['metric'])}</td>"]
    for side in ("original", "adapted"):
        value, low = row[side], row.get(f"{side}_low")
        text = _fmt(value)
        if low is not None:
            text += f" <small>{low:.3f}–{row[f'{side}_high']:.3f}</small>"
        cells.append(f'<td class="num" data-side="{side}" data-value="{"" if value is None else value}">{text}</td>')
    change = row["change"]
    tone = "" if not change or row["section"] != "probe" else "up" if change > 0 else "down"  # probes: higher = better
    sign = "+" if change and change > 0 else ""
    cells.append(f'<td class="num {tone}">{"-" if change is None else sign + _fmt(change)}</td>')
    return f'<tr data-key="{esc(row["key"])}">{"".join(cells)}</tr>'


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"
