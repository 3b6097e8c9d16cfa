"""Segmentation masks: a folder of images beside a folder of single-channel masks.

Layout: ``root/images/**/<name>.<ext>`` and ``root/masks/**/<name>.png`` (or ``labels/``, ``annotations/``,
``segmentations/``), paired by their path below those folders without the extension. Two kinds of mask:

- binary (values {0, 255} or {0, 1}): one class, ``foreground`` unless named;
- indexed (values 0..K, palette PNGs included): 0 is background, 255 is ignored, value ``v`` is class id
  ``v - 1``; names come from ``class_names``, ``root/classes.txt`` (a leading ``background`` /
  ``_background_`` line, as labelme writes, is dropped) or become ``class_1 .. class_K``.

Splits come from ``root/splits/<split>.txt`` (stems, as ``dinoscope seg prepare`` writes them) when that
folder exists, else from the folder names (``images/train/...``).

Each connected component (8-connectivity, ``scipy.ndimage.label``) of one mask value is one object with
its bounding box (pixel edges: a single pixel is 1 x 1 px). Masks are read as stored ("L", "P", "1" or
16-bit), never converted to RGB, so palette indices are class values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from dinoscope.errors import ConfigError, DatasetFormatError
from dinoscope.io._build import TableBuilder
from dinoscope.io.images import list_images
from dinoscope.io.paths import relpath
from dinoscope.io.yolo import split_of
from dinoscope.table import ObjectTable

__all__ = ["IGNORE_VALUE", "MASK_DIRS", "read_mask_array", "read_masks"]

MaskMode = Literal["auto", "binary", "indexed"]
#: Folder names searched (in order) for masks beside ``images/``.
MASK_DIRS = ("masks", "labels", "annotations", "segmentations")
#: Mask value that marks pixels to ignore in indexed masks (no object is made of it).
IGNORE_VALUE = 255
_BACKGROUND_NAMES = frozenset({"background", "_background_", "__background__", "bg"})
_CONNECTIVITY_8 = np.ones((3, 3), dtype=bool)
_DEFAULT_SPLIT = "all"


@dataclass(frozen=True)
class _Instance:
    value: str  # mask value as written in mask_ref ("nonzero" for a forced-binary union)
    class_value: int  # pixel value that decides the class
    index: int  # 1-based component label, as scipy.ndimage.label numbers it
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels (pixel edges)
    area_px: int


@dataclass
class _Mask:
    width: int = 0
    height: int = 0
    values: frozenset[int] = frozenset()  # non-zero values present
    instances: list[_Instance] = field(default_factory=list)
    error: str = ""


def read_masks(
    path: str | Path,
    images_dir: str | Path | None = None,
    masks_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    mode: MaskMode = "auto",
) -> ObjectTable:
    """Read a segmentation dataset of images and masks into one object per mask instance.

    Args:
        path: Dataset root.
        images_dir: Image folder (absolute, or relative to the root); default ``root/images``.
        masks_dir: Mask folder; default the first of ``masks``, ``labels``, ``annotations``,
            ``segmentations`` in the root.
        class_names: Names of mask values 1, 2, ... (indexed) or the one foreground name (binary).
        mode: ``binary`` (every non-zero pixel is foreground), ``indexed`` (value ``v`` is class ``v - 1``)
            or ``auto``: binary when all masks hold only {0, 1} or only {0, 255} and at most one class
            name is known, else indexed.

    Returns:
        The object table with extra columns ``mask_ref`` (``"<mask>#<value>:<k>"``: component ``k`` of
        ``scipy.ndimage.label(mask == value, 8-connectivity)``; ``value`` is ``nonzero`` for ``mask > 0``
        in forced binary mode) and ``area_px`` (pixels in the component). ``label_ref`` is the mask.

    Raises:
        DatasetFormatError: The image or mask folder is missing.
        ConfigError: ``mode`` is unknown, or several class names are given for binary masks.

    Example:
        >>> table = read_masks("datasets/cracks")  # doctest: +SKIP
        >>> table.data[["mask_ref", "area_px"]].head(1)  # doctest: +SKIP
    """
    if mode not in ("auto", "binary", "indexed"):
        raise ConfigError(f"mode must be 'auto', 'binary' or 'indexed'; got {mode!r}")
    root = Path(path)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: not a folder; expected the dataset root holding images/ and masks/")
    img_dir, mask_dir = _resolve_dirs(root, images_dir, masks_dir)
    masks_by_key = {_key(m, mask_dir): m for m in reversed(list_images(mask_dir))}  # first sorted wins
    images = [p for p in list_images(img_dir) if mask_dir not in p.parents]
    paired = {_key(img, img_dir): masks_by_key.get(_key(img, img_dir)) for img in images}
    to_read = sorted({m for m in paired.values() if m is not None})
    infos = dict(zip(to_read, _read_all(to_read, mode == "binary"), strict=True))
    names, binary = _classes(root, class_names, mode, [i for i in infos.values() if not i.error])
    builder = TableBuilder(root, names, "masks")
    rels = [relpath(paired[_key(img, img_dir)], root) if paired[_key(img, img_dir)] else "" for img in images]
    listed = _split_lists(root)
    splits = [listed.get(img.stem) or split_of(relpath(img, root), _DEFAULT_SPLIT) for img in images]
    builder.add_images(images, splits, rels)
    for img, rel_mask in zip(images, rels, strict=True):
        mask = paired[_key(img, img_dir)]
        _add_image_objects(builder, relpath(img, root), rel_mask, infos.get(mask) if mask else None, binary)
    image_keys = set(paired)
    for key, mask in sorted(masks_by_key.items()):
        if key not in image_keys:
            builder.finding(
                "label_without_image",
                f"mask has no image of the same name in {relpath(img_dir, root)}/; add the image or remove the mask",
                relpath(mask, root),
            )
    return builder.build()


def _split_lists(root: Path) -> dict[str, str]:
    """Image stem -> split from ``root/splits/<split>.txt`` (one stem per line, as ``dinoscope seg prepare``
    writes them); {} when there is no such folder."""
    folder = root / "splits"
    out: dict[str, str] = {}
    for txt in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        for line in txt.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.setdefault(line.strip(), txt.stem)
    return out


def _resolve_dirs(root: Path, images_dir: str | Path | None, masks_dir: str | Path | None) -> tuple[Path, Path]:
    img_dir = _under(root, images_dir or "images")
    if not img_dir.is_dir():
        raise DatasetFormatError(f"{img_dir}: image folder not found; put the images in root/images or pass images_dir")
    if masks_dir is not None:
        mask_dir = _under(root, masks_dir)
        if not mask_dir.is_dir():
            raise DatasetFormatError(f"{mask_dir}: mask folder not found; pass an existing masks_dir")
        return img_dir, mask_dir
    for name in MASK_DIRS:
        if (root / name).is_dir():
            return img_dir, root / name
    raise DatasetFormatError(
        f"{root}: no mask folder (looked for {', '.join(MASK_DIRS)}); put the masks in root/masks or pass masks_dir"
    )


def _under(root: Path, folder: str | Path) -> Path:
    p = Path(folder)
    return p if p.is_absolute() or not (root / p).is_dir() else root / p


def _key(path: Path, folder: Path) -> str:
    """Path below ``folder`` without extension: the name that pairs an image with its mask."""
    return relpath(path.with_suffix(""), folder)


# --- reading masks ---------------------------------------------------------------------------------
def _read_all(paths: list[Path], union: bool) -> list[_Mask]:
    if len(paths) < 16:
        return [_read_mask(p, union) for p in paths]
    with ThreadPoolExecutor(min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(lambda p: _read_mask(p, union), paths, chunksize=8))


def _read_mask(path: Path, union: bool) -> _Mask:
    """Read one mask and find its instances (one pass over the file)."""
    try:
        arr = read_mask_array(path)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return _Mask(error=f"cannot decode mask ({exc})")
    values = frozenset(int(v) for v in np.unique(arr)) - {0}
    height, width = arr.shape
    if union and len(values) > 1:
        return _Mask(width, height, values, _components(arr > 0, "nonzero", max(values)))
    instances = [inst for v in sorted(values) for inst in _components(arr == v, str(v), v)]
    return _Mask(width, height, values, instances)


def read_mask_array(path: str | Path) -> np.ndarray:
    """(H, W) integer array of the stored mask values; colour masks only when their channels agree.

    Raises:
        ValueError: A colour mask whose channels differ (not a class-index mask).
        OSError: The file cannot be decoded.

    Example:
        >>> read_mask_array("masks/frame_0001.png").max()  # doctest: +SKIP
        255
    """
    with Image.open(path) as img:
        if img.mode in ("L", "P"):
            return np.asarray(img)
        if img.mode == "1":
            return np.asarray(img, dtype=np.uint8)
        if img.mode.startswith("I"):
            return np.asarray(img).astype(np.int64)
        if img.mode in ("LA", "PA"):
            return np.asarray(img.getchannel(0))
        if img.mode in ("RGB", "RGBA"):
            rgb = np.asarray(img)[..., :3]
            if (rgb == rgb[..., :1]).all():
                return rgb[..., 0]
        raise ValueError(
            f"{img.mode} mask with differing colour channels; save masks as single-channel "
            "(mode L) or palette (mode P) PNGs whose values are class indices"
        )


def _components(mask: np.ndarray, value: str, class_value: int) -> list[_Instance]:
    """Connected components (8-connectivity) of a boolean (H, W) mask, with boxes and areas."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=_CONNECTIVITY_8)
    if n == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    out = []
    for k, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
        out.append(_Instance(value, class_value, k, (xs.start, ys.start, xs.stop, ys.stop), int(areas[k])))
    return out


# --- classes ---------------------------------------------------------------------------------------
def _classes(
    root: Path, given: Sequence[str] | None, mode: MaskMode, masks: list[_Mask]
) -> tuple[tuple[str, ...], bool]:
    """Class names and whether masks are binary."""
    names = list(given) if given is not None else _read_classes_txt(root)
    nonzero = frozenset().union(*(m.values for m in masks))
    binary = mode == "binary" or (
        mode == "auto" and len(names or ()) <= 1 and (nonzero <= {1} or nonzero <= {IGNORE_VALUE})
    )
    if binary:
        if names is not None and len(names) > 1:
            raise ConfigError(
                f"binary masks have one class but {len(names)} class names were given ({names}); "
                "give one name, or use mode='indexed'"
            )
        return (names[0] if names else "foreground",), True
    if names is None:
        top = max(nonzero - {IGNORE_VALUE}, default=0)
        names = [f"class_{v}" for v in range(1, top + 1)]
    return tuple(names), False


def _read_classes_txt(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return names[1:] if names and names[0].lower() in _BACKGROUND_NAMES else names


# --- objects ---------------------------------------------------------------------------------------
def _add_image_objects(builder: TableBuilder, source: str, rel_mask: str, mask: _Mask | None, binary: bool) -> None:
    img = builder.image(source)
    split = img["split"]
    if mask is None:
        builder.finding(
            "missing_label_file",
            "image has no mask of the same name; add one (all zeros for background) or remove the image",
            source,
            split=split,
        )
        return
    if mask.error:
        builder.finding("unreadable_annotations", f"{mask.error}; re-export the mask", rel_mask, split=split)
        return
    if img["error"]:
        return  # the builder has reported the image
    if (mask.width, mask.height) != (img["width"], img["height"]):
        builder.finding(
            "size_mismatch",
            f"mask is {mask.width}x{mask.height} px but its image {source} is {img['width']}x{img['height']} px; "
            "its objects were skipped - resize the mask to the image or fix the pairing",
            rel_mask,
            split=split,
        )
        return
    n_classes = len(builder.class_names)
    kept = [i for i in mask.instances if binary or i.class_value != IGNORE_VALUE]
    unknown = sorted({i.class_value for i in kept if not binary and i.class_value > n_classes})
    for v in unknown:
        n = sum(i.class_value == v for i in kept)
        builder.finding(
            "unknown_class",
            f"mask value {v} (class id {v - 1}, {n} instance(s)) is beyond the {n_classes} class names; "
            "add the class name or fix the mask",
            rel_mask,
            split=split,
            value=float(v),
        )
    kept = [i for i in kept if binary or i.class_value <= n_classes]
    if not kept and not unknown:
        builder.finding(
            "background_image", "mask has no foreground: background image (no objects)", rel_mask, split=split
        )
    for inst in kept:
        builder.add_object(
            source,
            0 if binary else inst.class_value - 1,
            inst.box,
            rel_mask,
            mask_ref=f"{rel_mask}#{inst.value}:{inst.index}",
            area_px=inst.area_px,
        )
