"""Within-class graphs derived from the all-object graph instead of one index per class.

A row whose all-object candidate list (searched wider than k, e.g. 2k) holds at least k rows of its own class
already has its within-class top k: those rows, up to the candidates' own recall. Only the rows short of
same-class candidates (objects near other classes, outliers) are searched again: exactly against their class
when that is cheap, else the class gets its own index. On separable data this skips almost all of the
per-class index builds of :func:`~dinoscope.analysis.neighbors.build_class_graphs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.neighbors_exact import exact_search

__all__ = ["class_graph_from_candidates"]

#: Largest (short rows × class rows) product searched exactly; beyond it the class gets its own index.
_REFILL_EXACT_PAIRS = 100_000_000


def class_graph_from_candidates(
    vectors: np.ndarray,
    class_id: np.ndarray,
    rows: np.ndarray,
    k: int,
    candidates: NeighborGraph,
    *,
    search_class: Callable[[np.ndarray], NeighborGraph],
) -> NeighborGraph:
    """Within-class graph of one class from the all-object candidates, re-searching the rows short of them.

    Args:
        vectors: (N, D) unit vectors of the whole run (a memmap is read for this class's rows only).
        class_id: (N,) integer class of every row.
        rows: (m,) global rows of the class, ascending.
        k: Neighbours per row.
        candidates: The all-object graph over the same N rows, most similar first.
        search_class: Builds the class's own graph from its rows; used when so many rows are short of
            same-class candidates that searching them exactly would cost more than an index.

    Returns:
        The class's graph (global row numbers); ``info`` says its ``source`` and the number of ``short_rows``.

    Example:
        >>> graph = class_graph_from_candidates(x, cls, rows, 15, wide, search_class=build)  # doctest: +SKIP
    """
    start = time.perf_counter()
    c = class_id[rows[0]]
    cand = candidates.indices[rows]
    same = (cand >= 0) & (class_id[np.maximum(cand, 0)] == c)
    need = min(k, len(rows) - 1)
    short = np.flatnonzero(same.sum(axis=1) < need)
    if len(short) * len(rows) > _REFILL_EXACT_PAIRS:  # many rows mixed with other classes: a class index
        graph = search_class(rows)
        graph.info.update(source="class index", short_rows=len(short))
        return graph
    order = np.argsort(~same, axis=1, kind="stable")[:, :k]  # same-class candidates first, in similarity order
    keep = np.take_along_axis(same, order, 1)
    indices = np.where(keep, np.take_along_axis(cand, order, 1), -1)
    sims = np.where(keep, np.take_along_axis(candidates.sims[rows], order, 1), -np.inf).astype(np.float32)
    if len(short):
        base = np.asarray(vectors[rows])
        local, s = exact_search(base[short], base, k, self_rows=short)
        indices[short] = np.where(local >= 0, rows[np.maximum(local, 0)], -1)
        sims[short] = s
    info = {"k": k, "n": len(rows), "method": candidates.method, "source": "all-object candidates"}
    info.update(candidates_k=candidates.k, short_rows=len(short), seconds=round(time.perf_counter() - start, 3))
    return NeighborGraph(indices=indices, sims=sims, rows=rows, method=candidates.method, info=info)
