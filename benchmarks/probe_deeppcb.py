"""The probe table of the README: DeepPCB OK-vs-defect with EfficientNet-Lite0 and a random-init ViT-S/14.

``../shared/data/deeppcb/ok_vs_defect.json``: 311 defective PCB images and their 311 defect-free templates,
``group_id`` = the board region (a pair shares it, so a pair is never split between train and test). Runs
``dinoscope probe`` exactly as the CLI does, fp32 on the CPU: EfficientNet-Lite0 (ImageNet weights) and, as a
floor, a DINOv2-architecture ViT-S/14 with random weights (seeded, saved to a local folder and loaded through
the registry like any ``DIR/backbone``; it has a CLS token, so its [CLS ‖ mean patch] linear probe runs too).

Usage: python benchmarks/probe_deeppcb.py [--out runs/probe-deeppcb] [--data ../shared/data/deeppcb]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dinoscope.cli.probe import print_probe_table
from dinoscope.workflows.probe import probe

REPO = Path(__file__).resolve().parents[1]


def random_vit_small(folder: Path, seed: int = 0) -> Path:
    """A ViT-S/14 in DINOv2's architecture (384-d, 12 layers, 6 heads) with random weights, saved offline."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14)
    transformers.Dinov2Model(config).eval().save_pretrained(folder)
    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    transformers.BitImageProcessor(image_mean=imagenet[0], image_std=imagenet[1]).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "deeppcb")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="probe-deeppcb-")))
    args = parser.parse_args()
    vit = random_vit_small(args.out.parent / f"{args.out.name}-random-vit-s14" / "backbone")
    started = time.perf_counter()
    result = probe(
        dataset=args.data / "ok_vs_defect.json",
        model="efficientnet-lite0",
        compare=[str(vit)],
        precision="fp32",
        out=args.out,
        overwrite=True,
    )
    ev = result.metrics["evaluation"]
    caption = f"DeepPCB OK vs defect: {result.metrics['n_objects']} images, {ev['n_groups']} groups"
    print_probe_table(result.summary, f"{caption}, grouped {ev['n_folds']}-fold")
    print(f"{time.perf_counter() - started:.0f} s (embedding included); run: {result.run_dir}")


if __name__ == "__main__":
    main()
