"""``dinoscope analyze DATASET``: the one-command pipeline, check -> embed (cached) -> analyses -> report.

Reads any dataset (or an image folder, a video, a folder of videos with ``whole_images``), checks it once
and keeps the findings in the run (``checks/``), narrows it to the chosen classes / splits / object sizes,
embeds what the content cache does not already hold, runs every analysis and builds the report. The stages
pass the object table in memory; the run directory follows the usual rule: an existing one needs ``resume``
(continue, reusing its object table and vectors) or ``overwrite``; user files are never deleted or moved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from dinoscope.config import StrictModel, build_config
from dinoscope.options import (
    AnalysisOptions,
    EmbeddingOptions,
    ObjectsOptions,
    OutputOptions,
    ReportStepOptions,
    ResumeOptions,
    SeedOptions,
)
from dinoscope.progress import Clock
from dinoscope.run import Run
from dinoscope.workflows._stages import default_out, embedding_into_run, objects_into_run, record
from dinoscope.workflows.analyze import StoreOptions

__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline", "run_pipeline_from_config"]

logger = logging.getLogger(__name__)


class PipelineOptions(StrictModel):
    """What the pipeline adds to its stages."""

    export_crops: Path | None = Field(
        None, description="Also write every object's crop as an image file, one folder per class (+ crops.csv)."
    )


class PipelineConfig(
    ObjectsOptions,
    EmbeddingOptions,
    AnalysisOptions,
    SeedOptions,
    PipelineOptions,
    ReportStepOptions,
    StoreOptions,
    OutputOptions,
    ResumeOptions,
):
    """Settings of ``dinoscope analyze DATASET`` (``out`` default ``runs/<dataset name>``; ``store`` applies when
    the target is a run directory)."""


@dataclass
class PipelineResult:
    """What the pipeline produced.

    Attributes:
        run_dir: The run directory.
        model: The embedding model used, and ``model_note`` why (for ``auto``).
        summary: ``summary.json`` of the analyses.
        n_objects: Objects analysed; ``n_dropped`` left out by the class/split/size filters.
        check_kinds: Dataset check findings by kind.
        report: ``report/index.html`` (None when not built); ``crops_dir`` when crops were exported.
        timings: Seconds per stage.
    """

    run_dir: Path
    model: str
    model_note: str
    summary: dict[str, Any]
    n_objects: int
    n_dropped: int = 0
    check_kinds: dict[str, int] = field(default_factory=dict)
    report: Path | None = None
    crops_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def run_pipeline(**kwargs: Any) -> PipelineResult:
    """Check, embed, analyse and report a dataset; keyword arguments are the fields of :class:`PipelineConfig`.

    Example:
        >>> result = run_pipeline(dataset="datasets/ppe", out="runs/ppe")  # doctest: +SKIP
        >>> result.report  # doctest: +SKIP
        PosixPath('runs/ppe/report/index.html')
    """
    return run_pipeline_from_config(build_config(PipelineConfig, **kwargs))


def run_pipeline_from_config(config: PipelineConfig) -> PipelineResult:
    """Run the pipeline described by a validated config (see :func:`run_pipeline`)."""
    from dinoscope.analysis.stage import analyze_into_run
    from dinoscope.embed.stage import embedding_model

    timings: dict[str, float] = {}
    clock = Clock(timings)
    model, note = embedding_model(config, config, config, config)
    run = Run.create(config.out or default_out(config.dataset), resume=config.resume, overwrite=config.overwrite)
    record(run, "analyze", config)
    with clock("read_check"):
        table, check_kinds, n_dropped = objects_into_run(run, config, resume=config.resume)
    section = {"config": config.model_dump(mode="json"), "model": model.model, "model_note": note}
    run.write_yaml({"pipeline": {**section, "check_kinds": check_kinds}})
    with clock("embed"):
        embedded = embedding_into_run(run, table, config, resume=True, overwrite=config.overwrite, model=model)
    with clock("analyze"):
        analysis = analyze_into_run(run, config, seed=config.seed, table=table, store=embedded.store_path.stem)
    crops_dir = None
    if config.export_crops is not None:
        from dinoscope.io.crops_writer import export_crops

        with clock("export_crops"):
            export_crops(table, config.export_crops, context=config.context, overwrite=config.overwrite)
        crops_dir = config.export_crops
    report = None
    if config.report:
        from dinoscope.report import build_report

        with clock("report"):
            report = build_report(run.path, overwrite=config.overwrite)
    run.write_yaml({"pipeline": {**section, "check_kinds": check_kinds, "timings_s": timings}})
    return PipelineResult(
        run_dir=run.path,
        model=model.model,
        model_note=note,
        summary=analysis.summary,
        n_objects=len(table),
        n_dropped=n_dropped,
        check_kinds=check_kinds,
        report=report,
        crops_dir=crops_dir,
        timings=timings,
    )
