"""Fixtures of the curation tests: the tiny registered model and photo folders with planted copies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoscope.embed.registry import _REGISTRY, register_model


@pytest.fixture(autouse=True)
def tiny_model() -> Iterator[str]:
    register_model("tiny-cnn", "tests.embed.fakes:create_tiny", "seed0", "test model")
    yield "tiny-cnn"
    _REGISTRY.pop("tiny-cnn", None)


def photo(seed: int, copy: int = 0, side: int = 64) -> Image.Image:
    """A picture of its own colour (hues spread by the golden ratio, so the tiny test model, which sees mainly
    colour, tells photos apart); ``copy`` > 0 adds light noise: an augmented copy of it."""
    import colorsys

    rgb = colorsys.hsv_to_rgb((seed * 0.618034) % 1.0, 0.35 + 0.6 * (seed % 3) / 2, 0.45 + 0.5 * (seed % 2))
    arr = np.broadcast_to(np.array(rgb) * 255, (side, side, 3)).astype(np.int16)
    arr = arr + np.random.default_rng(seed).integers(-12, 13, size=arr.shape)  # the photo's own texture
    if copy:
        arr = arr + np.random.default_rng(1000 * seed + copy).integers(-3, 4, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_photos(folder: Path, seeds: list[int], copies: int, labels: bool = False) -> list[Path]:
    """``p<seed>_c<i>.png`` for every seed and copy (with a YOLO label file of one box when ``labels``)."""
    out = []
    for seed in seeds:
        for c in range(copies):
            path = folder / ("images" if labels else "") / f"p{seed}_c{c}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(seed, c).save(path)
            out.append(path)
            if labels:
                label = folder / "labels" / f"p{seed}_c{c}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(f"{seed % 2} 0.5 0.5 0.4 0.4\n", encoding="utf-8")
    if labels:
        (folder / "data.yaml").write_text("path: .\ntrain: images\nnames: [cat, dog]\n", encoding="utf-8")
    return out
