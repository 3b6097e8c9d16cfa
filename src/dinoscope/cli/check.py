"""``dinoscope check DATASET``: a precise health check of a dataset's labels and images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Display, Invocation, config_command
from dinoscope.config import build_config
from dinoscope.types import FINDING_KINDS, Severity

_SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _check(call: Invocation) -> None:
    """Check a dataset: labels, boxes, polygons, images, duplicates and class balance."""
    from dinoscope.workflows.check import CheckConfig, check_from_config

    with handle_errors():
        config = build_config(CheckConfig, **call.settings)
        report = check_from_config(config)
    if call.display["as_json"]:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_summary(report, call.display["examples"], config.out)
    if config.strict and report.n_errors:
        raise typer.Exit(1)


def command() -> Callable[..., None]:
    """The generated ``dinoscope check`` command."""
    from dinoscope.workflows.check import CheckConfig

    display = (
        Display("as_json", bool, False, "Print the report as JSON (for scripts).", "--json"),
        Display("examples", int, 15, "Findings listed in the terminal summary."),
    )
    return config_command(CheckConfig, _check, arguments=("dataset",), display=display)


def _print_summary(report, n_examples: int, out: Path | None) -> None:
    t = report.totals
    out_console.print(
        f"[bold]{report.root}[/bold]  format [bold]{report.format}[/bold]: {t['images']} images, "
        f"{t['objects']} objects, {t['classes']} classes, {t['background_images']} background images"
    )
    out_console.print(_counts_table(report))
    findings = sorted(report.findings, key=lambda f: _SEVERITY_ORDER[f.severity])
    if not findings:
        out_console.print("[green]No problem found.[/green]")
        return
    out_console.print(_kinds_table(report))
    if n_examples:
        ex = Table(title=f"First {min(n_examples, len(findings))} of {len(findings)} findings", title_justify="left")
        ex.add_column("where", overflow="fold")
        ex.add_column("kind")
        ex.add_column("message", overflow="fold")
        for f in findings[:n_examples]:
            ex.add_row(f.where, f"[{_SEVERITY_STYLE[f.severity]}]{f.kind}[/]", f.message)
        out_console.print(ex)
    by_sev = {s: sum(f.severity is s for f in findings) for s in Severity}
    tail = f"  All findings: {out}/checks.csv" if out else "  Use --out DIR for the full list (CSV/Parquet)."
    out_console.print(
        f"[red]{by_sev[Severity.ERROR]} errors[/red], [yellow]{by_sev[Severity.WARNING]} warnings[/yellow], "
        f"[cyan]{by_sev[Severity.INFO]} info[/cyan].{tail}"
    )


def _counts_table(report) -> Table:
    splits = list(report.counts)
    table = Table(title="Objects per class and split", title_justify="left")
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    if len(splits) > 1:
        table.add_column("total", justify="right")
    for name in report.class_names:
        row = [report.counts[s]["classes"].get(name, 0) for s in splits]
        cells = [str(v) for v in row] + ([str(sum(row))] if len(splits) > 1 else [])
        style = "red" if sum(row) <= 1 else None
        table.add_row(name, *cells, style=style)
    table.add_row(
        "[dim]images[/dim]",
        *[str(report.counts[s]["images"]) for s in splits],
        *([str(report.totals["images"])] if len(splits) > 1 else []),
    )
    return table


def _kinds_table(report) -> Table:
    table = Table(title="Findings by kind", title_justify="left")
    table.add_column("kind")
    table.add_column("severity")
    table.add_column("count", justify="right")
    table.add_column("what it means")
    table.add_column("first", overflow="fold")
    for kind, n in report.kind_counts().items():
        first = next(f for f in report.findings if f.kind == kind)
        sev = first.severity
        table.add_row(kind, f"[{_SEVERITY_STYLE[sev]}]{sev.value}[/]", str(n), FINDING_KINDS[kind][1], first.where)
    return table
