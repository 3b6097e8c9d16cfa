"""The one registry of analyses: what each analysis runs on, what it adds to the summary, the CLI and the report.

Every analysis is one :class:`Analysis` entry, in run order. The analysis stage runs the entries whose needs the
run meets (:meth:`Analysis.applies`) over one shared :class:`AnalysisContext` and writes each result to
``findings/<name>.parquet``; ``summary.json`` takes each entry's per-class and dataset-wide numbers; the CLI
table takes its :class:`TableColumn` s; the report takes its title, description and columns (the exports page
and ``findings.csv``).

Adding an analysis is one module (a ``find_<issue>`` function returning an
:class:`~dinoscope.analysis.base.AnalysisResult`, its runner over the context and its summary numbers) plus
one entry: an :class:`Analysis` appended to the list at the end of this module for one shipped with dinoscope
(the shipped ones keep their runners and numbers in :mod:`dinoscope.analysis.builtin`), or
:func:`register_analysis` from user code.

Example:
    >>> def find_norm(ctx: AnalysisContext) -> AnalysisResult:  # doctest: +SKIP
    ...     ...
    >>> register_analysis(Analysis("norm", find_norm, description="far from the centroid"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from dinoscope.analysis import builtin
from dinoscope.analysis.base import AnalysisResult, NeighborGraph
from dinoscope.errors import ConfigError

if TYPE_CHECKING:
    from dinoscope.options import AnalysisOptions
    from dinoscope.table import ObjectTable

__all__ = [
    "Analysis",
    "AnalysisContext",
    "ClassNumbers",
    "DatasetNumbers",
    "TableColumn",
    "get_analysis",
    "register_analysis",
    "registered_analyses",
    "rows_as_ids",
    "unregister_analysis",
]

logger = logging.getLogger(__name__)

#: What an analysis needs from a run: its vectors only, >= 2 labelled classes, or whole images (not boxes).
Needs = Literal["vectors", "labels", "whole_images"]
#: Per-class numbers: (the analysis' findings reindexed to every analysed row, the class's rows, class names).
ClassNumbers = Callable[[pd.DataFrame, np.ndarray, list[str]], dict[str, Any]]
#: Dataset-wide numbers: (the result, its findings reindexed to every analysed row).
DatasetNumbers = Callable[[AnalysisResult, pd.DataFrame], dict[str, Any]]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class AnalysisContext:
    """Everything an analysis may read, built once per run and shared by every analysis.

    Attributes:
        vectors: (N, D) float32 unit vectors.
        class_id: (N,) class of every row (0 for unlabelled runs).
        names: Class names indexed by class id.
        labelled: Whether every row carries a real label.
        graph: The all-object kNN graph.
        class_graphs: The within-class kNN graph of every class id.
        split: (N,) split names.
        content_keys: (N,) exact-content keys ("" unknown).
        area: (N,) image or box areas, or None.
        split_rank: (N,) split order among duplicates, or None.
        options: The analysis settings (k, clustering and map methods).
        seed: Seed of every randomised step.
        results: Results of the analyses run before this one, by name (label errors read the duplicates').
        table: The analysed object table (rows aligned with ``vectors``) when the caller has one.
    """

    vectors: np.ndarray
    class_id: np.ndarray
    names: list[str]
    labelled: bool
    graph: NeighborGraph
    class_graphs: Mapping[int, NeighborGraph]
    split: np.ndarray
    content_keys: np.ndarray
    options: AnalysisOptions
    area: np.ndarray | None = None
    split_rank: np.ndarray | None = None
    seed: int = 0
    results: dict[str, AnalysisResult] = field(default_factory=dict)
    table: ObjectTable | None = None

    @property
    def n_labelled_classes(self) -> int:
        """Classes present among the rows when every row is labelled, else 0."""
        return len(self.names) if self.labelled else 0

    @property
    def whole_images(self) -> bool:
        """True when the run's objects are whole images or frames (not boxes)."""
        t = self.table
        return t is not None and len(t) > 0 and bool((t.data["origin"] == "image").all())


@dataclass(frozen=True)
class TableColumn:
    """One column of the CLI's per-class table.

    Attributes:
        header: Column header.
        key: Key of the class's ``summary.json`` entry; ``-`` is shown when absent.
        fmt: ``str.format`` pattern of the value.
    """

    header: str
    key: str
    fmt: str = "{}"

    def cell(self, numbers: Mapping[str, Any]) -> str:
        """The formatted cell of one class's numbers."""
        value = numbers.get(self.key)
        return "-" if value is None else self.fmt.format(value)


@dataclass(frozen=True)
class Analysis:
    """One analysis: how it runs, and what the summary, the CLI and the report show of it.

    Attributes:
        name: The findings file stem (``findings/<name>.parquet``) and the result key.
        run: Computes the result from the shared context.
        title: A short title (report).
        description: One line on what it finds (report exports page).
        needs: ``vectors`` (always runs), ``labels`` (>= 2 labelled classes) or ``whole_images``.
        requires: Analyses whose results it reads (registered before it; skipped when one did not run).
        class_numbers: Its per-class ``summary.json`` numbers.
        dataset_numbers: Its dataset-wide ``summary.json`` numbers.
        advice: Extra recommendation sentences from a class's numbers (classes with enough objects).
        table_columns: Its columns in the CLI's per-class table.
        columns: The finding columns it writes (listed on the exports page, in ``findings.csv``).
        row_columns: Columns holding a row number of the analysed objects (the report turns each into an
            object id column ``<col>_id``).
        class_columns: Columns holding a class id (``findings.csv`` adds ``<col>_name``).
    """

    name: str
    run: Callable[[AnalysisContext], AnalysisResult]
    title: str = ""
    description: str = ""
    needs: Needs = "vectors"
    requires: tuple[str, ...] = ()
    class_numbers: ClassNumbers | None = None
    dataset_numbers: DatasetNumbers | None = None
    advice: Callable[[Mapping[str, Any]], list[str]] | None = None
    table_columns: tuple[TableColumn, ...] = ()
    columns: tuple[str, ...] = ()
    row_columns: tuple[str, ...] = ()
    class_columns: tuple[str, ...] = ()

    def applies(self, context: AnalysisContext) -> bool:
        """Whether the run meets the analysis' needs and its required results exist."""
        if any(name not in context.results for name in self.requires):
            return False
        if self.needs == "labels":
            return context.n_labelled_classes > 1
        if self.needs == "whole_images":
            return context.whole_images
        return True

    def csv_columns(self, present: set[str] | None = None) -> list[str]:
        """Its columns as ``findings.csv`` names them (row numbers as ``<col>_id``, class ids also as names).

        Args:
            present: Only the columns among these (as the report's objects frame names them: row numbers
                already as ``<col>_id``); default all.
        """
        out = []
        for col in self.columns:
            name = f"{col}_id" if col in self.row_columns else col
            if present is not None and name not in present:
                continue
            out += [name, f"{col}_name"] if col in self.class_columns else [name]
        return out


_REGISTRY: dict[str, Analysis] = {}


def register_analysis(analysis: Analysis, *, replace: bool = False) -> Analysis:
    """Add an analysis at the end of the run order (or replace one of the same name in place).

    Args:
        analysis: The entry.
        replace: Replace a registered analysis of the same name (else that is an error).

    Returns:
        The entry.

    Raises:
        ConfigError: A bad name, a name taken, an unknown ``needs`` or a required analysis not registered.

    Example:
        >>> register_analysis(Analysis("norm", find_norm, title="Norm"))  # doctest: +SKIP
    """
    if not _NAME.match(analysis.name):
        raise ConfigError(f"analysis name {analysis.name!r}: use lower-case letters, digits and _ (a file stem)")
    if analysis.name in _REGISTRY and not replace:
        raise ConfigError(f"analysis {analysis.name!r} is already registered; pass replace=True to replace it")
    if analysis.needs not in ("vectors", "labels", "whole_images"):
        raise ConfigError(
            f"analysis {analysis.name!r}: needs={analysis.needs!r}, expected vectors, labels or whole_images"
        )
    names = list(_REGISTRY)
    before = names[: names.index(analysis.name)] if analysis.name in _REGISTRY else names
    missing = [name for name in analysis.requires if name not in before]
    if missing:
        raise ConfigError(f"analysis {analysis.name!r} requires {', '.join(missing)}: register those first")
    _REGISTRY[analysis.name] = analysis
    return analysis


def unregister_analysis(name: str) -> Analysis:
    """Remove an analysis (and return it).

    Raises:
        ConfigError: No analysis of that name, or a registered one requires it.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"no analysis {name!r}; registered: {', '.join(_REGISTRY)}")
    users = [a.name for a in _REGISTRY.values() if name in a.requires]
    if users:
        raise ConfigError(f"analysis {name!r} is required by {', '.join(users)}; unregister those first")
    return _REGISTRY.pop(name)


def registered_analyses() -> list[Analysis]:
    """Every registered analysis, in run order."""
    return list(_REGISTRY.values())


def get_analysis(name: str) -> Analysis | None:
    """The registered analysis of that name, None when there is none."""
    return _REGISTRY.get(name)


def rows_as_ids(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Analysis ``name``'s findings with its row-number columns (``row_columns``) as ``<col>_id`` object ids.

    Row numbers mean something only inside one run; object ids survive a join, an export or a report
    (-1 -> ``""``). The frame is changed in place and returned.

    Example:
        >>> frame = pd.DataFrame({"object_id": ["a", "b"], "duplicate_of": [1, -1]})
        >>> rows_as_ids("duplicates", frame)["duplicate_of_id"].tolist()
        ['b', '']
    """
    ids = frame["object_id"].to_numpy()
    analysis = get_analysis(name)
    for col in analysis.row_columns if analysis is not None else ():
        if col in frame.columns:
            rows = frame.pop(col).to_numpy()
            frame[f"{col}_id"] = np.where(rows >= 0, ids[np.clip(rows, 0, max(len(ids) - 1, 0))], "")
    return frame


# --- the analyses shipped with dinoscope, in run order (one entry each) -------------------------------------
for _analysis in (
    Analysis(
        "clusters",
        builtin.run_clusters,
        title="Sub-groups",
        description="sub-types within each class (clustering of the within-class graph), with medoids and stability",
        class_numbers=builtin.cluster_numbers,
        table_columns=(TableColumn("groups", "n_clusters"),),
        columns=(
            "cluster",
            "cluster_size",
            "is_medoid",
            "is_representative",
            "cluster_quality",
            "cluster_stability",
            "is_unclustered",
        ),
    ),
    Analysis(
        "outliers",
        builtin.run_outliers,
        title="Outliers",
        description="objects unusual for their class (robust z of neighbour and class-centre distances)",
        class_numbers=builtin.outlier_numbers,
        table_columns=(TableColumn("outliers", "n_outliers"),),
        columns=builtin.OUTLIER_COLUMNS,
    ),
    Analysis(
        "duplicates",
        builtin.run_duplicates,
        title="Near-duplicates",
        description="exact and near copies, grouped, with the copy to keep",
        class_numbers=builtin.duplicate_numbers,
        dataset_numbers=builtin.duplicate_dataset_numbers,
        table_columns=(TableColumn("dups", "n_near_duplicates"),),
        columns=builtin.DUPLICATE_COLUMNS,
        row_columns=("nearest_duplicate", "duplicate_of"),
    ),
    Analysis(
        "label_errors",
        builtin.run_label_errors,
        title="Label errors",
        description="objects whose neighbours vote for another class, with the suggested class",
        needs="labels",
        requires=("duplicates",),
        class_numbers=builtin.label_error_numbers,
        table_columns=(TableColumn("label err", "n_label_errors"),),
        columns=("is_label_error", "label_quality", "suggested_class", "suggested_share", "n_votes"),
        class_columns=("suggested_class",),
    ),
    Analysis(
        "overlap",
        builtin.run_overlap,
        title="Class overlap",
        description="how many of each object's neighbours belong to other classes (separability)",
        needs="labels",
        class_numbers=builtin.overlap_numbers,
        dataset_numbers=builtin.overlap_dataset_numbers,
        table_columns=(TableColumn("separ.", "separability", "{:.2f}"),),
        columns=("is_overlapping", "separability_quality", "other_class_share", "nearest_other_class"),
        class_columns=("nearest_other_class",),
    ),
    Analysis(
        "leakage",
        builtin.run_leakage,
        title="Split leakage",
        description="duplicate groups whose copies sit in more than one split",
        requires=("duplicates",),
        dataset_numbers=builtin.leakage_dataset_numbers,
        columns=("is_leaked", "leakage_quality", "leak_pair", "leaked_with"),
        row_columns=("leaked_with",),
    ),
    Analysis(
        "quality",
        builtin.run_quality,
        title="Image quality",
        description="blurry, dark, over-exposed and flat whole images or frames",
        needs="whole_images",
        class_numbers=builtin.quality_numbers,
        dataset_numbers=builtin.quality_dataset_numbers,
        columns=builtin.QUALITY_COLUMNS,
    ),
):
    register_analysis(_analysis)
del _analysis
