"""The thresholds of near-duplicate detection: Otsu or a Tukey fence on relative distances, and mutual-rank evidence.

:func:`choose_threshold` picks the relative-distance threshold ``t`` (see :mod:`~dinoscope.analysis.duplicates`).
:func:`mutual_threshold` then weighs the second piece of evidence the graph holds: whether two objects are
each other's top-:data:`MUTUAL_RANK` neighbours. Augmented copies (a rotated or recoloured version of a photo)
can sit as far apart as ordinary neighbours do - EfficientNet-Lite0 puts a third of the rotated copies of a PPE
photo above Otsu's cut - yet they still rank each other first. Mutual rank alone proves nothing (ordinary data
has mutual nearest neighbours everywhere), so it only counts where the data shows it to be strong evidence:

1. Only when a duplicate mode exists (Otsu's rule fired): the edges are split by ``t`` into copies and
   ordinary neighbours, each side modelled by a Gaussian on ``log rho``.
2. The share of mutual top-2 edges in each class, ``p_copy`` and ``p_ordinary``, and the copy share are fitted
   by EM with the two Gaussians held fixed (a naive-Bayes mixture of ``log rho`` and the mutual flag; fixed
   Gaussians keep a small copy class from drifting onto ordinary mutual pairs).
3. The evidence is used only when its likelihood ratio ``p_copy / p_ordinary`` reaches :data:`MUTUAL_LR_MIN`:
   where copies fill each other's top ranks, ordinary neighbours are rarely mutual (PPE whole images: ratio
   ~100); in data where most objects have no copy they often are (synthetic mixtures: 6-8), and nothing
   changes there.
4. Mutual pairs are then near duplicates up to ``t_mutual``: the largest ``rho`` (at most
   :data:`MUTUAL_RHO_MAX`) whose posterior probability of being a copy, given the mutual flag, is still >= 1/2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ETA_MIN",
    "FENCE_MAX",
    "IDENTICAL_DIST",
    "MUTUAL_LR_MIN",
    "MUTUAL_RANK",
    "MUTUAL_RHO_MAX",
    "RHO_MAX",
    "choose_threshold",
    "mutual_edges",
    "mutual_threshold",
    "otsu",
]

#: Otsu separability needed to call the log relative-distance distribution bimodal.
ETA_MIN = 0.75
#: Largest relative distance a data-driven threshold may reach (a copy is well inside the k-th neighbour).
RHO_MAX = 0.75
#: Ceiling of the fallback fence (no duplicate mode): at most half the distance to the k-th neighbour.
FENCE_MAX = 0.5
#: Cosine distance below which two vectors count as identical (identical crops, float noise aside): float32
#: dot products of equal unit vectors land within ~6e-7 of 1 (measured, D = 384..1280), so 1e-5 keeps a margin;
#: analyze re-normalises vectors from a float16 store, whose raw norms are off by up to ~1.6e-4.
IDENTICAL_DIST = 1e-5
#: Two objects are mutual neighbours when each is among the other's first MUTUAL_RANK neighbours.
MUTUAL_RANK = 2
#: Likelihood ratio P(mutual | copy) / P(mutual | ordinary) needed before mutual rank counts as evidence.
MUTUAL_LR_MIN = 20.0
#: Largest relative distance at which a mutual pair may still be called a copy.
MUTUAL_RHO_MAX = 0.9
LOG_FLOOR = float(np.log(1e-4))
_EM_ITERATIONS = 100


def choose_threshold(rho: np.ndarray) -> dict[str, Any]:
    """The relative-distance threshold: Otsu on log rho when bimodal, else a far-out fence.

    Args:
        rho: (E,) relative distances of the graph edges (identical pairs excluded).

    Returns:
        ``rule`` (``otsu``, ``fence`` or ``none``), ``threshold`` and the figures behind them.
    """
    near_side = rho[(rho > IDENTICAL_DIST) & (rho < 1.0)]  # identical pairs are flagged anyway
    out: dict[str, Any] = {"rule": "none", "threshold": 0.0, "eta_min": ETA_MIN, "rho_max": RHO_MAX}
    if len(near_side) < 4:
        return out
    log_rho = np.log(np.maximum(near_side, np.exp(LOG_FLOOR)))
    cut, eta = otsu(log_rho)
    q1, q3 = np.quantile(log_rho, [0.25, 0.75])
    fence = float(min(np.exp(q1 - 3.0 * (q3 - q1)), FENCE_MAX))
    out.update(otsu_threshold=float(np.exp(cut)), otsu_eta=round(eta, 4), fence_threshold=fence)
    if eta >= ETA_MIN and np.exp(cut) <= RHO_MAX:
        out.update(rule="otsu", threshold=float(np.exp(cut)))
    else:
        out.update(rule="fence", threshold=fence)
    return out


def otsu(x: np.ndarray, bins: int = 256) -> tuple[float, float]:
    """Otsu's cut of a 1-D sample and its separability eta in [0, 1]; ties (an empty gap) take the middle."""
    hist, edges = np.histogram(x, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    p = hist / hist.sum()
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    w1 = 1.0 - w0
    ok = (w0 > 1e-12) & (w1 > 1e-12)
    between = np.zeros_like(w0)
    between[ok] = (m0[-1] * w0[ok] - m0[ok]) ** 2 / (w0[ok] * w1[ok])
    total = float(np.sum(p * (centres - m0[-1]) ** 2))
    if total <= 0 or not ok.any():
        return float(edges[-1]), 0.0
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float(edges[(best[0] + best[-1]) // 2 + 1]), float(between.max() / total)


def mutual_edges(rows: np.ndarray, idx: np.ndarray, n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(E,) whether each edge joins two objects that are among each other's first :data:`MUTUAL_RANK` neighbours.

    Read from the graph alone (exact or approximate): one sort of the N x MUTUAL_RANK top edges, O(E log N).

    Args:
        rows: (R,) global row of each graph row.
        idx: (R, k) neighbour rows, most similar first (-1 padding).
        n: Number of objects.
        src: (E,) edge sources.
        dst: (E,) edge targets.
    """
    top = np.asarray(idx[:, :MUTUAL_RANK], dtype=np.int64)
    ok = (top >= 0) & (top != rows[:, None])
    top_keys = np.unique(np.broadcast_to(rows[:, None], top.shape)[ok] * n + top[ok])
    if len(top_keys) == 0:
        return np.zeros(len(src), dtype=bool)
    mutual_keys = top_keys[_member((top_keys % n) * n + top_keys // n, top_keys)]
    if len(mutual_keys) == 0:
        return np.zeros(len(src), dtype=bool)
    return _member(src * n + dst, mutual_keys)


def mutual_threshold(rho: np.ndarray, mutual: np.ndarray, t: float, src: np.ndarray, dst: np.ndarray) -> dict[str, Any]:
    """How far mutual pairs may lie and still be copies, fitted on the data (see the module docstring).

    Args:
        rho: (E,) relative distances of the edges.
        mutual: (E,) mutual top-:data:`MUTUAL_RANK` flag of each edge.
        t: Otsu's threshold (the data has a duplicate mode).
        src: (E,) edge sources (each unordered pair is counted once).
        dst: (E,) edge targets.

    Returns:
        ``mutual_rule`` (``"mutual"`` when used, ``"off"`` when the evidence is too weak), ``mutual_threshold``
        (``t`` when off), the fitted ``mutual_lr`` and the figures behind it.
    """
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    n = int(hi.max(initial=-1)) + 1
    _, first = np.unique(lo * n + hi, return_index=True)  # rho is symmetric: one edge per pair
    pair_rho, pair_mutual = rho[first], mutual[first]
    near = (pair_rho > IDENTICAL_DIST) & (pair_rho < 1.0)
    x = np.log(np.maximum(pair_rho[near], np.exp(LOG_FLOOR)))
    b = pair_mutual[near]
    out: dict[str, Any] = {"mutual_rule": "off", "mutual_threshold": float(t), "mutual_rank": MUTUAL_RANK}
    copy = x <= np.log(t)
    if copy.sum() < 2 or (~copy).sum() < 2:
        return out
    (m1, s1), (m0, s0) = _gauss(x[copy]), _gauss(x[~copy])
    log_f1, log_f0 = _log_normal(x, m1, s1), _log_normal(x, m0, s0)
    r = copy.astype(np.float64)
    for _ in range(_EM_ITERATIONS):
        w, p1, p0 = _shares(r, b)
        l1 = np.log(w) + log_f1 + np.where(b, np.log(p1), np.log1p(-p1))
        l0 = np.log1p(-w) + log_f0 + np.where(b, np.log(p0), np.log1p(-p0))
        new = 1.0 / (1.0 + np.exp(np.clip(l0 - l1, -700, 700)))
        done = np.abs(new - r).max() < 1e-6
        r = new
        if done:
            break
    w, p1, p0 = _shares(r, b)
    lr = p1 / p0
    out.update(mutual_lr=round(float(lr), 2), mutual_lr_min=MUTUAL_LR_MIN, mutual_copy_share=round(float(w), 4))
    if lr < MUTUAL_LR_MIN:
        return out
    grid = np.linspace(np.log(t), np.log(MUTUAL_RHO_MAX), 512)
    odds = np.log(w / (1 - w)) + _log_normal(grid, m1, s1) - _log_normal(grid, m0, s0) + np.log(lr)
    below = np.flatnonzero(odds < 0)
    last = (below[0] - 1) if len(below) else len(grid) - 1
    if last < 0:
        return out
    out.update(mutual_rule="mutual", mutual_threshold=float(max(np.exp(grid[last]), t)))
    return out


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _gauss(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(max(x.std(), 1e-3))


def _log_normal(x: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


def _shares(r: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Copy share and the mutual share within each class, kept inside (0, 1)."""
    eps = 1e-3
    w = float(np.clip(r.mean(), eps, 1 - eps))
    p1 = float(np.clip((r * b).sum() / max(r.sum(), eps), eps, 1 - eps))
    p0 = float(np.clip(((1 - r) * b).sum() / max((1 - r).sum(), eps), eps, 1 - eps))
    return w, p1, p0
