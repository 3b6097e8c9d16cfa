"""A cross-validated linear probe on the vectors: out-of-fold class probabilities for confident learning.

A multinomial logistic regression (softmax) with an L2 penalty is fitted on all folds but one and predicts the
held-out fold, so every object's probabilities come from a model that never saw its label (Northcutt et al.,
"Confident learning", JAIR 2021: the recipe needs out-of-sample ``p(c | x)``). Folds are group-aware: rows that
share a group (the boxes of one source image, the members of one duplicate group) always fall in the same fold,
so a copy or a sibling box cannot vouch for a held-out label.

Cost: the fit is full-batch L-BFGS in float32 (two (rows, D) x (D, C) products per iteration), on at most
``max_train`` rows per fold drawn at random from the training folds (a linear probe on 1-2 k-d features is
saturated well before 20 k rows); the prediction is one pass over the held-out rows. Above ``max_train`` the
cost grows with N only through that pass, so a million objects cost a few folds' fits plus one product.

Example:
    >>> folds = group_folds(len(vectors), 5, groups=image_id)  # doctest: +SKIP
    >>> fit = cross_validated_probabilities(vectors, labels, folds)  # doctest: +SKIP
    >>> fit.probabilities.shape, fit.accuracy  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ProbeFit", "ProbeSettings", "cross_validated_probabilities", "group_folds"]

#: Training block size (rows x D x C) from which the fit uses every BLAS thread.
_THREADED_SIZE = 500_000_000


@dataclass(frozen=True)
class ProbeSettings:
    """Settings of the cross-validated probe.

    Attributes:
        folds: Cross-validation folds.
        l2: L2 penalty on the weights, relative to the mean log-loss (``l2 = 1 / (C n)`` in scikit-learn's
            ``LogisticRegression`` terms; 3e-5 on ~1.5 k unit vectors is C ~ 20).
        max_train: Most training rows per fold (a random draw of the training folds above it).
        max_iter: L-BFGS iterations per fit.
        weight: Weight of the probe's probabilities against the kNN votes' (``w P + (1 - w) K``).
        repeats: Cross-validations with different fold draws whose probabilities are averaged.
        seed: Seed of the fold assignment and the training draws.
    """

    folds: int = 5
    l2: float = 3e-5
    max_train: int = 20_000
    max_iter: int = 300
    weight: float = 0.67
    repeats: int = 2
    seed: int = 0

    def as_info(self) -> dict[str, float | int]:
        """The settings as plain numbers (for ``info``)."""
        return {
            "folds": self.folds,
            "l2": self.l2,
            "max_train": self.max_train,
            "max_iter": self.max_iter,
            "weight": self.weight,
            "repeats": self.repeats,
            "seed": self.seed,
        }


@dataclass
class ProbeFit:
    """Out-of-fold probabilities of a cross-validated probe.

    Attributes:
        probabilities: (N, C) float32 out-of-fold ``p(c | x)``; NaN rows were in no fold (fold -1).
        accuracy: Share of the scored labelled rows whose most probable class is their label.
        iterations: L-BFGS iterations of each fold's fit.
        weights: (folds, D + 1, C) fitted weights (bias last), a warm start for a refit.
    """

    probabilities: np.ndarray
    accuracy: float
    iterations: list[int] = field(default_factory=list)
    weights: np.ndarray | None = None


def group_folds(n: int, n_folds: int, *groups: np.ndarray | None, seed: int = 0) -> np.ndarray:
    """(n,) fold of every row; rows linked by any of ``groups`` (same id >= 0) share a fold.

    Groupings are merged (connected components: a box of image A that duplicates a box of image B puts both
    images in one fold); the components are dealt to the folds in a random order, so each fold holds about
    ``1 / n_folds`` of the components.

    Args:
        n: Rows.
        n_folds: Folds (>= 2).
        *groups: (n,) group ids, -1 = in no group; None entries are skipped.
        seed: Seed of the order in which components are dealt.

    Returns:
        (n,) int64 fold ids in ``[0, n_folds)``.

    Example:
        >>> f = group_folds(6, 2, np.array([0, 0, 1, 1, -1, -1]), np.array([-1, 5, 5, -1, -1, -1]))
        >>> bool(f[0] == f[1] == f[2] == f[3])
        True
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    component = np.arange(n, dtype=np.int64)
    used = [np.asarray(g, dtype=np.int64) for g in groups if g is not None]
    if any(g.shape != (n,) for g in used):
        raise ValueError("every group array needs one id per row")
    if any((g >= 0).any() for g in used):
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        # Bipartite graph rows -> group nodes (one block of node ids per grouping).
        src, dst, offset = [], [], n
        for g in used:
            member = np.flatnonzero(g >= 0)
            _, node = np.unique(g[member], return_inverse=True)
            src.append(member)
            dst.append(offset + node)
            offset += int(node.max(initial=-1)) + 1
        a, b = np.concatenate(src), np.concatenate(dst)
        adj = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(offset, offset))
        component = connected_components(adj, directed=False)[1][:n].astype(np.int64)
    _, component = np.unique(component, return_inverse=True)
    order = np.random.default_rng(seed).permutation(int(component.max(initial=-1)) + 1)
    return (order[component] % n_folds).astype(np.int64)


def cross_validated_probabilities(
    vectors: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    *,
    n_classes: int | None = None,
    settings: ProbeSettings | None = None,
    exclude: np.ndarray | None = None,
    init: np.ndarray | None = None,
) -> ProbeFit:
    """Out-of-fold class probabilities of an L2-penalised softmax regression.

    Args:
        vectors: (N, D) vectors.
        labels: (N,) class ids; -1 = unlabelled (never trained on, still predicted).
        folds: (N,) fold of every row (:func:`group_folds`); -1 = predicted by no fold (NaN).
        n_classes: Classes C (default ``labels.max() + 1``).
        settings: :class:`ProbeSettings` (default ones).
        exclude: (N,) bool rows left out of training (e.g. a first round's label issues); still predicted.
        init: (folds, D + 1, C) weights to start each fold's fit from (a previous :class:`ProbeFit`'s).

    Returns:
        A :class:`ProbeFit`.
    """
    from threadpoolctl import threadpool_limits

    s = settings or ProbeSettings()
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = int(labels.max(initial=-1)) + 1 if n_classes is None else n_classes
    n, d = vectors.shape
    probs = np.full((n, n_classes), np.nan, dtype=np.float32)
    weights = np.zeros((s.folds, d + 1, n_classes))
    iterations: list[int] = []
    rng = np.random.default_rng(s.seed)
    trainable = labels >= 0 if exclude is None else (labels >= 0) & ~np.asarray(exclude, dtype=bool)
    for f in range(s.folds):
        held = np.flatnonzero(folds == f)
        train = np.flatnonzero(trainable & (folds != f) & (folds >= 0))
        if len(train) > s.max_train:
            train = np.sort(rng.choice(train, size=s.max_train, replace=False))
        if len(held) == 0 or len(train) == 0:
            continue
        x = np.asarray(vectors[train], dtype=np.float32)
        # The products have only C columns: on small blocks a second BLAS thread's hand-off costs more than it
        # saves (measured on 2 busy cores: 6x slower at 1.4 k x 1280 x 6, even at 50 k x 1280 x 10).
        threads = 1 if x.size * n_classes < _THREADED_SIZE else None
        with threadpool_limits(threads, user_api="blas"):
            w, its = _fit(x, labels[train], n_classes, s.l2, s.max_iter, None if init is None else init[f])
        weights[f], probs[held] = w, _predict(vectors, held, w)
        iterations.append(its)
    scored = (labels >= 0) & ~np.isnan(probs[:, 0])
    hits = np.argmax(probs[scored], axis=1) == labels[scored] if scored.any() else np.zeros(0, bool)
    return ProbeFit(probs, float(hits.mean()) if len(hits) else float("nan"), iterations, weights)


def _fit(
    x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, max_iter: int, init: np.ndarray | None
) -> tuple[np.ndarray, int]:
    """(D + 1, C) weights (bias last) minimising mean log-loss + l2/2 |W|² (bias not penalised), L-BFGS."""
    from scipy.optimize import minimize

    n, d = x.shape
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0

    def loss_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(d + 1, n_classes)
        w32 = w.astype(np.float32)
        z = x @ w32[:d] + w32[d]
        lse = _logsumexp(z)
        loss = float(np.mean(lse - np.einsum("rc,rc->r", z, onehot))) + 0.5 * l2 * float(np.sum(w[:d] ** 2))
        g = (np.exp(z - lse[:, None]) - onehot) / n
        grad = np.empty_like(w)
        grad[:d] = (x.T @ g).astype(np.float64) + l2 * w[:d]
        grad[d] = g.sum(axis=0)
        return loss, grad.ravel()

    start = np.zeros((d + 1) * n_classes) if init is None else np.asarray(init, dtype=np.float64).ravel()
    res = minimize(loss_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return res.x.reshape(d + 1, n_classes), int(res.nit)


def _predict(vectors: np.ndarray, rows: np.ndarray, w: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """(len(rows), C) softmax probabilities, in row chunks."""
    d = w.shape[0] - 1
    w32 = w.astype(np.float32)
    out = np.empty((len(rows), w.shape[1]), dtype=np.float32)
    for a in range(0, len(rows), chunk):
        z = np.asarray(vectors[rows[a : a + chunk]], dtype=np.float32) @ w32[:d] + w32[d]
        out[a : a + chunk] = np.exp(z - _logsumexp(z)[:, None])
    return out


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))
