"""Fixtures of the curation tests: the tiny registered model and photo folders with planted copies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoscope.embed.registry import _REGISTRY, register_model

#: Salt-and-pepper share of a noisy copy: the tiny model's plain vectors no longer see it as a copy (measured:
#: 0 of 16 such copies grouped at 20 %, 16 of 16 at 10 %), its denoised vectors do (16 of 16).
NOISY = 0.2


@pytest.fixture(autouse=True)
def tiny_model() -> Iterator[str]:
    register_model("tiny-cnn", "tests.embed.fakes:create_tiny", "seed0", "test model")
    yield "tiny-cnn"
    _REGISTRY.pop("tiny-cnn", None)


def photo(seed: int, copy: int = 0, side: int = 64, salt_pepper: float = 0.0) -> Image.Image:
    """A picture of its own colour (hues spread by the golden ratio, so the tiny test model, which sees mainly
    colour, tells photos apart); ``copy`` > 0 adds light noise: an augmented copy of it; ``salt_pepper`` sets
    that share of the pixels to black or white (Roboflow's noise augmentation, heavier)."""
    import colorsys

    rgb = colorsys.hsv_to_rgb((seed * 0.618034) % 1.0, 0.35 + 0.6 * (seed % 3) / 2, 0.45 + 0.5 * (seed % 2))
    arr = np.broadcast_to(np.array(rgb) * 255, (side, side, 3)).astype(np.int16)
    arr = arr + np.random.default_rng(seed).integers(-12, 13, size=arr.shape)  # the photo's own texture
    if copy:
        arr = arr + np.random.default_rng(1000 * seed + copy).integers(-3, 4, size=arr.shape)
    if salt_pepper:
        rng = np.random.default_rng(2000 * seed + copy)
        hit = rng.random((side, side)) < salt_pepper
        arr[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)[:, None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_photos(folder: Path, seeds: list[int], copies: int, labels: bool = False, noisy: int = 0) -> list[Path]:
    """``p<seed>_c<i>.png`` for every seed and copy (with a YOLO label file of one box when ``labels``); the
    last ``noisy`` copies of each photo carry 20 % salt-and-pepper noise (:data:`NOISY`)."""
    out = []
    for seed in seeds:
        for c in range(copies):
            path = folder / ("images" if labels else "") / f"p{seed}_c{c}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(seed, c, salt_pepper=NOISY if c >= copies - noisy else 0.0).save(path)
            out.append(path)
            if labels:
                label = folder / "labels" / f"p{seed}_c{c}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(f"{seed % 2} 0.5 0.5 0.4 0.4\n", encoding="utf-8")
    if labels:
        (folder / "data.yaml").write_text("path: .\ntrain: images\nnames: [cat, dog]\n", encoding="utf-8")
    return out
