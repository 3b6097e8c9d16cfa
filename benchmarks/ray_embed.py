"""Benchmark: ``embed --engine ray`` against the local engine on this machine, same data, model and precision.

Side by side in one run, on box crops of ../shared/data/ppe-hardhat-vest (EfficientNet-Lite0, fp32, cache off),
at each ``--n`` (default 1,024 and 4,096 crops):
1. the local engine (its own split of the cores, printed);
2. Ray Data on a local Ray of the machine's cores, in the layout it chooses (CPU only: ``fused``, one actor per
   core that decodes, crops and embeds its pieces of shards): its time with Ray's start-up excluded and
   included, the ratio to (1) and the cosine agreement with the local vectors (min over rows).
At the first ``--n`` also: the ``fused`` layout with 1 actor (the per-worker scaling 2 actors / 1 actor) and
the ``split`` layout of a GPU cluster forced onto the CPUs (decoding tasks -> 2 model actors, crops through
Ray's object store: the layout that ran on CPUs before). Fixed costs are printed apart: Ray's start-up (once per
process) and one actor's start (its own torch import and model build, paid by every run); the steady-state
overhead is the ratio of the time the extra crops cost between the smallest and the largest ``--n``. Every run
also prints its core-ms per crop (CPU time of this process and all its descendants, Ray's included, read from
/proc): it moves much less than wall time when other jobs share the machine.

Run it on a quiet machine (check `uptime`); usage:
    python benchmarks/ray_embed.py [--n 1024 4096] [--model efficientnet-lite0] [--no-split]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dinoscope.embed import ray_engine
from dinoscope.embed.store import EmbeddingStore
from dinoscope.workflows.embed import embed
from embed import PPE, subset_dataset


class CpuMeter:
    """Core-seconds of this process and all its descendants (Ray's raylet and its workers are among them)
    while the block runs, sampled every 0.2 s so that processes that end inside it are counted (to 0.2 s)."""

    def __enter__(self) -> CpuMeter:
        self.base, self.last, self.stop = self._sample(), {}, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.last.update(self._sample())
        self.core_s = sum(c - self.base.get(pid, 0.0) for pid, c in self.last.items())

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self.last.update(self._sample())

    @staticmethod
    def _sample() -> dict[int, float]:
        """{pid: user + system seconds} of this process and its descendants, from /proc (Linux)."""
        parent, cpu = {}, {}
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)"
                pid = int(stat.parent.name)
                parent[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
        mine, todo = {}, [os.getpid()]
        while todo:
            pid = todo.pop()
            mine[pid] = cpu.get(pid, 0.0)
            todo += [c for c, pp in parent.items() if pp == pid and c not in mine]
        return mine


def timed_embed(out: Path, **kw: object) -> tuple[float, np.ndarray, str, float]:
    t0 = time.perf_counter()
    with CpuMeter() as cpu:
        result = embed(out=out, precision="fp32", device="cpu", no_cache=True, **kw)
    seconds = time.perf_counter() - t0
    return seconds, EmbeddingStore.open(out / "embeddings").as_array(), result.stats.split, cpu.core_s


def actor_start_s(ray: object, model: str) -> float:
    """Seconds until one fresh actor has imported torch and built the model (then it is killed)."""
    from dinoscope.embed.ray_engine import ModelRecipe
    from dinoscope.embed.ray_tasks import Embedder

    t0 = time.perf_counter()
    actor = ray.remote(num_cpus=1)(Embedder).remote(ModelRecipe(model, device="cpu", precision="fp32"))
    ray.get(actor.__ray_ready__.remote())
    seconds = time.perf_counter() - t0
    ray.kill(actor)
    return seconds


def ray_run(
    tmp: Path, tag: str, data: Path, model: str, workers: int, layout: str | None
) -> tuple[float, np.ndarray, str, float]:
    ray_engine.LAYOUT = layout
    try:
        return timed_embed(tmp / tag, dataset=data, model=model, engine="ray", workers=workers)
    finally:
        ray_engine.LAYOUT = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 4096], help="crops (one run per value)")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray")
    parser.add_argument("--no-split", action="store_true", help="skip the split layout run")
    args = parser.parse_args()
    if not PPE.is_dir():
        raise SystemExit(f"needs {PPE}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    times: dict[int, tuple[float, float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        ray = ray_engine.connect(None, num_cpus=args.cpus)
        start_s = time.perf_counter() - t0
        print(f"local Ray start-up: {start_s:.1f} s (once per process; 'incl.' below adds it)")
        print(
            f"one actor's start (torch import + model build, every run pays it): {actor_start_s(ray, args.model):.1f} s"
        )
        for i, want in enumerate(args.n):
            data, n = subset_dataset(tmp / f"data{want}", want)
            print(f"== {args.model}: {n} crops of PPE, fp32, {args.cpus} cores")
            local_s, local, split, local_cpu = timed_embed(tmp / f"local{want}", dataset=data, model=args.model)
            print(
                f"local engine: {local_s:6.1f} s = {n / local_s:6.1f} crops/s, {local_cpu / n * 1e3:.0f} core-ms/crop "
                f"({split or 'default split'})"
            )
            runs = [(f"ray{want}", args.cpus, None)]
            if i == 0:
                runs += [(f"ray{want}-1", 1, None)] + ([] if args.no_split else [(f"split{want}", args.cpus, "split")])
            rates = {}
            for tag, workers, layout in runs:
                ray_s, vectors, chosen, ray_cpu = ray_run(tmp, tag, data, args.model, workers, layout)
                if layout is None:
                    rates[workers] = n / ray_s
                if tag == f"ray{want}":
                    times[n] = (local_s, ray_s, local_cpu, ray_cpu)
                cos = float((vectors * local).sum(axis=1).min())
                print(
                    f"ray [{chosen}]: {ray_s:6.1f} s = {n / ray_s:6.1f} crops/s, {ray_cpu / n * 1e3:.0f} core-ms/crop "
                    f"(x{ray_cpu / local_cpu:.2f} local's) | Ray / local {ray_s / local_s:.2f} "
                    f"(overhead {ray_s / local_s - 1:+.0%}; incl. start-up {(ray_s + start_s) / local_s:.2f}) | "
                    f"min cosine vs local {cos:.6f}"
                )
            if len(rates) == 2:
                print(f"per-worker scaling {args.cpus} actors / 1 actor: {rates[args.cpus] / rates[1]:.2f}x")
        ray.shutdown()
    if len(times) > 1:
        (n0, (l0, r0, lc0, rc0)), (n1, (l1, r1, lc1, rc1)) = min(times.items()), max(times.items())
        print(
            f"steady state ({n0} -> {n1} crops): the extra crops cost local {l1 - l0:.1f} s, Ray {r1 - r0:.1f} s: "
            f"Ray / local {(r1 - r0) / (l1 - l0):.2f}; a Ray run's fixed cost exceeds the local engine's by "
            f"{(r0 - l0) - ((r1 - r0) - (l1 - l0)) * n0 / (n1 - n0):.1f} s"
        )
        print(
            f"steady state in core-seconds: the extra crops cost local {lc1 - lc0:.1f}, Ray {rc1 - rc0:.1f}: Ray / "
            f"local {(rc1 - rc0) / (lc1 - lc0):.2f}; a Ray run's fixed cost exceeds the local engine's by "
            f"{(rc0 - lc0) - ((rc1 - rc0) - (lc1 - lc0)) * n0 / (n1 - n0):.1f} core-s"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
