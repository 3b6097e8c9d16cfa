"""The segmentation data folder: ``images/`` + ``masks/`` (same stem) + ``splits/{train,val,test}.txt``.

```
DATA/
  images/<stem>.<jpg|png|...>   RGB or grayscale images (grayscale is read as three equal channels)
  masks/<stem>.png              single-channel, 0 = background, 255 = foreground (0/1 and other values are
                                binarised: > 0 for 0/1 masks, >= 128 otherwise)
  splits/train.txt val.txt test.txt   one stem per line (written by ``seg prepare``)
  meta/<stem>.json              optional (``seg collect``): {"video": ..., "frame": ..., "time_s": ...}
```
This module owns every path inside such a folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dinoscope.errors import DatasetFormatError
from dinoscope.io.images import list_images, read_image
from dinoscope.io.masks import read_mask_array

__all__ = [
    "SPLITS",
    "SegSample",
    "binarize_mask",
    "images_dir",
    "list_samples",
    "masks_dir",
    "meta_path",
    "read_binary_mask",
    "read_meta",
    "read_sample",
    "read_split",
    "select_split",
    "splits_dir",
    "write_mask",
]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SegSample:
    """One image of a data folder and its mask (None when it has none yet)."""

    stem: str
    image: Path
    mask: Path | None


def images_dir(root: Path) -> Path:
    return Path(root) / "images"


def masks_dir(root: Path) -> Path:
    return Path(root) / "masks"


def splits_dir(root: Path) -> Path:
    return Path(root) / "splits"


def meta_path(root: Path, stem: str) -> Path:
    return Path(root) / "meta" / f"{stem}.json"


def list_samples(root: str | Path) -> list[SegSample]:
    """Every image of ``root/images`` (top level) with its mask ``root/masks/<stem>.png``, sorted by stem.

    Raises:
        DatasetFormatError: No ``images/`` folder, or two images share a stem.

    Example:
        >>> [s.stem for s in list_samples("data/cracks")][:2]  # doctest: +SKIP
        ['frame_000000', 'frame_000030']
    """
    root = Path(root)
    if not images_dir(root).is_dir():
        raise DatasetFormatError(f"{root}: no images/ folder; expected DATA/images + DATA/masks (see `seg import`)")
    masks = {p.stem: p for p in list_images(masks_dir(root), recursive=False)} if masks_dir(root).is_dir() else {}
    out: dict[str, SegSample] = {}
    for img in list_images(images_dir(root), recursive=False):
        if img.stem in out:
            raise DatasetFormatError(f"{img}: same stem as {out[img.stem].image.name}; masks pair by stem - rename one")
        out[img.stem] = SegSample(img.stem, img, masks.get(img.stem))
    return [out[k] for k in sorted(out)]


def read_split(root: str | Path, split: str) -> list[str]:
    """The stems listed in ``splits/<split>.txt``.

    Raises:
        DatasetFormatError: The file does not exist.
    """
    path = splits_dir(Path(root)) / f"{split}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in splits_dir(Path(root)).glob("*.txt")) if splits_dir(Path(root)).is_dir() else []
        raise DatasetFormatError(
            f"{path}: no such split (splits there: {', '.join(have) or 'none'}); run `dinoscope seg prepare {root}`"
        )
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def select_split(root: str | Path, split: str | None) -> list[SegSample]:
    """The samples of a split (all samples when ``split`` is None), each with a mask.

    Raises:
        DatasetFormatError: A listed stem has no image, or a selected image has no mask.
    """
    samples = list_samples(root)
    if split is not None:
        by_stem = {s.stem: s for s in samples}
        stems = read_split(root, split)
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DatasetFormatError(
                f"{splits_dir(Path(root)) / split}.txt: {len(missing)} stem(s) without an image, e.g. {missing[0]!r}; "
                "re-run `seg prepare`"
            )
        samples = [by_stem[s] for s in stems]
    unmasked = [s for s in samples if s.mask is None]
    if unmasked:
        raise DatasetFormatError(
            f"{unmasked[0].image}: no mask masks/{unmasked[0].stem}.png ({len(unmasked)} image(s) without one); "
            f"run `dinoscope seg prepare {root}` to add empty masks"
        )
    return samples


def binarize_mask(values: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W) bool foreground of a mask and the number of pixels that were neither 0 nor the foreground value.

    0/1 masks: foreground = 1. Otherwise foreground = values >= 128 (255 in a clean mask; JPEG-like noise and
    anti-aliased edges are rounded to the nearer side); pixels other than 0 and 255 are counted as non-binary.

    Example:
        >>> binarize_mask(np.array([[0, 255], [200, 3]], dtype=np.uint8))
        (array([[False,  True],
               [ True, False]]), 2)
    """
    top = int(values.max()) if values.size else 0
    if top <= 1:
        return values > 0, 0
    return values >= 128, int(np.count_nonzero((values != 0) & (values != 255)))


def read_binary_mask(path: Path) -> np.ndarray:
    """The bool (H, W) foreground of a mask file (see :func:`binarize_mask`).

    Raises:
        DatasetFormatError: The file cannot be decoded as a single-channel mask.
    """
    try:
        return binarize_mask(read_mask_array(path))[0]
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetFormatError(f"{path}: cannot read the mask ({exc}); save it as a single-channel PNG") from exc


def read_sample(sample: SegSample) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image and (H, W) bool mask of a sample.

    Raises:
        DatasetFormatError: Unreadable files, or mask and image sizes differ.
    """
    image = read_image(sample.image)
    if sample.mask is None:
        return image, np.zeros(image.shape[:2], dtype=bool)
    mask = read_binary_mask(sample.mask)
    if mask.shape != image.shape[:2]:
        raise DatasetFormatError(
            f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} px but {sample.image.name} is "
            f"{image.shape[1]}x{image.shape[0]} px; resize the mask or re-import"
        )
    return image, mask


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Write a bool (H, W) mask as a single-channel PNG of 0 / 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def read_meta(root: Path, stem: str) -> dict[str, object]:
    """The ``meta/<stem>.json`` record written by ``seg collect`` ({} when absent or unreadable)."""
    path = meta_path(root, stem)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}
