"""The probe card of the overview: one row per (model, protocol) of ``probes/metrics.json`` with 95% intervals.

Shown when ``dinoscope probe`` wrote into the run; the numbers are read as written, nothing is recomputed.
"""

from __future__ import annotations

from typing import Any

from dinoscope.analysis.probing import PROTOCOL_TITLES
from dinoscope.report.view import View, esc, fmt_int, table

__all__ = ["render_probe"]

_METRICS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced acc."),
    ("macro_f1", "macro-F1"),
    ("auroc", "AUROC"),
)


def render_probe(view: View) -> str:
    """The probe card ("" when the run has no probe)."""
    doc = view.data.probe
    if not doc:
        return ""
    rows = "".join(
        _row(model, protocol, m, first=i == 0)
        for model, entry in doc.get("models", {}).items()
        for i, (protocol, m) in enumerate(entry.get("metrics", {}).items())
    )
    head = ["model", "protocol", *(f"#{label}" for _, label in _METRICS)]
    return (
        '<div class="card" id="probe"><h2>Feature probes</h2>'
        f'<p class="muted">{esc(_caption(doc))}</p>{table(head, rows, "probe-table")}'
        '<p class="muted">Per-class precision / recall / F1 and confusion matrices: <code>probes/metrics.json</code>; '
        "misclassified objects with their groups: <code>probes/errors.parquet</code>.</p></div>"
    )


def _caption(doc: dict[str, Any]) -> str:
    ev = doc.get("evaluation", {})
    if ev.get("mode") == "split":
        how = f"trained on '{ev.get('train_split')}', tested on '{ev.get('test_split')}'"
    else:
        how = f"grouped {ev.get('n_folds')}-fold cross-validation"
    return (
        f"{fmt_int(doc.get('n_objects'))} labelled objects in {fmt_int(ev.get('n_groups'))} groups "
        f"(by {doc.get('group_by')}), {how}: a group is never on both sides. Brackets: 95% bootstrap interval "
        "over groups."
    )


def _row(model: str, protocol: str, m: dict[str, Any], *, first: bool) -> str:
    title = PROTOCOL_TITLES.get(protocol, protocol)
    cells = [f"<td>{esc(model) if first else ''}</td>", f"<td>{esc(title)}</td>"]
    for key, _ in _METRICS:
        v = m.get(key) or {}
        value, low, high = v.get("value"), v.get("low"), v.get("high")
        text = "-" if value is None else f"{value:.3f}"
        if value is not None and low is not None:
            text += f' <small class="muted">{low:.3f}–{high:.3f}</small>'
        cells.append(f'<td class="num" data-key="{key}" data-value="{"" if value is None else value}">{text}</td>')
    return f'<tr data-model="{esc(model)}" data-protocol="{esc(protocol)}">{"".join(cells)}</tr>'
