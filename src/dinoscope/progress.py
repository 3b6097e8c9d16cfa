"""The one progress-bar helper: a rich bar on an interactive terminal, silent everywhere else."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress_enabled", "track"]

T = TypeVar("T")


def progress_enabled() -> bool:
    """True when stderr is a terminal and ``DINOSCOPE_NO_PROGRESS`` is not set."""
    return sys.stderr.isatty() and not os.environ.get("DINOSCOPE_NO_PROGRESS")


def track(items: Iterable[T], total: int | None = None, description: str = "working", unit: str = "it") -> Iterator[T]:
    """Yield ``items`` while showing a progress bar with count, rate and ETA (only on a terminal).

    Example:
        >>> list(track(range(3), description="probing"))
        [0, 1, 2]
    """
    if not progress_enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class _Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else "", style="cyan")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
