"""``dinoscope analyze RUN``: every analysis over the vectors of an existing run directory."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dinoscope.analysis.stage import AnalysisRun, analyze_into_run
from dinoscope.config import StrictModel, build_config
from dinoscope.options import AnalysisOptions, RunOptions, SeedOptions
from dinoscope.run import Run

__all__ = ["AnalyzeConfig", "StoreOptions", "analyze", "analyze_from_config"]


class StoreOptions(StrictModel):
    """Which vectors of a run."""

    store: str | None = Field(None, description="Run directory target: which embedding store (default: the only one).")


class AnalyzeConfig(RunOptions, StoreOptions, AnalysisOptions, SeedOptions):
    """Settings of ``dinoscope analyze RUN`` (analyses over a run directory that has vectors)."""


def analyze(**kwargs: Any) -> AnalysisRun:
    """Analyse a run directory that has vectors; keyword arguments are the fields of :class:`AnalyzeConfig`.

    Example:
        >>> result = analyze(run="runs/ppe")  # doctest: +SKIP
        >>> result.summary["classes"]["capacete"]["n_clusters"]  # doctest: +SKIP
        3
    """
    return analyze_from_config(build_config(AnalyzeConfig, **kwargs))


def analyze_from_config(config: AnalyzeConfig) -> AnalysisRun:
    """Run every analysis described by a validated config (see :func:`analyze`)."""
    return analyze_into_run(Run.open(config.run), config, seed=config.seed, store=config.store)
