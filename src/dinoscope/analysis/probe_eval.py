"""Feature evaluation: how well a backbone's vectors separate the classes, measured without group leaks.

The shared folds and the logistic-regression protocol (the weighted kNN is :mod:`~dinoscope.analysis.probe_knn`).
The logistic regression follows the DINOv2 evaluation (Oquab et al., "DINOv2: Learning Robust Visual Features
without Supervision", TMLR 2024; ``dinov2/eval/log_regression.py``: L-BFGS over a sweep of C, refitted with
the chosen one): scikit-learn's L2 ``LogisticRegression`` on the vectors standardised with the training rows'
mean and spread; its ``C`` is chosen on the training rows alone by an inner grouped cross-validation (log-loss
over a grid, warm-started from small to large ``C``), then the model is refitted on all of them.

Evaluation is group-aware (:func:`select_evaluation_folds`): the rows of one group (the board of a
defect/template pair, the source image of boxes, the video of frames) are all tested in the same fold and so
never train the model that tests their siblings. A dataset split (``train`` and ``test`` or ``val``) is used
as given; otherwise stratified grouped k-fold. Every labelled row gets out-of-fold probabilities.

Example:
    >>> folds = select_evaluation_folds(labels, groups, seed=0)  # doctest: +SKIP
    >>> probs, info = logistic_probabilities(vectors, labels, folds, groups, n_classes=2)  # doctest: +SKIP
    >>> probs.shape  # doctest: +SKIP
    (622, 2)
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinoscope.analysis.grouped_folds import stratified_group_kfold
from dinoscope.errors import DinoscopeError

__all__ = [
    "C_GRID",
    "TRAIN_ONLY",
    "UNUSED",
    "EvaluationFolds",
    "available_cores",
    "logistic_probabilities",
    "select_evaluation_folds",
]

#: Inverse regularisation strengths tried by the inner cross-validation (on standardised vectors).
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
#: Inner folds choosing C, and the most training rows they use (a seeded draw of whole groups above it).
INNER_FOLDS = 3
INNER_MAX_ROWS = 8_000
#: ``fold`` of a row that only trains (split mode) and of a row no protocol uses (other split, leaked group).
TRAIN_ONLY = -1
UNUSED = -2


@dataclass
class EvaluationFolds:
    """Which rows train and which are tested, fold by fold.

    Attributes:
        fold: (N,) int64 fold in which the row is tested (``0 .. n_folds - 1``), :data:`TRAIN_ONLY` for rows
            that only train (split mode), :data:`UNUSED` for rows no protocol uses (unlabelled, other splits,
            test rows whose group also trains).
        n_folds: Test folds.
        mode: ``"split"`` (the dataset's train / test split) or ``"grouped k-fold"``.
        info: What was chosen and why (splits used, groups, leaked rows dropped).
    """

    fold: np.ndarray
    n_folds: int
    mode: str
    info: dict[str, Any] = field(default_factory=dict)

    def train_rows(self, f: int) -> np.ndarray:
        """Row numbers that train the model testing fold ``f``."""
        return np.flatnonzero((self.fold >= TRAIN_ONLY) & (self.fold != f))

    def test_rows(self, f: int) -> np.ndarray:
        """Row numbers tested in fold ``f``."""
        return np.flatnonzero(self.fold == f)


def select_evaluation_folds(
    labels: np.ndarray,
    groups: np.ndarray,
    split: np.ndarray | None = None,
    *,
    n_folds: int = 5,
    seed: int = 0,
) -> EvaluationFolds:
    """Group-aware folds: the dataset's split when it has one, else stratified grouped k-fold.

    Split mode applies when ``split`` holds ``train`` and ``test`` (or ``val`` when there is no test): train
    rows only train, the held-out split is tested, other splits are unused; a held-out row whose group also
    occurs in ``train`` is dropped (counted in ``info["n_leaked"]``) so the number stays honest. Otherwise
    scikit-learn's ``StratifiedGroupKFold`` (shuffled, seeded; its dealing, run by
    :func:`~dinoscope.analysis.grouped_folds.stratified_group_kfold`) deals whole groups to ``n_folds`` folds
    (fewer when there are fewer groups) keeping the class shares alike.

    Args:
        labels: (N,) class ids, -1 = unlabelled (unused).
        groups: (N,) group id of every row (any hashable values; equal = same group).
        split: (N,) split names, or None.
        n_folds: Folds of the k-fold mode.
        seed: Seed of the fold assignment.

    Returns:
        The :class:`EvaluationFolds`.

    Raises:
        DinoscopeError: Fewer than two groups, or no class with two rows, among the labelled rows (nothing can
            be held out).

    Example:
        >>> f = select_evaluation_folds(np.array([0, 0, 1, 1]), np.array([7, 7, 8, 9]), n_folds=2)
        >>> bool(f.fold[0] == f.fold[1])
        True
    """
    labels = np.asarray(labels, dtype=np.int64)
    group_codes = _codes(groups)
    labelled = labels >= 0
    names = set(np.unique(np.asarray(split, dtype=object)[labelled])) if split is not None else set()
    held = "test" if "test" in names else "val" if "val" in names else None
    if "train" in names and held is not None:
        return _split_folds(labels, group_codes, np.asarray(split, dtype=object), held)
    n_groups = len(np.unique(group_codes[labelled]))
    largest = int(np.bincount(labels[labelled]).max(initial=0)) if labelled.any() else 0
    if min(n_groups, largest) < 2:
        raise DinoscopeError(
            f"the labelled objects form {n_groups} group(s), the largest class has {largest}; a grouped evaluation "
            "needs at least two of each (give more labelled objects, or a --group-by column that separates them)"
        )
    k = min(n_folds, n_groups, largest)  # the dealing needs a class with at least k members
    fold = np.full(len(labels), UNUSED, dtype=np.int64)
    rows = np.flatnonzero(labelled)
    fold[rows] = stratified_group_kfold(labels[rows], group_codes[rows], k, seed)
    info = {"n_groups": n_groups, "folds": k, "seed": seed}
    return EvaluationFolds(fold, k, "grouped k-fold", info)


def _split_folds(labels: np.ndarray, groups: np.ndarray, split: np.ndarray, held: str) -> EvaluationFolds:
    labelled = labels >= 0
    train = labelled & (split == "train")
    test = labelled & (split == held)
    leaked = test & np.isin(groups, groups[train])
    fold = np.full(len(labels), UNUSED, dtype=np.int64)
    fold[train] = TRAIN_ONLY
    fold[test & ~leaked] = 0
    if not (fold == 0).any():
        raise DinoscopeError(
            f"every '{held}' object shares its group with a 'train' object; the split leaks every group - "
            "re-split the dataset by group"
        )
    info = {
        "train_split": "train",
        "test_split": held,
        "n_groups": len(np.unique(groups[labelled])),
        "n_leaked": int(leaked.sum()),
    }
    return EvaluationFolds(fold, 1, "split", info)


def _codes(groups: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.factorize(pd.Series(np.asarray(groups, dtype=object)).astype(str))[0].astype(np.int64)


def logistic_probabilities(
    vectors: np.ndarray,
    labels: np.ndarray,
    folds: EvaluationFolds,
    groups: np.ndarray,
    n_classes: int,
    *,
    seed: int = 0,
    c_grid: tuple[float, ...] = C_GRID,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Out-of-fold class probabilities of an L2 logistic regression whose C is chosen inside each fold.

    Args:
        vectors: (N, D) vectors.
        labels: (N,) class ids.
        folds: Which rows train and test (:func:`select_evaluation_folds`).
        groups: (N,) groups: the inner cross-validation keeps them whole too.
        n_classes: Classes C.
        seed: Seed of the inner folds and row draws.
        c_grid: The C values tried.
        n_jobs: Folds fitted at once (threads of one BLAS thread each); None = the CPU cores available. The
            result does not depend on it.

    Returns:
        ((N, C) float32 probabilities, NaN for rows not tested; info: the C chosen in each fold).

    Example:
        >>> probs, info = logistic_probabilities(vectors, labels, folds, groups, 2)  # doctest: +SKIP
        >>> info["C"]  # doctest: +SKIP
        [0.1, 0.1, 1.0, 0.1, 0.1]
    """
    from threadpoolctl import threadpool_limits

    labels = np.asarray(labels, dtype=np.int64)
    codes = _codes(groups)
    out = np.full((len(vectors), n_classes), np.nan, dtype=np.float32)
    todo = [f for f in range(folds.n_folds) if len(folds.train_rows(f)) and len(folds.test_rows(f))]

    def fold_probabilities(f: int) -> tuple[np.ndarray, float]:
        train, test = folds.train_rows(f), folds.test_rows(f)
        return _fold_logistic(vectors, labels, codes, train, test, n_classes, seed + f, c_grid)

    # The folds are independent: one thread each on one BLAS thread (the same numbers in any order).
    workers = min(len(todo), n_jobs or available_cores()) or 1
    with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(fold_probabilities, todo))
    for f, (probs, _) in zip(todo, results, strict=True):
        out[folds.test_rows(f)] = probs
    chosen = [c for _, c in results]
    return out, {"C": chosen, "c_grid": list(c_grid), "inner_folds": INNER_FOLDS, "inner_max_rows": INNER_MAX_ROWS}


def available_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _fold_logistic(
    vectors: np.ndarray,
    labels: np.ndarray,
    codes: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    n_classes: int,
    seed: int,
    c_grid: tuple[float, ...],
) -> tuple[np.ndarray, float]:
    """(test rows' probabilities, C chosen) of one outer fold: standardise, choose C, refit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(vectors[train])
    xt, yt = scaler.transform(vectors[train]).astype(np.float32), labels[train]
    c = choose_c(xt, yt, codes[train], n_classes, seed=seed, c_grid=c_grid)
    probs = np.zeros((len(test), n_classes), dtype=np.float32)
    if len(np.unique(yt)) < 2:  # one class to learn: it is every prediction
        probs[:, yt[0]] = 1.0
    else:
        model = _fit(LogisticRegression(C=c, max_iter=1000), xt, yt)
        probs[:, model.classes_] = model.predict_proba(scaler.transform(vectors[test]).astype(np.float32))
    return probs, c


def choose_c(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    *,
    seed: int = 0,
    c_grid: tuple[float, ...] = C_GRID,
) -> float:
    """The C of ``c_grid`` with the lowest mean held-out log-loss over inner grouped folds of ``(x, y)``.

    At most :data:`INNER_MAX_ROWS` rows take part (a seeded draw of whole groups); with fewer than two groups
    or classes there is nothing to choose from and ``1.0`` is returned.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    rows = _draw_groups(groups, INNER_MAX_ROWS, seed)
    x, y, groups = x[rows], y[rows], groups[rows]
    n_inner = min(INNER_FOLDS, len(np.unique(groups)))
    if n_inner < 2 or len(np.unique(y)) < 2:
        return 1.0
    loss = np.zeros(len(c_grid))
    inner = stratified_group_kfold(y, groups, n_inner, seed)
    for fit_rows, val_rows in ((np.flatnonzero(inner != f), np.flatnonzero(inner == f)) for f in range(n_inner)):
        if len(np.unique(y[fit_rows])) < 2:
            continue
        model = LogisticRegression(max_iter=300, warm_start=True)  # each C starts from the previous C's weights
        for i, c in enumerate(sorted(c_grid)):
            _fit(model.set_params(C=c), x[fit_rows], y[fit_rows])
            probs = np.full((len(val_rows), n_classes), 1e-6)
            probs[:, model.classes_] = np.maximum(model.predict_proba(x[val_rows]), 1e-6)
            probs /= probs.sum(axis=1, keepdims=True)
            loss[i] += len(val_rows) * log_loss(y[val_rows], probs, labels=range(n_classes))
    return float(sorted(c_grid)[int(np.argmin(loss))])


def _fit(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """``model.fit(x, y)`` on one BLAS thread (its products have only C columns: a second thread's hand-off
    cost 10x the time on 2 busy cores, measured at 5 k x 384 x 10), quiet about reaching ``max_iter``."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(1):  # max_iter on separable folds: the weights are usable
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def _draw_groups(groups: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Rows of whole groups drawn in a seeded order until ``max_rows`` rows (all rows when fewer)."""
    if len(groups) <= max_rows:
        return np.arange(len(groups))
    order = np.random.default_rng(seed).permutation(int(groups.max()) + 1)
    rank = order[groups]
    sizes = np.bincount(rank, minlength=len(order))
    keep = np.cumsum(sizes) <= max_rows
    keep[0] = True
    return np.flatnonzero(keep[rank])
