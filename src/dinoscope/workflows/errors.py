"""``dinoscope errors DATASET --predictions P``: where and why a detector or instance segmenter fails.

Stages over one :class:`~dinoscope.run.Run`: read the dataset (ground truth); read the predictions
(:func:`~dinoscope.io.prediction_table.read_prediction_table`), or run ``--detector model.onnx`` over the
dataset's images (the video package's detectors, at score 0.001 as COCO evaluation does); evaluate
(:func:`~dinoscope.analysis.detection_errors.evaluate_predictions`: mAP, TIDE error types and dAP,
over/under-segmentation, per-object and per-image loss); then ground truth and the predictions at the operating
point become the run's object table (``origin`` label / prediction, with ``error_type`` and ``loss`` columns),
embedded and analysed like any run, so maps, sub-groups and findings apply, and sub-groups of high loss are
described in words. Outputs: ``findings/detection_errors.parquet``, ``findings/segmentation_errors.parquet``,
``eval/metrics.json``, ``eval/images.parquet`` and the report (with its model-errors page).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, model_validator

from dinoscope.config import StrictModel, build_config
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.options import (
    AnalysisOptions,
    DatasetOptions,
    EmbeddingOptions,
    OutputOptions,
    ReportStepOptions,
    SeedOptions,
    SplitsOptions,
)
from dinoscope.progress import Clock
from dinoscope.run import Run
from dinoscope.table import ObjectTable
from dinoscope.video.detection import DetectorOptions
from dinoscope.workflows._stages import default_out, embedding_into_run, record

__all__ = ["ErrorsConfig", "ErrorsResult", "find_errors", "find_errors_from_config"]

logger = logging.getLogger(__name__)
#: Score floor when dinoscope runs the detector itself (COCO evaluations keep boxes down to 0.001).
DETECTOR_MIN_SCORE = 0.001
_MAX_DETS = 100


class ErrorsOptions(StrictModel):
    """Where the predictions come from, and whether they are embedded."""

    predictions: Path | None = Field(
        None,
        description="Predictions: a folder of YOLO txt files (one per image, score as the last value; boxes or "
        "polygons) or a COCO results JSON (boxes or RLE masks).",
        json_schema_extra={"short": "-p"},
    )
    embed: bool = Field(
        True, description="Embed ground truth and predictions and run the analyses (maps, sub-groups, loss insights)."
    )


class ErrorsConfig(
    DatasetOptions,
    SplitsOptions,
    ErrorsOptions,
    DetectorOptions,
    EmbeddingOptions,
    AnalysisOptions,
    SeedOptions,
    ReportStepOptions,
    OutputOptions,
):
    """Settings of ``dinoscope errors DATASET`` (``out``: the run directory, default ``runs/<dataset name>-errors``;
    ``device`` also runs the detector)."""

    @model_validator(mode="after")
    def _one_source(self) -> ErrorsConfig:
        if (self.predictions is None) == (self.detector is None):
            raise ValueError("give exactly one of predictions (a file or folder of predictions) and detector (a model)")
        return self


@dataclass
class ErrorsResult:
    """What ``dinoscope errors`` produced.

    Attributes:
        run_dir: The run directory.
        metrics: ``eval/metrics.json`` (mAP, per class, TIDE, segmentation, loss, operating point).
        n_gt: Ground-truth objects; ``n_pred``: predictions evaluated.
        insights: Sub-groups of high loss, in words (empty without ``embed``).
        report: ``report/index.html`` (None when not built).
        timings: Seconds per stage.
    """

    run_dir: Path
    metrics: dict[str, Any]
    n_gt: int
    n_pred: int
    insights: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def find_errors(**kwargs: Any) -> ErrorsResult:
    """Evaluate predictions against a dataset; keyword arguments are the fields of :class:`ErrorsConfig`.

    Example:
        >>> result = find_errors(dataset="coco-mini/data.yaml", predictions="preds/labels")  # doctest: +SKIP
        >>> round(result.metrics["map50_95"], 3)  # doctest: +SKIP
        0.254
    """
    return find_errors_from_config(build_config(ErrorsConfig, **kwargs))


def find_errors_from_config(config: ErrorsConfig) -> ErrorsResult:
    """Run ``dinoscope errors`` as described by a validated config (see :func:`find_errors`)."""
    from dinoscope.analysis.detection_errors import evaluate_predictions

    timings: dict[str, float] = {}
    clock = Clock(timings)
    out = config.out or default_out(config.dataset).with_name(default_out(config.dataset).name + "-errors")
    run = Run.create(out, overwrite=config.overwrite)
    record(run, "errors", config)
    with clock("read"):
        gt = _read_ground_truth(config)
    with clock("predict"):
        dt, source = _predictions(config, gt)
    with clock("evaluate"):
        found = evaluate_predictions(gt, dt, max_dets=_MAX_DETS)
    metrics = {**found.metrics, "predictions": source}
    run.write_findings("detection_errors", found.detection_errors)
    run.write_findings("segmentation_errors", found.segmentation_errors)
    run.write_eval_table("images", found.images)
    table = _object_table(gt, dt, found, metrics["operating_point"]["score_threshold"])
    run.write_objects(table)
    result = ErrorsResult(run.path, metrics, len(gt), len(dt), timings=timings)
    if config.embed:
        result.insights = _embed_and_analyse(run, table, config, clock)
        metrics["loss_clusters"] = result.insights
    run.write_metrics(metrics)
    section = {"predictions": source, "seconds": timings, "operating_point": metrics["operating_point"]}
    run.write_yaml({"errors": section})
    if config.report and config.embed:
        from dinoscope.report import build_report

        with clock("report"):
            result.report = build_report(run.path, overwrite=True)
    return result


def _read_ground_truth(config: ErrorsConfig) -> ObjectTable:
    from dinoscope.io.dataset import read_dataset

    options = {"task": config.task} if config.task != "auto" else {}
    table = read_dataset(config.dataset, config.format, **options)
    if config.splits:
        keep = set(config.splits)
        unknown = keep - set(table.images["split"])
        if unknown:
            raise ConfigError(f"--splits: {', '.join(sorted(unknown))} not in the dataset ({', '.join(table.splits)})")
        images = table.images[table.images["split"].isin(keep)]
        table = replace(table[table.data["split"].isin(keep).to_numpy()], images=images)
    if not table.class_names:
        raise DinoscopeError(f"{config.dataset}: the dataset has no classes; errors needs labelled objects")
    return table


def _predictions(config: ErrorsConfig, gt: ObjectTable) -> tuple[ObjectTable, dict[str, Any]]:
    from dinoscope.io.prediction_table import read_prediction_table

    if config.predictions is not None:
        dt = read_prediction_table(config.predictions, gt)
        if dt.data["confidence"].isna().any():
            logger.warning("%s: some predictions have no score; they count as score 1", config.predictions)
        return dt, {"file": str(config.predictions), "kind": dt.format.split(":")[1]}
    return _run_detector(config, gt)


def _run_detector(config: ErrorsConfig, gt: ObjectTable) -> tuple[ObjectTable, dict[str, Any]]:
    """The detector over every readable image of the dataset (boxes mapped to the dataset's classes by name)."""
    from dinoscope.io.images import read_image
    from dinoscope.io.prediction_table import build_prediction_table, map_class_names
    from dinoscope.video.detectors import create_detector

    detector = create_detector(
        config.detector, conf=DETECTOR_MIN_SCORE, names=config.names, max_det=_MAX_DETS, device=config.device
    )
    to_dataset = map_class_names(detector.class_names, gt.class_names, config.detector)
    if (to_dataset < 0).all():
        raise ConfigError(
            f"{config.detector}: none of the detector's classes ({', '.join(detector.class_names[:5])} ...) is a "
            "class of the dataset; pass --names with the detector's class names as the dataset spells them"
        )
    if (to_dataset < 0).any():
        dropped = [n for n, i in zip(detector.class_names, to_dataset, strict=True) if i < 0]
        logger.warning(
            "%s: %d detector classes are not in the dataset; their boxes are left out (%s%s)",
            config.detector,
            len(dropped),
            ", ".join(dropped[:8]),
            " ..." if len(dropped) > 8 else "",
        )
    rows = []
    images = gt.images[gt.images["error"] == ""]
    for source in images["source"]:
        frame = read_image(Path(gt.root or ".") / source)
        found = detector.detect([frame])[0]
        ids = to_dataset[found.class_id]
        for box, score, cid in zip(found.xyxy[ids >= 0], found.score[ids >= 0], ids[ids >= 0], strict=True):
            row = {"source": source, "class_id": int(cid), "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3]}
            rows.append({**row, "confidence": float(score), "label_ref": f"{Path(config.detector).name}:{source}"})
    dt = build_prediction_table(gt, pd.DataFrame(rows), kind="detector", path=config.detector)
    return dt, {"detector": detector.description, "min_score": DETECTOR_MIN_SCORE}


def _object_table(gt: ObjectTable, dt: ObjectTable, found: Any, threshold: float) -> ObjectTable:
    """Ground truth and the predictions at the operating point, with their error type and loss."""
    errors = found.detection_errors.set_index("object_id")
    keep = dt[(dt.data["confidence"].fillna(1.0) >= threshold).to_numpy()]
    both = ObjectTable.concat([gt, keep])
    both = replace(both, images=gt.images)
    info = errors.loc[both.object_id]
    seg = found.segmentation_errors.set_index("object_id").loc[both.object_id]
    return both.with_columns(
        error_type=info["error_type"].astype(str).to_numpy(),
        loss=info["loss"].to_numpy(),
        is_over_segmented=seg["is_over_segmented"].to_numpy(),
        is_under_segmented=seg["is_under_segmented"].to_numpy(),
    )


def _embed_and_analyse(run: Run, table: ObjectTable, config: ErrorsConfig, clock: Clock) -> list[dict[str, Any]]:
    from dinoscope.analysis.detection_loss import describe_loss_clusters
    from dinoscope.analysis.stage import analyze_into_run

    with clock("embed"):
        embedded = embedding_into_run(run, table, config, resume=False, overwrite=config.overwrite)
    with clock("analyze"):
        analyze_into_run(run, config, seed=config.seed, table=table, store=embedded.store_path.stem)
    if "clusters" not in run.findings_names():
        return []
    clusters = run.read_findings("clusters")[["object_id", "cluster"]]
    frame = table.data.merge(clusters, on="object_id", how="left")
    frame["cluster"] = frame["cluster"].fillna(-1).astype(int)
    frame["area_px"] = (frame["x2"] - frame["x1"]) * (frame["y2"] - frame["y1"])
    started = time.perf_counter()
    insights = describe_loss_clusters(frame)
    logger.info("loss insights in %.2f s: %d groups", time.perf_counter() - started, len(insights))
    return insights
