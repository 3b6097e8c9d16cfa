"""Benchmark: query latency of ``dinoscope search``'s index at 1 M objects, beside exact brute force.

Synthetic 384-d unit vectors (a mixture of 1,000 Gaussian blobs, like the objects of many classes and
sub-groups), stored as float16 like a ``--store-dtype float16`` run (``--dtype float32`` for float32). The
index is :func:`dinoscope.analysis.search_index.build_index` exactly as ``dinoscope search`` builds it (an IVF
above 50 k rows, ``nprobe`` tuned for recall@20 >= 0.95). Measured side by side in one run, single queries
(the command's case) on held-out vectors drawn like the data:

- the index: median and 95th-percentile latency per query, and its recall@20 against exact search;
- exact brute force: FAISS ``IndexFlatIP`` over the same vectors (one BLAS pass over every row).

Prints the build time, the ratio of the two latencies and whether the 50 ms target is met. On a machine shared
with other jobs absolute times are inflated; the ratio is measured in the same run.

Usage: OMP_NUM_THREADS=2 python benchmarks/search.py [--n 1000000] [--dim 384] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable

import numpy as np

from dinoscope.analysis.search_index import build_index


def synthetic(n: int, dim: int, dtype: str, n_blobs: int = 1000, noise: float = 1.2, seed: int = 0) -> np.ndarray:
    """(n, dim) unit vectors from ``n_blobs`` Gaussian blobs, built in chunks (float32 peak: one chunk)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blobs, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=dtype)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        x = centres[rng.integers(0, n_blobs, b - a)] + noise * rng.normal(size=(b - a, dim)).astype(np.float32)
        out[a:b] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _latencies(search: Callable[[np.ndarray], object], queries: np.ndarray) -> np.ndarray:
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        search(q[None])
        times[i] = time.perf_counter() - t0
    return times * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    parser.add_argument("--noise", type=float, default=1.2, help="blob spread per dimension (higher: harder)")
    args = parser.parse_args()
    import faiss

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    data = synthetic(args.n + args.queries, args.dim, args.dtype, noise=args.noise)
    base, queries = data[: args.n], np.asarray(data[args.n :], dtype=np.float32)
    print(
        f"{args.n:,} x {args.dim}-d {args.dtype} vectors made in {time.perf_counter() - t0:.1f} s "
        f"(load average before: {load:.1f}, FAISS threads {faiss.omp_get_max_threads()})"
    )

    t0 = time.perf_counter()
    index = build_index(base, seed=0)
    build_s = time.perf_counter() - t0
    info = index.info
    print(
        f"index: {info['kind']} nlist={info.get('nlist')} nprobe={info.get('nprobe')} built in {build_s:.1f} s "
        f"(nprobe tried {info.get('recall_tried')})"
    )

    exact = faiss.IndexFlatIP(args.dim)
    for a in range(0, args.n, 100_000):
        exact.add(np.ascontiguousarray(base[a : a + 100_000], dtype=np.float32))
    k = 20
    ann_ms = _latencies(lambda q: index.search(q, k), queries)
    exact_ms = _latencies(lambda q: exact.search(q, k), queries)
    found, _ = index.search(queries, k)
    _, truth = exact.search(queries, k)
    recall = float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(found, truth, strict=True)]))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med_ann, med_exact = float(np.median(ann_ms)), float(np.median(exact_ms))
    print(f"  {'':28s} {'median ms':>10s} {'p95 ms':>8s}")
    print(f"  {'index (' + info['kind'] + ')':28s} {med_ann:10.2f} {np.percentile(ann_ms, 95):8.2f}")
    print(f"  {'exact brute force (FlatIP)':28s} {med_exact:10.2f} {np.percentile(exact_ms, 95):8.2f}")
    print(
        f"  speed-up {med_exact / med_ann:.1f}x; recall@{k} vs exact {recall:.3f} on {len(queries)} held-out "
        f"queries; peak RSS {peak_mb:.0f} MB"
    )
    print(f"  target <= 50 ms per query: {'met' if med_ann <= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
