"""``dinoscope select``, ``prune`` and ``split``: which images to label next, which to drop, a leak-free split."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _select(call: Invocation) -> None:
    """Choose unlabelled images to label next: typical (TypiClust), covering (ProbCover) or where loss is high.

    Never chooses a near-duplicate of a labelled image or of another chosen one. Writes OUT/selected.csv,
    selected.txt, images/ (links or copies) and report/select.html (the chosen set on the map).
    """
    from dinoscope.workflows.select import SelectConfig, select_from_config

    with handle_errors():
        result = select_from_config(build_config(SelectConfig, **call.settings))
    info, strategy = result.info, call.settings.get("strategy", "typicality")
    out_console.print(
        f"[bold]{len(result.selected)} images chosen[/bold] ({strategy}) "
        f"from a pool of {info['n_pool']} ({info['n_labelled']} labelled, {info['n_blocked_copies_of_labelled']} pool "
        f"images left out as copies of labelled ones)",
        soft_wrap=True,
    )
    if info.get("n_short"):
        out_console.print(f"  {info['n_short']} fewer than the budget: every other pool image is a copy of one chosen")
    out_console.print(f"run: {result.run_dir}  (selected.csv, selected.txt, images/)")
    if result.page is not None:
        out_console.print(f"[bold]map: {result.page}[/bold]")


def select_command() -> Callable[..., None]:
    """The generated ``dinoscope select`` command."""
    from dinoscope.workflows.select import SelectConfig

    return config_command(SelectConfig, _select, arguments=("source",))


def _prune(call: Invocation) -> None:
    """Keep the most useful images of a run: near-duplicates go first, then the easy centre of regions the model
    does well on; high-loss, boundary and sub-group-representative objects stay; class floors win.

    --keep counts images (a fraction <= 1 or a number); a kept image keeps all its labels. Writes OUT/kept.csv,
    dropped.csv, dropped_summary.csv and, with --export yolo|coco, the reduced dataset in OUT/dataset/.
    """
    from dinoscope.workflows.prune import PruneConfig, prune_from_config

    with handle_errors():
        result = prune_from_config(build_config(PruneConfig, **call.settings))
    info = result.info
    out_console.print(
        f"[bold]{result.n_images_kept} of {result.n_images} images kept[/bold] "
        f"({len(result.kept)} rows in kept.csv, {len(result.dropped)} in dropped.csv); {info['n_copies']} objects "
        f"were copies; {info.get('n_over_budget', 0)} images added back for the class floors",
        soft_wrap=True,
    )
    counts = result.dropped["reason"].value_counts()
    out_console.print("dropped: " + ", ".join(f"{k} {v}" for k, v in counts.items()), soft_wrap=True)
    out_console.print(f"run: {result.run_dir}  (kept.csv, dropped.csv, dropped_summary.csv)")
    if result.dataset is not None:
        out_console.print(f"[bold]dataset: {result.dataset}[/bold]")


def prune_command() -> Callable[..., None]:
    """The generated ``dinoscope prune`` command."""
    from dinoscope.workflows.prune import PruneConfig

    return config_command(PruneConfig, _prune, arguments=("run",))


def _split(call: Invocation) -> None:
    """Re-split a dataset into train / val / test without leaks: near-duplicate images and images of one group,
    source or video always land in the same split; classes stratified by ratio.

    Writes OUT/split.csv, OUT/splits/<split>.txt and, with --export yolo|coco, the re-split dataset in
    OUT/dataset/ (the source dataset is never changed). The leakage analysis re-checks the new split.
    """
    from dinoscope.workflows.split import SplitConfig, split_dataset_from_config

    with handle_errors():
        result = split_dataset_from_config(build_config(SplitConfig, **call.settings))
    table = Table(title="images and objects per split", title_justify="left")
    table.add_column("split")
    for column in result.counts.columns:
        table.add_column(str(column), justify="right")
    for split, row in result.counts.iterrows():
        table.add_row(str(split), *(str(v) for v in row))
    out_console.print(table)
    n_units = int(result.images["unit"].nunique())
    n_groups = int(result.images.loc[result.images["copy_group"] >= 0, "copy_group"].nunique())
    out_console.print(
        f"{len(result.images)} images in {n_units} units kept whole ({n_groups} near-duplicate groups); "
        f"[bold]{result.leakage['n_leaked']} near-duplicates across splits[/bold]",
        soft_wrap=True,
    )
    out_console.print(f"run: {result.run_dir}  (split.csv, splits/)")
    if result.dataset is not None:
        out_console.print(f"[bold]dataset: {result.dataset}[/bold]")


def split_command() -> Callable[..., None]:
    """The generated ``dinoscope split`` command."""
    from dinoscope.workflows.split import SplitConfig

    return config_command(SplitConfig, _split, arguments=("dataset",))
