"""Benchmark: the probes of ``dinoscope probe`` on 100 k synthetic vectors, the new path vs the old, side by side.

Synthetic 384-d unit vectors, 10 classes, in groups of 5 rows that share a group offset (like the boxes of
one image): the group-aware folds keep them whole. Timed, each on the same folds exactly as the command
runs them (:mod:`dinoscope.analysis.probe_eval`, :mod:`dinoscope.analysis.probe_metrics`):

- the fold assignment (stratified grouped 5-fold, or the dataset's train / test split with ``--split``),
- the weighted kNN (k = 10, 20, 100, 200 from one exact top-200 search),
- the logistic regression (C chosen by inner grouped 3-fold CV on <= 8 k training rows, then refitted),
- the metrics with 1000 group-bootstrap resamples, for the five probe rows (kNN x 4, logistic regression).

Old path, side by side on the same data: scikit-learn's ``StratifiedGroupKFold`` for the outer and the inner
folds, a fresh product array for every block of the kNN's search, the bootstrap's resamples drawn by
``rng.multinomial`` over the groups. New path: the same folds dealt by :mod:`dinoscope.analysis.grouped_folds`,
one product buffer for every block of every fold (:mod:`dinoscope.analysis.probe_search`, which also records
what was measured and dropped), the resamples drawn as uniform group picks counted per resample and the
AUROC's bootstrap products in float32 (exact: integer counts). Both run the folds' logistic regressions on one
thread each and two bootstrap chunks at a time. Precision: float32 products in both (no bfloat16 pass,
whatever the CPU). The run checks the new path's numbers against the old: the same folds, the same kNN
probabilities and logistic regression, every point metric identical and every bootstrap interval within 0.01
(other draws of the same law).

Prints wall and CPU seconds per step for each path, their ratio, and the new total against the 60 s goal of
issue 13 (on a machine shared with other jobs the wall time is inflated; the load average is printed too).

Usage: OMP_NUM_THREADS=2 python benchmarks/probe.py [--n 100000] [--dim 384] [--split] [--new-only]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from dinoscope.analysis import probe_eval, probe_metrics
from dinoscope.analysis.probe_eval import available_cores, logistic_probabilities, select_evaluation_folds
from dinoscope.analysis.probe_knn import knn_probabilities
from dinoscope.analysis.probe_metrics import HEADLINE, compute_probe_metrics


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


STEPS = ("folds", "knn (k=10,20,100,200)", "logistic regression", "metrics + bootstrap (5 rows)")


def run_probes(data: tuple[np.ndarray, ...], split: bool, old: bool) -> tuple[dict, dict, dict, dict]:
    """(step -> (wall s, CPU s), probability rows, metrics per row, logistic-regression info) of one path."""
    vectors, labels, groups, splits = data
    names = [f"c{i}" for i in range(10)]
    times: dict[str, tuple[float, float]] = {}
    clock = _Clock(times)
    with _session_6(old):
        with clock(STEPS[0]):
            folds = select_evaluation_folds(labels, groups, splits if split else None, seed=0)
        with clock(STEPS[1]):
            knn, _ = knn_probabilities(vectors, labels, folds, 10, reuse_buffer=not old)
        with clock(STEPS[2]):
            logreg, info = logistic_probabilities(vectors, labels, folds, groups, 10, seed=0)
        with clock(STEPS[3]):
            rows = {f"knn{k}": p for k, p in knn.items()} | {"logreg": logreg}
            metrics = {n: compute_probe_metrics(labels, p, groups, names, n_boot=1000) for n, p in rows.items()}
    times["total"] = tuple(sum(v[i] for v in list(times.values())) for i in (0, 1))  # type: ignore[assignment]
    return times, rows, metrics, info | {"folds": folds}


@contextmanager
def _session_6(old: bool) -> Iterator[None]:
    """With ``old``: scikit-learn's fold dealing and the multinomial resample draws put back for the block."""
    if not old:
        yield
        return
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    def sklearn_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
        fold = np.empty(len(y), dtype=np.int64)
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for f, (_, test) in enumerate(splitter.split(y, y, groups)):
                fold[test] = f
        return fold

    def multinomial(rng: np.random.Generator, n_groups: int, size: int) -> np.ndarray:
        return rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=size)

    saved = probe_eval.stratified_group_kfold, probe_metrics._resample_counts
    probe_eval.stratified_group_kfold, probe_metrics._resample_counts = sklearn_folds, multinomial
    try:
        yield
    finally:
        probe_eval.stratified_group_kfold, probe_metrics._resample_counts = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--split", action="store_true", help="use an 80/20 train/test split instead of 5 folds")
    parser.add_argument("--new-only", action="store_true", help="skip the old path (compare with 60 s only)")
    args = parser.parse_args()
    for old in (False, True):  # warm-up: imports, thread pools
        run_probes(synthetic(2000, args.dim), args.split, old)
    data = synthetic(args.n, args.dim)
    load = os.getloadavg()[0]
    new, rows, metrics, info = run_probes(data, args.split, old=False)
    old = None if args.new_only else run_probes(data, args.split, old=True)
    folds = info["folds"]
    print(
        f"{args.n} vectors x {args.dim}-d, 10 classes, {data[2][-1] + 1} groups; {folds.mode} ({folds.n_folds} folds)"
    )
    print(f"  float32 products; {available_cores()} cores, torch threads {_torch_threads()}; load before {load:.1f}")
    print(
        f"  {'step':32s} {'new wall':>9s} {'new CPU':>8s}"
        + ("" if old is None else "   old wall  old CPU   wall ratio")
    )
    for name, (w, c) in new.items():
        line = f"  {name:32s} {w:8.1f}s {c:7.1f}s"
        if old is not None:
            ow, oc = old[0][name]
            line += f"   {ow:8.1f}s {oc:7.1f}s   {ow / max(w, 1e-9):5.2f}x"
        print(line)
    wall = new["total"][0]
    print(f"  new total {wall:.1f} s wall: {'within' if wall <= 60 else 'OVER'} the 60 s goal ({wall / 60:.2f} of it)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS {peak_mb:.0f} MB; logistic regression C per fold: {info['C']}")
    if old is not None:
        _check_same((new, rows, metrics, info), old)
    for name, m in metrics.items():
        acc, auc = m["accuracy"], m["auroc"]
        interval = f"[{acc['low']:.3f}, {acc['high']:.3f}]"
        print(f"  {name:8s} accuracy {acc['value']:.3f} {interval}  AUROC {auc['value']:.3f}")


def _check_same(new: tuple, old: tuple) -> None:
    """Print (and fail on) any difference between the new path's numbers and the old's beyond the draws."""
    (_, rows, metrics, info), (_, old_rows, old_metrics, old_info) = new, old
    same_folds = np.array_equal(info["folds"].fold, old_info["folds"].fold)
    print(f"  folds new vs old (scikit-learn): identical {same_folds}")
    failed = [] if same_folds else ["folds"]
    for name, p in rows.items():
        q = old_rows[name]
        tested = np.isfinite(q).all(axis=1)
        diff = float(np.max(np.abs(p[tested] - q[tested]))) if tested.any() else 0.0
        same_class = float(np.mean(p[tested].argmax(1) == q[tested].argmax(1)))
        m, o = metrics[name], old_metrics[name]
        points = all(m[h]["value"] == o[h]["value"] for h in HEADLINE) and m["per_class"] == o["per_class"]
        drift = max(abs(m[h][e] - o[h][e]) for h in HEADLINE for e in ("low", "high"))
        print(
            f"  {name:8s} new vs old: max |dp| {diff:.1e}, same class {same_class:.4f}, same point metrics {points}, "
            f"intervals moved <= {drift:.4f}"
        )
        if diff > 1e-5 or same_class < 1 or not points or drift > 0.01:
            failed.append(name)
    if failed:
        raise SystemExit(f"the new path changed the result: {failed}")


def _torch_threads() -> int | str:
    try:
        import torch
    except ImportError:
        return "-"
    return torch.get_num_threads()


if __name__ == "__main__":
    main()
