"""Streamed statistics and exact PCA: equal to scikit-learn on the same patches, and mergeable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from dinoscope.patches import stats as stats_module
from dinoscope.patches.pca import PatchPCA, solve_pca
from dinoscope.patches.stats import PatchStatistics, StatisticsAccumulator


def _patches(n: int = 3000, d: int = 24, offset: float = 0.0, seed: int = 0) -> np.ndarray:
    """Patches with a distinct spectrum (no tied eigenvalues) and an optional large common offset."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (rng.normal(size=(n, d)) * np.geomspace(6.0, 0.05, d)) @ basis.T + offset


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_streamed_pca_equals_sklearn(offset: float) -> None:
    x = _patches(offset=offset)
    acc = StatisticsAccumulator(x.shape[1])
    for chunk in np.array_split(x, [1, 17, 500, 501, 2200]):  # uneven batches, one of a single row
        acc.update(torch.from_numpy(chunk).float() if offset == 0 else torch.from_numpy(chunk))
    ours = PatchPCA(6).fit_statistics(acc.to_statistics())
    ref = PCA(6, svd_solver="full").fit(x if offset else x.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(ours.components_, ref.components_, atol=1e-9)  # same signs as sklearn
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(ours.transform(x[:5]), ref.transform(x[:5]), atol=1e-7)


def test_chan_update_is_sound_where_the_raw_formula_cancels() -> None:
    """With a mean 1e4 times the spread, sum(xx^T) - n mm^T loses the covariance; the pairwise update does not."""
    x = _patches(n=2000, d=8, offset=1e4)
    truth = np.cov(x.T)
    acc = StatisticsAccumulator(8)
    for chunk in np.array_split(x, 13):
        acc.update(torch.from_numpy(chunk))
    streamed = acc.to_statistics().covariance()
    raw = (x.T @ x - len(x) * np.outer(x.mean(0), x.mean(0))) / (len(x) - 1)
    err_streamed = np.abs(streamed - truth).max() / np.abs(truth).max()
    err_raw = np.abs(raw - truth).max() / np.abs(truth).max()
    assert err_streamed < 1e-10 < err_raw


def test_merge_of_two_halves_equals_the_fit_of_the_whole() -> None:
    x = _patches(offset=3.0)
    a, b = PatchPCA(5).fit(x[:1234]), PatchPCA(5).fit(x[1234:])
    whole = PatchPCA(5).fit(x)
    merged = a.merge(b)
    assert merged.n_samples_seen_ == len(x)
    np.testing.assert_allclose(merged.statistics_.scatter, whole.statistics_.scatter, rtol=1e-11, atol=1e-8)
    np.testing.assert_allclose(merged.components_, whole.components_, atol=1e-10)
    np.testing.assert_allclose(merged.explained_variance_, whole.explained_variance_, rtol=1e-11)


def test_partial_fit_and_empty_parts() -> None:
    x = _patches(n=600)
    pca = PatchPCA(3)
    for chunk in np.array_split(x, 4):
        pca.partial_fit(chunk)
    np.testing.assert_allclose(pca.components_, PatchPCA(3).fit(x).components_, atol=1e-10)
    empty = PatchStatistics.empty(x.shape[1])
    assert empty.merge(pca.statistics_).n == len(x) and pca.statistics_.merge(empty).n == len(x)


def test_chunked_device_reduction_equals_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.from_numpy(_patches(n=1000, d=6))
    whole = StatisticsAccumulator(6).update(x).to_statistics()
    monkeypatch.setattr(stats_module, "_ROWS_PER_STEP", 64)
    chunked = StatisticsAccumulator(6).update(x).to_statistics()
    np.testing.assert_allclose(chunked.scatter, whole.scatter, rtol=1e-11)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-12)


def test_moments_do_not_change_the_running_state() -> None:
    acc = StatisticsAccumulator(3)
    acc.moments(torch.ones(5, 3))
    assert acc.n == 0
    with pytest.raises(ValueError, match=r"expected \(M, 3\)"):
        acc.update(torch.ones(5, 4))


def test_statistics_round_trip_through_arrays() -> None:
    s = PatchStatistics.from_patches(_patches(n=50, d=4))
    back = PatchStatistics.from_arrays(s.to_arrays("all"), "all")
    assert back.n == 50 and np.array_equal(back.scatter, s.scatter) and np.array_equal(back.mean, s.mean)
    with pytest.raises(KeyError, match="no statistics 'above'"):
        PatchStatistics.from_arrays(s.to_arrays("all"), "above", "x.npz")


def test_solve_pca_checks_its_inputs() -> None:
    s = PatchStatistics.from_patches(_patches(n=50, d=4))
    with pytest.raises(ValueError, match=r"n_components must be in \[1, 4\]"):
        solve_pca(s, 5)
    with pytest.raises(ValueError, match="at least 2 patches"):
        PatchStatistics.from_patches(np.ones((1, 4))).covariance()
