"""``dinoscope demo``: the whole pipeline on the PPE sample bundled in the package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dinoscope.cli._common import handle_errors, out_console


def sample_dataset() -> Path:
    """The bundled sample: 36 PPE hard-hat/vest images with YOLO labels (see its ATTRIBUTION.md)."""
    from importlib.resources import files

    return Path(str(files("dinoscope") / "data" / "sample" / "ppe"))


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    model: Annotated[
        str, typer.Option("--model", "-m", help="Embedding model; auto = DINOv2-base if offline, else EfficientNet.")
    ] = "auto",
) -> None:
    """Analyse the bundled PPE sample end to end and print where the report is (opens nothing)."""
    from dinoscope.cli.analyze import print_summary
    from dinoscope.pipeline import run_pipeline

    rerun = (out / "run.yaml").is_file()  # the demo's own earlier run: replace its results
    with handle_errors():
        result = run_pipeline(dataset=sample_dataset(), out=out, model=model, overwrite=rerun)
    out_console.print(f"model: {result.model_note or result.model}", soft_wrap=True)
    print_summary(result.summary)
    seconds = sum(result.timings.values())
    out_console.print(f"run: {result.run_dir}  ({seconds:.0f} s)")
    if result.report is not None:
        out_console.print(f"[bold]report: {result.report.resolve()}[/bold]")
