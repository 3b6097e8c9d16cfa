"""``dinoscope demo``: the whole pipeline on the PPE sample bundled in the package."""

from __future__ import annotations

from collections.abc import Callable

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _demo(call: Invocation) -> None:
    """Analyse the bundled PPE sample end to end and print where the report is (opens nothing)."""
    from dinoscope.cli.analyze import print_summary
    from dinoscope.workflows.demo import DemoConfig, demo_from_config

    with handle_errors():
        result = demo_from_config(build_config(DemoConfig, **call.settings))
    out_console.print(f"model: {result.model_note or result.model}", soft_wrap=True)
    print_summary(result.summary)
    seconds = sum(result.timings.values())
    out_console.print(f"run: {result.run_dir}  ({seconds:.0f} s)")
    if result.report is not None:
        out_console.print(f"[bold]report: {result.report.resolve()}[/bold]")


def command() -> Callable[..., None]:
    """The generated ``dinoscope demo`` command."""
    from dinoscope.workflows.demo import DemoConfig

    return config_command(DemoConfig, _demo)
