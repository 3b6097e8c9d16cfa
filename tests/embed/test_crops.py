from __future__ import annotations

import numpy as np
import pytest

from dinoscope.embed.crops import cut_crops, resize_square
from dinoscope.embed.spec import CropSpec

GREEN, BLUE, RED = (0, 255, 0), (0, 0, 255), (255, 0, 0)


def _bar_image() -> tuple[np.ndarray, np.ndarray]:
    """A 200x10 px red bar with a green left end and a blue right end, on grey."""
    img = np.full((300, 400, 3), 90, np.uint8)
    img[145:155, 100:300] = RED
    img[145:155, 100:110] = GREEN
    img[145:155, 290:300] = BLUE
    return img, np.array([[100, 145, 300, 155]], dtype=float)


def _has(crop: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((np.abs(crop.astype(int) - colour).sum(axis=-1) < 60).any())


def test_default_pad_policy_keeps_the_whole_long_thin_object() -> None:
    img, box = _bar_image()
    crop = cut_crops(img, box, CropSpec(), 56)[0]
    assert crop.shape == (56, 56, 3)
    assert _has(crop, GREEN) and _has(crop, BLUE) and _has(crop, RED)
    rows = np.flatnonzero((np.abs(crop.astype(int) - RED).sum(-1) < 60).any(axis=1))
    assert 1 <= len(rows) <= 6  # aspect kept: the bar stays thin, surrounded by its context


def test_center_policy_cuts_the_ends_off_like_the_original() -> None:
    img, box = _bar_image()
    crop = cut_crops(img, box, CropSpec(policy="center"), 56)[0]
    assert _has(crop, RED) and not _has(crop, GREEN) and not _has(crop, BLUE)


def test_squash_policy_keeps_both_ends_but_fills_the_square() -> None:
    img, box = _bar_image()
    crop = cut_crops(img, box, CropSpec(policy="squash"), 56)[0]
    assert _has(crop, GREEN) and _has(crop, BLUE)
    assert (np.abs(crop.astype(int) - RED).sum(-1) < 60).mean() > 0.5  # the bar fills the square


def test_context_adds_surroundings_and_edges_are_padded_with_mean() -> None:
    img = np.zeros((40, 40, 3), np.uint8)
    img[0:10, 0:10] = 255
    tight = cut_crops(img, np.array([[0, 0, 10, 10.0]]), CropSpec(), 20)[0]
    assert tight.min() == 255
    wide = cut_crops(img, np.array([[0, 0, 10, 10.0]]), CropSpec(context_frac=0.5), 20)[0]
    assert wide.min() == 0  # dark image around the box is now in view
    flat = np.zeros((20, 40, 3), np.uint8)
    big = cut_crops(flat, np.array([[0, 0, 40, 10.0]]), CropSpec(), 20, mean=(0.5, 0.5, 0.5))[0]
    assert (big == 128).all(axis=-1).any()  # the square does not fit: padded with the mean colour


@pytest.mark.parametrize("policy", ["pad", "squash", "center"])
def test_tiny_and_border_boxes_always_give_full_crops(policy: str) -> None:
    img = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 1, 1], [59, 49, 60, 50], [10, 10, 10.5, 30], [0, 0, 60, 50]], dtype=float)
    out = cut_crops(img, boxes, CropSpec(policy=policy), 28)
    assert out.shape == (4, 28, 28, 3) and out.dtype == np.uint8


def test_resize_square_is_identity_at_size() -> None:
    patch = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    assert resize_square(patch, 28) is patch
    assert cut_crops(patch, np.empty((0, 4)), CropSpec(), 28).shape == (0, 28, 28, 3)
