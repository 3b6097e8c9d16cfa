"""Benchmark: the kNN probe's exact search, BLAS + torch top-k (what ``dinoscope probe`` runs) vs FAISS.

Same synthetic data and folds as ``benchmarks/probe.py`` (100 k x 384-d, grouped 5-fold); for each fold its test
rows are searched against its training rows for the top 200 by both, side by side in one run, and the neighbours
compared. Prints wall and CPU seconds of each and their ratio (on a machine shared with other jobs the wall time
is inflated; the CPU time and the ratio are what to read). Issue 16 asked whether FAISS makes the probe faster:
measured in session 5 under load 8-15, FAISS 115 CPU-s vs 103 for the whole kNN step (5 folds), 21.8 vs 19.2 for one
fold (ratio 1.14); the same neighbours.

Usage: OMP_NUM_THREADS=2 python benchmarks/probe_knn.py [--n 100000] [--folds 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from probe import synthetic  # benchmarks/probe.py

from dinoscope.analysis.probe_eval import select_evaluation_folds


def _torch_search(x: np.ndarray, train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    xt = x[train]
    out = np.empty((len(test), k), dtype=np.int64)
    for a in range(0, len(test), 2048):
        _, idx = torch.topk(torch.from_numpy(x[test[a : a + 2048]] @ xt.T), k, dim=1)
        out[a : a + 2048] = train[idx.numpy()]
    return out


def _faiss_search(x: np.ndarray, train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(np.ascontiguousarray(x[train]))
    _, idx = index.search(np.ascontiguousarray(x[test]), k)
    return train[idx]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--folds", type=int, default=1, help="how many of the 5 folds to time (5 = the whole step)")
    args = parser.parse_args()
    x, labels, groups, _ = synthetic(args.n, 384)
    folds = select_evaluation_folds(labels, groups, None, seed=0)
    times = {"BLAS + torch top-k": [0.0, 0.0], "FAISS IndexFlatIP": [0.0, 0.0]}
    same = []
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    for f in range(min(args.folds, folds.n_folds)):
        train, test = folds.train_rows(f), folds.test_rows(f)
        found = {}
        for name, search in (("BLAS + torch top-k", _torch_search), ("FAISS IndexFlatIP", _faiss_search)):
            wall, cpu = time.perf_counter(), time.process_time()
            found[name] = search(x, train, test, 200)
            times[name][0] += time.perf_counter() - wall
            times[name][1] += time.process_time() - cpu
        a, b = found.values()
        same.append(np.mean([set(r) == set(s) for r, s in zip(a[:, :20], b[:, :20], strict=True)]))
    for name, (wall, cpu) in times.items():
        print(f"  {name:20s} {wall:7.1f} s wall {cpu:7.1f} s CPU")
    (w0, c0), (w1, c1) = times.values()
    print(f"  FAISS / torch: wall {w1 / w0:.2f}, CPU {c1 / c0:.2f}; same top-20 sets for {np.mean(same):.4f} of rows")


if __name__ == "__main__":
    main()
