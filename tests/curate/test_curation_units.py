"""select_to_label, select_to_keep, find_units and assign_splits on synthetic vectors with planted answers."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.pruning import select_to_keep
from dinoscope.analysis.resplit import assign_splits, find_units
from dinoscope.analysis.selection import select_to_label


def _photos(n_photos: int = 120, copies: int = 3, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of ``copies`` near-identical copies of each photo, (N,) photo id); photos in 8 blobs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    base = centres[rng.integers(0, 8, n_photos)] + 0.6 * rng.normal(size=(n_photos, dim))
    x = np.concatenate([base + 0.02 * rng.normal(size=base.shape) for _ in range(copies)]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.tile(np.arange(n_photos), copies)


@pytest.mark.parametrize("strategy", ["typicality", "coverage"])
def test_selection_never_takes_copies_and_stops_short(strategy: str) -> None:
    x, photo = _photos()
    labelled = photo < 12  # every copy of photos 0-11 is labelled
    labelled[np.flatnonzero(photo == 12)[0]] = True  # one copy of photo 12: its other copies are off limits
    sel = select_to_label(x, labelled, 200, strategy)
    chosen = photo[sel.rows]
    assert len(chosen) == len(set(chosen)) == 120 - 13  # one per new photo, then no more (budget 200)
    assert not set(chosen) & set(range(13)) and sel.info["n_short"] == 200 - 107
    assert sel.info["n_blocked_copies_of_labelled"] == 2


def test_loss_strategy_goes_where_labelled_neighbours_fail() -> None:
    from dinoscope.analysis.curation import fit_kmeans

    x, _ = _photos(n_photos=400, copies=1)

    blob, _ = fit_kmeans(x, 2, seed=0)
    labelled = np.zeros(len(x), bool)
    labelled[::4] = True
    loss = np.where(labelled, np.where(blob == 0, 0.9, 0.05), np.nan)
    sel = select_to_label(x, labelled, 40, "loss", loss=loss)
    base = (blob[~labelled] == 0).mean()
    assert (blob[sel.rows] == 0).mean() >= base + 0.2  # the budget goes where the labelled images fail
    with pytest.raises(ValueError, match="dinoscope errors"):
        select_to_label(x, labelled, 20, "loss")


def test_pruning_drops_copies_first_and_keeps_protected_images_whole() -> None:
    x, photo = _photos()
    n = len(x)
    loss = np.full(n, 0.1)
    loss[photo == 5] = 1.0  # every copy of photo 5 fails
    image = np.arange(n) // 2  # two objects per image: (0, 1), (2, 3) ...
    res = select_to_keep(x, np.zeros(n, int), image, 120, loss=loss, class_floor=0)
    assert res.image_kept.sum() == 120
    assert set(res.reason[~res.kept]) <= {"near_duplicate", "close_to_centre", "budget", "far_from_centre"}
    assert res.kept[photo == 5].any() and "high_loss" in set(res.reason[photo == 5])
    assert (res.kept[image == image[0]] == res.kept[image[0]]).all()  # objects follow their image
    assert res.info["n_copies"] >= 200


def test_class_floor_wins_over_the_budget() -> None:
    x, photo = _photos(copies=1)
    cls = (photo >= 115).astype(int)  # 5 objects of class 1
    res = select_to_keep(x, cls, np.arange(len(x)), 10, class_floor=5)
    assert res.kept[cls == 1].all() and res.info["n_over_budget"] >= 0


def test_units_join_keys_and_copies_and_assignment_keeps_ratios() -> None:
    unit = find_units(6, np.array([0, 0, 1, 2, 3, 4]), np.array([-1, 5, 5, -1, 7, 7]))
    assert unit.tolist() == [0, 0, 0, 1, 2, 2]
    rng = np.random.default_rng(0)
    counts = np.c_[rng.integers(1, 4, 300), rng.integers(0, 5, (300, 3))]
    split = assign_splits(counts, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=0)
    shares = np.array([counts[split == s].sum(axis=0) / counts.sum(axis=0) for s in range(3)])
    assert np.abs(shares - np.array([[0.7], [0.2], [0.1]])).max() < 0.01


def test_a_copy_the_graph_missed_is_caught_by_the_exact_check() -> None:
    from dinoscope.analysis.base import NeighborGraph

    x, photo = _photos(n_photos=60, copies=2)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    for p in range(10):  # photos 0-9: their two copies never meet in the graph, as an approximate search can miss
        a, b = np.flatnonzero(photo == p)
        sims[a, b] = sims[b, a] = -np.inf
    idx = np.argsort(-sims, axis=1)[:, :10]
    blind = NeighborGraph(idx, np.take_along_axis(sims, idx, axis=1).astype(np.float32), np.arange(len(x)), "hnsw")
    sel = select_to_label(x, np.zeros(len(x), bool), 200, "typicality", graph=blind)
    chosen = photo[sel.rows]
    assert len(chosen) == len(set(chosen)) >= 50  # no photo twice (a few blinded copies join a neighbour's group)
    assert sel.info["n_dropped_by_exact_check"] >= 1
