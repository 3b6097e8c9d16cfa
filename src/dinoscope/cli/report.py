"""``dinoscope report RUN``: the offline HTML report, exports, figures and optional PDF."""

from __future__ import annotations

from collections.abc import Callable

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _report(call: Invocation) -> None:
    """Build the offline HTML report of a run: overview, class pages, maps, duplicates and exports."""
    from dinoscope.workflows.report import ReportConfig, build_report_from_config

    with handle_errors():
        result = build_report_from_config(build_config(ReportConfig, **call.settings))
    w = result.weight
    out_console.print(
        f"report: {result.index}  ({w['n_files']:,} files, {w['total_bytes'] / 2**20:.1f} MB; first view "
        f"{w['initial_bytes'] / 1024:.0f} KB; {w['n_thumbnails']:,} thumbnails; built in {w['build_s']:.1f} s)",
        soft_wrap=True,
    )
    if result.pdf is not None:
        out_console.print(f"pdf: {result.pdf}", soft_wrap=True)


def command() -> Callable[..., None]:
    """The generated ``dinoscope report`` command."""
    from dinoscope.workflows.report import ReportConfig

    return config_command(ReportConfig, _report, arguments=("run",))
