"""Benchmark: `dinoscope video` against the original method, same video, detector, stride, classes and model.

The original method (issue #6), implemented faithfully:
1. for every processed frame (every ``stride``-th): seek to it (PyAV ``container.seek`` to its pts, back to the
   keyframe, decode up to the frame), run the detector on that one frame;
2. K detections per class evenly over all of them (``np.linspace``);
3. decode the whole video a second time and write each sampled crop as a PNG named ``<class>_<frame>.png``
   (several boxes of one class in one frame overwrite each other, as the original did);
4. read the PNGs back, resize them to the model input and embed them in batches.

dinoscope: ``run_video`` (one sequential decode, batched detection, crops cut in memory, the engine's
embedding; analysis off and cache off, so both sides do the same work).

The detector is the same class on both sides. The original runs the ONNX graph as exported: batch 1 and a
416 x 416 input, one frame per call, as the YOLOX ONNX demo does (the file accepts nothing else). dinoscope
rewrites the graph in memory for batches and rectangular 416 x 256 inputs. ``--original-rect`` gives the
original that rectangular input too (conservative: the ratio then measures the pipeline alone, not the
detector's input). Prints the stage times (the original's detector time apart), both wall times and the ratio.

Usage:
    python benchmarks/video.py [--strides 5,1] [--classes bottle] [--per-class 50] [--model efficientnet-lite0]
                               [--original-rect]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from dinoscope.embed.crops import resize_square
from dinoscope.embed.registry import create_backend
from dinoscope.video.detectors.onnx import OnnxDetector
from dinoscope.workflows.video import run_video

SHARED = Path(__file__).resolve().parents[2] / "shared"
VIDEO = SHARED / "data/videos/bottle-detection.mp4"
DETECTOR = SHARED / "models/yolox-nano/yolox_nano.onnx"


def original(args: argparse.Namespace, stride: int, tmp: Path) -> dict[str, Any]:
    """The original method; returns stage times and counts."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    detector = OnnxDetector(args.detector, conf=args.conf)
    detector.rect = detector.rect and args.original_rect
    detect_s = 0.0
    keep = {detector.class_names.index(c) for c in args.classes}
    found: list[tuple[int, int, np.ndarray]] = []  # (frame, class, box)
    n_frames = 0
    with av.open(str(args.video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps, time_base, start = float(stream.average_rate), stream.time_base, stream.start_time or 0
        for index in range(0, stream.frames, stride):
            target = start + round(index / fps / time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
            frame = next(f for f in container.decode(stream) if f.pts is not None and f.pts >= target - 1)
            image = frame.to_ndarray(format="rgb24")
            t = time.perf_counter()
            det = detector.detect([image])[0]  # one frame at a time
            detect_s += time.perf_counter() - t
            n_frames += 1
            found += [(index, int(c), b) for b, c in zip(det.xyxy, det.class_id, strict=True) if c in keep]
    times["seek + detect"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    chosen: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for c in keep:
        rows = [f for f in found if f[1] == c]
        if len(rows) > args.per_class:
            rows = [rows[i] for i in np.round(np.linspace(0, len(rows) - 1, args.per_class)).astype(int)]
        for index, cls, box in rows:
            chosen[index].append((cls, box))
    crops_dir = tmp / "crops"
    crops_dir.mkdir()
    with av.open(str(args.video)) as container:  # the second full decode
        container.streams.video[0].thread_type = "AUTO"
        for index, frame in enumerate(container.decode(video=0)):
            if index not in chosen:
                continue
            image = frame.to_ndarray(format="rgb24")
            for cls, box in chosen[index]:
                x1, y1, x2, y2 = (int(v) for v in box)
                name = f"{detector.class_names[cls]}_{index}.png"  # one name per class and frame
                Image.fromarray(image[y1:y2, x1:x2]).save(crops_dir / name)
    times["second decode + PNG crops"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    backend = create_backend(args.model)
    backend.to("cpu", precision="fp32")
    size, files = backend.spec.input_size, sorted(crops_dir.glob("*.png"))
    for start_i in range(0, len(files), 32):
        batch = [np.asarray(Image.open(p).convert("RGB")) for p in files[start_i : start_i + 32]]
        crops = np.stack([resize_square(b, size, backend.spec.interpolation) for b in batch])
        with torch.inference_mode():
            backend.embed(torch.from_numpy(crops))
    times["read back + embed"] = time.perf_counter() - t2
    times["total"] = time.perf_counter() - t0
    n_sampled = sum(len(v) for v in chosen.values())
    return {
        "times": times,
        "frames": n_frames,
        "detections": len(found),
        "sampled": n_sampled,
        "embedded": len(files),
        "detect_s": detect_s,
    }


def dinoscope(args: argparse.Namespace, stride: int, tmp: Path) -> dict[str, Any]:
    """``dinoscope video`` as a library call; returns stage times and counts."""
    t0 = time.perf_counter()
    run = run_video(
        source=args.video,
        detector=args.detector,
        classes=args.classes,
        stride=stride,
        per_class=args.per_class,
        conf=args.conf,
        model=args.model,
        device="cpu",
        precision="fp32",
        no_cache=True,
        analyze=False,
        out=tmp / "run",
    )
    total = time.perf_counter() - t0
    s, e = run.detection.stats, run.embedding.stats
    times = {
        "decode + detect + crops": s.seconds,
        "embed": e.seconds,
        "other (model load, writes)": total - s.seconds - e.seconds,
        "total": total,
    }
    return {
        "times": times,
        "frames": s.n_frames,
        "detections": s.n_detections,
        "duplicates": s.n_duplicates,
        "sampled": s.n_objects,
        "embedded": e.n_computed,
        "detect_s": s.seconds_detect,
    }


def _warm_imports() -> None:
    """Import the heavy libraries once, so that neither side pays for them (the first run would)."""
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import timm  # noqa: F401
    import torchvision  # noqa: F401

    import dinoscope.embed.backends.efficientnet
    import dinoscope.embed.engine
    import dinoscope.embed.loader  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--detector", type=Path, default=DETECTOR)
    parser.add_argument("--classes", nargs="+", default=["bottle"])
    parser.add_argument("--strides", default="5", help="comma-separated strides")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--original-rect", action="store_true", help="give the original the 416x256 input too")
    args = parser.parse_args()
    _warm_imports()
    print(f"video {args.video.name}, detector {args.detector.name}, classes {args.classes}, K={args.per_class}, "
          f"model {args.model}, {torch.get_num_threads()} torch threads, original input "
          f"{'416x256' if args.original_rect else '416x416 (as exported)'}")  # fmt: skip
    for stride in (int(s) for s in args.strides.split(",")):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            ours = dinoscope(args, stride, Path(a))
            theirs = original(args, stride, Path(b))
        print(f"\n== stride {stride}")
        for name, result in (("original", theirs), ("dinoscope", ours)):
            counts = ", ".join(f"{k} {v}" for k, v in result.items() if k not in ("times", "detect_s"))
            stages = ", ".join(f"{k} {v:.1f} s" for k, v in result["times"].items() if k != "total")
            print(f"{name:>9}: {result['times']['total']:7.1f} s  ({stages}; {counts})")
        input_hw = "416x256" if args.original_rect else "416x416"
        print(f"detector time: original {theirs['detect_s']:.1f} s ({input_hw}, one frame per call), "
              f"dinoscope {ours['detect_s']:.1f} s (416x256, batches of 8)")  # fmt: skip
        print(f"ratio original / dinoscope: {theirs['times']['total'] / ours['times']['total']:.2f}x")


if __name__ == "__main__":
    main()
