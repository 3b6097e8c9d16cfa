"""Stages shared by the workflows, composed in memory over one :class:`~dinoscope.run.Run`."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope.errors import DinoscopeError
from dinoscope.run import Run
from dinoscope.table import ObjectTable

if TYPE_CHECKING:
    from dinoscope.embed.loader import MemoryCrops
    from dinoscope.embed.stage import EmbeddingModel, EmbedResult
    from dinoscope.options import EmbeddingOptions, ObjectsOptions

logger = logging.getLogger(__name__)


def default_out(dataset: Path) -> Path:
    """``runs/<name>``: the dataset folder's name, or the annotation file's folder or stem."""
    path = dataset.expanduser().resolve()
    name = path.name
    if path.is_file():
        generic = path.stem.lower() in {"data", "dataset", "annotations", "instances", "labels"}
        name = path.parent.name if generic else path.stem
    return Path("runs") / (re.sub(r"[^\w.\-]+", "_", name).strip("._") or "run")


def objects_into_run(run: Run, config: ObjectsOptions, *, resume: bool) -> tuple[ObjectTable, dict[str, int], int]:
    """The run's objects: read, checked (once; kept in ``checks/``) and selected from the source, then written
    into the run; a resumed run keeps the table it has.

    Returns:
        (the table, check findings by kind, objects left out by the class/split/size filters).
    """
    from dinoscope.io.checks import run_checks
    from dinoscope.io.sources import read_source, select_objects

    if resume and run.has_objects():
        return run.read_objects(), run.read_yaml().get("checks", {}).get("kinds", {}), 0
    full = read_source(config, config, config, config.every_s)
    report = run_checks(full)
    report.write(run.checks_dir, overwrite=True)
    if report.n_errors:
        logger.warning("%d dataset problems (errors) found; see %s", report.n_errors, run.checks_dir)
    table = select_objects(full, config)
    if not len(table):
        raise DinoscopeError(f"{config.dataset}: no object left to analyse after the class/split/size filters")
    run.write_objects(table)
    run.write_yaml({"checks": {"kinds": report.kind_counts(), "n_errors": report.n_errors}})
    logger.info("%d objects from %d images", len(table), len(table.images))
    return table, report.kind_counts(), len(full) - len(table)


def embedding_into_run(
    run: Run,
    table: ObjectTable,
    config: EmbeddingOptions,
    *,
    resume: bool,
    overwrite: bool,
    model: EmbeddingModel | None = None,
    crops: MemoryCrops | None = None,
) -> EmbedResult:
    """Fill the run's vector store for ``table`` (held in memory) through the content cache."""
    from dinoscope.embed.stage import cache_root_of, crop_spec, embed_into_run, embedding_model

    if model is None:
        model, note = embedding_model(config, config, config, config)
        if note:
            logger.info("embedding model: %s", note)
    return embed_into_run(
        run,
        table,
        model,
        crop_spec(config),
        cache_root=cache_root_of(config),
        store_dtype=config.store_dtype,
        resume=resume,
        overwrite=overwrite,
        batch_size=config.batch_size,
        workers=config.workers,
        crops=crops,
        engine=getattr(config, "engine", "local"),
        address=getattr(config, "address", None),
    )


def record(run: Run, command: str, config: Any) -> None:
    """The command and its resolved config in run.yaml (``command``, ``config``)."""
    run.write_yaml({"command": command, "config": config.model_dump(mode="json")})
