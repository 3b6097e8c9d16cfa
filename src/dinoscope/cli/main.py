"""Entry point of the ``dinoscope`` command."""

from __future__ import annotations

from typing import Annotated

import typer

from dinoscope._version import __version__
from dinoscope.cli import adapt as adapt_cmd
from dinoscope.cli import analyze as analyze_cmd
from dinoscope.cli import check as check_cmd
from dinoscope.cli import curate as curate_cmd
from dinoscope.cli import demo as demo_cmd
from dinoscope.cli import embed as embed_cmd
from dinoscope.cli import errors as errors_cmd
from dinoscope.cli import export as export_cmd
from dinoscope.cli import patches as patches_cmd
from dinoscope.cli import probe as probe_cmd
from dinoscope.cli import report as report_cmd
from dinoscope.cli import search as search_cmd
from dinoscope.cli import seg as seg_cmd
from dinoscope.cli import video as video_cmd
from dinoscope.cli._common import out_console, settings, setup_logging

app = typer.Typer(
    name="dinoscope",
    help="See inside your image data with self-supervised features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"dinoscope {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and debug logs.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show progress details (info logs).")] = False,
) -> None:
    """dinoscope: dataset health, intra-class variation, outliers, duplicates and label errors."""
    settings.debug, settings.verbose = debug, verbose
    setup_logging(verbose, debug)


app.command("check", no_args_is_help=True)(check_cmd.command())
app.command("embed", no_args_is_help=True)(embed_cmd.command())
app.command("models")(embed_cmd.models)
app.command("analyze", no_args_is_help=True)(analyze_cmd.command())
app.command("report", no_args_is_help=True)(report_cmd.command())
app.command("video", no_args_is_help=True)(video_cmd.command())
app.command("errors", no_args_is_help=True)(errors_cmd.command())
app.command("probe", no_args_is_help=True)(probe_cmd.command())
app.command("demo")(demo_cmd.command())
app.command("search", no_args_is_help=True)(search_cmd.command())
app.command("export", no_args_is_help=True)(export_cmd.command())
app.command("adapt", no_args_is_help=True)(adapt_cmd.command())
app.command("select", no_args_is_help=True)(curate_cmd.select_command())
app.command("prune", no_args_is_help=True)(curate_cmd.prune_command())
app.command("split", no_args_is_help=True)(curate_cmd.split_command())
app.add_typer(embed_cmd.cache_app, name="cache")
patches_cmd.register(patches_cmd.patches_app)
app.add_typer(patches_cmd.patches_app, name="patches")
seg_cmd.register(seg_cmd.seg_app)
app.add_typer(seg_cmd.seg_app, name="seg")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
