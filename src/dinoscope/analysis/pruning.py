"""Which images of a training set to keep: copies first, then the easy middle of regions the model does well on.

Objects are ranked, images follow. Every object gets a keep priority in tiers (higher = kept first):

0. ``near_duplicate`` — a copy (:func:`~.curation.find_copy_groups`, SemDeDup's idea: Abbas et al., "SemDeDup:
   data-efficient learning at web-scale through semantic deduplication", 2023, with dinoscope's data-driven
   threshold instead of a fixed cosine ``eps``) that is not its group's keeper. Keepers are chosen per image:
   every group keeps its member in the image that ranks first (the most grouped objects, then the lowest
   image number), so a photo's copies drop whole images rather than one box here and one there.
1. ``far_from_centre`` / ``close_to_centre`` — objects of regions the model does well on (k-means regions whose
   mean loss is at most the median region's; every region when there is no loss). Inside a region they are
   ranked by the prototype metric of Sorscher et al., "Beyond neural scaling laws: beating power law scaling via
   data pruning", NeurIPS 2022 (cosine distance to the nearest k-means centroid), as its within-region quantile:
   with data to spare (keeping less than half), far = hard examples are kept and the easy centre is dropped;
   keeping more than half, the paper's advice flips: easy ones are kept and the farthest dropped.
2. ``high_loss_region`` — objects of regions with a mean loss above the median region's.
3. protected: ``high_loss`` (loss >= :data:`~.detection_loss.HIGH_LOSS_RATIO` x the mean), ``boundary``
   (at least :data:`BOUNDARY_SHARE` of the graph neighbours carry another class) and ``representative`` (the
   member nearest the mean of each sub-group, from the run's ``clusters`` findings or else each region).

Because an approximate (HNSW) graph can miss a copy's partner, the objects that decide the kept images are then
checked exactly, region by region, with the same rule; a copy found drops to tier 0 and the images are chosen
again (``info["n_copies_found_by_exact_check"]``).

**Images**: an image's priority is the highest of its objects' (an image is worth its most valuable object),
and the ``n_keep`` images of highest priority are kept whole: a kept image keeps every label, because removing a
box from an image that stays would teach a detector that the object is background. Class floors win over the
budget: while a class has fewer than ``min(class_floor, its count)`` objects in kept images, its best dropped
image is added back (reason ``class_floor``; ``info["n_over_budget"]``).

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(60, 8)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> res = select_to_keep(x, np.zeros(60, int), np.arange(60), 20, class_floor=0)
    >>> int(res.image_kept.sum())
    20
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.curation import (
    build_curation_graph,
    find_copy_groups,
    fit_kmeans,
    nearest_centroid,
    neighbour_scale,
)
from dinoscope.analysis.detection_loss import HIGH_LOSS_RATIO

__all__ = ["BOUNDARY_SHARE", "Pruning", "select_to_keep"]

logger = logging.getLogger(__name__)

#: Share of an object's neighbours in other classes from which it sits on a class boundary.
BOUNDARY_SHARE = 1 / 3
#: Most k-means regions (about sqrt(N) below that).
MAX_REGIONS = 1000
#: Rounds of the exact copy check of the objects that decide the kept images.
_CHECK_ROUNDS = 3


@dataclass
class Pruning:
    """What to keep.

    Attributes:
        kept: (N,) bool per object: its image is kept.
        reason: (N,) why: for kept objects the reason they rank high (or ``same_image``: kept with its image,
            ``class_floor``); for dropped ones why they rank low.
        image_kept: (n_images,) bool.
        region: (N,) k-means region of every object; ``prototype_distance`` (N,) to its centroid.
        info: Regions, thresholds, duplicate rule, counts.
    """

    kept: np.ndarray
    reason: np.ndarray
    image_kept: np.ndarray
    region: np.ndarray
    prototype_distance: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def select_to_keep(
    vectors: np.ndarray,
    class_id: np.ndarray,
    image: np.ndarray,
    n_keep: int,
    *,
    loss: np.ndarray | None = None,
    subgroup: np.ndarray | None = None,
    class_floor: int = 20,
    graph: NeighborGraph | None = None,
    seed: int = 0,
) -> Pruning:
    """Rank objects (see the module docstring) and keep the ``n_keep`` best images.

    Args:
        vectors: (N, D) float32 unit vectors of the objects.
        class_id: (N,) class of every object (-1 unlabelled: no boundary, no floor).
        image: (N,) image number of every object (0 .. n_images - 1; images without objects may exist).
        n_keep: Images to keep.
        loss: (N,) per-object loss (NaN unknown) or None.
        subgroup: (N,) sub-group of every object within its class (-1 none), e.g. the ``clusters`` findings.
        class_floor: Objects of each class that must stay (or all of them).
        graph: The kNN graph of ``vectors`` (built when None).
        seed: Seed of k-means and the graph.
    """
    n = len(vectors)
    class_id, image = np.asarray(class_id, np.int64), np.asarray(image, np.int64)
    if class_id.shape != (n,) or image.shape != (n,):
        raise ValueError(f"class_id {class_id.shape} and image {image.shape} must have shape ({n},)")
    n_images = int(image.max()) + 1 if n else 0
    graph = build_curation_graph(vectors, seed=seed) if graph is None else graph
    groups, dup_info = find_copy_groups(vectors, graph)
    n_regions = int(min(MAX_REGIONS, max(2, round(np.sqrt(n))), n))
    centroids = fit_kmeans(vectors, n_regions, seed=seed)[1]
    region, dist = nearest_centroid(vectors, centroids)
    quantile = _within_region_quantile(region, dist)
    far_first = n_keep < 0.5 * n_images
    info: dict[str, Any] = {"n_regions": n_regions, "duplicates": dup_info, "keep_far_from_centre": far_first}

    priority = np.where(far_first, quantile, 1.0 - quantile) + 1.0
    reason_keep = np.full(n, "far_from_centre" if far_first else "close_to_centre", dtype=object)
    reason_drop = np.full(n, "close_to_centre" if far_first else "far_from_centre", dtype=object)
    if loss is not None and np.isfinite(loss).any():
        poor = _poor_regions(region, np.asarray(loss, float), n_regions, info)
        priority = np.where(poor[region], priority + 1.0, priority)
        reason_keep[poor[region]] = "high_loss_region"
        reason_drop[poor[region]] = "budget"
    protected = _protected(vectors, class_id, graph, groups, region, loss, subgroup, info)
    priority = np.where(protected != "", 3.0 + priority / 10, priority)
    reason_keep = np.where(protected != "", protected, reason_keep)
    copy = _copies(groups, image)
    priority[copy] = 0.0 + (priority[copy] % 1.0) / 10
    reason_keep[copy], reason_drop[copy] = "near_duplicate_for_budget", "near_duplicate"
    reason_drop[(protected != "") & ~copy] = "budget"

    scale = neighbour_scale(graph, n)
    threshold = float(dup_info.get("threshold", 0.0))
    n_missed = 0
    for _ in range(_CHECK_ROUNDS):  # an approximate graph can miss a copy: check the deciding objects exactly
        image_priority = np.full(n_images, -1.0)
        np.maximum.at(image_priority, image, priority)
        order = np.lexsort((np.arange(n_images), -image_priority))
        image_kept = np.zeros(n_images, dtype=bool)
        image_kept[order[: min(n_keep, n_images)]] = True
        missed = _missed_copies(vectors, image, priority, image_kept, region, scale, threshold, copy)
        if not len(missed):
            break
        n_missed += len(missed)
        copy[missed] = True
        priority[missed] = (priority[missed] % 1.0) / 10
        reason_keep[missed], reason_drop[missed] = "near_duplicate_for_budget", "near_duplicate"
    info["n_copies_found_by_exact_check"] = n_missed
    floor_added = _apply_floors(class_id, image, image_kept, order, class_floor, info)

    kept = image_kept[image]
    best = np.full(n_images, -1.0)
    np.maximum.at(best, image, priority)
    own = kept & (priority >= best[image])
    reason = np.where(kept, np.where(own, reason_keep, "same_image"), reason_drop)
    reason[floor_added[image] & kept] = "class_floor"
    info.update(n_objects=n, n_images=n_images, n_images_kept=int(image_kept.sum()), n_copies=int(copy.sum()),
                n_objects_kept=int(kept.sum()))  # fmt: skip
    return Pruning(kept, reason.astype(object), image_kept, region, dist, info)


def _missed_copies(
    vectors: np.ndarray,
    image: np.ndarray,
    priority: np.ndarray,
    image_kept: np.ndarray,
    region: np.ndarray,
    scale: np.ndarray,
    threshold: float,
    copy: np.ndarray,
) -> np.ndarray:
    """Rows that decide a kept image and are exact-rule copies of a higher-priority deciding row of the same
    k-means region (near-identical vectors share a region; checked region by region, exactly)."""
    from dinoscope.analysis.curation import find_exact_copies

    rows = np.flatnonzero(image_kept[image] & ~copy)
    best = np.full(len(image_kept), -1.0)
    np.maximum.at(best, image[rows], priority[rows])
    rows = rows[priority[rows] >= best[image[rows]]]
    rows = rows[np.lexsort((rows, -priority[rows], region[rows]))]
    out = []
    bounds = np.flatnonzero(np.diff(region[rows])) + 1
    for part in np.split(rows, bounds) if len(rows) else []:
        if len(part) > 1:
            out.append(part[find_exact_copies(vectors, part, part[:0], scale, threshold)])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _within_region_quantile(region: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(N,) rank of each distance within its region, scaled to [0, 1) (0 = closest to the centroid)."""
    order = np.lexsort((dist, region))
    sizes = np.bincount(region)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(len(region), dtype=np.float64)
    rank[order] = np.arange(len(region)) - starts[region[order]]
    return rank / np.maximum(sizes[region], 1)


def _poor_regions(region: np.ndarray, loss: np.ndarray, k: int, info: dict[str, Any]) -> np.ndarray:
    known = np.isfinite(loss)
    total = np.bincount(region[known], weights=loss[known], minlength=k)
    count = np.bincount(region[known], minlength=k)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    median = float(np.nanmedian(mean)) if np.isfinite(mean).any() else 0.0
    poor = np.nan_to_num(mean, nan=0.0) > median
    info.update(region_loss_median=median, n_high_loss_regions=int(poor.sum()))
    return poor


def _protected(
    vectors: np.ndarray,
    class_id: np.ndarray,
    graph: NeighborGraph,
    groups: np.ndarray,
    region: np.ndarray,
    loss: np.ndarray | None,
    subgroup: np.ndarray | None,
    info: dict[str, Any],
) -> np.ndarray:
    """(N,) ``high_loss``, ``boundary``, ``representative`` or ``""``."""
    n = len(vectors)
    out = np.full(n, "", dtype=object)
    # representatives: per (class, sub-group), or per region, the member nearest the mean
    key = np.where(subgroup >= 0, class_id * 100_000 + subgroup, -1 - region) if subgroup is not None else region
    _, inv = np.unique(key, return_inverse=True)
    sums = np.zeros((inv.max() + 1, vectors.shape[1]))
    np.add.at(sums, inv, vectors)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    sim = np.einsum("ij,ij->i", vectors, sums[inv].astype(np.float32))
    order = np.lexsort((-sim, inv))
    first = order[np.r_[True, np.diff(inv[order]) != 0]]
    out[first] = "representative"
    labelled = class_id >= 0
    if labelled.any() and len(np.unique(class_id[labelled])) > 1:
        idx = graph.indices
        ok = (idx >= 0) & (groups[np.maximum(idx, 0)] != np.where(groups >= 0, groups, -2)[graph.rows][:, None])
        other = (
            ok & (class_id[np.maximum(idx, 0)] != class_id[graph.rows][:, None]) & (class_id[graph.rows] >= 0)[:, None]
        )
        share = np.zeros(n)
        share[graph.rows] = other.sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
        out[(share >= BOUNDARY_SHARE) & labelled] = "boundary"
    if loss is not None and np.isfinite(loss).any():
        threshold = HIGH_LOSS_RATIO * float(np.nanmean(loss))
        out[np.nan_to_num(loss, nan=-1.0) >= threshold] = "high_loss"
        info["high_loss_threshold"] = threshold
    info.update({f"n_{r}": int((out == r).sum()) for r in ("representative", "boundary", "high_loss")})
    return out


def _copies(groups: np.ndarray, image: np.ndarray) -> np.ndarray:
    """(N,) bool: a copy that is not its group's keeper (keepers sit in the best-ranked image of each group)."""
    n = len(groups)
    member = groups >= 0
    grouped_per_image = np.bincount(image[member], minlength=int(image.max()) + 1 if n else 0)
    image_rank = np.empty(len(grouped_per_image), dtype=np.int64)
    image_rank[np.lexsort((np.arange(len(grouped_per_image)), -grouped_per_image))] = np.arange(len(image_rank))
    rows = np.flatnonzero(member)
    order = rows[np.lexsort((rows, image_rank[image[rows]], groups[rows]))]
    keeper = order[np.r_[True, np.diff(groups[order]) != 0]] if len(order) else order
    copy = member.copy()
    copy[keeper] = False
    return copy


def _apply_floors(
    class_id: np.ndarray,
    image: np.ndarray,
    image_kept: np.ndarray,
    order: np.ndarray,
    class_floor: int,
    info: dict[str, Any],
) -> np.ndarray:
    """Add back the best dropped images of classes below their floor; (n_images,) bool: added."""
    added = np.zeros(len(image_kept), dtype=bool)
    labelled = class_id >= 0
    if not labelled.any() or class_floor <= 0:
        info["n_over_budget"] = 0
        return added
    n_classes = int(class_id.max()) + 1
    total = np.bincount(class_id[labelled], minlength=n_classes)
    floor = np.minimum(total, class_floor)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    frame = pd.DataFrame({"c": class_id[labelled], "img": image[labelled]})
    for c in np.flatnonzero(floor > 0):
        mine = frame[frame["c"] == c]
        have = int(image_kept[mine["img"]].sum())
        if have >= floor[c]:
            continue
        per_image = mine[~image_kept[mine["img"]]].groupby("img").size()
        candidates = per_image.index.to_numpy()[np.argsort(rank[per_image.index.to_numpy()], kind="stable")]
        for img in candidates:
            if have >= floor[c]:
                break
            image_kept[img] = added[img] = True
            have += int(per_image[img])
    info.update(class_floor=class_floor, n_over_budget=int(added.sum()))
    return added
