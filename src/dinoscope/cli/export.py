"""``dinoscope export RUN DIR --to parquet|fiftyone``: a run's objects, findings, vectors and map for other tools."""

from __future__ import annotations

from collections.abc import Callable

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _export(call: Invocation) -> None:
    """Export a run: Parquet tables (objects with every findings column and the map, vectors, images) that
    DuckDB and pandas read in one line, or a FiftyOne dataset directory (detections with their embeddings and
    findings, the 2-D map as a Brain visualization).
    """
    from dinoscope.workflows.export import ExportConfig, export_from_config

    with handle_errors():
        result = export_from_config(build_config(ExportConfig, **call.settings))
    counts = ", ".join(f"{n:,} {what}" for what, n in result.counts.items())
    out_console.print(f"{result.to}: {result.out}  ({counts})", soft_wrap=True)
    for what, n in result.skipped.items():
        out_console.print(f"not exported: {n:,} {what}", soft_wrap=True)


def command() -> Callable[..., None]:
    """The generated ``dinoscope export`` command."""
    from dinoscope.workflows.export import ExportConfig

    return config_command(ExportConfig, _export, arguments=("run", "out"))
