"""``dinoscope report RUN``: the offline HTML report, exports, figures and optional PDF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dinoscope.cli._common import handle_errors, out_console


def report(
    run: Annotated[Path, typer.Argument(help="Run directory analysed by `dinoscope analyze`.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Report folder (default: RUN/report).")] = None,
    pdf: Annotated[bool, typer.Option(help="Also print report.pdf with headless Chromium.")] = False,
    export_samples: Annotated[bool, typer.Option(help="Write crops per sub-group under samples/.")] = False,
    samples_per_group: Annotated[int, typer.Option(help="Crops per sub-group with --export-samples.")] = 24,
    figures: Annotated[
        bool | None, typer.Option("--figures/--no-figures", help="PNG figures for slides (default: if matplotlib).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Write into a folder dinoscope did not make, or replace edited report files.")
    ] = False,
    dataset_root: Annotated[Path | None, typer.Option(help="Where the images are, if they moved.")] = None,
    max_class_points: Annotated[int, typer.Option(help="Points drawn per class map (sampled beyond).")] = 2_000,
    max_map_points: Annotated[int, typer.Option(help="Points drawn on the dataset-wide map.")] = 20_000,
    max_thumbnails: Annotated[int, typer.Option(help="Thumbnails in all (listed objects first).")] = 40_000,
    workers: Annotated[int | None, typer.Option(help="Image decoding processes (0 = in-process).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the map samples.")] = 0,
) -> None:
    """Build the offline HTML report of a run: overview, class pages, maps, duplicates and exports."""
    from dinoscope.config import build_config
    from dinoscope.report.build import ReportConfig, build_report_from_config

    with handle_errors():
        config = build_config(
            ReportConfig,
            run=run,
            out=out,
            pdf=pdf,
            export_samples=export_samples,
            samples_per_group=samples_per_group,
            figures=figures,
            overwrite=overwrite,
            dataset_root=dataset_root,
            max_class_points=max_class_points,
            max_map_points=max_map_points,
            max_thumbnails=max_thumbnails,
            workers=workers,
            seed=seed,
        )
        result = build_report_from_config(config)
    w = result.weight
    out_console.print(
        f"report: {result.index}  ({w['n_files']:,} files, {w['total_bytes'] / 2**20:.1f} MB; first view "
        f"{w['initial_bytes'] / 1024:.0f} KB; {w['n_thumbnails']:,} thumbnails; built in {w['build_s']:.1f} s)",
        soft_wrap=True,
    )
    if result.pdf is not None:
        out_console.print(f"pdf: {result.pdf}", soft_wrap=True)
