"""The weighted kNN probe of DINOv2: out-of-fold class probabilities from the most similar training vectors.

Oquab et al., "DINOv2" (TMLR 2024), ``dinov2/eval/knn.py``: cosine similarity of a test vector to every
training vector; its ``k`` most similar vote for their class with weight ``exp(sim / T)``, ``T = 0.07``; the
class probabilities are the vote shares. ``k`` = 10, 20, 100, 200 come from one similarity pass (the top 200).

Exact search (:mod:`~dinoscope.analysis.probe_search`): each fold's test rows times its training rows in
float32 blocks written into one reused buffer, then torch's top 200 of each row. Measured and dropped there:
each pair of folds multiplied once, top-k through run maxima, FAISS's exact ``IndexFlatIP``, a bfloat16
candidate pass.

Example:
    >>> probs, info = knn_probabilities(vectors, labels, folds, n_classes=2)  # doctest: +SKIP
    >>> probs[20].shape  # doctest: +SKIP
    (622, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dinoscope.analysis.probe_eval import EvaluationFolds
from dinoscope.analysis.probe_search import search_per_fold

__all__ = ["KNN_KS", "TEMPERATURE", "knn_probabilities", "vote_shares"]

#: Neighbour counts reported by the kNN protocol (DINOv2's).
KNN_KS = (10, 20, 100, 200)
#: Temperature of the kNN vote weights ``exp(sim / T)`` (DINOv2's).
TEMPERATURE = 0.07


def knn_probabilities(
    vectors: np.ndarray,
    labels: np.ndarray,
    folds: EvaluationFolds,
    n_classes: int,
    *,
    ks: tuple[int, ...] = KNN_KS,
    temperature: float = TEMPERATURE,
    chunk: int = 2048,
    reuse_buffer: bool = True,
) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
    """Out-of-fold class probabilities of the DINOv2 weighted kNN, for every ``k``.

    Args:
        vectors: (N, D) vectors (L2-normalised here, so the dot product is the cosine).
        labels: (N,) class ids.
        folds: Which rows train and test (:func:`~dinoscope.analysis.probe_eval.select_evaluation_folds`).
        n_classes: Classes C.
        ks: Neighbour counts; each is capped at the fold's training rows.
        temperature: ``T`` of the weights ``exp(sim / T)``.
        chunk: Rows per similarity block.
        reuse_buffer: One product buffer for every block (False: the session-5 search; the same numbers).

    Returns:
        ({k: (N, C) float32 vote shares, NaN for rows not tested}, info with the effective k per fold).

    Example:
        >>> from dinoscope.analysis.probe_eval import select_evaluation_folds
        >>> x, y = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]]), np.array([0, 0, 1, 1])
        >>> folds = select_evaluation_folds(y, np.arange(4), n_folds=2)
        >>> probs, _ = knn_probabilities(x, y, folds, 2, ks=(1,))
        >>> probs[1].argmax(axis=1).tolist()
        [0, 0, 1, 1]
    """
    x = _unit(vectors)
    labels = np.asarray(labels, dtype=np.int64)
    k_max = max(ks)
    sims, rows = search_per_fold(x, folds, k_max, chunk, reuse_buffer=reuse_buffer)
    out, effective = {}, {}
    tested = np.flatnonzero(folds.fold >= 0)
    n_train = {f: len(folds.train_rows(f)) for f in range(folds.n_folds)}
    for k in ks:
        probs = np.full((len(x), n_classes), np.nan, dtype=np.float32)
        if len(tested):
            neighbour = rows[tested, :k]
            found = neighbour >= 0  # fewer training rows than k: the missing slots carry no vote
            s = np.where(found, sims[tested, :k], -np.inf)
            probs[tested] = vote_shares(s, np.where(found, labels[np.maximum(neighbour, 0)], 0), n_classes, temperature)
        out[k] = probs
        effective[str(k)] = sorted({min(k, n) for n in n_train.values() if n})
    return out, {"temperature": temperature, "k": effective}


def vote_shares(sims: np.ndarray, neighbour_labels: np.ndarray, n_classes: int, temperature: float) -> np.ndarray:
    """(M, C) float32 class shares of weighted votes ``exp(sim / T)`` of each row's neighbours (``-inf``: none).

    Example:
        >>> vote_shares(np.array([[0.9, 0.8]]), np.array([[1, 0]]), 2, 0.07).round(3)
        array([[0.193, 0.807]], dtype=float32)
    """
    m = len(sims)
    # exp((s - s_max) / T): the shares are unchanged and nothing overflows.
    top = np.max(sims, axis=1, keepdims=True)
    w = np.exp((sims - np.where(np.isfinite(top), top, 0.0)) / temperature)
    flat = (np.arange(m)[:, None] * n_classes + neighbour_labels).ravel()
    votes = np.bincount(flat, weights=w.ravel(), minlength=m * n_classes).reshape(m, n_classes)
    total = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, total, out=np.full_like(votes, np.nan), where=total > 0).astype(np.float32)


def _unit(vectors: np.ndarray) -> np.ndarray:
    x = np.array(vectors, dtype=np.float32, copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(norms > 0, norms, 1.0)
    return x
