"""``dinoscope embed``, ``dinoscope models`` and ``dinoscope cache``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config
from dinoscope.options import CacheOptions

cache_app = typer.Typer(help="Inspect and prune the embedding cache.", no_args_is_help=True)


def _embed(call: Invocation) -> None:
    """Embed every object of a dataset into a run directory (cached by content)."""
    from dinoscope.workflows.embed import EmbedConfig, embed_from_config

    with handle_errors():
        result = embed_from_config(build_config(EmbedConfig, **call.settings))
    s = result.stats
    out_console.print(
        f"[bold]{result.spec.name}[/bold] ({result.spec.embed_dim}-d, {result.crop.policy} crops): "
        f"{s.n_objects} objects - {s.n_computed} computed, {s.n_cached} from cache, {s.n_resumed} already done, "
        f"{s.n_failed} failed; {s.objects_per_s:.1f} objects/s, peak RAM {s.peak_rss_mb:.0f} MB"
    )
    out_console.print(f"vectors: {result.store_path}")


def command() -> Callable[..., None]:
    """The generated ``dinoscope embed`` command."""
    from dinoscope.workflows.embed import EmbedConfig

    return config_command(EmbedConfig, _embed, arguments=("dataset",))


def models(
    pattern: Annotated[str, typer.Argument(help="Shell pattern, e.g. '*dinov2*'.")] = "*",
) -> None:
    """List the registered models and whether their weights are available offline."""
    from dinoscope.embed.registry import list_models, weights_available

    table = Table(title="Models (also: timm:<name>, onnx:<file>, a local folder or an official DINOv2 .pth)")
    table.add_column("name")
    table.add_column("weights")
    table.add_column("offline")
    table.add_column("description")
    for entry in list_models(pattern):
        ok = weights_available(entry)
        table.add_row(entry.name, entry.weights, "[green]yes[/]" if ok else "[dim]no[/]", entry.description)
    out_console.print(table)


@cache_app.command("info")
def cache_info(
    cache_dir: Annotated[Path | None, typer.Option(help=CacheOptions.model_fields["cache_dir"].description)] = None,
) -> None:
    """Show each cached model's entries and size."""
    from dinoscope.embed.cache_files import cache_info as info

    with handle_errors():
        rows = info(cache_dir)
    table = Table(title="Embedding cache")
    for col in ("model", "entries", "MB", "file"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name or "?", str(r.entries), f"{r.bytes / 1e6:.1f}", str(r.path))
    out_console.print(table)


@cache_app.command("prune")
def cache_prune(
    cache_dir: Annotated[Path | None, typer.Option(help=CacheOptions.model_fields["cache_dir"].description)] = None,
    max_mb: Annotated[float | None, typer.Option(help="Keep at most this many MB per model.")] = None,
    older_than_days: Annotated[float | None, typer.Option(help="Drop entries unused for this long.")] = None,
) -> None:
    """Remove least recently used entries."""
    from dinoscope.embed.cache import EmbeddingCache
    from dinoscope.embed.cache_files import cache_info

    with handle_errors():
        removed = 0
        for info in cache_info(cache_dir):
            with EmbeddingCache(cache_dir, model_key=info.model_key, crop_key=info.crop_key, spec={}) as cache:
                removed += cache.prune(
                    max_bytes=None if max_mb is None else int(max_mb * 1e6), older_than_days=older_than_days
                )
    out_console.print(f"removed {removed} cache entries")
