"""Benchmark: the memory-bounded neighbour graph (:func:`dinoscope.analysis.neighbors_disk.disk_graph`) at growing N.

Synthetic float16 unit vectors (768-d, a mixture of 2,000 Gaussian groups — sub-types of 40 classes — plus 1%
uniform outliers) are written to an ``.npy`` store chunk by chunk, then each size is searched in a FRESH
process (so its peak RSS is its own): build (train + add + write), nprobe tuning, search + exact re-scoring.
Printed per size: seconds per stage, the child's CPU seconds, recall@15 on a 500-row sample, the peak RSS,
the store's size and the 1-minute load average (2 shared cores here); up to ``--hnsw-max`` rows the in-memory HNSW path
(``build_neighbor_graph``, the store loaded) runs on the same store and the ratios are printed; then
the growth exponents ``log(t2 / t1) / log(n2 / n1)`` of time and peak RSS between consecutive sizes.
Usage:
    python benchmarks/scale.py [--sizes 250000,500000,1000000,2000000] [--k 15] [--dim 768] [--hnsw-max 100000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_store(path: Path, n: int, dim: int, seed: int = 0, chunk: int = 32_768) -> None:
    """(n, dim) float16 unit vectors of a Gaussian mixture, written chunk by chunk (never all in memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2_000, dim)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
        outliers = rng.random(m) < 0.01
        x[outliers] = rng.standard_normal((int(outliers.sum()), dim), dtype=np.float32)
        out[start : start + m] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    out.flush()
    del out


def peak_rss_mb() -> float:
    """This process' peak resident set (VmHWM: reset by exec, unlike ``ru_maxrss``, which a child inherits
    from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(path: Path, k: int, workdir: Path, hnsw: bool) -> None:
    """Child process: build the graph of one store and print a JSON line with its figures (``hnsw``: the
    in-memory path, the store loaded, for the side-by-side ratio)."""
    from dinoscope.analysis.neighbors import build_neighbor_graph
    from dinoscope.analysis.neighbors_disk import disk_graph

    t0 = time.perf_counter()
    if hnsw:
        graph = build_neighbor_graph(np.load(path), k, method="hnsw")
        graph.info.update(tune_seconds=graph.info["recall_seconds"], nprobe="-", candidates="-", threads="-")
    else:
        graph = disk_graph(path, k, workdir=workdir)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    keys = ("build_seconds", "tune_seconds", "search_seconds", "nprobe", "candidates", "recall", "threads")
    print(json.dumps({"recall_tried": graph.info.get("recall_tried")}), file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime  # on a shared machine CPU seconds grow with N, unlike the wall time
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak, **{k: graph.info[k] for k in keys}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250000,500000,1000000,2000000")
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="also run the in-memory HNSW up to this N")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hnsw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.k, args.workdir, args.hnsw)
        return
    rows = []
    head = ("N", 10), ("path", 8), ("store MB", 9), ("build s", 8), ("tune s", 7), ("search s", 9), ("total s", 8)
    head += ("cpu s", 7), ("nprobe", 6), ("cand", 4), ("thr", 3), ("recall", 6), ("peak RSS MB", 11), ("load", 5)
    print(" ".join(f"{name:>{width}}" for name, width in head))
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "vectors.npy"
            write_store(store, n, args.dim)
            for path in ("disk", "hnsw") if n <= args.hnsw_max else ("disk",):
                cmd = [
                    sys.executable,
                    __file__,
                    "--one",
                    str(store),
                    "--k",
                    str(args.k),
                    "--workdir",
                    str(Path(tmp) / "knn"),
                ]
                out = subprocess.run(cmd + ["--hnsw"] * (path == "hnsw"), check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if path == "disk":
                    rows.append((n, r))
                    tried = [line for line in out.stderr.splitlines() if line.startswith('{"recall_tried"')]
                    steps = tried[-1][17:-1] if tried else "-"
                    print(f"{'':>10} tuning (nprobe, candidates per neighbour, recall): {steps}")
                print(
                    f"{n:>10,} {path:>8} {store.stat().st_size / 2**20:>9,.0f} {r['build_seconds']:>8.1f} "
                    f"{r['tune_seconds']:>7.1f} {r['search_seconds']:>9.1f} {r['seconds']:>8.1f} "
                    f"{r['cpu_seconds']:>7.1f} {r['nprobe']:>6} "
                    f"{r['candidates']:>4} {r['threads']:>3} {r['recall']:>6.3f} {r['peak_rss_mb']:>11,.0f} "
                    f"{os.getloadavg()[0]:>5.1f}",
                    flush=True,
                )
                if path == "hnsw":
                    disk = rows[-1][1]
                    print(f"{'':>10} disk / in-memory HNSW: time {disk['seconds'] / r['seconds']:.2f}x, "
                          f"peak RSS {disk['peak_rss_mb'] / r['peak_rss_mb']:.2f}x", flush=True)  # fmt: skip
    for (n1, a), (n2, b) in itertools.pairwise(rows):
        ratio = math.log(n2 / n1)
        print(
            f"growth {n1:,} -> {n2:,}: time exponent {math.log(b['seconds'] / a['seconds']) / ratio:.2f}, "
            f"CPU time exponent {math.log(b['cpu_seconds'] / a['cpu_seconds']) / ratio:.2f}, "
            f"peak RSS exponent {math.log(b['peak_rss_mb'] / a['peak_rss_mb']) / ratio:.2f}"
        )


if __name__ == "__main__":
    main()
