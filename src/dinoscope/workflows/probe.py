"""``dinoscope probe DATASET``: how well each model's features separate the dataset's classes, without leaks.

Reads any labelled source (an MMPretrain JSON with ``group_id``, class folders, a detection dataset whose
boxes become objects), embeds it through the normal embedding stage (store + content cache: a second call
computes nothing), assigns group-aware folds once, then runs every probe protocol
(:mod:`~dinoscope.analysis.probing`) for ``--model`` and each ``--compare`` model on those same folds.
A ``--compare`` entry is any model spec the registry resolves: a name, ``timm:<name>``, a local folder such as
``DIR/backbone``, a ``.pth`` or ``.onnx`` file.

Writes ``probes/metrics.json`` (every metric, interval, per-class number, confusion matrix, fold and
protocol setting), ``probes/summary.csv`` (one row per model and protocol), ``probes/splits.parquet``
(``object_id, group, split, fold``) and ``probes/errors.parquet`` (misclassified objects and their groups),
and refreshes the report when the run is analysed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from dinoscope.config import StrictModel, build_config
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.options import (
    EmbeddingOptions,
    ObjectsOptions,
    OutputOptions,
    ReportStepOptions,
    ResumeOptions,
    SeedOptions,
    comma_separated,
)
from dinoscope.run import Run
from dinoscope.table import ObjectTable
from dinoscope.workflows._stages import default_out, embedding_into_run, objects_into_run, record

__all__ = ["ProbeConfig", "ProbeOptions", "ProbeResult", "probe", "probe_from_config"]

logger = logging.getLogger(__name__)
#: Pooling whose model also offers the DINOv2 linear-probe input ``cls+mean``.
_LINEAR_FROM = "cls"
#: run.yaml sections that describe the run's own embedding (kept as they were before the compared models).
_EMBEDDING_SECTIONS = ("embedding", "embed_stats")
_COUNTS = ("n_computed", "n_cached", "n_resumed", "n_failed")


class ProbeOptions(StrictModel):
    """What ``probe`` compares and what it keeps together."""

    compare: list[str] | None = Field(
        None,
        description="Also probe these models (comma-separated: names, timm:<name>, folders such as DIR/backbone, "
        ".pth/.onnx files); one table across all.",
    )
    group_by: str | None = Field(
        None,
        description="Object column whose equal values never straddle train and test (default: group_id when the "
        "dataset has one, else the source image or video).",
    )

    @field_validator("compare", mode="before")
    @classmethod
    def _comma_separated_models(cls, value: object) -> object:  # its own name: validators are inherited by name
        return comma_separated(value)


class ProbeConfig(
    ObjectsOptions, EmbeddingOptions, ProbeOptions, SeedOptions, ReportStepOptions, OutputOptions, ResumeOptions
):
    """Settings of ``dinoscope probe DATASET`` (``out``: the run directory, default ``runs/<dataset name>``)."""


@dataclass
class ProbeResult:
    """What ``probe`` measured.

    Attributes:
        run_dir: The run directory.
        summary: One row per (model, protocol) with each headline metric and its 95% interval.
        metrics: ``probes/metrics.json`` as written.
        report: ``report/index.html`` when it was refreshed (analysed runs), else None.
        timings: Seconds per step.
    """

    run_dir: Path
    summary: pd.DataFrame
    metrics: dict[str, Any]
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def probe(**kwargs: Any) -> ProbeResult:
    """Probe a labelled dataset's features; keyword arguments are the fields of :class:`ProbeConfig`.

    Example:
        >>> result = probe(dataset="deeppcb/ok_vs_defect.json", model="efficientnet-lite0")  # doctest: +SKIP
        >>> result.summary[["protocol", "accuracy", "accuracy_low", "accuracy_high"]]  # doctest: +SKIP
    """
    return probe_from_config(build_config(ProbeConfig, **kwargs))


def probe_from_config(config: ProbeConfig) -> ProbeResult:
    """Run the probes described by a validated config (see :func:`probe`)."""
    from dinoscope.analysis.probe_eval import select_evaluation_folds
    from dinoscope.analysis.probing import errors_frame, summary_frame
    from dinoscope.embed.registry import resolve_model

    timings: dict[str, float] = {}
    started = time.perf_counter()
    run = Run.create(config.out or default_out(config.dataset), resume=config.resume, overwrite=config.overwrite)
    record(run, "probe", config)
    table, _, _ = objects_into_run(run, config, resume=config.resume)
    labels, names = _labels(table, config.dataset)
    groups, group_by = _groups(table, config.group_by, config.dataset)
    folds = select_evaluation_folds(labels, groups, table.data["split"].to_numpy(), seed=config.seed)
    splits = pd.DataFrame({"object_id": table.object_id, "group": groups, "split": table.data["split"]})
    splits["fold"] = folds.fold
    splits.to_parquet(run.probe_path("splits.parquet"), index=False)
    timings["read_folds"] = round(time.perf_counter() - started, 3)

    first = resolve_model(config.model)[0]
    models = list(dict.fromkeys([first, *(config.compare or [])]))
    # run.yaml's `embedding` describes the run's own model (the report shows it): the compared models' stores
    # must not replace it; their embedding figures go to the probe's records.
    kept = {key: value for key, value in run.read_yaml().items() if key in _EMBEDDING_SECTIONS}
    metrics: dict[str, dict[str, Any]] = {}
    models_info: dict[str, Any] = {}
    errors = []
    for model in models:
        t = time.perf_counter()
        vectors, linear, spec, stats = _vectors(run, table, config, model, first)
        if not kept:
            kept = {key: value for key, value in run.read_yaml().items() if key in _EMBEDDING_SECTIONS}
        usable = np.where(np.isfinite(vectors).all(axis=1), labels, -1)
        results = _protocols(vectors, usable, groups, folds, names, linear, config.seed)
        metrics[model] = {name: r.metrics for name, r in results.items()}
        models_info[model] = {"spec": spec, "embedding": stats, "protocols": {n: r.info for n, r in results.items()}}
        errors.append(errors_frame(results, usable, table.object_id, groups, names, model))
        timings[model] = round(time.perf_counter() - t, 3)

    summary = summary_frame(metrics)
    summary.to_csv(run.probe_path("summary.csv"), index=False)
    pd.concat(errors, ignore_index=True).to_parquet(run.probe_path("errors.parquet"), index=False)
    doc = {
        "classes": names,
        "group_by": group_by,
        "evaluation": {"mode": folds.mode, "n_folds": folds.n_folds, **folds.info},
        "n_objects": int((labels >= 0).sum()),
        "models": {m: {**models_info[m], "metrics": metrics[m]} for m in models},
    }
    run.write_probe_metrics(doc)
    run.write_yaml(kept)
    run.write_yaml({"probe": {"models": models, "evaluation": doc["evaluation"], "timings_s": timings}})
    return ProbeResult(run.path, summary, doc, _refresh_report(run, config), timings)


def _labels(table: ObjectTable, dataset: Path) -> tuple[np.ndarray, list[str]]:
    """(N,) class ids (-1 unlabelled) and the class names; refuses data a probe cannot evaluate."""
    labels = table.class_id.astype(np.int64) if table.class_names else np.full(len(table), -1, np.int64)
    present = np.unique(labels[labels >= 0])
    if not len(present):
        raise DinoscopeError(
            f"{dataset}: no labelled objects; a probe needs class labels (a dataset with classes, class folders or "
            "an MMPretrain JSON - not a plain image folder)"
        )
    if len(present) < 2:
        raise DinoscopeError(
            f"{dataset}: every labelled object is of class '{table.class_names[present[0]]}'; a probe needs at "
            "least two classes (drop --classes or label a second class)"
        )
    return labels, list(table.class_names)


def _groups(table: ObjectTable, group_by: str | None, dataset: Path) -> tuple[np.ndarray, str]:
    """(N,) group of every object (empty values: the object alone) and the column used."""
    data = table.data
    if group_by is not None and group_by not in data.columns:
        extra = [c for c in data.columns if c not in ("x1", "y1", "x2", "y2", "image_w", "image_h", "confidence")]
        raise ConfigError(f"--group-by {group_by!r}: {dataset} has no such object column; columns: {', '.join(extra)}")
    if group_by is None:
        has_ids = "group_id" in data.columns and (data["group_id"].astype(str) != "").any()
        group_by = "group_id" if has_ids else "source"
    values = data[group_by].fillna("").astype(str).to_numpy(dtype=object)
    alone = values == ""
    if alone.any():
        logger.warning("%d objects have no %s; each is its own group", int(alone.sum()), group_by)
        values[alone] = "object:" + table.object_id[alone].astype(str)
    return values, group_by


def _vectors(
    run: Run, table: ObjectTable, config: ProbeConfig, model: str, first: str
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any], dict[str, int]]:
    """(N, D) vectors of ``model`` (NaN rows: no vector), its ``[CLS ‖ mean patch]`` vectors when the model has
    a CLS token and no pooling was chosen (None otherwise), its spec, and how its vectors were obtained
    (computed / from the cache / already in the store, summed over its stores)."""
    settings = config.model_copy(update={"model": model, "weights": config.weights if model == first else None})
    result = embedding_into_run(run, table, settings, resume=True, overwrite=config.overwrite)
    vectors = _read_store(run, result.store_path.stem, table)
    linear, results = None, [result]
    if config.pooling is None and result.spec.pooling == _LINEAR_FROM:
        both = embedding_into_run(
            run, table, settings.model_copy(update={"pooling": "cls+mean"}), resume=True, overwrite=config.overwrite
        )
        linear = _read_store(run, both.store_path.stem, table)
        results.append(both)
    counts = {key: sum(getattr(r.stats, key) for r in results) for key in _COUNTS}
    return vectors, linear, result.spec.to_dict(), counts


def _read_store(run: Run, name: str, table: ObjectTable) -> np.ndarray:
    from dinoscope.embed.store import EmbeddingStore

    store = EmbeddingStore.open(run.embeddings_dir, name)
    if list(store.object_ids) != list(table.object_id):
        raise DinoscopeError(f"{store.path}: rows do not match {run.objects_path}; re-run with --overwrite")
    vectors = store.as_array(np.float32)
    valid = store.valid_mask()
    if not valid.all():
        logger.warning("%s: %d objects have no vector (unreadable); they are left out", name, int((~valid).sum()))
        vectors[~valid] = np.nan
    return vectors


def _protocols(
    vectors: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    folds: Any,
    names: list[str],
    linear: np.ndarray | None,
    seed: int,
) -> dict[str, Any]:
    from dinoscope.analysis.probe_eval import UNUSED, EvaluationFolds
    from dinoscope.analysis.probing import run_protocols

    # Rows without a vector take no part; the folds of the others stay as assigned.
    missing = labels < 0
    if missing.any():
        folds = EvaluationFolds(np.where(missing, UNUSED, folds.fold), folds.n_folds, folds.mode, folds.info)
    both = None if linear is None else np.nan_to_num(linear)
    return run_protocols(np.nan_to_num(vectors), labels, groups, folds, names, linear_vectors=both, seed=seed)


def _refresh_report(run: Run, config: ProbeConfig) -> Path | None:
    """Rebuild the report of an analysed run so that it shows the probes; None for a run not analysed."""
    if not config.report or not run.summary_path.is_file():
        if config.report:
            logger.info("the run is not analysed: `dinoscope analyze %s` builds a report showing the probes", run.path)
        return None
    from dinoscope.report import build_report

    return build_report(run.path, overwrite=config.overwrite)
