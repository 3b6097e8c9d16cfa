"""Training crops: image and mask are transformed together (the crack stays under its mask)."""

from __future__ import annotations

from pathlib import Path

from dinoscope.seg.augment import CropDataset
from dinoscope.seg.data import select_split
from tests.seg_fixtures import write_seg_data


def test_crops_keep_image_and_mask_aligned(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    data = write_seg_data(tmp_path / "d", n=4, side=64)
    dataset = CropDataset(select_split(data, "train"), 32)
    assert len(dataset) == 2 * 4  # each 64 px image cropped (64 / 32)^2 = 4 times per epoch
    n_with_crack = 0
    for i in range(len(dataset)):
        image, mask = dataset[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        inside = mask[0].bool()
        if inside.sum() > 10:
            n_with_crack += 1
            grey = image.float().mean(0)
            assert grey[inside].mean() > grey[~inside].mean() + 20  # the bright crack is where its mask is
    assert n_with_crack >= 3
