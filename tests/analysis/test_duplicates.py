"""Exact and near duplicates: planted copies are found and ranked first, clean data flags none, PPE copies."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.base import NeighborGraph
from dinoscope.analysis.duplicates import FENCE_MAX, find_duplicates
from dinoscope.analysis.neighbors import build_neighbor_graph
from tests.analysis.synthetic import make_vectors, normalize
from tests.realdata import group_pairs

K = 15


def _no_keys(n: int) -> np.ndarray:
    return np.array([""] * n, dtype=object)


def _planted_rows(pairs: np.ndarray) -> set[int]:
    return set(pairs.ravel().tolist())


@pytest.mark.parametrize("noise", [0.0, 0.005, 0.02])
def test_planted_duplicates_found_and_ranked_first(noise: float) -> None:
    syn = make_vectors([300, 250, 200], n_subgroups_per_class=2, n_duplicates=12, duplicate_noise=noise, seed=3)
    res = find_duplicates(syn.vectors, build_neighbor_graph(syn.vectors, K), _no_keys(len(syn.vectors)))
    f = res.findings
    planted = _planted_rows(syn.duplicate_pairs)
    assert set(np.flatnonzero(f["is_duplicate"])) == planted  # all found, nothing else
    ranked = f.sort_values("duplicate_quality", kind="stable").index[: len(planted)]
    assert set(ranked) == planted
    for a, b in syn.duplicate_pairs:  # each pair is one group with one keeper
        assert f.at[a, "duplicate_group"] == f.at[b, "duplicate_group"] >= 0
        assert f.at[a, "keep"] != f.at[b, "keep"]
        assert {f.at[a, "nearest_duplicate"], f.at[b, "nearest_duplicate"]} == {a, b}
    assert f["is_exact_duplicate"].sum() == (len(planted) if noise == 0.0 else 0)  # identical vectors are exact
    assert res.info["rule"] in ("otsu", "fence") and 0 < res.info["threshold"] <= 0.75


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kw", [{}, {"n_subgroups_per_class": 4, "noise": 0.1}, {"n_outliers": 30}])
def test_no_duplicates_flags_none(seed: int, kw: dict) -> None:
    syn = make_vectors([400, 300, 300], seed=seed, **kw)
    res = find_duplicates(syn.vectors, build_neighbor_graph(syn.vectors, K), _no_keys(len(syn.vectors)))
    assert res.findings["is_duplicate"].sum() <= 2  # ~none of 1000+
    assert res.info["rule"] == "fence" and res.info["otsu_eta"] < res.info["eta_min"]
    assert res.info["threshold"] <= FENCE_MAX
    assert (res.findings["duplicate_group"] == -1).mean() > 0.99


def test_bimodal_data_uses_the_valley_between_modes() -> None:
    """Many augmented-like copies form their own mode; Otsu's cut lies between it and ordinary neighbours."""
    syn = make_vectors([400, 300, 300], n_duplicates=200, duplicate_noise=0.02, seed=4)
    res = find_duplicates(syn.vectors, build_neighbor_graph(syn.vectors, K), _no_keys(len(syn.vectors)))
    assert res.info["rule"] == "otsu" and res.info["otsu_eta"] >= res.info["eta_min"]
    found = set(np.flatnonzero(res.findings["is_duplicate"]))
    planted = _planted_rows(syn.duplicate_pairs)
    assert len(found & planted) / len(planted) >= 0.98
    assert len(found - planted) <= 0.01 * len(syn.vectors)


def test_exact_duplicates_by_content_key_even_when_not_neighbours() -> None:
    rng = np.random.default_rng(0)
    x = normalize(rng.standard_normal((40, 32)))
    keys = _no_keys(40)
    keys[[3, 17, 29]] = "hash-a|-1|0,0,10,10"  # same content, different (random) vectors
    keys[[5, 6]] = "hash-b|-1|0,0,10,10"
    res = find_duplicates(x, build_neighbor_graph(x, 5), keys)
    f = res.findings
    assert set(np.flatnonzero(f["is_exact_duplicate"])) == {3, 5, 6, 17, 29}
    assert (f.loc[[3, 5, 6, 17, 29], "duplicate_quality"] == 0).all()
    assert f.loc[[3, 17, 29], "duplicate_group"].tolist() == [0, 0, 0]  # largest group first
    assert f.loc[[5, 6], "duplicate_group"].tolist() == [1, 1]
    assert f.loc[[3, 17, 29], "duplicate_of"].tolist() == [-1, 3, 3]  # lowest row kept without area/split
    assert res.info["n_groups"] == 2 and res.info["n_to_drop"] == 3


def test_keep_rule_prefers_largest_area_then_earliest_split() -> None:
    rng = np.random.default_rng(1)
    x = normalize(rng.standard_normal((20, 16)))
    keys = _no_keys(20)
    keys[[2, 7, 11]] = "same"
    area = np.ones(20)
    split_rank = np.zeros(20, dtype=int)
    area[[2, 7, 11]] = [100.0, 400.0, 400.0]
    split_rank[[2, 7, 11]] = [0, 2, 1]  # 7 is in test, 11 in val: equal areas, val is earlier
    f = find_duplicates(x, build_neighbor_graph(x, 5), keys, area=area, split_rank=split_rank).findings
    assert f.loc[[2, 7, 11], "keep"].tolist() == [False, False, True]
    assert f.loc[[2, 7, 11], "duplicate_of"].tolist() == [11, 11, -1]


def test_user_threshold_and_min_similarity_are_recorded() -> None:
    syn = make_vectors([200, 200], n_duplicates=5, duplicate_noise=0.02, seed=5)
    graph = build_neighbor_graph(syn.vectors, K)
    res = find_duplicates(syn.vectors, graph, _no_keys(len(syn.vectors)), threshold=0.0)
    assert res.info["rule"] == "user" and res.findings["is_near_duplicate"].sum() == 0
    res = find_duplicates(syn.vectors, graph, _no_keys(len(syn.vectors)), threshold=0.0, min_similarity=-1.0)
    assert res.info["min_similarity"] == -1.0 and res.findings["is_near_duplicate"].all()


def test_quality_matches_flag_and_padded_graph_rows() -> None:
    """is_near_duplicate is exactly duplicate_quality <= threshold; -1 padding and partial graphs are fine."""
    syn = make_vectors([150, 100], n_duplicates=6, duplicate_noise=0.01, seed=6)
    graph = build_neighbor_graph(syn.vectors, K)
    res = find_duplicates(syn.vectors, graph, _no_keys(len(syn.vectors)))
    f = res.findings
    assert ((f["duplicate_quality"] <= res.info["threshold"]) == f["is_near_duplicate"]).all()
    assert f["duplicate_quality"].between(0, 1).all()
    tiny = NeighborGraph(np.array([[1, -1], [0, -1]]), np.array([[0.5, -np.inf], [0.5, -np.inf]], np.float32), [0, 1])
    out = find_duplicates(syn.vectors[:3], tiny, _no_keys(3)).findings  # row 2 is not in the graph
    assert out.loc[2, "duplicate_quality"] == 1.0 and not out["is_duplicate"].any()


def test_bad_shapes_are_reported() -> None:
    x = normalize(np.random.default_rng(0).standard_normal((10, 8)))
    graph = build_neighbor_graph(x, 3)
    with pytest.raises(ValueError, match="content_key has shape"):
        find_duplicates(x, graph, _no_keys(9))
    with pytest.raises(ValueError, match="area has shape"):
        find_duplicates(x, graph, _no_keys(10), area=np.ones(3))
    with pytest.raises(ValueError, match="k must be in"):
        find_duplicates(x, graph, _no_keys(10), k=4)


# ------------------------------------------------------------------------------------- real data: PPE


def test_approximate_graph_that_missed_true_neighbours_is_verified_exactly() -> None:
    # Rows 0 and 1 sit in a tight cluster A; an approximate search "stuck" in cluster B found only each other
    # plus B's rows, so their k-th neighbour looks far and the pair looks like a copy. Exact re-measurement of
    # the candidates' scales removes the false pair; the same crafted graph called exact keeps it.
    rng = np.random.default_rng(0)
    a = rng.normal(size=64) * 3 + rng.normal(size=(30, 64))
    b = rng.normal(size=64) * 3 + rng.normal(size=(30, 64))
    x = np.concatenate([a, b]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = build_neighbor_graph(x, k=10, method="exact")
    idx, sims = exact.indices.copy(), exact.sims.copy()
    for i, j in ((0, 1), (1, 0)):
        wrong = np.concatenate([[j], np.arange(30, 39)])
        idx[i], sims[i] = wrong, np.sort(x[wrong] @ x[i])[::-1]
    keys = np.full(len(x), "", dtype=object)
    trusted = find_duplicates(x, NeighborGraph(idx, sims, exact.rows, "exact"), keys, threshold=0.5)
    assert trusted.findings.loc[[0, 1], "is_near_duplicate"].all()
    checked = find_duplicates(x, NeighborGraph(idx, sims, exact.rows, "hnsw"), keys, threshold=0.5)
    assert not checked.findings["is_near_duplicate"].any()
    assert checked.info["n_scales_verified"] == 2


# ------------------------------------------------------------------------------------- mutual-rank evidence


def _with_triples(vectors: np.ndarray, frac: float, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The vectors plus two noisy copies of a share of them; (vectors, (N,) copy group, -1 none)."""
    rng = np.random.default_rng(seed)
    n, m = len(vectors), int(frac * len(vectors))
    src = rng.choice(n, m, replace=False)
    copies = [normalize(vectors[src] + noise * rng.standard_normal((m, vectors.shape[1]))) for _ in range(2)]
    group = np.full(n + 2 * m, -1)
    group[src] = group[n : n + m] = group[n + m :] = np.arange(m)
    return np.concatenate([vectors, *copies]).astype(np.float32), group


@pytest.mark.parametrize("method", ["exact", "hnsw"])
def test_mutual_rank_finds_far_copies_where_copies_fill_the_top_ranks(method: str) -> None:
    """Every object has two noisy copies: some lie beyond Otsu's cut, but they are mutual top-2 neighbours."""
    syn = make_vectors([400, 300, 300], n_subgroups_per_class=3, noise=0.1, seed=1)
    x, truth = _with_triples(syn.vectors, 1.0, 0.05, seed=1)
    res = find_duplicates(x, build_neighbor_graph(x, K, method=method), _no_keys(len(x)))
    info, f = res.info, res.findings
    assert info["rule"] == "otsu" and info["mutual_rule"] == "mutual"
    assert info["mutual_lr"] >= info["mutual_lr_min"]
    assert info["threshold"] < info["mutual_threshold"] <= 0.9 and info["n_mutual_pairs"] > 0
    found = group_pairs(f["duplicate_group"].to_numpy())
    assert found == group_pairs(truth)
    assert ((f["duplicate_quality"] <= info["threshold"]) == f["is_near_duplicate"]).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_mutual_rank_is_no_evidence_where_few_objects_have_copies(seed: int) -> None:
    """With copies of 5% of the objects, ordinary mutual neighbours are common: the rule stays off, no false pair."""
    syn = make_vectors([400, 300, 300], n_subgroups_per_class=3, noise=0.1, seed=seed)
    x, truth = _with_triples(syn.vectors, 0.05, 0.03, seed=seed)
    res = find_duplicates(x, build_neighbor_graph(x, K), _no_keys(len(x)))
    assert res.info["rule"] == "otsu" and res.info["mutual_rule"] == "off"
    assert res.info["mutual_lr"] < res.info["mutual_lr_min"]
    assert res.info["mutual_threshold"] == res.info["threshold"] and res.info["n_mutual_pairs"] == 0
    assert group_pairs(res.findings["duplicate_group"].to_numpy()) == group_pairs(truth)


def test_user_threshold_turns_the_mutual_rule_off() -> None:
    syn = make_vectors([300, 300], seed=2)
    x, _ = _with_triples(syn.vectors, 1.0, 0.05)
    res = find_duplicates(x, build_neighbor_graph(x, K), _no_keys(len(x)), threshold=0.2)
    assert res.info["rule"] == "user" and "mutual_rule" not in res.info and res.info["n_mutual_pairs"] == 0
