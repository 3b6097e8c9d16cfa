"""``dinoscope video``: a trained detector over videos (or images) -> sampled objects -> vectors -> analyses.

The detection stage (:mod:`dinoscope.video.detection`) decodes every frame once and keeps the sampled
objects' crops in memory; the embedding stage embeds those crops through the engine (store and content
cache filled exactly as for any source); the analysis and report stages run as for ``dinoscope analyze``.

Run directory additions: ``detections.parquet`` (every detection with ``duplicate``/``sampled`` flags and
object ids) and ``detections/`` (per-video logs, so that ``--resume`` does not decode finished videos again).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from dinoscope.config import StrictModel, build_config
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.errors import DinoscopeError
from dinoscope.options import (
    AnalysisOptions,
    EmbeddingOptions,
    OutputOptions,
    ReportStepOptions,
    ResumeOptions,
    SeedOptions,
)
from dinoscope.run import Run
from dinoscope.table import ObjectTable
from dinoscope.video.detect import VideoDetections
from dinoscope.video.detection import DetectConfig, detect_from_config, settings_key
from dinoscope.workflows._stages import default_out, embedding_into_run, record

__all__ = ["VideoConfig", "VideoRun", "run_video", "run_video_from_config"]

logger = logging.getLogger(__name__)


class AnalyzeStepOptions(StrictModel):
    """The analyses as a step of a workflow."""

    analyze: bool = Field(True, description="Analyse the vectors after embedding.")


class VideoConfig(
    DetectConfig,
    EmbeddingOptions,
    AnalyzeStepOptions,
    AnalysisOptions,
    SeedOptions,
    ReportStepOptions,
    OutputOptions,
    ResumeOptions,
):
    """Settings of ``dinoscope video``: the detection pass, then embedding, analyses and report (``out``: the run
    directory, default ``runs/<source name>``)."""


@dataclass
class VideoRun:
    """What ``run_video`` produced.

    Attributes:
        run_dir: The run directory.
        table: The object table of the run.
        detection: The detection pass (None when a resumed run reused its finished detection).
        embedding: The embedding result (store path, spec, stats).
        analysis: The analysis result (None with ``analyze=False``).
        outputs: The report's ``index.html`` (none without analyses or with ``report=False``).
    """

    run_dir: Path
    table: ObjectTable
    detection: VideoDetections | None
    embedding: Any
    analysis: Any = None
    outputs: list[Path] = field(default_factory=list)


def run_video(**kwargs: Any) -> VideoRun:
    """Detect, sample, embed and analyse; keyword arguments are the fields of :class:`VideoConfig`.

    Example:
        >>> run = run_video(source="clips/", detector="yolox_nano.onnx", classes=["bottle"], out="runs/bottles",
        ...                 model="efficientnet-lite0")  # doctest: +SKIP
        >>> run.analysis.summary["classes"]["bottle"]["n"]  # doctest: +SKIP
    """
    return run_video_from_config(build_config(VideoConfig, **kwargs))


def run_video_from_config(config: VideoConfig) -> VideoRun:
    """Run ``dinoscope video`` as described by a validated config (see :func:`run_video`)."""
    from dinoscope.embed.stage import crop_spec, embedding_model

    model, note = embedding_model(config, config, config, config)
    if note:
        logger.info("embedding model: %s", note)
    run = Run.create(config.out or default_out(config.source), resume=config.resume, overwrite=config.overwrite)
    record(run, "video", config)
    run.write_yaml({"model": {"name": model.model, "note": note}})
    detection, table = _detect_into_run(run, config, model.spec, crop_spec(config))
    if not len(table):
        raise DinoscopeError(_nothing_found(config, detection))
    embedding = embedding_into_run(
        run,
        table,
        config,
        resume=config.resume,
        overwrite=config.overwrite,
        model=model,
        crops=detection.crops if detection is not None else None,
    )
    result = VideoRun(run.path, table, detection, embedding)
    if config.analyze:
        from dinoscope.analysis.stage import analyze_into_run

        result.analysis = analyze_into_run(run, config, seed=config.seed, table=table, store=embedding.store_path.stem)
    if config.report and result.analysis is not None:
        from dinoscope.report import build_report

        result.outputs = [build_report(run.path, overwrite=config.overwrite)]
    return result


def _detect_into_run(
    run: Run, config: VideoConfig, spec: ModelSpec, crop: CropSpec
) -> tuple[VideoDetections | None, ObjectTable]:
    """The run's objects: from the finished detection of a resumed run, or from a new pass (checkpointed)."""
    previous = run.read_yaml().get("detection", {})
    if config.resume and previous.get("complete") and run.has_objects():
        if previous.get("settings") != settings_key(config):
            logger.warning(
                "%s: the detection settings differ from the interrupted run's; its finished detection is kept "
                "(use --overwrite to detect again with the new settings)",
                run.path,
            )
        logger.info("%s: detection already complete; resuming the embedding", run.path)
        return None, run.read_objects()
    logs = run.detection_logs_dir
    if config.overwrite and not config.resume and logs.is_dir():
        for old in logs.glob("*.parquet"):  # logs of the run being replaced
            old.unlink()
    detection = detect_from_config(config, None, spec, crop, logs, exclude=run.path)
    run.write_objects(detection.table)
    run.write_detections(detection.detections)
    run.write_yaml(
        {
            "detection": {
                "complete": True,
                "settings": settings_key(config),
                "detector": detection.detector,
                "stats": asdict(detection.stats),
                "failures": detection.failures,
            }
        }
    )
    return detection, detection.table


def _nothing_found(config: VideoConfig, detection: VideoDetections | None) -> str:
    s = detection.stats if detection is not None else None
    frames = f" in {s.n_frames} frames" if s else ""
    classes = f" of classes {', '.join(config.classes)}" if config.classes else ""
    return (
        f"{config.source}: no detection{classes} with score >= {config.conf}{frames}; lower --conf, check --classes "
        "(names as the detector spells them), or use a smaller --stride"
    )
