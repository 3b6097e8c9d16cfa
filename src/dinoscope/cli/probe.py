"""``dinoscope probe``: kNN and logistic-regression probes of a labelled dataset's features, one table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _probe(call: Invocation) -> None:
    """How well each model's features separate the classes: weighted kNN, logistic regression and (DINOv2) the
    linear probe, on group-aware folds, with 95% group-bootstrap intervals.

    Writes RUN/probes/ (metrics.json, summary.csv, splits.parquet, errors.parquet); --compare M1,M2 adds models
    (names, folders such as DIR/backbone, files) to one table.
    """
    from dinoscope.workflows.probe import ProbeConfig, probe_from_config

    with handle_errors():
        result = probe_from_config(build_config(ProbeConfig, **call.settings))
    evaluation = result.metrics["evaluation"]
    print_probe_table(result.summary, _caption(result.metrics, evaluation))
    out_console.print(f"probes: {result.run_dir / 'probes'}")
    if result.report is not None:
        out_console.print(f"[bold]report: {result.report}[/bold]")


def command() -> Callable[..., None]:
    """The generated ``dinoscope probe`` command."""
    from dinoscope.workflows.probe import ProbeConfig

    return config_command(ProbeConfig, _probe, arguments=("dataset",))


def _caption(metrics: dict[str, Any], evaluation: dict[str, Any]) -> str:
    if evaluation["mode"] == "split":
        how = f"trained on '{evaluation['train_split']}', tested on '{evaluation['test_split']}'"
        if evaluation.get("n_leaked"):
            how += f" ({evaluation['n_leaked']} test objects left out: their group also trains)"
    else:
        how = f"grouped {evaluation['n_folds']}-fold"
    return (
        f"{metrics['n_objects']} objects, {evaluation['n_groups']} groups by {metrics['group_by']}; {how}; "
        "95% intervals from a bootstrap over groups"
    )


def print_probe_table(summary: Any, caption: str) -> None:
    """The (model, protocol) rows with each headline metric and its interval."""
    from dinoscope.analysis.probing import PROTOCOL_TITLES

    table = Table(title=caption, title_justify="left")
    for header in ("protocol", "accuracy", "balanced acc.", "macro-F1", "AUROC"):
        table.add_column(header, justify="left" if header == "protocol" else "right", overflow="fold")
    previous = None
    for row in summary.to_dict("records"):
        if row["model"] != previous:  # one section per model (the table stays narrow enough for 80 columns)
            table.add_row(f"[bold]{row['model']}[/bold]", end_section=False)
            previous = row["model"]
        cells = [_cell(row, m) for m in ("accuracy", "balanced_accuracy", "macro_f1", "auroc")]
        table.add_row("  " + PROTOCOL_TITLES.get(row["protocol"], row["protocol"]), *cells)
    out_console.print(table)


def _cell(row: dict[str, Any], metric: str) -> str:
    value, low, high = row[metric], row[f"{metric}_low"], row[f"{metric}_high"]
    if value is None or value != value:  # NaN
        return "-"
    if low is None or low != low:
        return f"{value:.3f}"
    return f"{value:.3f}\n[dim]{low:.2f}–{high:.2f}[/dim]"
