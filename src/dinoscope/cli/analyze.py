"""``dinoscope analyze TARGET``: the whole pipeline on a dataset, or the analyses of an existing run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.errors import ConfigError

#: Options that belong to the analyses alone (also valid when TARGET is a run directory).
_ANALYSIS_KEYS = ("k", "cluster_method", "map_method", "seed")


def analyze(
    ctx: typer.Context,
    target: Annotated[
        Path,
        typer.Argument(
            help="A dataset (folder, data.yaml, COCO/MMPretrain JSON, image folder, video or folder of videos), "
            "or a run directory from `dinoscope embed` to analyse its vectors."
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<name>).")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file with these settings (flags win over it).")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Embedding model; auto = DINOv2-base if offline, else EfficientNet.")
    ] = "auto",
    format: Annotated[str, typer.Option("--format", "-f", help="Dataset format or auto.")] = "auto",
    classes: Annotated[str | None, typer.Option(help="Only these classes: names or ids, comma-separated.")] = None,
    splits: Annotated[str | None, typer.Option(help="Only these splits, comma-separated.")] = None,
    min_object_size: Annotated[float, typer.Option(help="Leave out boxes whose shorter side is below N px.")] = 0.0,
    whole_images: Annotated[
        bool, typer.Option(help="One object per image or video frame; adds blur/exposure/contrast flags.")
    ] = False,
    every_s: Annotated[float | None, typer.Option(help="Videos: one frame per N seconds (default 1).")] = None,
    stride: Annotated[int | None, typer.Option(help="Videos: every N-th frame instead.")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Videos: at most N frames each, spread evenly.")] = None,
    pooling: Annotated[str | None, typer.Option(help="cls, mean, cls+mean, all-mean or avg.")] = None,
    input_size: Annotated[int | None, typer.Option(help="Model input side in pixels.")] = None,
    crop: Annotated[str, typer.Option(help="pad (whole object, default), squash or center.")] = "pad",
    context: Annotated[float, typer.Option(help="Margin around boxes, fraction of their size.")] = 0.0,
    k: Annotated[int, typer.Option(help="Neighbours per object in the shared kNN graph.")] = 15,
    cluster_method: Annotated[str, typer.Option(help="hdbscan or dbscan (data-driven eps).")] = "hdbscan",
    map_method: Annotated[str, typer.Option(help="2-D maps: umap, pacmap, pca or none.")] = "umap",
    seed: Annotated[int, typer.Option(help="Seed of every randomised step.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    store_dtype: Annotated[str, typer.Option(help="float32 or float16 vectors on disk.")] = "float32",
    cache_dir: Annotated[Path | None, typer.Option(help="Content cache folder.")] = None,
    no_cache: Annotated[bool, typer.Option(help="Neither read nor write the content cache.")] = False,
    allow_download: Annotated[bool, typer.Option(help="Allow downloading weights from the hub.")] = False,
    batch_size: Annotated[int | None, typer.Option(help="Crops per batch (default: from free memory).")] = None,
    workers: Annotated[int | None, typer.Option(help="Decode worker processes.")] = None,
    export_crops: Annotated[
        Path | None, typer.Option(help="Also write the object crops as images, one folder per class.")
    ] = None,
    report: Annotated[bool, typer.Option(help="Build report/index.html at the end.")] = True,
    store: Annotated[str | None, typer.Option(help="Run directory target: which embedding store.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the results of an existing run.")] = False,
) -> None:
    """Check → embed → analyse → report a dataset in one run, or re-analyse a run directory.

    Finds sub-groups, outliers, near-duplicates, label errors, class overlap and split leakage per class.
    """
    with handle_errors():
        if _is_run(target):
            _analyze_run(ctx, target, store, report)
            return
        settings = _settings(ctx, config, locals())
        from dinoscope.pipeline import run_pipeline

        result = run_pipeline(**settings)
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


def _is_run(target: Path) -> bool:
    return target.is_dir() and (target / "run.yaml").is_file() and (target / "objects.parquet").is_file()


def _analyze_run(ctx: typer.Context, run: Path, store: str | None, report: bool) -> None:
    """TARGET is a run directory: the analyses (and report) over its vectors; dataset options do not apply."""
    from dinoscope.analysis.run import analyze as run_analysis

    given = _given(ctx)
    stray = sorted(given - {*_ANALYSIS_KEYS, "store", "report", "target"})
    if stray:
        flags = ", ".join("--" + s.replace("_", "-") for s in stray)
        raise ConfigError(f"{run} is a run directory: {flags} only apply to a dataset (drop them, or give a dataset)")
    options = {key: ctx.params[key] for key in _ANALYSIS_KEYS}
    result = run_analysis(run=run, store=store, **options)
    print_summary(result.summary)
    out_console.print(f"findings: {result.run_dir / 'findings'}  summary: {result.run_dir / 'summary.json'}")
    if report:
        from dinoscope.pipeline import build_run_report

        path = build_run_report(result.run_dir)
        out_console.print(f"[bold]report: {path}[/bold]")


def _given(ctx: typer.Context) -> set[str]:
    """Parameters set on the command line (not defaults)."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)  # typer may carry its own ParameterSource enum: compare names
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.add(name)
    return given


def _settings(ctx: typer.Context, config: Path | None, values: dict[str, Any]) -> dict[str, Any]:
    """The pipeline settings: the YAML file's, overridden by the flags given on the command line."""
    from dinoscope.config import load_config_file

    settings: dict[str, Any] = load_config_file(config) if config is not None else {}
    given = _given(ctx)
    for name in ctx.params:
        if name in ("ctx", "config", "store", "target"):
            continue
        if name in given or name not in settings:
            value = values[name]
            if name in ("classes", "splits") and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            settings[name] = value
    settings["dataset"] = values["target"]
    return settings


def print_summary(summary: dict[str, Any]) -> None:
    """The per-class table and the recommendations (shared by `analyze`, `video` and `demo`)."""
    table = Table(title=f"{summary['n_objects']} objects, {summary['n_classes']} classes", title_justify="left")
    for col in ("class", "n", "groups", "outliers", "dups", "label err", "separ."):
        table.add_column(col, justify="left" if col == "class" else "right", overflow="fold")
    for name, c in summary["classes"].items():
        sep = c.get("separability")
        table.add_row(
            name,
            str(c["n"]),
            str(c.get("n_clusters", "-")),
            str(c.get("n_outliers", "-")),
            str(c.get("n_near_duplicates", "-")),
            str(c.get("n_label_errors", "-")),
            "-" if sep is None else f"{sep:.2f}",
        )
    out_console.print(table)
    out_console.print("[bold]Recommendations[/bold]")
    for name, c in summary["classes"].items():
        for sentence in c["recommendations"]:
            out_console.print(f"  [bold]{name}[/bold]: {sentence}", soft_wrap=True)
    leak = summary.get("dataset", {}).get("n_leaked")
    if leak:
        out_console.print(f"[red]{leak} objects are near-duplicates across splits (leakage)[/red]")
