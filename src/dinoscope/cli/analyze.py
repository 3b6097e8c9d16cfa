"""``dinoscope analyze TARGET``: the whole pipeline on a dataset, or the analyses of an existing run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config
from dinoscope.errors import ConfigError


def _analyze(call: Invocation) -> None:
    """Check -> embed -> analyse -> report a dataset in one run, or re-analyse a run directory.

    Finds sub-groups, outliers, near-duplicates, label errors, class overlap and split leakage per class.
    """
    target = call.settings["dataset"]
    with handle_errors():
        if _is_run(target):
            _analyze_run(call)
            return
        from dinoscope.workflows.pipeline import PipelineConfig, run_pipeline_from_config

        config = build_config(PipelineConfig, **call.settings)
        if config.store is not None:
            raise ConfigError("--store applies when TARGET is a run directory")
        result = run_pipeline_from_config(config)
    if result.model_note:
        out_console.print(f"model: {result.model_note}", soft_wrap=True)
    if result.check_kinds:
        kinds = ", ".join(f"{n} {kind}" for kind, n in result.check_kinds.items())
        out_console.print(f"dataset checks: {kinds} (details: {result.run_dir / 'checks'})", soft_wrap=True)
    if result.n_dropped:
        out_console.print(f"{result.n_dropped} objects left out by the class/split/size filters")
    print_summary(result.summary)
    if result.crops_dir is not None:
        out_console.print(f"crops: {result.crops_dir}")
    out_console.print(f"run: {result.run_dir}")
    if result.report is not None:
        out_console.print(f"[bold]report: {result.report}[/bold]")


def command() -> Callable[..., None]:
    """The generated ``dinoscope analyze`` command (TARGET: a dataset, or a run directory)."""
    from dinoscope.workflows.pipeline import PipelineConfig

    return config_command(PipelineConfig, _analyze, arguments=("dataset",))


def _is_run(target: Path) -> bool:
    return target.is_dir() and (target / "run.yaml").is_file() and (target / "objects.parquet").is_file()


def _analyze_run(call: Invocation) -> None:
    """TARGET is a run directory: the analyses (and report) over its vectors; dataset options do not apply."""
    from dinoscope.workflows.analyze import AnalyzeConfig, analyze_from_config

    run = call.settings["dataset"]
    keys = set(AnalyzeConfig.model_fields) - {"run"}
    stray = sorted(call.given - keys - {"report", "dataset"})
    if stray:
        flags = ", ".join("--" + s.replace("_", "-") for s in stray)
        raise ConfigError(f"{run} is a run directory: {flags} only apply to a dataset (drop them, or give a dataset)")
    options = {key: value for key, value in call.settings.items() if key in keys}
    result = analyze_from_config(build_config(AnalyzeConfig, run=run, **options))
    print_summary(result.summary)
    out_console.print(f"findings: {result.run_dir / 'findings'}  summary: {result.run_dir / 'summary.json'}")
    if call.settings.get("report", True):
        from dinoscope.report import build_report

        path = build_report(result.run_dir)
        out_console.print(f"[bold]report: {path}[/bold]")


def print_summary(summary: dict[str, Any]) -> None:
    """The per-class table and the recommendations (shared by `analyze`, `video` and `demo`).

    Besides class and count, the columns are those of the registered analyses, in registry order.
    """
    from dinoscope.analysis.registry import TableColumn, registered_analyses

    columns = [TableColumn("n", "n"), *(col for a in registered_analyses() for col in a.table_columns)]
    table = Table(title=f"{summary['n_objects']} objects, {summary['n_classes']} classes", title_justify="left")
    table.add_column("class", justify="left", overflow="fold")
    for col in columns:
        table.add_column(col.header, justify="right", overflow="fold")
    for name, c in summary["classes"].items():
        table.add_row(name, *(col.cell(c) for col in columns))
    out_console.print(table)
    out_console.print("[bold]Recommendations[/bold]")
    for name, c in summary["classes"].items():
        for sentence in c["recommendations"]:
            out_console.print(f"  [bold]{name}[/bold]: {sentence}", soft_wrap=True)
    leak = summary.get("dataset", {}).get("n_leaked")
    if leak:
        out_console.print(f"[red]{leak} objects are near-duplicates across splits (leakage)[/red]")
