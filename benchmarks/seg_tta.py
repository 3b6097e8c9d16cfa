"""Benchmark: flip test-time augmentation of `seg eval` on the cracks-uav75 val images, with and without.

Trains the CPU default (`seg train`, EfficientNet-Lite0 U-Net) on the 50 train images unless ``--model-dir``
names a trained model, then scores the 10 val images twice in one run, without and with ``--tta``, and
prints dice, IoU, precision, recall and seconds of each side by side. ../shared/data/cracks-uav75 is GPL-3.0:
read by path (symlinks in a temporary folder), never copied into the repo. Usage:
    OMP_NUM_THREADS=1 python benchmarks/seg_tta.py [--model-dir models/cracks] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seg import link_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="A trained model (default: train one).")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    from dinoscope.workflows.seg import seg_eval, seg_train

    with tempfile.TemporaryDirectory() as tmp:
        data = link_data(Path(tmp) / "data")
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = Path(tmp) / "model"
            t0 = time.perf_counter()
            trained = seg_train(data=data, out=model_dir, device=args.device)
            print(
                f"trained {trained.settings['epochs']} epochs in {time.perf_counter() - t0:.0f} s; best.pt = epoch "
                f"{trained.best_epoch} (smoothed va_dice {trained.best_dice_ema:.4f}, va_dice {trained.best_dice:.4f})"
            )
        rows = {}
        for tta in (False, True):
            t0 = time.perf_counter()
            metrics = seg_eval(model_dir=model_dir, data=data, split="val", tta=tta, device=args.device).metrics
            rows[tta] = (metrics, time.perf_counter() - t0)
        print(f"{'':>10} {'dice':>7} {'IoU':>7} {'prec':>7} {'recall':>7} {'seconds':>8}")
        for tta, (m, s) in rows.items():
            name = "flip TTA" if tta else "plain"
            print(f"{name:>10} {m['dice']:7.4f} {m['iou']:7.4f} {m['precision']:7.4f} {m['recall']:7.4f} {s:8.1f}")
        gain = rows[True][0]["dice"] - rows[False][0]["dice"]
        print(f"dice gain from TTA: {gain:+.4f}; time ratio TTA / plain: {rows[True][1] / rows[False][1]:.2f}x")


if __name__ == "__main__":
    main()
