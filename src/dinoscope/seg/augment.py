"""Training samples: random crops with foreground oversampling and joint image + mask augmentation.

Each item is a random ``size`` px square of a training image at full resolution (edge-padded when the image is
smaller), forced to hold foreground a third of the time (nnU-Net's foreground oversampling, Isensee et al.
2021), then augmented with torchvision.transforms.v2 on an ``Image`` + ``Mask`` pair so that geometric
transforms move both (the mask with nearest interpolation) and photometric ones touch the image only:
horizontal and vertical flips, rotation up to 30 degrees (p 0.5), elastic deformation (p 0.1),
brightness / contrast 0.3 (p 0.8), Gaussian blur (p 0.2). Randomness comes from torch's generator, which the
DataLoader seeds per worker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dinoscope.seg.data import SegSample, read_sample

__all__ = ["CropDataset", "augmentation", "random_crop"]

_FG_OVERSAMPLE = 1 / 3
_CACHE_BYTES = 512 << 20  # per process: every DataLoader worker keeps its own


class CropDataset:
    """Random training crops of ``size`` px with joint augmentation (module docstring); items are uint8 (3, S, S)
    images and float (1, S, S) masks. Decoded images are kept in memory up to 512 MB per process."""

    def __init__(self, samples: list[SegSample], size: int) -> None:
        self.samples, self.size = samples, size
        first, _ = read_sample(samples[0])
        self.repeats = max(1, round(first.shape[0] * first.shape[1] / (size * size)))
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.cache_limit = _CACHE_BYTES // max(1, first.nbytes + first.nbytes // 3)
        self.augment = augmentation()

    def __len__(self) -> int:
        return len(self.samples) * self.repeats

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch
        from torchvision import tv_tensors

        i = index % len(self.samples)
        image, mask = self.cache.get(i) or read_sample(self.samples[i])
        if len(self.cache) < self.cache_limit:
            self.cache[i] = (image, mask)
        image, mask = random_crop(image, mask, self.size)
        img = tv_tensors.Image(torch.from_numpy(np.array(image)).permute(2, 0, 1))
        msk = tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8))[None])
        img, msk = self.augment(img, msk)
        return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor).float()


def random_crop(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` square (edge-padded when the image is smaller), holding foreground a third of the time."""
    import torch

    h, w = mask.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")
        mask = np.pad(mask, ((0, ph), (0, pw)))
        h, w = mask.shape
    if mask.any() and float(torch.rand(())) < _FG_OVERSAMPLE:
        ys, xs = np.nonzero(mask)
        k = int(torch.randint(len(ys), ()))
        y0 = int(np.clip(ys[k] - int(torch.randint(size, ())), 0, h - size))
        x0 = int(np.clip(xs[k] - int(torch.randint(size, ())), 0, w - size))
    else:
        y0, x0 = int(torch.randint(h - size + 1, ())), int(torch.randint(w - size + 1, ()))
    return image[y0 : y0 + size, x0 : x0 + size], mask[y0 : y0 + size, x0 : x0 + size]


def augmentation() -> Any:
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomApply([v2.RandomRotation(30)], p=0.5),
            v2.RandomApply([v2.ElasticTransform(alpha=30.0, sigma=6.0)], p=0.1),
            v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3)], p=0.8),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        ]
    )
