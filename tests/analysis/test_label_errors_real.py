"""Label errors on real data: DeepPCB boxes with 5% of their labels flipped (seeded), EfficientNet-Lite0 vectors.

The analysis runs as the pipeline runs it (the registry's runner over an analysis context: the shared kNN
graph, the duplicates' groups, the boxes' source images as fold groups) and must rank the flips at least as
well as the plain cross-validated logistic regression on the same vectors (issue 12: AUROC >= 0.99 and
precision@k >= the CV logistic regression's, k = number of flips).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tests import realdata

pytestmark = pytest.mark.slow


def _auroc(score: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, -score))  # low quality = suspicious


def test_flipped_deeppcb_labels_rank_first(real_deeppcb: tuple, deeppcb_dir: Path) -> None:
    from dinoscope.analysis.builtin import run_duplicates, run_label_errors
    from dinoscope.analysis.neighbors import build_neighbor_graph
    from dinoscope.analysis.registry import AnalysisContext
    from dinoscope.options import AnalysisOptions

    merged, _, vectors = real_deeppcb
    table, flipped = realdata.deeppcb_flipped(deeppcb_dir)
    assert len(table) == len(merged) and (table.data["source"].to_numpy() == merged.data["source"].to_numpy()).all()
    labels = table.class_id
    options = AnalysisOptions()
    graph = build_neighbor_graph(vectors, options.k)
    ctx = AnalysisContext(
        vectors=vectors,
        class_id=labels,
        names=list(table.class_names),
        labelled=True,
        graph=graph,
        class_graphs={},
        split=table.data["split"].to_numpy(),
        content_keys=np.full(len(table), "", dtype=object),
        options=options,
        table=table,
    )
    ctx.results["duplicates"] = run_duplicates(ctx)
    start = time.perf_counter()
    result = run_label_errors(ctx)
    seconds = time.perf_counter() - start

    quality = result.findings["label_quality"].to_numpy()
    auroc, p_at_k = _auroc(quality, flipped), realdata.precision_at_k(quality, flipped)
    lr = realdata.cv_logistic_quality(vectors, labels)
    lr_p_at_k = realdata.precision_at_k(lr, flipped)
    print(f"label errors: AUROC {auroc:.4f} p@k {p_at_k:.3f} ({seconds:.1f} s); CV-LR p@k {lr_p_at_k:.3f}")
    assert auroc >= 0.99
    assert p_at_k >= lr_p_at_k
    probe = result.info["probe"]
    assert probe["cv_accuracy"] > 0.8 and probe["folds"] == 5
    flags = result.findings["is_label_error"].to_numpy()
    assert flipped[flags].mean() >= 0.5 and flags[flipped].mean() >= 0.7  # flags are mostly flips, most flips flagged
    truth = realdata.deeppcb_flipped(deeppcb_dir, frac=0.0)[0].class_id  # the labels before flipping
    assert (result.findings["suggested_class"].to_numpy()[flipped] == truth[flipped]).mean() >= 0.8
