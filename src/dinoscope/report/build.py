"""``dinoscope report RUN``: the offline HTML report of a run, its exports, figures and optional PDF.

One path for the Python API, config files and the CLI: :func:`build_report` validates its keywords into a
:class:`ReportConfig` and calls :func:`build_report_from_config`, which reads the run
(:mod:`~dinoscope.report.data`), chooses what to show (:mod:`~dinoscope.report.select`), cuts every image
in one pass over the sources (:mod:`~dinoscope.report.thumbs`), writes the pages, exports and figures into a
staging folder and moves it into place (:mod:`~dinoscope.report.output`). The page weight and build time go
to ``run.yaml`` under ``report``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import Field

from dinoscope.config import StrictModel, build_config
from dinoscope.errors import DinoscopeError
from dinoscope.options import OutputOptions, RunOptions, SeedOptions, WorkersOptions
from dinoscope.progress import Clock
from dinoscope.run import Run

__all__ = ["ReportConfig", "ReportOptions", "ReportResult", "build_report", "build_report_from_config"]

logger = logging.getLogger(__name__)


class ReportOptions(StrictModel):
    """What the report shows and writes besides its pages."""

    pdf: bool = Field(False, description="Also print report.pdf with headless Chromium.")
    export_samples: bool = Field(
        False, description="Write crops per sub-group, outliers and label errors under samples/."
    )
    samples_per_group: int = Field(24, ge=1, description="Crops per sub-group with --export-samples.")
    figures: bool | None = Field(
        None,
        description="PNG figures for slides (default: when matplotlib is installed).",
    )
    dataset_root: Path | None = Field(None, description="Where the images are, if they moved since the run.")
    max_class_points: int = Field(2_000, ge=10, description="Points drawn on each class map (a seeded sample beyond).")
    max_map_points: int = Field(20_000, ge=10, description="Points drawn on the dataset-wide map.")
    max_thumbnails: int = Field(40_000, ge=0, description="Thumbnails in all (listed objects first, then map points).")


class ReportConfig(RunOptions, OutputOptions, ReportOptions, WorkersOptions, SeedOptions):
    """Settings of ``dinoscope report RUN`` (``out``: the report folder, default ``RUN/report``; ``overwrite``:
    write into a folder dinoscope did not make, or replace report files edited since)."""


@dataclass
class ReportResult:
    """What a report build wrote.

    Attributes:
        index: ``<out>/index.html``.
        pdf: ``<out>/report.pdf`` when asked for.
        files: {path relative to the report folder: size in bytes}.
        weight: Page weight and counts (``initial_bytes``, ``total_bytes``, ``largest_page_bytes``,
            ``n_files``, ``n_thumbnails``, ``n_sheets``, ``build_s``), as recorded in run.yaml.
    """

    index: Path
    pdf: Path | None = None
    files: dict[str, int] = field(default_factory=dict)
    weight: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        """The report folder."""
        return self.index.parent


def build_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    pdf: bool = False,
    export_samples: bool = False,
    overwrite: bool = False,
    **kwargs: Any,
) -> Path:
    """Build the offline HTML report of an analysed run; returns the path of its ``index.html``.

    Rebuilding ``RUN/report`` is routine: a folder made by a previous report is regenerated without a flag,
    files it did not write are never deleted (see :mod:`dinoscope.report.output`).

    Args:
        run_dir: Run directory (``dinoscope embed`` then ``dinoscope analyze``).
        out: Report folder (default ``RUN/report``).
        pdf: Also write ``report.pdf`` (headless Chromium).
        export_samples: Also write sample crops per sub-group under ``samples/``.
        overwrite: See :class:`ReportConfig`.
        **kwargs: Other fields of :class:`ReportConfig` (``figures``, ``dataset_root``, ``max_class_points``...).

    Raises:
        DinoscopeError: The run is not analysed, the folder is refused, or PDF printing failed.

    Example:
        >>> from dinoscope.report import build_report
        >>> build_report("runs/ppe")  # doctest: +SKIP
        PosixPath('runs/ppe/report/index.html')
    """
    config = build_config(
        ReportConfig, run=run_dir, out=out, pdf=pdf, export_samples=export_samples, overwrite=overwrite, **kwargs
    )
    return build_report_from_config(config).index


def build_report_from_config(config: ReportConfig) -> ReportResult:
    """Build the report described by a validated config (see :func:`build_report`)."""
    from dinoscope.report.data import load_run
    from dinoscope.report.output import ReportFolder

    start = time.perf_counter()
    if config.pdf:
        from dinoscope.report.pdf import require_browser

        require_browser()  # before any work: a missing browser is one line, not a failure after minutes
    data = load_run(config.run, config.dataset_root)
    out = Path(config.out) if config.out is not None else Run(data.run_dir).report_dir
    folder = ReportFolder.prepare(out, overwrite=config.overwrite)
    try:
        files, weight = _write_all(data, config, folder.stage, out, start)
        folder.install()
    except BaseException:
        folder.discard()
        raise
    _record(data.run_dir, out, weight)
    logger.info("report: %s (%d files, %.1f MB)", out / "index.html", len(files), weight["total_bytes"] / 2**20)
    pdf = out / "report.pdf" if "report.pdf" in files else None
    return ReportResult(index=out / "index.html", pdf=pdf, files=files, weight=weight)


def _write_all(
    data: Any, config: ReportConfig, stage: Path, out: Path, start: float
) -> tuple[dict[str, int], dict[str, Any]]:
    """Everything but the install: images, pages, exports, figures, PDF; returns file sizes and weight."""
    from dinoscope.report import exports
    from dinoscope.report.figures import figures_available, write_figures
    from dinoscope.report.overview import render_overview
    from dinoscope.report.select import Limits, plan_report
    from dinoscope.report.thumbs import make_images
    from dinoscope.report.view import View

    limits = Limits(
        max_class_points=config.max_class_points,
        max_map_points=config.max_map_points,
        max_thumbnails=config.max_thumbnails,
        seed=config.seed,
    )
    clock = Clock(logger=logger, prefix="report: ")
    with clock("plan"):
        plan = plan_report(data.objects, data.names, limits)
    figures = config.figures if config.figures is not None else figures_available()
    if config.figures is None and not figures:
        logger.warning('report: matplotlib is not installed; no PNG figures (pip install "dinoscope[report]")')
    with clock("images"):
        samples = {}
        if config.export_samples:
            samples = exports.plan_samples(data, plan, stage, config.samples_per_group, config.seed)
        jobs = _image_jobs(plan, figures, samples)
        images = make_images(
            data.objects, jobs, data.root, stage, max_context=limits.max_context_images, workers=config.workers
        )
    view = View(data=data, plan=plan, images=images, out=out)
    with clock("pages"):
        _copy_assets(stage)
        _write_pages(view, stage)
    with clock("errors page"):
        from dinoscope.report.errors_page import write_errors_page

        write_errors_page(data.objects, data.run_dir, data.root, stage)
    with clock("exports"):
        exports.write_cluster_statistics(data, stage / "cluster_statistics.csv")
        exports.write_findings(data, stage)
        exports.write_label_error_review(data, stage)
    if figures:
        with clock("figures"):
            write_figures(data, plan, images.montage, stage)
    if config.pdf:
        with clock("pdf"):
            _write_pdf(view, stage)
    overview = render_overview(view)
    meta = {
        "n_thumbnails": len(images.cell) - len(images.failed),
        "n_sheets": len(list((stage / "thumbs").glob("c*.webp"))),
        "n_context_images": len(set(images.context.values())),
        "timings_s": clock.timings,
    }
    weight = _write_index(view, stage, overview, _weight(view, stage, meta, start))
    files = {
        p.relative_to(stage).as_posix(): p.stat().st_size
        for p in sorted(stage.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }
    return files, weight


def _image_jobs(plan: Any, figures: bool, samples: dict[int, list[Path]]) -> Any:
    import numpy as np

    from dinoscope.report.thumbs import ImageJobs

    montage = [g.shown[:8] for cp in plan.classes for g in cp.groups[:8]] if figures else []
    icons = {}
    for cp in plan.classes:
        first = cp.groups[0].shown[:1] if cp.groups else cp.thumbs[:1]
        if len(first):
            icons[cp.cls] = int(first[0])
    return ImageJobs(
        thumbs={cp.cls: cp.thumbs for cp in plan.classes},
        montage=np.concatenate([np.empty(0, np.int64), *montage]).astype(np.int64),
        context=plan.context,
        samples=samples,
        icons=icons,
    )


def _copy_assets(stage: Path) -> None:
    target = stage / "assets"
    target.mkdir(parents=True, exist_ok=True)
    package = resources.files("dinoscope.report") / "assets"
    for name in ("report.css", "report.js"):
        with resources.as_file(package / name) as src:
            shutil.copyfile(src, target / name)


def _data_file(name: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"DS.put({json.dumps(name)},{body});\n"


def _write_pages(view: Any, stage: Path) -> None:
    from dinoscope.report.class_page import class_payload, render_class
    from dinoscope.report.dataset_page import dataset_payload, render_dataset
    from dinoscope.report.similar import similar_objects

    folder = stage / "data"
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"html": render_dataset(view), **dataset_payload(view)}
    (folder / "dataset.js").write_text(_data_file("dataset", payload), encoding="utf-8")
    similar = similar_objects(view)  # the inspector's "similar objects", from the run's search index
    for c in range(len(view.data.names)):
        payload = {"html": render_class(view, c), **class_payload(view, c)}
        if c in similar:
            payload["objs"]["nn"] = similar[c]
        (folder / f"class-{c:03d}.js").write_text(_data_file(f"class-{c:03d}", payload), encoding="utf-8")


def _write_pdf(view: Any, stage: Path) -> None:
    from dinoscope.report.class_page import render_class
    from dinoscope.report.dataset_page import render_dataset
    from dinoscope.report.html import render_print
    from dinoscope.report.overview import render_overview
    from dinoscope.report.pdf import print_pdf

    parts = [render_overview(view), render_dataset(view, static=True)]
    parts += [render_class(view, c, static=True) for c in range(len(view.data.names))]
    page = stage / "print.html"
    page.write_text(render_print(view, parts), encoding="utf-8")
    print_pdf(page, stage / "report.pdf")


def _write_index(view: Any, stage: Path, overview: str, weight: dict[str, Any]) -> dict[str, Any]:
    """Write index.html, whose exports page shows the page weight including index.html's own size.

    ``weight`` counts every file but index.html; the page is rendered until the size it states is its own.
    """
    from dinoscope.report.html import render_exports, render_index

    files = {
        p.relative_to(stage).as_posix(): p.stat().st_size
        for p in stage.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "index.html"
    }
    n_bytes, page = 0, ""
    for _ in range(6):  # the stated size changes the size by a few digits at most: converges in 2-3 passes
        stated = {
            **weight,
            "initial_bytes": weight["initial_bytes"] + n_bytes,
            "total_bytes": weight["total_bytes"] + n_bytes,
            "n_files": weight["n_files"] + 1,
        }
        page = render_index(view, overview, render_exports(view, {**files, "index.html": n_bytes}, stated), stated)
        size = len(page.encode("utf-8"))
        if size == n_bytes:
            break
        n_bytes = size
    (stage / "index.html").write_text(page, encoding="utf-8")
    return stated


def _weight(view: Any, stage: Path, meta: dict[str, Any], start: float) -> dict[str, Any]:
    """Sizes of everything written so far except index.html (added by :func:`_write_index`)."""

    def size(rel: str) -> int:
        p = stage / rel
        return p.stat().st_size if p.is_file() else 0

    files = [p for p in stage.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != "index.html"]
    initial = sum(size(r) for r in ("assets/report.css", "assets/report.js", "thumbs/classes.webp"))
    pages = [
        size(f"data/class-{c:03d}.js") + sum(p.stat().st_size for p in (stage / "thumbs").glob(f"c{c:03d}-*.webp"))
        for c in range(len(view.data.names))
    ]
    return {
        **meta,
        "initial_bytes": initial,
        "largest_page_bytes": max(pages, default=0),
        "total_bytes": sum(p.stat().st_size for p in files),
        "n_files": len(files),
        "build_s": round(time.perf_counter() - start, 2),
    }


def _record(run_dir: Path, out: Path, weight: dict[str, Any]) -> None:
    """Page weight and build time into run.yaml (``report``); summary.json stays the analysis' own."""
    entry = {
        "index": str(out / "index.html"),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **weight,
    }
    try:
        Run(run_dir).write_yaml({"report": entry})
    except (OSError, ValueError) as exc:
        raise DinoscopeError(f"{run_dir}: the report was written but its weight could not be recorded ({exc})") from exc
