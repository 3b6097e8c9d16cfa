"""Probe metrics against scikit-learn, and the group bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from dinoscope.analysis.probe_metrics import auroc, compute_probe_metrics


def _predictions(n: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


@pytest.mark.parametrize("n_classes", [2, 4])
def test_metrics_equal_scikit_learn(n_classes: int) -> None:
    labels, probs = _predictions(300, n_classes)
    names = [f"c{i}" for i in range(n_classes)]
    m = compute_probe_metrics(labels, probs, np.arange(300) // 3, names, n_boot=0)
    pred = probs.argmax(axis=1)
    assert m["accuracy"]["value"] == pytest.approx(skm.accuracy_score(labels, pred), abs=1e-4)
    assert m["balanced_accuracy"]["value"] == pytest.approx(skm.balanced_accuracy_score(labels, pred), abs=1e-4)
    assert m["macro_f1"]["value"] == pytest.approx(skm.f1_score(labels, pred, average="macro"), abs=1e-4)
    scores = probs[:, 1] if n_classes == 2 else probs
    expected_auc = skm.roc_auc_score(labels, scores, multi_class="ovr")
    assert m["auroc"]["value"] == pytest.approx(expected_auc, abs=1e-4)
    p, r, f, s = skm.precision_recall_fscore_support(labels, pred, labels=range(n_classes), zero_division=0)
    for c, name in enumerate(names):
        got = m["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p[c], r[c], f[c]), abs=1e-4)
        assert got["support"] == s[c]
    assert m["confusion"] == skm.confusion_matrix(labels, pred, labels=range(n_classes)).tolist()
    assert m["accuracy"]["low"] is None and m["n_boot"] == 0  # no bootstrap asked


def test_unscored_rows_and_absent_classes_are_handled_like_scikit_learn() -> None:
    labels, probs = _predictions(200, 3, seed=2)
    labels[:10] = -1
    probs[10:20] = np.nan
    probs[:, 2] = 0.0  # class 2 is never predicted
    m = compute_probe_metrics(labels, probs, np.arange(200), ["a", "b", "c"], n_boot=0)
    keep = (labels >= 0) & np.isfinite(probs).all(axis=1)
    pred = probs[keep].argmax(axis=1)
    assert m["n"] == int(keep.sum()) == 180
    assert m["macro_f1"]["value"] == pytest.approx(skm.f1_score(labels[keep], pred, average="macro"), abs=1e-4)
    assert m["per_class"]["c"]["precision"] == 0.0


def test_weighted_auroc_equals_repeated_rows_and_bins_stay_close() -> None:
    labels, probs = _predictions(400, 2, seed=3)
    groups = np.arange(400) // 4
    counts = np.random.default_rng(0).integers(0, 4, size=(1, 100)).astype(float)
    weights = counts[0][groups]
    got = auroc(labels, probs, groups, counts)[0]
    assert got == pytest.approx(skm.roc_auc_score(labels, probs[:, 1], sample_weight=weights), abs=1e-9)
    binned = auroc(labels, probs, groups, counts, max_bins=64)[0]
    assert abs(binned - got) < 1 / 64


def test_bootstrap_interval_holds_the_estimate_is_seeded_and_resamples_whole_groups() -> None:
    labels, probs = _predictions(600, 3, seed=4)
    names = ["a", "b", "c"]
    m = compute_probe_metrics(labels, probs, np.arange(600), names, n_boot=300, seed=1)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "auroc"):
        assert m[key]["low"] <= m[key]["value"] <= m[key]["high"], key
        assert m[key]["high"] - m[key]["low"] > 0.01, key
    assert m == compute_probe_metrics(labels, probs, np.arange(600), names, n_boot=300, seed=1)
    # The same 60 predictions copied 10 times: by row the copies look independent, by group they are not.
    base_y, base_p = labels[:60], probs[:60]
    y, p = np.tile(base_y, 10), np.tile(base_p, (10, 1))
    by_row = compute_probe_metrics(y, p, np.arange(600), names, n_boot=300)["accuracy"]
    by_group = compute_probe_metrics(y, p, np.tile(np.arange(60), 10), names, n_boot=300)["accuracy"]
    assert by_group["value"] == by_row["value"]
    assert (by_group["high"] - by_group["low"]) > 2.5 * (by_row["high"] - by_row["low"])
