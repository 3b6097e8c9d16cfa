"""The one progress helper: a rich bar on an interactive terminal, silent everywhere else."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["Clock", "ProgressBar", "progress_enabled", "track"]

T = TypeVar("T")


def progress_enabled() -> bool:
    """True when stderr is a terminal and ``DINOSCOPE_NO_PROGRESS`` is not set."""
    return sys.stderr.isatty() and not os.environ.get("DINOSCOPE_NO_PROGRESS")


class ProgressBar:
    """A bar advanced by counts, with rate, ETA and an optional status text (memory in use, ...).

    Args:
        total: Items expected (None when unknown).
        description: Label on the left.
        unit: Unit shown with the rate (``obj`` -> ``35.2 obj/s``).
        status: Called at most twice a second for a short text shown after the ETA.

    Example:
        >>> with ProgressBar(3, "embedding", "obj") as bar:
        ...     bar.advance(3)
    """

    def __init__(
        self, total: int | None, description: str = "working", unit: str = "it", status: Callable[[], str] | None = None
    ) -> None:
        self.total, self.description, self.unit, self.status = total, description, unit, status
        self._progress: Any = None
        self._task: Any = None
        self._last_status = 0.0

    def __enter__(self) -> ProgressBar:
        if not progress_enabled():
            return self
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

        unit = self.unit

        class _Rate(ProgressColumn):
            def render(self, task: Task) -> Text:
                return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else "", style="cyan")

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}", style="dim"),
        )
        self._progress = Progress(*columns, console=Console(stderr=True), transient=True)
        self._progress.__enter__()
        self._task = self._progress.add_task(self.description, total=self.total, status="")
        return self

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        if self._progress is None:
            return
        fields = {}
        now = time.monotonic()
        if self.status is not None and now - self._last_status > 0.5:
            fields["status"] = self.status()
            self._last_status = now
        self._progress.update(self._task, advance=n, **fields)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(kind, exc, tb)


def track(items: Iterable[T], total: int | None = None, description: str = "working", unit: str = "it") -> Iterator[T]:
    """Yield ``items`` while showing a :class:`ProgressBar` advanced once per item.

    Example:
        >>> list(track(range(3), description="probing"))
        [0, 1, 2]
    """
    with ProgressBar(total, description, unit) as bar:
        for item in items:
            yield item
            bar.advance()


class Clock:
    """Seconds per named step, collected into ``timings`` (``with clock("embed"): ...``).

    Args:
        timings: Where the seconds go (a new dict by default; see :attr:`timings`).
        logger: Logs each step's start at INFO when given.
        prefix: Text before the step's name in that log line.

    Example:
        >>> clock = Clock()
        >>> with clock("read"):
        ...     pass
        >>> list(clock.timings)
        ['read']
    """

    def __init__(
        self, timings: dict[str, float] | None = None, *, logger: logging.Logger | None = None, prefix: str = ""
    ) -> None:
        self.timings = timings if timings is not None else {}
        self.logger, self.prefix = logger, prefix
        self._name, self._start = "", 0.0

    def __call__(self, name: str) -> Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        if self.logger is not None:
            self.logger.info("%s%s", self.prefix, self._name)
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self._name] = round(time.perf_counter() - self._start, 3)
