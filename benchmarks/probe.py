"""Benchmark: the probes of ``dinoscope probe`` on 100 k synthetic vectors, the time of each protocol.

Synthetic 384-d unit vectors, 10 classes, in groups of 5 rows that share a group offset (like the boxes of
one image): the group-aware folds keep them whole. Timed, each on the same folds exactly as the command
runs them (:mod:`dinoscope.analysis.probe_eval`, :mod:`dinoscope.analysis.probe_metrics`):

- the fold assignment (stratified grouped 5-fold, or the dataset's train / test split with ``--split``),
- the weighted kNN (k = 10, 20, 100, 200 from one similarity pass per fold),
- the logistic regression (C chosen by inner grouped 3-fold CV on <= 8 k training rows, then refitted),
- the metrics with 1000 group-bootstrap resamples, for the five probe rows (kNN x 4, logistic regression).

Prints wall and CPU seconds per step (on a machine shared with other jobs the wall time is inflated; the load
average before the run is printed too).

Usage: OMP_NUM_THREADS=2 python benchmarks/probe.py [--n 100000] [--dim 384] [--split]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from dinoscope.analysis.probe_eval import logistic_probabilities, select_evaluation_folds
from dinoscope.analysis.probe_knn import knn_probabilities
from dinoscope.analysis.probe_metrics import compute_probe_metrics


def synthetic(n: int, dim: int, n_classes: int = 10, group_size: int = 5, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(vectors (n, dim) float32 unit rows, class ids, group ids, split) with a per-group offset."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n) // group_size
    n_groups = int(groups[-1]) + 1
    group_class = rng.integers(0, n_classes, n_groups)
    centres = rng.normal(size=(n_classes, dim)).astype(np.float32)
    offsets = rng.normal(size=(n_groups, dim)).astype(np.float32)
    noise = rng.normal(size=(n, dim)).astype(np.float32)
    vectors = 0.25 * centres[group_class[groups]] + 0.35 * offsets[groups] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    split = np.where(rng.random(n_groups) < 0.8, "train", "test")[groups]
    return vectors, group_class[groups], groups, split


class _Clock:
    """Wall and process CPU seconds of each step (CPU time shows what a busy shared machine hides)."""

    def __init__(self, times: dict[str, tuple[float, float]]) -> None:
        self.times = times

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.times[name] = (time.perf_counter() - wall, time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--split", action="store_true", help="use an 80/20 train/test split instead of 5 folds")
    args = parser.parse_args()
    vectors, labels, groups, split = synthetic(args.n, args.dim)
    names = [f"c{i}" for i in range(10)]
    load = os.getloadavg()[0]
    times: dict[str, tuple[float, float]] = {}  # step -> (wall s, CPU s of this process)
    clock = _Clock(times)
    with clock("folds"):
        folds = select_evaluation_folds(labels, groups, split if args.split else None, seed=0)
    with clock("knn (k=10,20,100,200)"):
        knn, _ = knn_probabilities(vectors, labels, folds, 10)
    with clock("logistic regression"):
        logreg, info = logistic_probabilities(vectors, labels, folds, groups, 10, seed=0)
    with clock("metrics + bootstrap (5 rows)"):
        rows = {f"knn{k}": p for k, p in knn.items()} | {"logreg": logreg}
        metrics = {name: compute_probe_metrics(labels, p, groups, names, n_boot=1000) for name, p in rows.items()}
    wall, cpu = (sum(v[i] for v in times.values()) for i in (0, 1))

    print(f"{args.n} vectors x {args.dim}-d, 10 classes, {groups[-1] + 1} groups; {folds.mode} ({folds.n_folds} folds)")
    print(f"  {'step':32s} {'wall s':>7s} {'CPU s':>7s}   (load average before: {load:.1f})")
    for name, (w, c) in times.items():
        print(f"  {name:32s} {w:7.1f} {c:7.1f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {'total':32s} {wall:7.1f} {cpu:7.1f}   (peak RSS {peak_mb:.0f} MB)")
    print(f"  logistic regression C per fold: {info['C']}")
    for name, m in metrics.items():
        acc, auc = m["accuracy"], m["auroc"]
        interval = f"[{acc['low']:.3f}, {acc['high']:.3f}]"
        print(f"  {name:8s} accuracy {acc['value']:.3f} {interval}  AUROC {auc['value']:.3f}")


if __name__ == "__main__":
    main()
