"""What every command shares: global options, the error handler and the consoles."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.text import Text

from dinoscope.errors import DinoscopeError

__all__ = ["err_console", "handle_errors", "out_console", "settings", "setup_logging"]

out_console = Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _Settings:
    debug: bool = False
    verbose: bool = False


settings = _Settings()


def setup_logging(verbose: bool, debug: bool) -> None:
    """Route library logs to stderr through rich: warnings by default, info with -v, debug with --debug."""
    from rich.logging import RichHandler

    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = RichHandler(console=err_console, show_path=debug, show_time=False, rich_tracebacks=debug)
    root = logging.getLogger("dinoscope")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@contextmanager
def handle_errors() -> Iterator[None]:
    """Print a DinoscopeError as one red line and exit 1 (full traceback with --debug)."""
    try:
        yield
    except DinoscopeError as exc:
        if settings.debug:
            raise
        err_console.print(Text(f"error: {exc}", style="bold red"))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print(Text("interrupted", style="yellow"))
        raise typer.Exit(130) from None
