"""``dinoscope select POOL --labeled RUN --budget N``: the unlabelled images to label next.

Stages over one new :class:`~dinoscope.run.Run` (``out``): the labelled run's images and the pool's images
become whole-image objects (split ``labeled`` / ``pool``; sources stored as absolute paths, so two roots share
one table), embedded with the labelled run's model through the content cache (a whole-image labelled run costs
nothing), and with ``denoise_copies`` (default) once more through a 3x3 median filter
(:mod:`~dinoscope.embed.views`: a copy in either view is a copy), then
:func:`~dinoscope.analysis.selection.select_to_label` (typicality, coverage or loss-weighted; never a copy of a
labelled image or of another chosen one). Per-image losses come from the labelled run's
``eval/images.parquet`` (``dinoscope errors``). Outputs: ``selected.csv`` (object_id, source, strategy, score),
``selected.txt`` (one absolute path per line), ``images/`` (links or copies) and ``report/select.html`` (the
chosen set on the map).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.config import build_config
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.options import (
    BudgetOptions,
    CopyViewOptions,
    DatasetOptions,
    EmbeddingOptions,
    FrameOptions,
    ImageCopyOptions,
    LabeledOptions,
    OutputOptions,
    SeedOptions,
    SelectOptions,
    SourceOptions,
)
from dinoscope.progress import Clock
from dinoscope.run import Run
from dinoscope.table import ObjectTable
from dinoscope.workflows._curation import denoised_view, load_vectors
from dinoscope.workflows._stages import default_out, embedding_into_run, record

__all__ = ["SelectConfig", "SelectResult", "select", "select_from_config"]

logger = logging.getLogger(__name__)
#: Largest run mapped with UMAP on the select page (PCA above).
UMAP_MAX = 20_000
#: Fewer rows than this are mapped with PCA (UMAP needs a few hundred points to show structure).
UMAP_MIN = 200


class SelectConfig(
    SourceOptions,
    LabeledOptions,
    BudgetOptions,
    ImageCopyOptions,
    CopyViewOptions,
    EmbeddingOptions,
    SeedOptions,
    OutputOptions,
):
    """Settings of ``dinoscope select POOL`` (``source``: the pool, a folder of images or a dataset; ``model``
    auto = the labelled run's model; ``out`` default ``runs/<pool name>-select``)."""


@dataclass
class SelectResult:
    """What ``dinoscope select`` produced.

    Attributes:
        run_dir: The output run.
        selected: One row per chosen image (``object_id``, ``source``, ``strategy``, ``score``, ``path``).
        info: The selection's numbers (regions, radius, duplicate rule, blocked copies, shortfall).
        page: ``report/select.html``.
        timings: Seconds per stage.
    """

    run_dir: Path
    selected: pd.DataFrame
    info: dict[str, Any]
    page: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def select(**kwargs: Any) -> SelectResult:
    """Choose pool images to label; keyword arguments are the fields of :class:`SelectConfig`.

    Example:
        >>> result = select(source="pool/", labeled="runs/ppe", budget=100)  # doctest: +SKIP
        >>> result.selected["source"].head(3).tolist()  # doctest: +SKIP
    """
    return select_from_config(build_config(SelectConfig, **kwargs))


def select_from_config(config: SelectConfig) -> SelectResult:
    """Run ``dinoscope select`` as described by a validated config (see :func:`select`)."""
    from dinoscope.analysis.selection import select_to_label
    from dinoscope.embed.stage import embedding_model

    timings: dict[str, float] = {}
    clock = Clock(timings)
    labelled_run = Run.open(config.labeled)
    out = config.out or default_out(config.source).with_name(default_out(config.source).name + "-select")
    run = Run.create(out, overwrite=config.overwrite)
    record(run, "select", config)
    with clock("read"):
        table, pool_root = _objects(config, labelled_run)
        is_labelled = (table.data["split"] == "labeled").to_numpy()
        loss = _image_loss(labelled_run, table) if config.strategy == "loss" else None
    run.write_objects(table)
    embedding = _with_model(config, labelled_run)
    model, note = embedding_model(embedding, embedding, embedding, embedding)  # one model for both views
    if note:
        logger.info("embedding model: %s", note)
    with clock("embed"):
        embedded = embedding_into_run(run, table, embedding, resume=False, overwrite=True, model=model)
        vectors, valid = load_vectors(embedded.store_path)
    views = []
    if config.denoise_copies:
        with clock("embed_denoised"):
            views = [denoised_view(table, embedding, model)[valid]]
    n_classes = len(labelled_run.read_objects().class_names)
    with clock("select"):
        try:
            sel = select_to_label(vectors, is_labelled[valid], config.budget, config.strategy,
                                  loss=None if loss is None else loss[valid], n_purity=max(2, n_classes),
                                  views=views, seed=config.seed)  # fmt: skip
        except ValueError as exc:
            raise ConfigError(f"{config.labeled}: {exc}") from None
    rows = np.flatnonzero(valid)[sel.rows]
    chosen = table.data.iloc[rows]
    selected = pd.DataFrame(
        {
            "object_id": chosen["object_id"].to_numpy(),
            "source": [_relative(s, pool_root) for s in chosen["source"]],
            "strategy": sel.strategy,
            "score": sel.score,
            "path": chosen["source"].to_numpy(),
        }
    )
    _write_lists(run, selected, config)
    result = SelectResult(run.path, selected, sel.info, timings=timings)
    with clock("page"):
        status = np.where(is_labelled[valid], "labeled", "pool").astype(object)
        status[sel.rows] = "selected"
        result.page = _page(run, vectors, status, config, sel.info)
    run.write_yaml({"select": {"info": sel.info, "n_selected": len(selected), "seconds": timings}})
    return result


def _objects(config: SelectConfig, labelled_run: Run) -> tuple[ObjectTable, Path]:
    """Labelled and pool images as whole-image objects with absolute sources (root ``/``)."""
    from dinoscope.io.sources import read_source

    labelled = labelled_run.read_objects().whole_images()
    pool = read_source(DatasetOptions(dataset=config.source), SelectOptions(whole_images=True), FrameOptions())
    if not len(pool):
        raise DinoscopeError(f"{config.source}: no readable image in the pool")
    pool_root = Path(pool.root or config.source).resolve()
    parts = []
    for part, split in ((labelled, "labeled"), (pool, "pool")):
        root = Path(part.root or ".").resolve()
        data = part.data.assign(source=[str(root / s) for s in part.data["source"]], split=split)
        images = part.images.assign(source=[str(root / s) for s in part.images["source"]], split=split)
        parts.append(replace(part, data=data, images=images, class_names=(), root=Path("/")))
    table = ObjectTable.concat(parts)
    logger.info("select: %d labelled and %d pool images", len(labelled), len(pool))
    return table, pool_root


def _image_loss(labelled_run: Run, table: ObjectTable) -> np.ndarray:
    """(N,) mean object loss of each labelled image (NaN for the pool), from the run's evaluation."""
    images = labelled_run.read_eval_table("images")
    if images is None or "loss" not in images:
        raise ConfigError(
            f"{labelled_run.path}: no per-image losses (eval/images.parquet); run `dinoscope errors DATASET "
            "--predictions P --out RUN` first, or choose --strategy typicality or coverage"
        )
    root = Path(labelled_run.read_objects().root or ".").resolve()
    by_source = dict(zip((str(root / s) for s in images["source"]), images["loss"].astype(float), strict=True))
    labelled = (table.data["split"] == "labeled").to_numpy()
    return np.array([by_source.get(s, np.nan) if lab else np.nan for s, lab in zip(table.data["source"], labelled,
                                                                                        strict=True)])  # fmt: skip


def _with_model(config: SelectConfig, labelled_run: Run) -> EmbeddingOptions:
    """The config, with ``model`` auto replaced by the model the labelled run was embedded with."""
    if config.model != "auto":
        return config
    doc = labelled_run.read_yaml()
    model = (doc.get("pipeline") or {}).get("model") or (doc.get("config") or {}).get("model") or "auto"
    return config.model_copy(update={"model": model})


def _relative(source: str, root: Path) -> str:
    try:
        return Path(source).relative_to(root).as_posix()
    except ValueError:
        return source


def _write_lists(run: Run, selected: pd.DataFrame, config: SelectConfig) -> None:
    from dinoscope.io.image_links import place_images

    selected.drop(columns="path").to_csv(run.curation_path("selected.csv"), index=False)
    run.curation_path("selected.txt").write_text("".join(f"{p}\n" for p in selected["path"]), encoding="utf-8")
    if config.copy_images != "none":
        place_images(selected["path"].tolist(), run.chosen_images_dir, config.copy_images)


def _page(run: Run, vectors: np.ndarray, status: np.ndarray, config: SelectConfig, info: dict[str, Any]) -> Path:
    from dinoscope.analysis.projection import compute_map
    from dinoscope.report.curation_page import build_selection_page

    method = "umap" if UMAP_MIN <= len(vectors) <= UMAP_MAX else "pca"
    try:
        coords = compute_map(vectors, method=method, seed=config.seed).coords
    except DinoscopeError:  # umap not installed
        coords = compute_map(vectors, method="pca", seed=config.seed).coords
    facts = {
        "strategy": config.strategy,
        "budget": str(config.budget),
        "chosen": str(int((status == "selected").sum())),
        "labelled run": str(config.labeled),
        "pool": str(config.source),
        "copies of labelled images left out": str(info.get("n_blocked_copies_of_labelled", 0)),
    }
    return build_selection_page(run.report_page_path("select"), coords, status, title="dinoscope select", facts=facts)
