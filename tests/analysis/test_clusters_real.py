"""Sub-groups on real data: DeepPCB's six defect types merged into two classes, truth = the original type."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.clusters import find_subgroups
from tests.analysis.synthetic import exact_class_graphs

pytestmark = pytest.mark.slow
adjusted_rand_score = pytest.importorskip("sklearn.metrics").adjusted_rand_score


def test_merged_classes_beat_kmeans_told_k_and_single_types_stay_whole(real_deeppcb) -> None:
    from tests.realdata import MERGE, kmeans_told_k

    _, truth, vectors = real_deeppcb
    class_id = MERGE[truth]
    result = find_subgroups(vectors, class_id, exact_class_graphs(vectors, class_id, 15))  # the default: auto
    labels = result.findings["cluster"].reindex(np.arange(len(vectors))).to_numpy()
    for c in (0, 1):
        rows = np.flatnonzero(class_id == c)
        ours = adjusted_rand_score(truth[rows], labels[rows])
        told = adjusted_rand_score(truth[rows], kmeans_told_k(vectors[rows], 3))
        assert ours >= told, f"class {c}: ARI {ours:.3f} < k-means told k=3 {told:.3f}"
        assert result.findings.loc[rows, "cluster_stability"].dropna().between(0.75, 1.0).all()
    for t in np.unique(truth):
        rows = np.flatnonzero(truth == t)
        alone = np.zeros(len(rows), dtype=np.int64)
        single = find_subgroups(vectors[rows], alone, exact_class_graphs(vectors[rows], alone, 15))
        assert single.summary["0"]["n_clusters"] == 1, f"type {t}: {single.summary['0']['cluster_sizes']}"
