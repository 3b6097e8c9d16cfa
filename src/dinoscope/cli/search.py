"""``dinoscope search RUN``: the objects of a run most similar to an image, a box of it, or one of its objects."""

from __future__ import annotations

from collections.abc import Callable

from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _search(call: Invocation) -> None:
    """Find the objects of a run most similar to an image (or a box of it) or to one of its objects.

    Prints the results with the file:line of each object's label and writes an offline HTML page with
    thumbnails in RUN/searches/. The run's similarity index is built on the first search and kept in step
    with its vector store.
    """
    from dinoscope.workflows.search import SearchConfig, search_from_config

    with handle_errors():
        result = search_from_config(build_config(SearchConfig, **call.settings))
    info = result.index
    table = Table(title=f"{len(result.hits)} objects most similar to {result.query}", title_justify="left")
    for header, justify in (("#", "right"), ("similarity", "right"), ("class", "left"), ("label (file:line)", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    table.add_column("object_id", overflow="fold")
    for hit in result.hits.itertuples(index=False):
        ref = str(hit.label_ref) or (f"{hit.source}" + (f" frame {hit.frame}" if int(hit.frame) >= 0 else ""))
        table.add_row(str(hit.rank), f"{hit.similarity:.4f}", str(hit.class_name) or "-", ref, str(hit.object_id))
    out_console.print(table)
    status = info.get("status", "read")
    extra = f", {info.get('n_added', 0):,} rows added" if status == "updated" else ""
    out_console.print(
        f"index: {info.get('kind')} over {info.get('n_rows', 0):,} objects ({status}{extra}); query vector from "
        f"{result.embedded}; page: {result.page}",
        soft_wrap=True,
    )


def command() -> Callable[..., None]:
    """The generated ``dinoscope search`` command."""
    from dinoscope.workflows.search import SearchConfig

    return config_command(SearchConfig, _search, arguments=("run",))
