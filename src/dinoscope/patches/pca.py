"""Exact PCA from sufficient statistics, and the foreground split of the DINOv2 patch-PCA recipe.

:class:`PatchPCA` is a scikit-learn style estimator whose state is :class:`~dinoscope.patches.stats.PatchStatistics`:
its components are the eigenvectors of the unbiased covariance, so they equal ``sklearn.decomposition.PCA``
fitted on the same patches (same sign convention), however the patches were streamed or split.

:class:`ForegroundSplit` follows Oquab et al., "DINOv2: Learning Robust Visual Features without
Supervision" (TMLR 2024, Fig. 1 and section 7.4): threshold the first principal component of all patches to
separate object from background, then fit the components on the foreground patches only. The sign of the
first component is arbitrary, so the side is chosen explicitly: the foreground is the side with the smaller
fraction of patches on the border of the patch grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dinoscope.patches.stats import PatchStatistics

__all__ = ["ForegroundSplit", "PatchPCA", "solve_pca"]


def solve_pca(stats: PatchStatistics, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leading eigenvectors of the covariance of ``stats``.

    Args:
        stats: Statistics of at least 2 patches.
        n_components: K, at most D.

    Returns:
        ``components`` (K, D) unit rows, ``explained_variance`` (K,) (unbiased, as scikit-learn) and
        ``explained_variance_ratio`` (K,) (over the total variance, the trace). Each component's sign makes
        its largest-magnitude entry positive (scikit-learn's ``svd_flip(u_based_decision=False)``).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(50, 3)) * [3.0, 1.0, 0.1]
        >>> comps, var, ratio = solve_pca(PatchStatistics.from_patches(x), 2)
        >>> comps.shape, bool(ratio[0] > 0.8)
        ((2, 3), True)
    """
    if not 1 <= n_components <= stats.dim:
        raise ValueError(f"n_components must be in [1, {stats.dim}] (the feature dimension); got {n_components}")
    from scipy.linalg import eigh

    cov = stats.covariance()
    d = stats.dim
    # only the K leading eigenpairs (LAPACK syevr, MRRR): several times faster than a full eigh at D = 1024+
    values, vectors = eigh((cov + cov.T) / 2.0, subset_by_index=[d - n_components, d - 1], driver="evr")
    order = np.argsort(values)[::-1]
    components = vectors[:, order].T.copy()
    variance = np.clip(values[order], 0.0, None)
    signs = np.sign(components[np.arange(n_components), np.argmax(np.abs(components), axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    total = float(np.trace(cov))
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    return components, variance, ratio


class PatchPCA:
    """Exact, mergeable PCA of patch features (scikit-learn style).

    Args:
        n_components: Number of components K kept.

    Attributes:
        statistics_: The :class:`PatchStatistics` fitted so far.
        components_: (K, D) principal axes, by decreasing variance.
        mean_: (D,) mean of the patches.
        explained_variance_: (K,) variance along each axis (divided by n - 1).
        explained_variance_ratio_: (K,) fraction of the total variance.
        n_samples_seen_: Number of patches.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 5))
        >>> a = PatchPCA(2).fit(x[:120])
        >>> b = PatchPCA(2).fit(x[120:])
        >>> bool(np.allclose(a.merge(b).components_, PatchPCA(2).fit(x).components_))
        True
    """

    def __init__(self, n_components: int = 8) -> None:
        self.n_components = n_components

    def fit(self, x: np.ndarray) -> PatchPCA:
        """Fit on an (M, D) array of patches (replaces earlier state)."""
        return self.fit_statistics(PatchStatistics.from_patches(x))

    def partial_fit(self, x: np.ndarray) -> PatchPCA:
        """Add an (M, D) batch and refit (one eigen-decomposition per call: for long streams accumulate
        :class:`PatchStatistics` and call :meth:`fit_statistics` once)."""
        stats = getattr(self, "statistics_", None)
        batch = PatchStatistics.from_patches(x)
        return self.fit_statistics(batch if stats is None else stats.merge(batch))

    def fit_statistics(self, stats: PatchStatistics) -> PatchPCA:
        """Fit from sufficient statistics; returns self."""
        self.statistics_ = stats
        self.components_, self.explained_variance_, self.explained_variance_ratio_ = solve_pca(stats, self.n_components)
        self.mean_ = stats.mean.copy()
        self.n_samples_seen_ = stats.n
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(M, D) patches -> (M, K) coordinates along the components."""
        return (np.asarray(x, dtype=np.float64) - self.mean_) @ self.components_.T

    def merge(self, other: PatchPCA) -> PatchPCA:
        """The PCA of the union of both fits' patches (exact: their statistics are combined)."""
        return PatchPCA(self.n_components).fit_statistics(self.statistics_.merge(other.statistics_))


@dataclass
class ForegroundSplit:
    """Foreground / background separation along a fixed direction (DINOv2 recipe).

    A patch ``x`` is *above* when ``(x - mean) @ direction > threshold``. Statistics of both sides are kept so
    that the side can be chosen once all patches are seen, and so that two fits with the same direction merge
    exactly.

    Attributes:
        mean: (D,) centre of the projection (mean of all patches of the first pass).
        direction: (D,) unit vector (first principal component of all patches).
        threshold: Threshold on the projection, in feature units.
        threshold_sigma: The same threshold in standard deviations of the projection.
        above: Statistics of the patches above the threshold.
        below: Statistics of the patches at or below it.
        n_border_above: Patches above the threshold on the border of their patch grid.
        n_border_below: Border patches at or below it.
        direction_from: ``first pass`` or the PCA file the direction was taken from.
        side: The recorded foreground side (``above``/``below``), used when the statistics are not loaded;
            None: decided from the border counts.
    """

    mean: np.ndarray
    direction: np.ndarray
    threshold: float
    threshold_sigma: float
    above: PatchStatistics
    below: PatchStatistics
    n_border_above: int = 0
    n_border_below: int = 0
    direction_from: str = "first pass"
    side: Literal["above", "below"] | None = None

    @property
    def foreground_is_above(self) -> bool:
        """True when the foreground is the side above the threshold: the side with the smaller fraction of
        border patches (ties: above)."""
        if self.side is not None:
            return self.side == "above"
        return _border_frac(self.n_border_above, self.above.n) <= _border_frac(self.n_border_below, self.below.n)

    @property
    def foreground(self) -> PatchStatistics:
        """Statistics of the foreground patches."""
        return self.above if self.foreground_is_above else self.below

    @property
    def background(self) -> PatchStatistics:
        """Statistics of the background patches."""
        return self.below if self.foreground_is_above else self.above

    def is_foreground(self, x: np.ndarray) -> np.ndarray:
        """(M, D) patches -> (M,) bool."""
        above = (np.asarray(x, dtype=np.float64) - self.mean) @ self.direction > self.threshold
        return above if self.foreground_is_above else ~above

    def same_direction(self, other: ForegroundSplit) -> bool:
        """Whether both splits use the same centre, direction and threshold (so their statistics merge)."""
        return (
            np.array_equal(self.mean, other.mean)
            and np.array_equal(self.direction, other.direction)
            and self.threshold == other.threshold
        )

    def merge(self, other: ForegroundSplit) -> ForegroundSplit:
        """Combine the side statistics of two splits with the same direction (exact)."""
        if not self.same_direction(other):
            raise ValueError("foreground splits with different directions or thresholds cannot be merged")
        return ForegroundSplit(
            self.mean,
            self.direction,
            self.threshold,
            self.threshold_sigma,
            self.above.merge(other.above),
            self.below.merge(other.below),
            self.n_border_above + other.n_border_above,
            self.n_border_below + other.n_border_below,
            self.direction_from,
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (without the statistics, which go to the sidecar file)."""
        fg, bg = self.foreground, self.background
        n_border_fg, n_border_bg = (
            (self.n_border_above, self.n_border_below)
            if self.foreground_is_above
            else (self.n_border_below, self.n_border_above)
        )
        return {
            "mean": self.mean.tolist(),
            "direction": self.direction.tolist(),
            "threshold": float(self.threshold),
            "threshold_sigma": float(self.threshold_sigma),
            "side": "above" if self.foreground_is_above else "below",
            "n_foreground": int(fg.n),
            "n_background": int(bg.n),
            "n_border_above": int(self.n_border_above),
            "n_border_below": int(self.n_border_below),
            "border_frac_foreground": _border_frac(n_border_fg, fg.n),
            "border_frac_background": _border_frac(n_border_bg, bg.n),
            "direction_from": self.direction_from,
            "rule": "foreground = side of the threshold with the smaller fraction of patch-grid border patches",
        }


def _border_frac(n_border: int, n: int) -> float:
    return n_border / n if n else 1.0
