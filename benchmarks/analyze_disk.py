"""Benchmark: the whole ``dinoscope analyze`` on the in-memory graph against the on-disk graph, side by side.

A run directory with N synthetic float16 vectors (768-d, 2,000 Gaussian groups + 1 % outliers, the same
generator as ``benchmarks/scale.py``; 10 classes, each the region nearest one random direction) is analysed
twice, each time in a FRESH process (so each peak RSS is its own): ``--neighbor-method hnsw`` (the vectors
loaded as float32) and ``--neighbor-method disk`` (the store read in chunks, the graph from the on-disk
index). Printed: wall time, peak RSS, the ratio of each, and how many of the flags of every findings table
agree between the two.

Usage: python benchmarks/analyze_disk.py [--n 200000] [--dim 768] [--classes 10] [--map pca]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from scale import peak_rss_mb, write_store


def make_run(root: Path, n: int, dim: int, n_classes: int) -> Path:
    """A run directory whose store holds ``n`` synthetic vectors; the class of a vector is the nearest of
    ``n_classes`` random directions (classes are regions of the space, as real classes are)."""
    from dinoscope.embed.store import EmbeddingStore
    from dinoscope.run import Run
    from dinoscope.table import ObjectTable, compute_object_ids

    vectors = root.parent / f"{root.name}.npy"
    write_store(vectors, n, dim)
    x = np.load(vectors, mmap_mode="r")
    directions = np.random.default_rng(1).normal(size=(dim, n_classes)).astype(np.float32)
    cls = np.concatenate([np.argmax(x[a : a + 65_536] @ directions, axis=1) for a in range(0, n, 65_536)])
    hashes = [f"h{i:09d}" for i in range(n)]
    data = pd.DataFrame(
        {
            "source": [f"img/{i}.jpg" for i in range(n)],
            "frame": -1,
            "split": "train",
            "class_id": cls,
            "class_name": [f"c{c}" for c in cls],
            "x1": 0.0,
            "y1": 0.0,
            "x2": 10.0,
            "y2": 10.0,
            "image_w": 10,
            "image_h": 10,
            "origin": "label",
            "confidence": np.nan,
            "label_ref": "",
            "content_hash": hashes,
        }
    )
    data.insert(0, "object_id", compute_object_ids(hashes, [-1] * n, np.tile([0.0, 0, 10, 10], (n, 1)), cls))
    run = Run.create(root)
    ObjectTable(data=data, class_names=tuple(f"c{c}" for c in range(n_classes))).to_parquet(run.objects_path)
    store = EmbeddingStore.create(run.embeddings_dir, "synthetic", list(data["object_id"]), dim, {}, dtype="float16")
    for a in range(0, n, 65_536):
        store.write(np.arange(a, min(n, a + 65_536)), np.asarray(x[a : a + 65_536], dtype=np.float32))
    store.close()
    vectors.unlink()
    return root


def child(run: Path, method: str, map_method: str) -> None:
    """Analyse one run (fresh process) and print a JSON line with the wall time and peak RSS."""
    from dinoscope.workflows.analyze import analyze

    t0 = time.perf_counter()
    result = analyze(run=run, neighbor_method=method, map_method=map_method)
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "timings": result.timings}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--map", default="pca")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.map)
        return
    with tempfile.TemporaryDirectory() as tmp:
        results, findings = {}, {}
        for method in ("hnsw", "disk"):
            run = make_run(Path(tmp) / method, args.n, args.dim, args.classes)
            cmd = [sys.executable, __file__, "--child", str(run), method, "--map", args.map]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[method] = json.loads(out)
            findings[method] = {p.stem: pd.read_parquet(p) for p in sorted((run / "findings").glob("*.parquet"))}
            r = results[method]
            steps = ", ".join(f"{k} {v:.0f}" for k, v in r["timings"].items())
            print(f"{method:>5}: {r['seconds']:7.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MB  [{steps}]", flush=True)
        a, b = results["hnsw"], results["disk"]
        print(
            f"disk / hnsw: time {b['seconds'] / a['seconds']:.2f}x, peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x"
        )
        for name, frame in findings["hnsw"].items():
            other = findings["disk"][name]
            flags = [c for c in frame.columns if c.startswith("is_")]
            agree = {c: round(float((frame[c].to_numpy() == other[c].to_numpy()).mean()), 4) for c in flags}
            print(f"  {name}: flags agreeing {agree}")


if __name__ == "__main__":
    main()
