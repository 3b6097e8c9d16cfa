"""``dinoscope analyze RUN``: sub-groups, outliers, duplicates, label errors, overlap and leakage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console


def analyze(
    run: Annotated[Path, typer.Argument(help="Run directory with vectors (from `dinoscope embed`).")],
    k: Annotated[int, typer.Option(help="Neighbours per object in the shared kNN graph.")] = 15,
    cluster_method: Annotated[str, typer.Option(help="hdbscan or dbscan (data-driven eps).")] = "hdbscan",
    map_method: Annotated[str, typer.Option(help="2-D maps: umap, pacmap, pca or none.")] = "umap",
    store: Annotated[str | None, typer.Option(help="Embedding store of the run (default: the only one).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every randomised step.")] = 0,
) -> None:
    """Find sub-groups, outliers, near-duplicates, label errors, class overlap and split leakage."""
    from dinoscope.analysis.run import analyze as run_analysis

    with handle_errors():
        result = run_analysis(
            run=run, k=k, cluster_method=cluster_method, map_method=map_method, store=store, seed=seed
        )
    _print(result.summary)
    out_console.print(f"findings: {result.run_dir / 'findings'}  summary: {result.run_dir / 'summary.json'}")


def _print(summary: dict[str, Any]) -> None:
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
