"""Benchmark: do the findings hold on real data? dinoscope against plain baselines, side by side.

On the real data in ../shared (truths built by seeded rules in ``tests/realdata.py``), with the offline
EfficientNet-Lite0 (fp32), the analyses exactly as ``dinoscope analyze`` runs them (``run_analyses``):

1. Sub-groups: DeepPCB boxes merged into two classes (missing copper = open + mousebite + pin-hole; extra
   copper = short + spur + spurious copper); truth = the original type. Adjusted Rand index of dinoscope's
   groups (not told k; ``auto``, the default, and the two steps it combines, ``hdbscan`` and ``spectral``) vs
   k-means told the true k = 3, per class;
   and each original type alone, where one group is the right answer.
2. Near-duplicates: PPE train as whole images; truth = the ``<orig>.rf.`` copy groups (``img*`` files left
   out). Pair precision / recall of dinoscope's duplicate groups vs the mutual top-2 neighbour rule.
3. Label errors: DeepPCB boxes with 5% of labels flipped (seeded); AUROC and precision@k (k = flips) of
   ``label_quality`` vs a 10-NN vote and a 5-fold cross-validated logistic regression.

Usage: python benchmarks/quality.py [--model efficientnet-lite0] [--work runs/bench-quality]
Vectors go through the content cache (``$DINOSCOPE_CACHE``), so a second run does not embed again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.realdata: the truths and baselines

from tests import realdata

from dinoscope.analysis.stage import run_analyses
from dinoscope.options import AnalysisOptions


def analyse(
    vectors: np.ndarray, class_id: np.ndarray, names: list[str], labelled: bool, cluster_method: str = "auto"
) -> tuple[dict, float]:
    """dinoscope's analyses over the vectors (no maps), and their wall time."""
    started = time.perf_counter()
    results, _, _ = run_analyses(
        vectors,
        class_id,
        names=names,
        labelled=labelled,
        split=np.full(len(vectors), "train"),
        options=AnalysisOptions(map_method="none", cluster_method=cluster_method),
    )
    return results, time.perf_counter() - started


def subgroups(table, truth: np.ndarray, vectors: np.ndarray) -> None:
    from sklearn.metrics import adjusted_rand_score

    methods = ("auto", "hdbscan", "spectral")
    found = {m: analyse(vectors, table.class_id, list(table.class_names), True, m) for m in methods}
    print(f"\n1. Sub-groups: DeepPCB merged into two classes ({len(table)} boxes), ARI (groups found)")
    head = "".join(f"{m + (' (default)' if m == 'auto' else ''):>16}" for m in methods)
    print(f"   {'class':<16} {'n':>5}{head} {'k-means told k=3':>17}")
    for c, name in enumerate(table.class_names):
        rows = np.flatnonzero(table.class_id == c)
        cells = ""
        for m in methods:
            cluster = found[m][0]["clusters"].findings["cluster"].to_numpy()[rows]
            n_groups = len(set(cluster.tolist()) - {-1})
            cells += f"{f'{adjusted_rand_score(truth[rows], cluster):.3f} ({n_groups})':>16}"
        base = adjusted_rand_score(truth[rows], realdata.kmeans_told_k(vectors[rows], 3))
        print(f"   {name:<16} {len(rows):>5}{cells} {base:>17.3f}")
    for m in methods:
        seconds = found[m][1]
        stability = found[m][0]["clusters"].findings["cluster_stability"].dropna()
        shown = f", group stability {stability.min():.2f}-{stability.max():.2f}" if len(stability) else ""
        print(f"   {m}: all analyses {seconds:.1f} s{shown}")
    print(f"   one type alone (the right answer is one group): groups found by {' / '.join(methods)}")
    for t in np.unique(truth):
        rows = np.flatnonzero(truth == t)
        counts = []
        for m in methods:
            alone, _ = analyse(vectors[rows], np.zeros(len(rows), int), [f"type{t}"], False, m)
            counts.append(str(len(set(alone["clusters"].findings["cluster"].tolist()) - {-1})))
        print(f"     type {t}: {len(rows)} boxes -> {' / '.join(counts)}")


def duplicates(table, groups: np.ndarray, vectors: np.ndarray) -> None:
    results, seconds = analyse(vectors, np.zeros(len(table), int), ["(unlabelled)"], labelled=False)
    found = results["duplicates"].findings["duplicate_group"].fillna(-1).to_numpy().astype(int)
    truth, judged = realdata.group_pairs(groups), groups >= 0
    p, r = realdata.pair_scores(realdata.group_pairs(found), truth, judged)
    bp, br = realdata.pair_scores(realdata.mutual_top2_pairs(vectors), truth, judged)
    print(f"\n2. Near-duplicates: PPE train whole images ({len(table)}; {len(truth)} true pairs; {seconds:.1f} s)")
    print(f"   {'method':<22} {'precision':>9} {'recall':>7}")
    print(f"   {'dinoscope':<22} {p:>9.3f} {r:>7.3f}")
    print(f"   {'mutual top-2':<22} {bp:>9.3f} {br:>7.3f}")


def label_errors(table, flipped: np.ndarray, vectors: np.ndarray) -> None:
    from sklearn.metrics import roc_auc_score

    labels = table.class_id
    results, seconds = analyse(vectors, labels, list(table.class_names), labelled=True)
    ours = results["label_errors"].findings["label_quality"].to_numpy()
    rows = {
        "dinoscope": ours,
        "10-NN vote": realdata.knn_vote_quality(vectors, labels),
        "5-fold CV logistic reg.": realdata.cv_logistic_quality(vectors, labels),
    }
    print(f"\n3. Label errors: DeepPCB with {int(flipped.sum())} of {len(table)} labels flipped ({seconds:.1f} s)")
    print(f"   {'method':<24} {'AUROC':>6} {'precision@k':>11}")
    for name, quality in rows.items():
        auroc = roc_auc_score(flipped, -quality)
        print(f"   {name:<24} {auroc:>6.3f} {realdata.precision_at_k(quality, flipped):>11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--work", type=Path, default=Path("runs/bench-quality"))
    args = parser.parse_args()
    if not realdata.SHARED.is_dir():
        raise SystemExit(f"{realdata.SHARED} is not there: this benchmark reads the team's shared data")
    started = time.perf_counter()
    merged, truth = realdata.deeppcb_merged()
    pcb_vectors = realdata.vectors_of(merged, args.work / "deeppcb", args.model)
    ppe, groups = realdata.ppe_whole_images()
    ppe_vectors = realdata.vectors_of(ppe, args.work / "ppe", args.model)
    seconds = time.perf_counter() - started
    print(f"{args.model}: vectors of {len(merged)} DeepPCB boxes and {len(ppe)} PPE images in {seconds:.0f} s")
    subgroups(merged, truth, pcb_vectors)
    duplicates(ppe, groups, ppe_vectors)
    flipped_table, flipped = realdata.deeppcb_flipped()
    label_errors(flipped_table, flipped, pcb_vectors)


if __name__ == "__main__":
    main()
