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
    """A smooth random picture (distinct per seed); ``copy`` > 0 adds light noise: an augmented copy of it."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)).resize((side, side), Image.BILINEAR)
    arr = np.asarray(base).astype(np.int16)
    if copy:
        arr = arr + np.random.default_rng(1000 * seed + copy).integers(-4, 5, size=arr.shape)
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
