"""Image folders: classification datasets with one folder per class, and plain unlabelled image folders.

Layouts read by :func:`read_class_folders` (the torchvision ``ImageFolder`` convention):
- ``root/<class>/*.jpg``: one folder per class;
- ``root/{train,val,test}/<class>/*.jpg``: split folders first (``valid``, ``validation``, ... are
  accepted), then class folders; class ids come from the union of class folder names over all splits, so
  every split shares them.

Every image becomes one object: the whole image box ``(0, 0, w, h)``. :func:`read_image_folder` does the
same for a folder of images without labels (class id -1, origin ``image``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from dinoscope.errors import DatasetFormatError
from dinoscope.io._build import TableBuilder
from dinoscope.io.images import IMAGE_EXTENSIONS, list_images
from dinoscope.io.paths import relpath
from dinoscope.io.yolo import split_of
from dinoscope.table import ObjectTable

__all__ = ["read_class_folders", "read_image_file", "read_image_folder"]

logger = logging.getLogger(__name__)

_DEFAULT_SPLIT = "all"


def read_class_folders(path: str | Path) -> ObjectTable:
    """Read an image classification dataset laid out as one folder per class.

    Class names are the class folder names sorted as strings (the same ids torchvision's ``ImageFolder``
    gives); empty class folders keep their name so that a later check reports the empty class. Images
    lying directly in the root or in a split folder, outside any class folder, are reported as
    ``missing_label_file`` and left out. In a split layout, other top-level folders that hold images are
    read as class folders of split ``all``; those without images are ignored.

    Args:
        path: The dataset root.

    Returns:
        One whole-image object per image (origin ``label``); ``label_ref`` is the class folder, relative
        to the root. Problems met while reading are in ``table.findings``.

    Raises:
        DatasetFormatError: The path is not a folder or no image lies in any class folder.

    Example:
        >>> table = read_class_folders("datasets/flowers")  # doctest: +SKIP
        >>> table.class_names  # doctest: +SKIP
        ('daisy', 'rose', 'tulip')
    """
    root = _require_folder(path)
    class_dirs, loose = _class_dirs(root)
    names = sorted({d.name for d, _ in class_dirs})
    images, splits, folders = [], [], []
    for folder, split in class_dirs:
        for img in list_images(folder):
            images.append(img)
            splits.append(split)
            folders.append(relpath(folder, root))
    if not images:
        raise DatasetFormatError(
            f"{root}: no image in any class folder (expected root/<class>/*.jpg or "
            f"root/train/<class>/*.jpg with {', '.join(sorted(IMAGE_EXTENSIONS))} files); "
            "for images without labels use read_image_folder"
        )
    builder = TableBuilder(root, names, "class-folders")
    index = {name: i for i, name in enumerate(names)}
    for img, probe, folder in zip(images, builder.add_images(images, splits, folders), folders, strict=True):
        box = (0.0, 0.0, float(probe.width), float(probe.height))
        builder.add_object(relpath(img, root), index[Path(folder).name], box, folder)
    for img in loose:
        rel = relpath(img, root)
        builder.finding(
            "missing_label_file",
            "image outside any class folder; not included - move it into root/<class>/ (or "
            "root/<split>/<class>/) to label it",
            rel,
            split=split_of(rel, _DEFAULT_SPLIT),
        )
    return builder.build()


def read_image_folder(path: str | Path) -> ObjectTable:
    """Read a folder of images without labels (searched recursively, hidden folders skipped).

    Args:
        path: The folder.

    Returns:
        One whole-image object per image with class id -1, class name ``""`` and origin ``image``; the
        table has no class names. Splits come from folder names (train/val/test), else ``all``.

    Raises:
        DatasetFormatError: The path is not a folder or holds no image.

    Example:
        >>> table = read_image_folder("photos/")  # doctest: +SKIP
        >>> table.data["origin"].unique()  # doctest: +SKIP
        array(['image'], dtype=object)
    """
    root = _require_folder(path)
    images = list_images(root)
    if not images:
        raise DatasetFormatError(
            f"{root}: no image found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))} files, recursively); "
            "point to the folder that holds the images"
        )
    builder = TableBuilder(root, (), "images")
    splits = [split_of(relpath(img, root), _DEFAULT_SPLIT) for img in images]
    for img, probe in zip(images, builder.add_images(images, splits), strict=True):
        builder.add_object(relpath(img, root), -1, (0.0, 0.0, float(probe.width), float(probe.height)), origin="image")
    return builder.build()


def read_image_file(path: str | Path, box: tuple[float, float, float, float] | None = None) -> ObjectTable:
    """One image file as a one-object table: the box ``(x1, y1, x2, y2)`` in pixels, or the whole image.

    Args:
        path: The image file.
        box: The object's box; None for the whole image (origin ``image``).

    Returns:
        A table of one unlabelled object (class id -1), rooted at the image's folder.

    Raises:
        DatasetFormatError: Not a readable image, or a box outside it or empty.

    Example:
        >>> read_image_file("query.jpg", box=(10, 20, 110, 90)).xyxy.tolist()  # doctest: +SKIP
        [[10.0, 20.0, 110.0, 90.0]]
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetFormatError(f"{file}: no such image file; give the path of a .jpg/.png image")
    builder = TableBuilder(file.parent, (), "images")
    (probe,) = builder.add_images([file], [_DEFAULT_SPLIT])
    if probe.error:
        raise DatasetFormatError(f"{file}: not a readable image ({probe.error}); give a .jpg/.png image")
    w, h = float(probe.width), float(probe.height)
    if box is None:
        builder.add_object(file.name, -1, (0.0, 0.0, w, h), origin="image")
        return builder.build()
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise DatasetFormatError(
            f"{file}: box {x1:g},{y1:g},{x2:g},{y2:g} is not inside the {w:g}x{h:g} image with x1 < x2 and y1 < y2; "
            "give --box x1,y1,x2,y2 in pixels"
        )
    builder.add_object(file.name, -1, (x1, y1, x2, y2), origin="prediction")  # an unlabelled box
    return builder.build()


def _require_folder(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise DatasetFormatError(f"{root}: {what}; expected the dataset folder")
    return root


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _class_dirs(root: Path) -> tuple[list[tuple[Path, str]], list[Path]]:
    """(class folder, split) pairs, and the images that lie outside any class folder."""
    top = _subdirs(root)
    split_dirs = [d for d in top if split_of(f"{d.name}/_", "")]
    loose = list_images(root, recursive=False)
    if not split_dirs:
        return [(d, _DEFAULT_SPLIT) for d in top], loose
    pairs = []
    for d in split_dirs:
        split = split_of(f"{d.name}/_")
        pairs.extend((c, split) for c in _subdirs(d))
        loose.extend(list_images(d, recursive=False))
    for d in top:
        if d in split_dirs:
            continue
        if list_images(d):
            pairs.append((d, _DEFAULT_SPLIT))
        else:
            logger.info("%s: folder without images beside the split folders; ignored", d)
    return pairs, loose
