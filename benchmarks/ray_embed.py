"""Benchmark: ``embed --engine ray`` against the local engine on this machine, same data, model and precision.

Side by side in one run, on box crops of ../shared/data/ppe-hardhat-vest (EfficientNet-Lite0, fp32, cache off):
1. the local engine (its own split of the cores, printed);
2. Ray Data on a local Ray of the machine's cores (started once, its start-up timed apart), with 1 and 2 model
   actors: time, Ray's overhead against (1) and the per-worker scaling (2 actors / 1 actor);
3. the cosine agreement of the Ray vectors with the local ones (min over rows).

On a 2-core machine two actors share the cores with the decoding tasks, so the scaling shows Ray's overhead
rather than a second machine's gain; on a cluster each actor brings its own cores or GPU. Usage:
    python benchmarks/ray_embed.py [--n 512] [--model efficientnet-lite0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dinoscope.embed.ray_engine import connect
from dinoscope.embed.store import EmbeddingStore
from dinoscope.workflows.embed import embed
from embed import PPE, subset_dataset


def timed_embed(out: Path, **kw: object) -> tuple[float, np.ndarray, str]:
    t0 = time.perf_counter()
    result = embed(out=out, precision="fp32", device="cpu", no_cache=True, **kw)
    seconds = time.perf_counter() - t0
    return seconds, EmbeddingStore.open(out / "embeddings").as_array(), result.stats.split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="crops")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray")
    args = parser.parse_args()
    if not PPE.is_dir():
        raise SystemExit(f"needs {PPE}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data, n = subset_dataset(tmp / "data", args.n)
        print(f"== {args.model}: {n} crops of PPE, fp32, {args.cpus} cores")
        local_s, local, split = timed_embed(tmp / "local", dataset=data, model=args.model)
        print(f"local engine: {local_s:6.1f} s = {n / local_s:6.1f} crops/s ({split or 'default split'})")
        t0 = time.perf_counter()
        connect(None, num_cpus=args.cpus)
        print(f"local Ray start-up: {time.perf_counter() - t0:.1f} s (once per process; not counted below)")
        rates = {}
        for workers in (1, 2):
            ray_s, vectors, _ = timed_embed(tmp / f"ray{workers}", dataset=data, model=args.model, engine="ray",
                                            workers=workers)  # fmt: skip
            rates[workers] = n / ray_s
            cos = float((vectors * local).sum(axis=1).min())
            print(
                f"ray, {workers} actor(s): {ray_s:6.1f} s = {rates[workers]:6.1f} crops/s | Ray / local time "
                f"{ray_s / local_s:.2f} (overhead {ray_s / local_s - 1:+.0%}) | min cosine vs local {cos:.6f}"
            )
        print(f"per-worker scaling 2 actors / 1 actor: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
