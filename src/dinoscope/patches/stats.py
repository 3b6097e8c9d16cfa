"""Streamed, mergeable sufficient statistics of patch features: count, mean and scatter matrix in float64.

The PCA of any number of patches needs only ``n``, the mean ``(D,)`` and the scatter matrix
``S = sum (x - mean)(x - mean)^T`` ``(D, D)``, so memory does not grow with the number of patches. Each batch
is reduced to its own centred statistics, which are combined with the running ones by the pairwise update
of Chan, Golub and LeVeque ("Updating formulae and a pairwise algorithm for computing sample variances",
COMPSTAT 1982; Stanford CS tech. report STAN-CS-79-773):

    n = na + nb,   d = mean_b - mean_a,   mean = mean_a + d * nb / n,   S = Sa + Sb + d d^T * na * nb / n

This avoids the catastrophic cancellation of ``sum x x^T - n mean mean^T`` when the mean is large compared
with the spread (DINOv2 patch tokens have a few dimensions with a large common offset). The same formula
merges two fits exactly: the statistics of the union are those of the two parts combined.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Moments", "PatchStatistics", "StatisticsAccumulator", "combine_moments", "compute_moments"]

#: Rows reduced at once on the device: bounds the float64 working copy (16,384 x 1,024 x 8 B = 128 MiB).
_ROWS_PER_STEP = 16_384
#: ``(n, mean (D,), scatter (D, D))`` of a set of patches, float64 tensors.
Moments = tuple[int, "torch.Tensor", "torch.Tensor"]


def combine_moments(
    n_a: int, mean_a: Any, scatter_a: Any, n_b: int, mean_b: Any, scatter_b: Any
) -> tuple[int, Any, Any]:
    """Pairwise (Chan et al.) combination of two sets of centred statistics; numpy arrays or torch tensors.

    Args:
        n_a: Count of the first set.
        mean_a: (D,) its mean.
        scatter_a: (D, D) its scatter about its own mean.
        n_b: Count of the second set.
        mean_b: (D,) its mean.
        scatter_b: (D, D) its scatter about its own mean.

    Returns:
        ``(n, mean, scatter)`` of the union. Inputs are not modified.

    Example:
        >>> a, b = np.array([[0.0], [2.0]]), np.array([[4.0]])
        >>> n, mean, s = combine_moments(2, a.mean(0), np.array([[2.0]]), 1, b.mean(0), np.array([[0.0]]))
        >>> n, float(mean[0]), float(s[0, 0])
        (3, 2.0, 8.0)
    """
    if n_b == 0:
        return n_a, mean_a, scatter_a
    if n_a == 0:
        return n_b, mean_b, scatter_b
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    scatter = scatter_a + scatter_b + (delta[:, None] * delta[None, :]) * (n_a * n_b / n)
    return n, mean, scatter


@dataclass
class PatchStatistics:
    """Sufficient statistics of a set of D-dimensional patch features (float64, host memory).

    Attributes:
        n: Number of patches.
        mean: (D,) mean.
        scatter: (D, D) sum of outer products of the centred patches (symmetric).
    """

    n: int
    mean: np.ndarray
    scatter: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.scatter = np.asarray(self.scatter, dtype=np.float64)
        d = self.mean.shape[0] if self.mean.ndim == 1 else -1
        if self.mean.ndim != 1 or self.scatter.shape != (d, d):
            raise ValueError(
                f"PatchStatistics: mean must be (D,) and scatter (D, D); got {self.mean.shape} and {self.scatter.shape}"
            )
        if self.n < 0:
            raise ValueError(f"PatchStatistics: n must be >= 0; got {self.n}")

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return int(self.mean.shape[0])

    @classmethod
    def empty(cls, dim: int) -> PatchStatistics:
        """Statistics of no patch."""
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def from_patches(cls, x: np.ndarray) -> PatchStatistics:
        """Statistics of an (M, D) array of patches, computed in float64.

        Example:
            >>> PatchStatistics.from_patches(np.array([[1.0, 0.0], [3.0, 0.0]])).scatter[0, 0]
            np.float64(2.0)
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"expected (M, D) patches; got shape {x.shape}")
        if not len(x):
            return cls.empty(x.shape[1])
        mean = x.mean(axis=0)
        xc = x - mean
        return cls(len(x), mean, xc.T @ xc)

    def update(self, x: np.ndarray) -> PatchStatistics:
        """Add an (M, D) batch of patches in place; returns self."""
        return self.merge_(PatchStatistics.from_patches(x))

    def merge_(self, other: PatchStatistics) -> PatchStatistics:
        """Combine ``other`` into these statistics in place; returns self."""
        self._check_dim(other)
        self.n, self.mean, self.scatter = combine_moments(
            self.n, self.mean, self.scatter, other.n, other.mean, other.scatter
        )
        return self

    def merge(self, other: PatchStatistics) -> PatchStatistics:
        """The statistics of the union of both sets (a new object).

        Example:
            >>> x = np.random.default_rng(0).normal(size=(10, 3))
            >>> a, b = PatchStatistics.from_patches(x[:4]), PatchStatistics.from_patches(x[4:])
            >>> bool(np.allclose(a.merge(b).scatter, PatchStatistics.from_patches(x).scatter))
            True
        """
        self._check_dim(other)
        return PatchStatistics(*combine_moments(self.n, self.mean, self.scatter, other.n, other.mean, other.scatter))

    def covariance(self) -> np.ndarray:
        """(D, D) unbiased covariance ``scatter / (n - 1)`` (as scikit-learn's PCA uses)."""
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 patches; got {self.n}")
        return self.scatter / (self.n - 1)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """``{prefix_n, prefix_mean, prefix_scatter}`` for an ``.npz`` file."""
        n = np.asarray(self.n, np.int64)
        return {f"{prefix}_n": n, f"{prefix}_mean": self.mean, f"{prefix}_scatter": self.scatter}

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str, source: str | Path = "<arrays>") -> PatchStatistics:
        """Inverse of :meth:`to_arrays` (``arrays``: a dict or an opened ``.npz``).

        Raises:
            KeyError: A key is missing (the message names the file and key).
        """
        try:
            return cls(int(arrays[f"{prefix}_n"]), arrays[f"{prefix}_mean"], arrays[f"{prefix}_scatter"])
        except KeyError as exc:
            raise KeyError(f"{source}: no statistics {prefix!r} (missing {exc.args[0]})") from None

    def _check_dim(self, other: PatchStatistics) -> None:
        if other.dim != self.dim:
            raise ValueError(f"cannot combine statistics of dimension {self.dim} and {other.dim}")


class StatisticsAccumulator:
    """:class:`PatchStatistics` accumulated with torch on the device the features are on (float64).

    Args:
        dim: Feature dimension D.
        device: Torch device of the running statistics (that of the features).

    Example:
        >>> import torch  # doctest: +SKIP
        >>> acc = StatisticsAccumulator(4, "cpu")  # doctest: +SKIP
        >>> acc.update(torch.randn(100, 4)).to_statistics().n  # doctest: +SKIP
        100
    """

    def __init__(self, dim: int, device: Any = "cpu") -> None:
        import torch

        self.dim = dim
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.scatter = torch.zeros((dim, dim), dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> StatisticsAccumulator:
        """Add an (M, D) tensor of patches (any float dtype); returns self."""
        return self.add(*self.moments(x))

    def moments(self, x: torch.Tensor) -> Moments:
        """``(n, mean, scatter)`` of an (M, D) tensor in float64 on this accumulator's device; nothing is added.

        See :func:`compute_moments`: computing the moments of a whole batch before :meth:`add` keeps the
        running state unchanged when the batch fails midway (e.g. CUDA out of memory), so it can be retried
        with a smaller batch.
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected (M, {self.dim}) patches; got shape {tuple(x.shape)}")
        return compute_moments(x, self.mean.device)

    def add(self, n: int, mean: torch.Tensor, scatter: torch.Tensor) -> StatisticsAccumulator:
        """Combine moments from :meth:`moments` into the running statistics; returns self."""
        self.n, self.mean, self.scatter = combine_moments(self.n, self.mean, self.scatter, n, mean, scatter)
        return self

    def to_statistics(self) -> PatchStatistics:
        """The statistics so far, in host memory (the scatter matrix symmetrised against rounding)."""
        scatter = self.scatter.cpu().numpy()
        return PatchStatistics(self.n, self.mean.cpu().numpy().copy(), (scatter + scatter.T) / 2.0)


def compute_moments(x: torch.Tensor, device: Any = None) -> Moments:
    """``(n, mean, scatter)`` of an (M, D) tensor of patches, in float64 on ``device`` (default: ``x``'s).

    Rows are reduced in chunks (bounded float64 working memory) and combined pairwise (:func:`combine_moments`).
    Nothing is accumulated: the caller adds the moments once the whole batch is reduced.

    Example:
        >>> import torch  # doctest: +SKIP
        >>> n, mean, scatter = compute_moments(torch.tensor([[0.0], [2.0]]))  # doctest: +SKIP
        >>> n, float(mean[0]), float(scatter[0, 0])  # doctest: +SKIP
        (2, 1.0, 2.0)
    """
    import torch

    if x.ndim != 2:
        raise ValueError(f"expected (M, D) patches; got shape {tuple(x.shape)}")
    device = x.device if device is None else device
    dim = x.shape[1]
    n = 0
    mean = torch.zeros(dim, dtype=torch.float64, device=device)
    scatter = torch.zeros((dim, dim), dtype=torch.float64, device=device)
    for start in range(0, x.shape[0], _ROWS_PER_STEP):
        chunk = x[start : start + _ROWS_PER_STEP].to(device=device, dtype=torch.float64)
        chunk_mean = chunk.mean(dim=0)
        centred = chunk - chunk_mean
        n, mean, scatter = combine_moments(n, mean, scatter, chunk.shape[0], chunk_mean, centred.T @ centred)
    return n, mean, scatter
