"""Benchmark: ``patches fit`` against the model's own speed, and its memory as the number of frames grows 10x.

Side by side in one run, on ../shared/data/videos/bottle-detection.mp4, same model, input size, batch size and
threads:
1. model-only throughput: ``backend.embed_patches`` on frames decoded and resized beforehand (patches/s), measured
   before and after the fits (the machine's load drifts) and averaged;
2. ``fit_patches`` on the video with ``frames_per_clip = N`` and ``10 N`` (decode straight through, resize,
   forward, float64 statistics), each in a fresh process: the fit loop's patches/s and its ratio to (1), the
   peak RSS of the process and the tracemalloc peak of the fit (Python and numpy allocations);
3. with ``--reference``: the reference tool's method (every patch kept in memory, then one scikit-learn PCA),
   whose memory grows with the number of patches.

Model: a randomly initialised DINOv2-small-sized ViT (12 layers, 384-d; random weights are fine for timing)
unless ``--model`` names another. Usage:
    python benchmarks/patches.py [--frames 30] [--image-size 224] [--batch-size 16] [--model dinov2-small]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dinoscope.embed.base import Backend

VIDEO = Path(__file__).resolve().parents[2] / "shared/data/videos/bottle-detection.mp4"


def random_dinov2_small(folder: Path) -> Path:
    """A randomly initialised DINOv2-small-sized model saved as a Hugging Face folder."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518, patch_size=14)
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def decoded_frames(n: int, size: int) -> np.ndarray:
    """The first n frames of the video, resized to the model input, held in memory (not timed)."""
    from dinoscope.io.frames import iter_frames
    from dinoscope.patches._stream import prepare_input

    return np.stack([prepare_input(f.image, size)[0] for f in iter_frames(VIDEO, max_frames=n)])


def model_only(backend: Backend, frames: np.ndarray, batch: int) -> float:
    """Patches/s of ``embed_patches`` alone on ready uint8 batches."""
    import torch

    backend.embed_patches(torch.from_numpy(frames[:batch]))  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(frames), batch):
        out = backend.embed_patches(torch.from_numpy(frames[i : i + batch]))
    return len(frames) * out.shape[1] * out.shape[2] / (time.perf_counter() - t0)


def child_fit(model: str, size: int, n: int, batch: int, out: Path) -> dict:
    """One fit in this (fresh) process: throughput of the fit loop and memory peaks."""
    from dinoscope.patches import fit_patches

    tracemalloc.start()
    fit = fit_patches(
        source=VIDEO,
        out=out,
        model=model,
        input_size=size,
        components=8,
        frames_per_clip=n,
        batch_size=batch,
        device="cpu",
        precision="fp32",
        overwrite=True,
    )
    _, traced_peak = tracemalloc.get_traced_memory()
    c = fit.configuration
    return {
        "frames": c["total_frames"],
        "patches": c["total_patches"],
        "loop_patches_per_s": c["passes"][0]["patches_per_s"],
        "fit_seconds": c["seconds"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tracemalloc_peak_mb": traced_peak / 2**20,
    }


def child_reference(model: str, size: int, n: int, batch: int) -> dict:
    """The reference tool's method: keep every patch in memory, then one scikit-learn PCA."""
    import torch
    from sklearn.decomposition import PCA

    from dinoscope.patches import create_patch_backend
    from dinoscope.patches.sources import Clip, iter_clip_samples

    tracemalloc.start()
    backend = create_patch_backend(model, size, device="cpu", precision="fp32")
    from dinoscope.patches._stream import prepare_input

    kept, batch_frames = [], []
    t0 = time.perf_counter()
    for sample in iter_clip_samples(Clip("v", path=VIDEO, video=VIDEO), 0, n):
        batch_frames.append(prepare_input(sample.image, size)[0])
        if len(batch_frames) == batch:
            feats = backend.embed_patches(torch.from_numpy(np.stack(batch_frames)))
            kept.append(feats.reshape(-1, feats.shape[-1]).numpy())
            batch_frames = []
    if batch_frames:
        feats = backend.embed_patches(torch.from_numpy(np.stack(batch_frames)))
        kept.append(feats.reshape(-1, feats.shape[-1]).numpy())
    patches = np.concatenate(kept)
    PCA(8, svd_solver="full").fit(patches)
    _, traced_peak = tracemalloc.get_traced_memory()
    return {
        "frames": n,
        "patches": len(patches),
        "seconds": time.perf_counter() - t0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tracemalloc_peak_mb": traced_peak / 2**20,
    }


def in_child(kind: str, args: argparse.Namespace, n: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--model", args.model, "--image-size", str(args.image_size)]
    cmd += ["--batch-size", str(args.batch_size), "--frames", str(n), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"child {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="model (default: random DINOv2-small-sized ViT)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=30, help="N (the second fit uses 10 N)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reference", action="store_true", help="also run the keep-everything reference method")
    parser.add_argument("--child", choices=["fit", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "fit":
        print(json.dumps(child_fit(args.model, args.image_size, args.frames, args.batch_size, args.out)))
        return
    if args.child == "reference":
        print(json.dumps(child_reference(args.model, args.image_size, args.frames, args.batch_size)))
        return
    import torch

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        args.model = args.model or str(random_dinov2_small(tmp / "dinov2-small-random"))
        n = args.frames
        frames = decoded_frames(n, args.image_size)
        print(
            f"== {Path(args.model).name} at {args.image_size} px, batch {args.batch_size}, "
            f"{torch.get_num_threads()} threads, {VIDEO.name}"
        )
        from dinoscope.patches import create_patch_backend

        backend = create_patch_backend(args.model, args.image_size, device="cpu", precision="fp32")
        fits = {}
        for k in (n, 10 * n):  # model-only just before and after each fit: the machine's load drifts
            before = model_only(backend, frames, args.batch_size)
            r = fits[k] = in_child("fit", args, k, tmp / f"pca-{k}.json")
            bound = (before + model_only(backend, frames, args.batch_size)) / 2
            print(
                f"fit, {r['frames']:4d} frames ({r['patches']:,} patches): loop {r['loop_patches_per_s']:,.0f} "
                f"patches/s vs model-only {bound:,.0f} patches/s: ratio {r['loop_patches_per_s'] / bound:.2f} | "
                f"whole fit {r['fit_seconds']:.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MB, tracemalloc peak "
                f"{r['tracemalloc_peak_mb']:.1f} MB"
            )
        small, large = fits[n], fits[10 * n]
        print(
            f"memory at 10x the frames: peak RSS x{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}, "
            f"tracemalloc peak x{large['tracemalloc_peak_mb'] / small['tracemalloc_peak_mb']:.2f}"
        )
        if args.reference:
            for k in (n, 10 * n):
                r = in_child("reference", args, k, tmp / "unused.json")
                print(
                    f"reference (all patches in memory + sklearn PCA), {k} frames: {r['seconds']:.1f} s, "
                    f"peak RSS {r['peak_rss_mb']:,.0f} MB, tracemalloc peak {r['tracemalloc_peak_mb']:.1f} MB"
                )


if __name__ == "__main__":
    main()
