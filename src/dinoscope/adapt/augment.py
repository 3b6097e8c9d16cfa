"""Multi-crop views of unlabelled images, and a stream of them whose every draw is a function of (seed, index).

The views follow DINOv2 (Oquab et al. 2024, ``dinov2/data/augmentations.py``), with torchvision.transforms.v2 on
PIL images (PIL's colour and resize kernels: ~10x faster per view on CPUs than on uint8 tensors, measured):

- 2 global crops: ``RandomResizedCrop(S, scale=(0.32, 1.0))`` (bicubic), horizontal flip (p 0.5), colour jitter
  (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1; p 0.8), grayscale (p 0.2); then a Gaussian blur
  (PIL's, radius 0.1-2, as DINO's code) with probability **1.0 on the first global crop and 0.1 on the
  second**, and solarise (p 0.2) on the second only;
- ``local_crops`` local crops: ``RandomResizedCrop(s, scale=(0.05, 0.32))`` with ``s = S * 98 / 224`` rounded to
  the backbone's patch (14 for ViTs: 224 -> 98; 32 for EfficientNet: 224 -> 96), flip, jitter, grayscale and
  blur with probability 0.5.

**Blur probabilities, chosen deliberately.** DINOv2's ``GaussianBlur(p=...)`` wraps torchvision's
``RandomApply`` with ``1 - p``, so its global crops are blurred with probability 0.0 and 0.9 rather than the
1.0 and 0.1 that BYOL, DINO and the DINOv2 paper describe (local crops: 0.5 either way). dinoscope applies the
probabilities as described (1.0 / 0.1 / 0.5): the asymmetric pair of global views is the intent of the recipe.

Reproducibility: :class:`MultiCropStream` draws view ``i`` of the stream with a generator seeded by
``(seed, i)`` and takes the image of stream position ``i`` from a permutation seeded by ``(seed, epoch)``, so
the data a step sees depends only on the seed and the step - a resumed run sees exactly what an uninterrupted
run would have seen, whatever the number of decoding workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope.table import ObjectTable

if TYPE_CHECKING:
    import torch

__all__ = [
    "GLOBAL_SCALE",
    "LOCAL_SCALE",
    "MultiCrop",
    "MultiCropStream",
    "center_crops",
    "collate_views",
    "local_size",
    "read_pixels",
]

#: Area fractions of the global and local crops (DINOv2's).
GLOBAL_SCALE = (0.32, 1.0)
LOCAL_SCALE = (0.05, 0.32)
#: Blur probability of global crop 1, global crop 2 and the local crops (the papers', see the module docstring).
BLUR_P = (1.0, 0.1, 0.5)
_SOLARIZE_P = 0.2


def local_size(global_size: int, patch: int) -> int:
    """Side of the local crops: ``global * 98 / 224`` rounded to a multiple of ``patch`` (at least one patch).

    Example:
        >>> local_size(224, 14), local_size(224, 32)
        (98, 96)
    """
    return max(patch, round(global_size * 98 / 224 / patch) * patch)


class MultiCrop:
    """The 2 global + N local views of one image (uint8 tensors, normalised later on the device).

    Args:
        global_size: Side S of the global crops.
        local_size: Side of the local crops.
        n_local: Number of local crops.
    """

    def __init__(self, global_size: int, local_size: int, n_local: int) -> None:
        from torchvision.transforms import v2

        def view(size: int, scale: tuple[float, float], blur: float, solarize: float = 0.0) -> Any:
            steps = [
                v2.RandomResizedCrop(size, scale=scale, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
                v2.RandomHorizontalFlip(0.5),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                v2.RandomGrayscale(0.2),
                v2.RandomApply([_PILBlur()], p=blur),
            ]
            if solarize:
                steps.append(v2.RandomSolarize(128, p=solarize))
            return v2.Compose([*steps, v2.PILToTensor()])

        self.global1 = view(global_size, GLOBAL_SCALE, BLUR_P[0])
        self.global2 = view(global_size, GLOBAL_SCALE, BLUR_P[1], _SOLARIZE_P)
        self.local = view(local_size, LOCAL_SCALE, BLUR_P[2])
        self.n_local = n_local

    def __call__(self, image: Any) -> list[torch.Tensor]:
        """A PIL image -> [global 1, global 2, local 1 ... local N], each (3, s, s) uint8."""
        return [self.global1(image), self.global2(image), *(self.local(image) for _ in range(self.n_local))]


class _PILBlur:
    """Gaussian blur of a PIL image with a radius drawn in [0.1, 2] (DINO's ``GaussianBlur``, PIL's filter: 10x
    faster on CPUs than a tensor convolution, measured)."""

    def __call__(self, image: Any) -> Any:
        import torch
        from PIL import ImageFilter

        return image.filter(ImageFilter.GaussianBlur(radius=0.1 + 1.9 * float(torch.rand(()))))


@dataclass
class _Source:
    """Where each object's pixels come from: a file (and box), or a frame decoded in memory."""

    root: Path
    sources: np.ndarray
    boxes: np.ndarray | None
    frames: dict[int, np.ndarray]


def read_pixels(table: ObjectTable, crops: bool, max_side: int) -> _Source:
    """The pixel sources of a table: still images are decoded on demand; video frames are decoded now, once,
    straight through each video, and kept at ``max_side`` (adjacent frames are read sequentially anyway)."""
    frames: dict[int, np.ndarray] = {}
    data = table.data
    video_rows = np.flatnonzero(data["frame"].to_numpy() >= 0)
    if len(video_rows):
        from dinoscope.io.frames import iter_frames

        root = Path(table.root or ".")
        for source, group in data.iloc[video_rows].groupby("source", sort=False):
            wanted = dict(zip(group["frame"].astype(int), group.index, strict=False))
            for frame in iter_frames(root / source):
                if frame.index in wanted:
                    frames[int(wanted.pop(frame.index))] = _shrink(frame.image, max_side)
                if not wanted:
                    break
    boxes = table.xyxy if crops else None
    return _Source(Path(table.root or "."), data["source"].to_numpy(dtype=object), boxes, frames)


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    """The image with its longer side at most ``max_side`` (aspect kept)."""
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale)))))


class MultiCropStream:
    """A map-style dataset over stream positions: item ``i`` is the multi-crop of the image at position ``i``.

    Args:
        source: The pixels (:func:`read_pixels`).
        transform: The views (:class:`MultiCrop`).
        seed: Seed of the image order and of every view.
        max_side: Decode still images at about this size (JPEG draft mode).
        crop_side: Side of an object crop (``source.boxes``): the box grown to a square with its surroundings.
    """

    def __init__(self, source: _Source, transform: MultiCrop, seed: int, max_side: int, crop_side: int) -> None:
        self.source, self.transform, self.seed = source, transform, seed
        self.max_side, self.crop_side = max_side, crop_side
        self.n_images = len(source.sources)
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return 1 << 62  # positions are unbounded: epochs follow one another

    def image_of(self, position: int) -> int:
        """Row of the image at a stream position (a fresh permutation of the rows every epoch)."""
        epoch, offset = divmod(position, self.n_images)
        order = self._orders.get(epoch)
        if order is None:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_images)
            self._orders = {epoch: order}
        return int(order[offset])

    def __getitem__(self, position: int) -> list[torch.Tensor]:
        import torch
        from PIL import Image

        image = Image.fromarray(self.pixels(self.image_of(position)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.default_rng([self.seed, position, 7]).integers(1 << 62)))
            return self.transform(image)

    def pixels(self, row: int) -> np.ndarray:
        """(H, W, 3) uint8 pixels of a row: the image (decoded at about ``max_side``), or its object crop."""
        from dinoscope.io.images import read_image

        src = self.source
        image = src.frames.get(row)
        if image is None:
            image = read_image(src.root / src.sources[row], max_side=None if src.boxes is not None else self.max_side)
        if src.boxes is None:
            return image
        from dinoscope.embed.crops import cut_crops
        from dinoscope.embed.spec import CropSpec

        return cut_crops(image, src.boxes[row : row + 1], CropSpec(context_frac=0.1), self.crop_side)[0]


def collate_views(items: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """A batch of multi-crops -> one (B, 3, s, s) uint8 tensor per view."""
    import torch

    return [torch.stack(views) for views in zip(*items, strict=True)]


def center_crops(stream: MultiCropStream, n: int, size: int, seed: int) -> np.ndarray:
    """(min(n, images), size, size, 3) uint8 centre crops of a seeded sample of the stream's images (the fixed
    images the collapse monitor embeds)."""
    from dinoscope.embed.crops import cut_crops
    from dinoscope.embed.spec import CropSpec

    rows = np.random.default_rng([seed, 3]).permutation(stream.n_images)[:n]
    out = np.empty((len(rows), size, size, 3), np.uint8)
    for i, row in enumerate(rows):
        image = stream.pixels(int(row))
        box = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
        out[i] = cut_crops(image, box, CropSpec(policy="center"), size)[0]
    return out
