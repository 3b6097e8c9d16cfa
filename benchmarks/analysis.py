"""Benchmark: every analysis at scale, and dinoscope against the original clustering, side by side.

1. Scale: synthetic 768-d vectors (a Gaussian mixture per class, sub-groups, scattered outliers) at each
   ``--sizes`` n: the time of each analysis (kNN graph, within-class graphs, sub-groups, outliers,
   duplicates, label errors, overlap, leakage, 2-D map) and the peak RSS; then the growth exponent fitted
   to total time over n (log-log slope).
2. Side by side at n = 8k, 16k, 32k: the original approach (brute-force cosine NearestNeighbors for eps =
   90th percentile of the 3rd-neighbour distance, then DBSCAN per class on the full cosine metric) versus
   dinoscope's graph + HDBSCAN sub-groups + outliers, as a ratio of wall time, with the share of points
   each calls noise/outliers (the original's is pinned near 10% by its eps rule).
Usage: python benchmarks/analysis.py [--sizes 10000,100000] [--compare 8000,16000,32000] [--map umap|pca|none]
    [--neighbors auto|exact|hnsw|disk]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from dinoscope.analysis.clusters import find_subgroups
from dinoscope.analysis.neighbors import build_class_graphs
from dinoscope.analysis.outliers import find_outliers
from dinoscope.analysis.stage import run_analyses
from dinoscope.options import AnalysisOptions


def synthetic(
    n: int, dim: int = 768, n_classes: int = 10, n_sub: int = 4, outlier_frac: float = 0.01, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors (n, dim) float32 unit rows, class_id (n,), split (n,)) from a per-class Gaussian mixture."""
    rng = np.random.default_rng(seed)
    class_id = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, dim))
    subs = centres[:, None, :] + 0.6 * rng.normal(size=(n_classes, n_sub, dim))
    sub = rng.integers(0, n_sub, n)
    vectors = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):  # in chunks: bounded memory at 1 M
        sl = slice(start, min(n, start + 65536))
        vectors[sl] = subs[class_id[sl], sub[sl]] + 0.35 * rng.normal(size=(sl.stop - sl.start, dim))
    outliers = rng.choice(n, int(outlier_frac * n), replace=False)
    vectors[outliers] = rng.normal(size=(len(outliers), dim)) * 2.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    split = rng.choice(np.array(["train", "val", "test"]), n, p=[0.8, 0.1, 0.1])
    return vectors, class_id, split


def run_all(
    vectors: np.ndarray, class_id: np.ndarray, split: np.ndarray, map_method: str, neighbors: str = "auto"
) -> dict[str, float]:
    """Seconds per step of exactly what ``dinoscope analyze`` runs (global and per-class maps included)."""
    names = [f"c{i}" for i in range(class_id.max() + 1)]
    options = AnalysisOptions(map_method=map_method, neighbor_method=neighbors)
    _, _, timings = run_analyses(vectors, class_id, names=names, labelled=True, split=split, options=options)
    return timings


def original(vectors: np.ndarray, class_id: np.ndarray) -> tuple[float, float]:
    """The original scripts: per class, brute-force cosine 3-NN for eps, then DBSCAN on the full metric."""
    from sklearn.cluster import DBSCAN
    from sklearn.neighbors import NearestNeighbors

    t0 = time.perf_counter()
    noise = 0
    for c in np.unique(class_id):
        x = vectors[class_id == c]
        dist, _ = NearestNeighbors(n_neighbors=4, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
        eps = float(np.percentile(dist[:, 3], 90))
        labels = DBSCAN(eps=eps, min_samples=3, metric="cosine", algorithm="brute").fit_predict(x)
        noise += int((labels == -1).sum())
    return time.perf_counter() - t0, noise / len(vectors)


def ours(vectors: np.ndarray, class_id: np.ndarray) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    graphs = build_class_graphs(vectors, class_id, k=15)
    clusters = find_subgroups(vectors, class_id, graphs)
    outliers = find_outliers(vectors, class_id, graphs)
    flagged = outliers.findings["is_outlier"].to_numpy() | (clusters.findings["cluster"].to_numpy() < 0)
    return time.perf_counter() - t0, float(outliers.findings["is_outlier"].mean()), float(flagged.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--compare", default="8000,16000,32000")
    parser.add_argument("--map", default="umap")
    parser.add_argument("--neighbors", default="auto", help="the kNN graph: auto, exact, hnsw or disk")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    totals = []
    for n in sizes:
        vectors, class_id, split = synthetic(n)
        t = run_all(vectors, class_id, split, args.map, args.neighbors)
        totals.append(sum(t.values()))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        parts = ", ".join(f"{k} {v:.1f}" for k, v in t.items())
        print(f"n={n:>9,}: total {totals[-1]:7.1f} s  (peak RSS {rss:,.0f} MB)  [{parts}]")
    if len(sizes) > 1:
        slope = np.polyfit(np.log(sizes), np.log(totals), 1)[0]
        print(f"growth exponent (log-log slope of total time over n): {slope:.2f}")
    for n in [int(s) for s in args.compare.split(",") if s]:
        vectors, class_id, _ = synthetic(n, seed=1)
        t_orig, noise = original(vectors, class_id)
        t_ours, out_rate, flagged = ours(vectors, class_id)
        print(
            f"n={n:>6,}: original {t_orig:6.1f} s (noise {noise:.1%}) | dinoscope {t_ours:6.1f} s "
            f"(outliers {out_rate:.1%}, unclustered or outlier {flagged:.1%}; planted outliers 1.0%) | "
            f"speed-up {t_orig / t_ours:.1f}x"
        )


if __name__ == "__main__":
    main()
