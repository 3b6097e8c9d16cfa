"""Which objects the report shows: featured lists per class, map samples and the thumbnail budget.

Everything here is selection, never scoring: lists are ordered by the analyses' own qualities (low =
suspicious) and maps are uniform seeded samples with their counts shown, so a 100 k-object run renders the
same page structure as a 1 k one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ClassPlan", "GroupPlan", "Limits", "ReportPlan", "plan_report"]


@dataclass(frozen=True)
class Limits:
    """How much the report shows.

    Attributes:
        max_groups: Sub-groups shown per class (the largest; the rest are counted).
        per_group: Representatives shown per sub-group.
        max_list: Outliers / label-error candidates listed per class (worst first; the rest are counted).
        max_dup_groups: Near-duplicate groups listed per class and in the dataset-wide list.
        per_dup_group: Members shown per near-duplicate group.
        max_class_points: Points drawn on a class map (a seeded uniform sample beyond, counts shown).
        max_map_points: Points drawn on the dataset-wide map.
        max_thumbnails: Thumbnails in all (featured objects first, then map points, shared fairly by class).
        max_context_images: Downscaled source images shipped for the object inspector (featured objects).
        seed: Seed of every sample.
    """

    max_groups: int = 24
    per_group: int = 8
    max_list: int = 48
    max_dup_groups: int = 24
    per_dup_group: int = 8
    max_class_points: int = 2_000
    max_map_points: int = 20_000
    max_thumbnails: int = 40_000
    max_context_images: int = 1_500
    seed: int = 0


@dataclass
class GroupPlan:
    """One sub-group of a class: its cluster label, size, the rows shown (medoid first), the members' mean
    ``cluster_quality`` (cohesion) and the group's stability over resamples (spectral method; None otherwise)."""

    cluster: int
    size: int
    shown: np.ndarray
    cohesion: float | None = None
    stability: float | None = None


@dataclass
class ClassPlan:
    """What one class page shows; arrays hold row positions in ``RunData.objects``.

    Attributes:
        rows: Every row of the class.
        groups: Sub-groups shown, largest first.
        ranks: {cluster label: rank by size} of every sub-group (``group {rank + 1}`` on every page).
        n_groups: Sub-groups in the class; ``n_groups - len(groups)`` are only counted.
        unclustered: A sample of rows in no sub-group; ``n_unclustered`` counts them all.
        outliers: Flagged outliers, worst first (``outliers_flagged``), or, when none is flagged, the
            least typical objects for reference.
        label_errors: Label-error candidates, lowest label quality first.
        dup_groups: Near-duplicate groups holding objects of the class, each an array of rows.
        drawn: Rows drawn on the class map.
        objs: Rows the class data file describes (featured, drawn, and on the dataset-wide map).
        thumbs: Rows with a thumbnail, in cell order (featured first).
    """

    cls: int
    name: str
    rows: np.ndarray
    groups: list[GroupPlan] = field(default_factory=list)
    n_groups: int = 0
    unclustered: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    n_unclustered: int = 0
    outliers: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    outliers_flagged: bool = True
    label_errors: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    ranks: dict[int, int] = field(default_factory=dict)
    dup_groups: list[np.ndarray] = field(default_factory=list)
    n_dup_groups: int = 0
    drawn: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    objs: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    thumbs: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def featured(self) -> np.ndarray:
        """Rows shown as thumbnails in the page's lists, in display order, without repeats."""
        parts = [g.shown for g in self.groups] + [self.unclustered, self.outliers, self.label_errors, *self.dup_groups]
        return _unique_in_order(np.concatenate(parts)) if parts else np.empty(0, np.int64)


@dataclass
class ReportPlan:
    """The selection for the whole report.

    Attributes:
        classes: One plan per class index.
        global_drawn: Rows drawn on the dataset-wide map.
        dup_groups: Dataset-wide near-duplicate groups listed (largest first), each an array of rows.
        leak_groups: Groups spanning splits (leakage), each an array of rows.
        context: Rows whose source image is shipped downscaled for the inspector.
        limits: The limits used.
    """

    classes: list[ClassPlan]
    global_drawn: np.ndarray
    dup_groups: list[np.ndarray]
    leak_groups: list[np.ndarray]
    context: np.ndarray
    limits: Limits


def plan_report(objects: pd.DataFrame, names: list[str], limits: Limits) -> ReportPlan:
    """Choose what each part of the report shows.

    Args:
        objects: ``RunData.objects`` (analysed objects with findings and map columns).
        names: Class names (index = ``objects["cls"]``).
        limits: How much to show.

    Returns:
        A :class:`ReportPlan`.

    Example:
        >>> plan = plan_report(data.objects, data.names, Limits())  # doctest: +SKIP
        >>> len(plan.classes[0].groups)  # doctest: +SKIP
        3
    """
    rng = np.random.default_rng(limits.seed)
    cls = objects["cls"].to_numpy()
    groups = _duplicate_groups(objects)
    classes = []
    for c, name in enumerate(names):
        plan = ClassPlan(cls=c, name=name, rows=np.flatnonzero(cls == c))
        _plan_groups(plan, objects, limits, rng)
        _plan_lists(plan, objects, limits)
        member = [g for g in groups if (cls[g] == c).any()]
        plan.n_dup_groups = len(member)
        plan.dup_groups = [g[: limits.per_dup_group] for g in member[: limits.max_dup_groups]]
        plan.drawn = _sample_drawn(plan, objects, limits, rng)
        classes.append(plan)
    global_drawn = _sample_global(objects, limits, rng)
    dup_groups = [g[: limits.per_dup_group] for g in groups[: limits.max_dup_groups]]
    leak_groups = [g[: limits.per_dup_group] for g in _leak_groups(objects, groups)[: limits.max_dup_groups]]
    listed = np.concatenate([np.empty(0, np.int64), *dup_groups, *leak_groups]).astype(np.int64)
    for plan in classes:
        extra = listed[cls[listed] == plan.cls]
        on_global = global_drawn[cls[global_drawn] == plan.cls]
        plan.objs = _unique_in_order(np.concatenate([plan.featured, extra, plan.drawn, on_global]))
    _assign_thumbnails(classes, [np.concatenate([p.featured, listed[cls[listed] == p.cls]]) for p in classes], limits)
    context = _context_order(classes, leak_groups, dup_groups)
    return ReportPlan(classes, global_drawn, dup_groups, leak_groups, context, limits)


def _context_order(classes: list[ClassPlan], leaks: list[np.ndarray], dups: list[np.ndarray]) -> np.ndarray:
    """Featured rows by review priority - label errors, flagged outliers, leaks and duplicates, sub-group
    representatives, the rest - taking classes in turn within a tier, so a capped budget of context images
    covers every class's most important lists first."""
    empty = np.empty(0, np.int64)
    tiers = [
        [p.label_errors for p in classes],
        [p.outliers if p.outliers_flagged else empty for p in classes],
        [np.concatenate([empty, *leaks])],
        [np.concatenate([empty, *p.dup_groups]) for p in classes] + [np.concatenate([empty, *dups])],
        [np.concatenate([empty, *(g.shown for g in p.groups)]) for p in classes],
        [p.featured for p in classes],
    ]
    order = [_round_robin(tier) for tier in tiers]
    return _unique_in_order(np.concatenate(order))


def _round_robin(lists: list[np.ndarray]) -> np.ndarray:
    """First elements of every list, then the second ones, ..."""
    longest = max((len(x) for x in lists), default=0)
    out = [x[i] for i in range(longest) for x in lists if i < len(x)]
    return np.asarray(out, dtype=np.int64)


def _unique_in_order(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]


def _col(objects: pd.DataFrame, name: str, default: object) -> np.ndarray:
    if name in objects.columns:
        return objects[name].fillna(default).to_numpy()
    return np.full(len(objects), default)


def _plan_groups(plan: ClassPlan, objects: pd.DataFrame, limits: Limits, rng: np.random.Generator) -> None:
    rows = plan.rows
    if "cluster" not in objects.columns or not len(rows):
        return
    cluster = objects["cluster"].to_numpy()[rows]
    medoid = _col(objects, "is_medoid", False)[rows].astype(bool)
    rep = _col(objects, "is_representative", False)[rows].astype(bool)
    quality = _col(objects, "cluster_quality", np.nan)[rows].astype(float)
    stability = _col(objects, "cluster_stability", np.nan)[rows].astype(float)
    labels, sizes = np.unique(cluster[cluster >= 0], return_counts=True)
    order = np.lexsort((labels, -sizes))
    plan.n_groups = len(labels)
    plan.ranks = {int(labels[i]): rank for rank, i in enumerate(order)}
    for i in order[: limits.max_groups]:
        inside = cluster == labels[i]
        ranked = np.lexsort((-quality[inside], ~rep[inside], ~medoid[inside]))  # medoid, representatives, cohesive
        shown = rows[inside][ranked][: limits.per_group]
        cohesion = float(np.nanmean(quality[inside])) if np.isfinite(quality[inside]).any() else None
        stable = stability[inside][np.isfinite(stability[inside])]
        plan.groups.append(
            GroupPlan(int(labels[i]), int(sizes[i]), shown, cohesion, float(stable[0]) if len(stable) else None)
        )
    loose = rows[cluster < 0]
    plan.n_unclustered = len(loose)
    take = min(len(loose), limits.per_group)
    plan.unclustered = np.sort(rng.choice(loose, size=take, replace=False)) if take else loose[:0]


def _plan_lists(plan: ClassPlan, objects: pd.DataFrame, limits: Limits) -> None:
    rows = plan.rows
    if "outlier_quality" in objects.columns and len(rows):
        quality = objects["outlier_quality"].to_numpy()[rows].astype(float)
        flagged = _col(objects, "is_outlier", False)[rows].astype(bool)
        ranked = rows[np.argsort(np.nan_to_num(quality, nan=1.0), kind="stable")]
        plan.outliers_flagged = bool(flagged.any())
        if plan.outliers_flagged:
            plan.outliers = ranked[np.isin(ranked, rows[flagged])][: limits.max_list]
        else:
            plan.outliers = ranked[: min(6, len(ranked))]
    if "is_label_error" in objects.columns and len(rows):
        flagged = rows[_col(objects, "is_label_error", False)[rows].astype(bool)]
        quality = _col(objects, "label_quality", 1.0)[flagged].astype(float)
        plan.label_errors = flagged[np.argsort(quality, kind="stable")][: limits.max_list]


def _duplicate_groups(objects: pd.DataFrame) -> list[np.ndarray]:
    """Near-duplicate groups (rows, the copy to keep first), largest first."""
    if "duplicate_group" not in objects.columns:
        return []
    group = objects["duplicate_group"].fillna(-1).to_numpy().astype(np.int64)
    keep = _col(objects, "keep", True).astype(bool)
    rows = np.flatnonzero(group >= 0)
    if not len(rows):
        return []
    order = rows[np.lexsort((rows, ~keep[rows], group[rows]))]  # keeper first in each group
    _, start, counts = np.unique(group[order], return_index=True, return_counts=True)
    found = [order[s : s + n] for s, n in zip(start, counts, strict=True)]
    found.sort(key=lambda g: (-len(g), int(g[0])))
    return found


def _leak_groups(objects: pd.DataFrame, groups: list[np.ndarray]) -> list[np.ndarray]:
    if "is_leaked" not in objects.columns:
        return []
    leaked = _col(objects, "is_leaked", False).astype(bool)
    return [g for g in groups if leaked[g].any()]


def _sample_drawn(plan: ClassPlan, objects: pd.DataFrame, limits: Limits, rng: np.random.Generator) -> np.ndarray:
    """Rows drawn on the class map: all when few, else every featured row plus a uniform sample."""
    if "class_x" not in objects.columns:
        return np.empty(0, np.int64)
    rows = plan.rows[np.isfinite(objects["class_x"].to_numpy()[plan.rows].astype(float))]
    if len(rows) <= limits.max_class_points:
        return rows
    must = plan.featured[np.isin(plan.featured, rows)][: limits.max_class_points // 4]
    rest = np.setdiff1d(rows, must)
    extra = rng.choice(rest, size=limits.max_class_points - len(must), replace=False)
    return np.sort(np.concatenate([must, extra]))


def _sample_global(objects: pd.DataFrame, limits: Limits, rng: np.random.Generator) -> np.ndarray:
    if "x" not in objects.columns:
        return np.empty(0, np.int64)
    rows = np.flatnonzero(np.isfinite(objects["x"].to_numpy().astype(float)))
    if len(rows) <= limits.max_map_points:
        return rows
    return np.sort(rng.choice(rows, size=limits.max_map_points, replace=False))


def _assign_thumbnails(classes: list[ClassPlan], listed: list[np.ndarray], limits: Limits) -> None:
    """Featured rows always get a thumbnail; map points share what is left of the budget fairly by class."""
    must = [_unique_in_order(m) for m in listed]
    optional = [np.setdiff1d(p.objs, m, assume_unique=False) for p, m in zip(classes, must, strict=True)]
    left = max(0, limits.max_thumbnails - sum(len(m) for m in must))
    quota = _water_fill([len(o) for o in optional], left)
    for plan, m, o, q in zip(classes, must, optional, quota, strict=True):
        # Map points in the class's own map first: the points a reader hovers most.
        on_map = np.isin(o, plan.drawn)
        o = np.concatenate([o[on_map], o[~on_map]])
        plan.thumbs = np.concatenate([m, o[:q]]).astype(np.int64)


def _water_fill(wants: list[int], budget: int) -> list[int]:
    """Split ``budget`` among demands: equal shares, the unused part of small demands passed on."""
    quota = [0] * len(wants)
    open_ = [i for i, w in enumerate(wants) if w > 0]
    while open_ and budget > 0:
        share = max(1, budget // len(open_))
        still = []
        for i in open_:
            give = min(share, wants[i] - quota[i], budget)
            quota[i] += give
            budget -= give
            if quota[i] < wants[i]:
                still.append(i)
            if budget <= 0:
                break
        open_ = still
    return quota
