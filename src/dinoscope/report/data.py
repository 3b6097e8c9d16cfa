"""Everything the report shows, read from a run directory: summary, provenance, objects and findings.

The report never recomputes an analysis: headline numbers come from ``summary.json``, thresholds and
matrices from the ``analysis`` block of ``run.yaml``, per-object flags and scores from
``findings/<analysis>.parquet`` and positions from ``map.parquet``. Dataset health comes from the checks
the workflow kept in the run (``checks/checks.json``, written once when the dataset was read); a run without
them (a video run, or one made before they were kept) gets :func:`dinoscope.io.checks.run_checks` on its
object table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.registry import get_analysis, registered_analyses, rows_as_ids
from dinoscope.errors import DinoscopeError
from dinoscope.io.checks import CheckReport, read_checks, run_checks
from dinoscope.run import Run
from dinoscope.table import ObjectTable

__all__ = ["ANALYSES", "RunData", "load_run"]  # noqa: F822 (ANALYSES: from the registry, in __getattr__)

logger = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    """``ANALYSES``: the registered analyses' names, in run order (read when asked, so later registrations count)."""
    if name == "ANALYSES":
        return tuple(a.name for a in registered_analyses())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class RunData:
    """A run directory as the report reads it.

    Attributes:
        run_dir: The run folder.
        summary: ``summary.json`` as written by ``dinoscope analyze``.
        provenance: ``run.yaml``.
        table: The full object table (analysed or not).
        objects: One row per analysed object, in analysis row order: the object columns, ``cls`` (class
            index into ``names``), every finding column (row references replaced by ``<name>_id`` object
            ids) and map columns ``x, y, class_x, class_y`` when the run has a map.
        names: Class names, index = ``cls`` (the keys of ``summary["classes"]``).
        checks: Dataset health findings and counts of the whole table.
        root: The folder the object ``source`` paths are relative to, None when it cannot be found.
        analyses: The findings files that exist.
        probe: ``probes/metrics.json`` of ``dinoscope probe``, None when the run has none.
    """

    run_dir: Path
    summary: dict[str, Any]
    provenance: dict[str, Any]
    table: ObjectTable
    objects: pd.DataFrame
    names: list[str]
    checks: CheckReport
    root: Path | None
    analyses: list[str] = field(default_factory=list)
    probe: dict[str, Any] | None = None

    @property
    def analysis_info(self) -> dict[str, Any]:
        """The ``analysis`` block of run.yaml (thresholds, matrices, timings); {} when absent."""
        return self.provenance.get("analysis", {}) or {}

    @property
    def has_map(self) -> bool:
        """True when the run has 2-D map coordinates."""
        return "x" in self.objects.columns

    def class_summary(self, c: int) -> dict[str, Any]:
        """The ``summary.json`` entry of class index ``c``."""
        return self.summary["classes"][self.names[c]]


def load_run(run_dir: str | Path, dataset_root: str | Path | None = None) -> RunData:
    """Read what ``dinoscope embed`` and ``dinoscope analyze`` wrote into a run directory.

    Args:
        run_dir: The run folder.
        dataset_root: Where the images are, when they moved since the run was made (default: the root
            recorded in the object table, tried as given, from the working folder and from the run).

    Raises:
        DinoscopeError: The run has no object table or no summary (``dinoscope analyze`` has not run).

    Example:
        >>> data = load_run("runs/ppe")  # doctest: +SKIP
        >>> data.objects[["class_name", "cluster", "outlier_quality"]].head()  # doctest: +SKIP
    """
    run = Run.open(run_dir)
    table = run.read_objects()
    summary = run.read_summary()
    if not summary.get("classes"):
        raise DinoscopeError(f"{run.summary_path}: no per-class numbers; re-run `dinoscope analyze {run.path}`")
    provenance = run.read_yaml()
    known = [a.name for a in registered_analyses() if run.findings_path(a.name).is_file()]
    names_found = known + [n for n in run.findings_names() if n not in known]
    findings = {name: run.read_findings(name) for name in names_found}
    names = list(summary["classes"])
    objects = _merge(table, findings, names)
    coords = run.read_map()
    if coords is not None:
        objects = _join(objects, coords, "map")
    root = _find_root(table, dataset_root, run, provenance)
    return RunData(
        run_dir=run.path,
        summary=summary,
        provenance=provenance,
        table=table,
        objects=objects,
        names=names,
        checks=read_checks(run.checks_dir) if (run.checks_dir / "checks.json").is_file() else run_checks(table),
        root=root,
        analyses=list(findings),
        probe=run.read_probe_metrics(),
    )


def _merge(table: ObjectTable, findings: dict[str, pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """Analysed objects (those with findings) joined with every finding column, in analysis order.

    A registered analysis' row-number columns (``row_columns``) become ``<col>_id`` object-id columns.
    """
    data = table.data
    if findings:
        analysed = next(iter(findings.values()))["object_id"]
        objects = data.set_index("object_id").loc[analysed.to_numpy()].reset_index()
    else:
        objects = data.copy()
    if table.class_names:
        cls = np.where(objects["class_id"].to_numpy() >= 0, objects["class_id"].to_numpy(), 0)
    else:
        cls = np.zeros(len(objects), dtype=np.int64)
    if len(cls) and cls.max() >= len(names):
        raise DinoscopeError(f"summary.json lists {len(names)} classes but objects use class {cls.max()}")
    objects["cls"] = cls
    for name, frame in findings.items():
        frame = rows_as_ids(name, frame.copy())
        objects = _join(objects, frame, name)
    return objects


def _join(objects: pd.DataFrame, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    clash = [c for c in frame.columns if c != "object_id" and c in objects.columns]
    if clash:  # findings of a registered analysis must not repeat columns; others (errors) copy some by design
        log = logger.warning if get_analysis(what) is not None else logger.debug
        log("report: %s columns %s already present; the first ones are kept", what, clash)
        frame = frame.drop(columns=clash)
    merged = objects.merge(frame, on="object_id", how="left", validate="one_to_one")
    return merged


def _find_root(table: ObjectTable, given: str | Path | None, run: Run, provenance: dict[str, Any]) -> Path | None:
    """The first candidate folder holding the first object's source file."""
    if table.data.empty:
        return Path(given) if given else None
    probe = str(table.data["source"].iloc[0])
    candidates: list[Path] = []
    if given is not None:
        candidates.append(Path(given))
    recorded = [table.root, provenance.get("config", {}).get("dataset")]
    for value in recorded:
        if not value:
            continue
        path = Path(value)
        candidates += [path] if path.is_absolute() else [Path.cwd() / path, run.path / path, run.path.parent / path]
    for folder in candidates:
        if (folder / probe).exists():
            return folder.resolve()
    if given is not None:
        raise DinoscopeError(f"{given}: {probe} is not there; pass the folder the dataset's paths are relative to")
    logger.warning(
        "report: the dataset images were not found (looked for %s under %s); thumbnails are left blank - "
        "pass --dataset-root to point at the images",
        probe,
        ", ".join(str(c) for c in candidates) or "(no recorded root)",
    )
    return None
