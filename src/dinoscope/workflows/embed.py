"""``dinoscope embed DATASET``: a run directory holding the dataset's object table and its vectors."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from dinoscope.config import build_config
from dinoscope.embed.stage import EmbedResult
from dinoscope.options import EmbeddingOptions, EngineOptions, ObjectsOptions, OutputOptions, ResumeOptions
from dinoscope.run import Run
from dinoscope.workflows._stages import default_out, embedding_into_run, objects_into_run, record

__all__ = ["EmbedConfig", "embed", "embed_from_config"]


class EmbedConfig(ObjectsOptions, EmbeddingOptions, EngineOptions, OutputOptions, ResumeOptions):
    """Settings of ``dinoscope embed`` (``out``: the run directory, default ``runs/<dataset name>``)."""


def embed(**kwargs: Any) -> EmbedResult:
    """Embed every object of a dataset; keyword arguments are the fields of :class:`EmbedConfig`.

    Example:
        >>> result = embed(dataset="datasets/ppe", out="runs/ppe", model="efficientnet-lite0")  # doctest: +SKIP
        >>> result.stats.n_computed  # doctest: +SKIP
        4625
    """
    return embed_from_config(build_config(EmbedConfig, **kwargs))


def embed_from_config(config: EmbedConfig) -> EmbedResult:
    """Run the embedding described by a validated config (see :func:`embed`)."""
    started = time.perf_counter()
    run = Run.create(config.out or default_out(config.dataset), resume=config.resume, overwrite=config.overwrite)
    table, _, _ = objects_into_run(run, config, resume=config.resume)
    record(run, "embed", config)
    result = embedding_into_run(run, table, config, resume=config.resume, overwrite=config.overwrite)
    total = round(time.perf_counter() - started, 3)
    run.write_yaml({"embed_stats": {**asdict(result.stats), "total_seconds": total}})
    return result
