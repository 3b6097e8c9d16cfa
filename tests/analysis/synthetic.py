"""Synthetic embedding sets with planted answers, shared by the analysis tests.

:func:`make_vectors` draws unit vectors from a Gaussian mixture on the sphere: every class has a centre (a
random direction), every class has sub-groups whose centres are the class centre pushed a fixed amount along
random directions, and every object is its sub-group centre plus isotropic Gaussian noise, L2-normalised.
On top of that it plants, each recorded by row number:

* outliers: random directions (far from every class in 64+ dimensions), given a class label round-robin;
* duplicate pairs: an extra row copied from an existing ordinary row (exact, or with ``duplicate_noise``);
* swapped labels: ordinary rows whose ``class_id`` was changed to another class (``true_class_id`` keeps the
  truth).

Rows are shuffled so that no test can pass by relying on the generation order.

Example:
    >>> syn = make_vectors([300, 200], n_subgroups_per_class=3, n_outliers=10, seed=1)
    >>> syn.vectors.shape, syn.outliers.shape
    ((510, 64), (10,))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dinoscope.analysis.base import NeighborGraph

__all__ = ["Synthetic", "exact_class_graphs", "exact_graph", "make_vectors", "normalize"]


@dataclass(frozen=True)
class Synthetic:
    """A synthetic embedding set and everything that was planted in it.

    Attributes:
        vectors: (N, D) float32 L2-normalised vectors.
        class_id: (N,) int64 observed labels (after the label swaps).
        true_class_id: (N,) int64 true labels (before the swaps); equal to ``class_id`` elsewhere.
        subgroup: (N,) int64 sub-group index within the true class (0..S-1), -1 for planted outliers.
        outliers: (n_outliers,) int64 rows of the planted outliers, sorted.
        duplicate_pairs: (n_duplicates, 2) int64 (original row, copy row) pairs.
        swapped: (n_swapped,) int64 rows whose label was swapped, sorted; their truth is ``true_class_id``.
        class_centres: (C, D) float32 unit class centres, in the order of ``classes``.
        classes: (C,) int64 class ids.
    """

    vectors: np.ndarray
    class_id: np.ndarray
    true_class_id: np.ndarray
    subgroup: np.ndarray
    outliers: np.ndarray
    duplicate_pairs: np.ndarray
    swapped: np.ndarray
    class_centres: np.ndarray
    classes: np.ndarray

    @property
    def swapped_true_class(self) -> np.ndarray:
        """(n_swapped,) int64 true class of each row in ``swapped``."""
        return self.true_class_id[self.swapped]

    def rows_of(self, class_id: int) -> np.ndarray:
        """Rows labelled ``class_id`` (observed labels), ascending."""
        return np.flatnonzero(self.class_id == class_id)


def normalize(x: np.ndarray) -> np.ndarray:
    """Return ``x`` (.., D) scaled to unit L2 norm along the last axis, as float32."""
    x = np.asarray(x, dtype=np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _per_class(value: int | Sequence[int] | Mapping[int, int], classes: np.ndarray, name: str) -> dict[int, int]:
    if isinstance(value, Mapping):
        return {int(c): int(value.get(int(c), 0)) for c in classes}
    if isinstance(value, (int, np.integer)):
        return {int(c): int(value) for c in classes}
    if len(value) != len(classes):
        raise ValueError(f"{name} has {len(value)} entries for {len(classes)} classes")
    return {int(c): int(v) for c, v in zip(classes, value, strict=True)}


def make_vectors(
    n_per_class: Mapping[int, int] | Sequence[int],
    dim: int = 64,
    n_subgroups_per_class: int | Sequence[int] | Mapping[int, int] = 1,
    n_outliers: int = 0,
    n_duplicates: int = 0,
    n_swapped: int = 0,
    *,
    subgroup_offset: float = 0.8,
    noise: float = 0.05,
    duplicate_noise: float = 0.0,
    subgroup_weights: Sequence[float] | None = None,
    seed: int = 0,
) -> Synthetic:
    """Draw a Gaussian mixture of classes and sub-groups on the unit sphere, with planted problems.

    Geometry (before normalisation): class centre ``c`` is a random unit vector; sub-group centre is
    ``normalize(c + subgroup_offset * u)`` with ``u`` a random unit vector; an object is its sub-group centre
    plus ``N(0, noise² I)``. With the defaults (64-d, offset 0.8, noise 0.05) two sub-groups of a class are
    about 1.1 apart while neighbours within a sub-group are about 0.5 apart, so sub-groups are well separated;
    raise ``noise`` or lower ``subgroup_offset`` to make them overlap.

    Args:
        n_per_class: Ordinary objects per class: ``{class_id: n}`` or a list (class ids 0..C-1).
        dim: Vector dimension D.
        n_subgroups_per_class: Sub-groups per class (one int for all, a list in class order, or a dict).
        n_outliers: Extra rows in random directions, labelled round-robin over the classes.
        n_duplicates: Extra rows that copy a random ordinary row (same labels); see ``duplicate_noise``.
        n_swapped: Ordinary rows whose observed class is changed to another random class (needs 2+ classes).
        subgroup_offset: Distance of sub-group centres from their class centre, before normalisation.
        noise: Per-dimension standard deviation of the objects around their sub-group centre.
        duplicate_noise: Per-dimension noise added to a duplicate (0 = exact copy).
        subgroup_weights: Relative sub-group sizes (largest first by default: weights 1, 1/2, 1/3, ...
            so that size order is unambiguous).
        seed: Random seed; the same arguments always give the same set.

    Returns:
        A :class:`Synthetic` with N = sum(n_per_class) + n_outliers + n_duplicates rows.

    Example:
        >>> syn = make_vectors({3: 100, 7: 50}, n_subgroups_per_class={3: 2, 7: 1}, n_swapped=5)
        >>> int((syn.class_id != syn.true_class_id).sum())
        5
    """
    rng = np.random.default_rng(seed)
    sizes = dict(n_per_class) if isinstance(n_per_class, Mapping) else dict(enumerate(n_per_class))
    classes = np.array(sorted(int(c) for c in sizes), dtype=np.int64)
    n_sub = _per_class(n_subgroups_per_class, classes, "n_subgroups_per_class")
    if n_swapped and len(classes) < 2:
        raise ValueError("n_swapped needs at least two classes")
    centres = normalize(rng.standard_normal((len(classes), dim)))

    vecs, cls, sub = [], [], []
    for ci, c in enumerate(classes):
        n, s = int(sizes[int(c)]), max(1, n_sub[int(c)])
        weights = np.asarray(subgroup_weights if subgroup_weights is not None else 1.0 / np.arange(1, s + 1))[:s]
        counts = np.floor(weights / weights.sum() * n).astype(int)
        counts[: n - counts.sum()] += 1  # hand out the remainder, largest groups first
        sub_centres = normalize(centres[ci] + subgroup_offset * normalize(rng.standard_normal((s, dim))))
        if s == 1:
            sub_centres = centres[ci : ci + 1]
        for j, m in enumerate(counts):
            vecs.append(sub_centres[j] + noise * rng.standard_normal((m, dim)))
            cls.append(np.full(m, c))
            sub.append(np.full(m, j))
    vectors = np.concatenate([*vecs, np.empty((0, dim))])
    class_id = np.concatenate([*cls, np.empty(0, np.int64)]).astype(np.int64)
    subgroup = np.concatenate([*sub, np.empty(0, np.int64)]).astype(np.int64)
    n_ordinary = len(vectors)

    out_vecs = rng.standard_normal((n_outliers, dim))
    out_cls = classes[np.arange(n_outliers) % len(classes)]
    dup_src = rng.choice(n_ordinary, size=n_duplicates, replace=n_duplicates > n_ordinary)
    dup_vecs = normalize(vectors[dup_src]) + duplicate_noise * rng.standard_normal((n_duplicates, dim))
    vectors = normalize(np.concatenate([vectors, out_vecs, dup_vecs]))
    if duplicate_noise == 0.0:
        vectors[n_ordinary + n_outliers :] = vectors[dup_src]  # bit-identical copies
    class_id = np.concatenate([class_id, out_cls, class_id[dup_src]])
    subgroup = np.concatenate([subgroup, np.full(n_outliers, -1), subgroup[dup_src]])
    true_class_id = class_id.copy()

    candidates = np.setdiff1d(np.arange(n_ordinary), dup_src)
    swapped = np.sort(rng.choice(candidates, size=n_swapped, replace=False)) if n_swapped else np.empty(0, np.int64)
    for row in swapped:
        others = classes[classes != class_id[row]]
        class_id[row] = rng.choice(others)

    # Shuffle rows; planted row numbers follow the permutation.
    perm = rng.permutation(len(vectors))
    new_row = np.empty_like(perm)
    new_row[perm] = np.arange(len(perm))
    outliers = np.sort(new_row[n_ordinary + np.arange(n_outliers)]).astype(np.int64)
    pairs = np.stack([new_row[dup_src], new_row[n_ordinary + n_outliers + np.arange(n_duplicates)]], axis=1)
    return Synthetic(
        vectors=np.ascontiguousarray(vectors[perm]),
        class_id=class_id[perm],
        true_class_id=true_class_id[perm],
        subgroup=subgroup[perm],
        outliers=outliers,
        duplicate_pairs=pairs.reshape(-1, 2).astype(np.int64),
        swapped=np.sort(new_row[swapped]).astype(np.int64),
        class_centres=centres,
        classes=classes,
    )


def exact_graph(vectors: np.ndarray, rows: np.ndarray, k: int, block: int = 2048) -> NeighborGraph:
    """Exact cosine kNN graph among ``rows`` (brute force, blockwise), in the :class:`NeighborGraph` layout.

    A reference for tests: neighbours are searched among ``rows`` only, self excluded, most similar first
    (ties by row number); rows with fewer than ``k`` candidates are padded with -1 / -inf.
    """
    rows = np.asarray(rows, dtype=np.int64)
    x = np.asarray(vectors[rows], dtype=np.float32)
    m, kk = len(rows), max(0, min(k, len(rows) - 1))
    indices = np.full((m, k), -1, dtype=np.int64)
    sims = np.full((m, k), -np.inf, dtype=np.float32)
    for s in range(0, m if kk else 0, block):
        sim = x[s : s + block] @ x.T
        sim[np.arange(len(sim)), np.arange(s, s + len(sim))] = -np.inf
        part = np.argpartition(-sim, kk - 1, axis=1)[:, :kk] if kk < m - 1 else np.argsort(-sim, axis=1)[:, :kk]
        part_sim = np.take_along_axis(sim, part, axis=1)
        order = np.lexsort((part, -part_sim), axis=1)
        indices[s : s + block, :kk] = rows[np.take_along_axis(part, order, axis=1)]
        sims[s : s + block, :kk] = np.take_along_axis(part_sim, order, axis=1)
    return NeighborGraph(indices=indices, sims=sims, rows=rows, method="exact", info={"k": k})


def exact_class_graphs(vectors: np.ndarray, class_id: np.ndarray, k: int) -> dict[int, NeighborGraph]:
    """{class: exact within-class kNN graph} for every class in ``class_id`` (see :func:`exact_graph`)."""
    return {int(c): exact_graph(vectors, np.flatnonzero(class_id == c), k) for c in np.unique(class_id)}
