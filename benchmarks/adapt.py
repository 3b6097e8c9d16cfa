"""Benchmark: does the data pipeline of ``dinoscope adapt`` keep training fed? Images/s side by side.

1. Training as ``adapt`` runs it: multi-crop views decoded and augmented by the DataLoader workers, then the
   full step (student forward + backward with every loss, teacher and anchor forwards, AdamW, EMA).
2. The same step on one batch of views preloaded on the device (no decoding, no augmentation): the bare
   forward + backward of the same model.
The ratio (1) / (2) should be >= 0.8; peak RSS (and GPU) memory are printed too. Checks and checkpoints are
left out of both (they are timed by ``adapt`` itself).

Usage: python benchmarks/adapt.py [--data ../shared/data/deeppcb/ok_vs_defect.json] [--model efficientnet-lite0]
       [--steps 6] [--batch-size 8] [--input-size 224] [--local-crops 6] [--workers N] [--precision auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dinoscope.adapt import session as session_module
from dinoscope.adapt.augment import collate_views
from dinoscope.adapt.session import build_session
from dinoscope.adapt.train import _Positions, train_step
from dinoscope.config import build_config
from dinoscope.embed.runtime_stats import peak_gpu_memory_mb, peak_rss_mb
from dinoscope.workflows.adapt import AdaptConfig

DEEPPCB = Path(__file__).resolve().parents[2] / "shared" / "data" / "deeppcb" / "ok_vs_defect.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEEPPCB)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--local-crops", type=int, default=6)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    session_module.Session.check_and_save = lambda self: False  # type: ignore[method-assign]  # no checks here
    with tempfile.TemporaryDirectory() as tmp:
        config = build_config(
            AdaptConfig, dataset=args.data, model=args.model, out=Path(tmp) / "run", steps=10_000, head_warmup=0,
            batch_size=args.batch_size, input_size=args.input_size, local_crops=args.local_crops,
            workers=args.workers, precision=args.precision, device=args.device,
        )  # fmt: skip
        from dinoscope.embed.runtime import resolve_device

        s = build_session(config, resolve_device(args.device), None)
        s.nets.train_mode()
        sampler = _Positions(0, args.steps + 1, 0, 1, s.batch)
        loader = torch.utils.data.DataLoader(
            s.stream, batch_size=s.batch, sampler=sampler, num_workers=s.workers, collate_fn=collate_views,
            pin_memory=s.device_type == "cuda",
        )  # fmt: skip
        batches = iter(loader)
        first = [v.to(s.device) for v in next(batches)]
        train_step(s, first, 0)  # warm-up (allocations, kernels)
        _sync(s.device_type)
        t0 = time.perf_counter()
        for k, views in enumerate(batches, start=1):
            train_step(s, [v.to(s.device, non_blocking=True) for v in views], k)
        _sync(s.device_type)
        pipeline = args.steps * s.batch / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for k in range(args.steps):
            train_step(s, first, args.steps + 1 + k)
        _sync(s.device_type)
        bare = args.steps * s.batch / (time.perf_counter() - t0)
    crops = f"2 x {s.global_size} px + {s.settings['local_crops']} local"
    print(f"model {args.model} on {s.device} ({s.precision}), batch {s.batch}, {crops}, workers {s.workers}")
    print(f"training with the data pipeline : {pipeline:8.2f} images/s")
    print(f"bare step on preloaded tensors  : {bare:8.2f} images/s")
    print(f"ratio pipeline / bare           : {pipeline / bare:8.2f}  (target >= 0.8)")
    print(f"peak RSS {peak_rss_mb():,.0f} MB, peak GPU {peak_gpu_memory_mb():,.0f} MB")


def _sync(device_type: str) -> None:
    if device_type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
