"""Benchmark: `dinoscope seg train` and `seg predict` throughput versus the bare model on preloaded tensors.

On ../shared/data/cracks-uav75 (512 px crack images, GPL-3.0: read by path, never copied into the repo):
1. training: crops/s of one `seg train` epoch (decode, random crop, joint augmentation, loader, AMP step)
   versus the same optimiser steps on one preloaded batch (forward + backward + step only);
2. prediction: images/s of `seg predict` on the val images (decode, sliding window, masks, overlays, CSV)
   versus the sliding window on preloaded decoded images, versus the network alone on the same windows.
Prints every rate and the ratios. Usage:
    python benchmarks/seg.py [--arch efficientnet-lite0] [--size 256] [--batch 8] [--threads 1] [--cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

UAV75 = Path(__file__).resolve().parents[2] / "shared/data/cracks-uav75"


def link_data(root: Path) -> Path:
    """images/ + masks/ + splits/ of UAV75 as symlinks (train 50, val 10)."""
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    for split in ("train", "val"):
        stems = sorted(p.stem for p in (UAV75 / split / "images").glob("*.jpg"))
        for s in stems:
            (root / "images" / f"{s}.jpg").symlink_to(UAV75 / split / "images" / f"{s}.jpg")
            (root / "masks" / f"{s}.png").symlink_to(UAV75 / split / "masks" / f"{s}.png")
        (root / "splits" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


def bare_training(arch: str, size: int, batch: int, steps: int, device: str) -> float:
    """Crops/s of forward + backward + AdamW step on one preloaded batch (what training can at best reach), at
    the precision ``seg train`` resolves (``auto``)."""
    import torch

    from dinoscope.embed.runtime import autocast_dtype, resolve_precision
    from dinoscope.seg.model import build_model
    from dinoscope.seg.train import seg_loss

    dtype = autocast_dtype(resolve_precision("auto", torch.device(device).type))  # the precision seg train uses

    net, _ = build_model(arch, size)
    net = net.to(device).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.99).float()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for i in range(steps + 1):
        if i == 1:  # the first step warms up
            _sync(device)
            start = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None):
            loss = seg_loss(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    import numpy as np
    import torch

    from dinoscope.io.images import read_image
    from dinoscope.seg.data import select_split
    from dinoscope.seg.predict import load_predictor
    from dinoscope.workflows.seg import seg_predict, seg_train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="efficientnet-lite0")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        data = link_data(Path(tmp) / "data")
        model = Path(tmp) / "model"
        result = seg_train(
            data=data,
            out=model,
            model=args.arch,
            input_size=args.size,
            batch_size=args.batch,
            epochs=1,
            device=device,
        )
        steps = max(3, round(result.n_train * 4 / args.batch / 2))
        bare = bare_training(args.arch, args.size, args.batch, steps, device)
        threads = torch.get_num_threads()
        print(f"training  ({args.arch}, {args.size} px crops, batch {args.batch}, {device}, {threads} threads)")
        print(f"  seg train epoch      {result.train_images_per_s:8.2f} crops/s")
        print(f"  bare fwd+bwd+step    {bare:8.2f} crops/s   ratio {result.train_images_per_s / bare:.2f}")
        val = select_split(data, "val")
        predicted = seg_predict(model_dir=model, source=UAV75 / "val" / "images", out=Path(tmp) / "pred", device=device)
        predictor = load_predictor(model, device)
        images = [read_image(s.image) for s in val]
        start = time.perf_counter()
        for img in images:
            predictor.probabilities(img)
        window = len(images) / (time.perf_counter() - start)
        side = predictor.info.input_size
        batch = torch.from_numpy(np.stack([img[:side, :side] for img in images])).permute(0, 3, 1, 2).contiguous()
        n_windows = sum(len(_starts(img.shape[0], side)) * len(_starts(img.shape[1], side)) for img in images)
        start = time.perf_counter()
        for _ in range(max(1, n_windows // len(images))):
            predictor.logits(batch)
        _sync(device)
        model_only = len(images) / (time.perf_counter() - start)
        print(
            f"prediction ({len(images)} images of {images[0].shape[1]}x{images[0].shape[0]} px, windows of {side} px)"
        )
        print(f"  seg predict          {predicted.images_per_s:8.2f} images/s")
        print(f"  sliding window only  {window:8.2f} images/s   ratio {predicted.images_per_s / window:.2f}")
        print(f"  network only         {model_only:8.2f} images/s   ratio {predicted.images_per_s / model_only:.2f}")


def _starts(length: int, side: int) -> list[int]:
    from dinoscope.seg.infer import window_starts

    return window_starts(length, side)


if __name__ == "__main__":
    main()
