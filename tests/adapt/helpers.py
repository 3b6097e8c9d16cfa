"""Tiny offline models and toy image sets for the adaptation tests (written to tmp folders, never the network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TINY_DINOV2 = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=28, patch_size=14
)
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def write_tiny_dinov2(folder: Path, seed: int = 0) -> Path:
    """A random tiny DINOv2 (hidden 32, 2 layers, patch 14) with an ImageNet BitImageProcessor."""
    import torch
    import transformers

    torch.manual_seed(seed)
    transformers.Dinov2Model(transformers.Dinov2Config(**TINY_DINOV2)).save_pretrained(folder)
    transformers.BitImageProcessor(image_mean=IMAGENET[0], image_std=IMAGENET[1]).save_pretrained(folder)
    return folder


def write_toy_images(folder: Path, n: int = 16, size: int = 48, seed: int = 0, classes: bool = False) -> Path:
    """``n`` images of two kinds (horizontal or vertical stripes in random colours, plus noise); with ``classes``
    in class folders ``h/`` and ``v/`` (a labelled set for the kNN probe)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        kind = "h" if i % 2 == 0 else "v"
        period = int(rng.integers(4, 10))
        line = (np.arange(size) // period) % 2
        stripes = np.tile(line[:, None], (1, size)) if kind == "h" else np.tile(line[None, :], (size, 1))
        colour = rng.integers(60, 255, 3)
        image = stripes[..., None] * colour + rng.integers(0, 40, (size, size, 3))
        target = folder / kind if classes else folder
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(target / f"{kind}{i:03d}.png")
    return folder
