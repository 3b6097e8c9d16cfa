"""The 2-D methods behind :func:`~dinoscope.analysis.projection.compute_map`: UMAP, PaCMAP and exact PCA.

- UMAP: McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation and Projection for Dimension
  Reduction", arXiv:1802.03426 (2018), cosine metric, always given its k nearest neighbours
  (``precomputed_knn``), so UMAP's own search (pynndescent) and its numba compilation never run.
- PaCMAP: Wang, Huang, Rudin & Shaposhnik, "Understanding How Dimension Reduction Tools Work", JMLR 22 (2021),
  angular distance; its neighbour pairs are the given cosine kNN (PaCMAP's own scaled-distance choice among 50
  extra candidates is skipped), its mid-near and far pairs are its own, seeded.
- PCA: exact, from the D×D covariance accumulated in chunks (works on a memmap; no N×N matrix).

The expected chatter of umap / pynndescent / numba / pacmap is silenced inside each fit only.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

import numpy as np

from dinoscope._deps import require

__all__ = ["fit_neighbor_embedding", "pca_coords"]

_CHUNK = 65_536
_QUIET = (  # expected chatter of umap / pynndescent / numba / pacmap, silenced inside the fit only
    r"n_jobs value .* overridden",
    r".*[Gg]raph is not fully connected.*",
    r".*precomputed_knn.*",
    r".*disconnected.*",
    r".*spectral.*",
)


def fit_neighbor_embedding(
    x: np.ndarray,
    method: str,
    seed: int,
    n_neighbors: int,
    min_dist: float,
    n_epochs: int | None,
    knn: np.ndarray,
    sims: np.ndarray,
) -> np.ndarray:
    """Fit UMAP or PaCMAP on (n, D) float32 rows given their (n, >= n_neighbors) neighbours and sims.

    Args:
        x: (n, D) float32 unit vectors.
        method: ``"umap"`` or ``"pacmap"``.
        seed: Seeds the embedding.
        n_neighbors: Neighbourhood size (UMAP counts the row itself, so it reads n_neighbors - 1 columns).
        min_dist: UMAP ``min_dist``.
        n_epochs: UMAP epochs.
        knn: (n, >= n_neighbors) neighbour rows of ``x``, most similar first.
        sims: Their cosine similarities.

    Returns:
        (n, 2) coordinates.

    Example:
        >>> coords = fit_neighbor_embedding(x, "umap", 0, 15, 0.1, 200, graph.indices, graph.sims)  # doctest: +SKIP
    """
    n = len(x)
    if method == "umap":
        with _quiet():
            umap = require("umap", "umap", "UMAP maps", "method='pca'")
        m = n_neighbors - 1
        idx = np.concatenate([np.arange(n)[:, None], knn[:, :m]], axis=1).astype(np.int32)
        dist = np.concatenate([np.zeros((n, 1)), np.clip(1.0 - sims[:, :m], 0.0, 2.0)], axis=1).astype(np.float32)
        model = umap.UMAP(
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            metric="cosine",
            random_state=seed,
            n_epochs=n_epochs,
            precomputed_knn=(idx, dist, None),
        )
        with _quiet():
            return model.fit_transform(x)
    with _quiet():
        pacmap = require("pacmap", "umap", "PaCMAP maps", "method='pca'")
    pairs = np.stack([np.repeat(np.arange(n), n_neighbors), knn[:, :n_neighbors].ravel()], axis=1).astype(np.int32)
    with _quiet():  # with our pairs PaCMAP never runs its FAISS search (which would set FAISS to 1 thread)
        model = pacmap.PaCMAP(
            n_components=2, n_neighbors=n_neighbors, distance="angular", random_state=int(seed), pair_neighbors=pairs
        )
        return model.fit_transform(x, init="pca")


def pca_coords(vectors: np.ndarray) -> np.ndarray:
    """(N, 2) first two principal components of (N, D) vectors, exact.

    An SVD of the centred rows when there are fewer rows than dimensions, else the top two eigenvectors of the
    covariance accumulated in chunks, by Lanczos iteration (a full ``eigh`` of a 1280 x 1280 covariance took
    ~2 s here, for every small class map).

    Signs are fixed (largest loading positive) so the map does not flip between runs.

    Example:
        >>> pca_coords(np.eye(4, dtype=np.float32)).shape
        (4, 2)
    """
    from scipy.sparse.linalg import eigsh

    n, d = vectors.shape
    if n <= min(d, _CHUNK):
        x = np.asarray(vectors, dtype=np.float64)
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        comps = np.zeros((d, 2))
        comps[:, : min(2, len(vt))] = vt[:2].T
    else:
        total = np.zeros(d)
        gram = np.zeros((d, d))
        for c0 in range(0, n, _CHUNK):
            x32 = np.asarray(vectors[c0 : c0 + _CHUNK], dtype=np.float32)
            total += x32.sum(axis=0, dtype=np.float64)
            gram += (x32.T @ x32).astype(np.float64)
        mean = total / n
        cov = (gram - n * np.outer(mean, mean)) / max(n - 1, 1)
        vals, vecs = eigsh(cov, k=2, which="LA", v0=np.ones(d))  # Lanczos: the top two only, seeded
        comps = vecs[:, np.argsort(vals)[::-1]]
    comps = comps * np.where(comps[np.abs(comps).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)
    comps = comps.astype(np.float32)
    out = np.empty((n, 2), dtype=np.float32)
    for c0 in range(0, n, _CHUNK):
        x32 = np.asarray(vectors[c0 : c0 + _CHUNK], dtype=np.float32)
        out[c0 : c0 + len(x32)] = (x32 - mean.astype(np.float32)) @ comps
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the expected warnings of umap / pynndescent / numba and pacmap's log inside one call only."""
    with warnings.catch_warnings():
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        for module in (r"umap(\..*)?", r"pynndescent(\..*)?", r"numba(\..*)?", r"pacmap(\..*)?"):
            warnings.filterwarnings("ignore", category=UserWarning, module=module)
            warnings.filterwarnings("ignore", category=ImportWarning, module=module)
        with contextlib.suppress(ImportError):
            from numba.core.errors import NumbaWarning

            warnings.filterwarnings("ignore", category=NumbaWarning)
        chatty = logging.getLogger("pacmap")  # logs "random state is set" on every seeded fit
        level = chatty.level
        chatty.setLevel(logging.ERROR)
        try:
            yield
        finally:
            chatty.setLevel(level)
