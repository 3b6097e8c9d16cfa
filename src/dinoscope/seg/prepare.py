"""``seg prepare DIR``: every image gets a binary mask, and the images get grouped, stratified splits.

1. An image without ``masks/<stem>.png`` gets an all-zero mask (a negative example, not a missing label: CVAT
   writes no mask for frames nobody annotated).
2. Every mask is checked: values other than 0 and 255 are reported (0/1 masks, anti-aliased or JPEG-damaged
   edges, indexed masks); with ``overwrite`` they are rewritten as 0/255 by the rule training uses anyway
   (:func:`~dinoscope.seg.data.binarize_mask`). A mask whose size differs from its image is left out of the
   splits and reported.
3. ``splits/{train,val,test}.txt`` from :func:`~dinoscope.seg.splits.split_groups`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dinoscope.errors import DatasetFormatError, OutputExistsError
from dinoscope.io.images import probe_image
from dinoscope.io.masks import read_mask_array
from dinoscope.progress import track
from dinoscope.seg.data import (
    SPLITS,
    binarize_mask,
    list_samples,
    masks_dir,
    read_meta,
    splits_dir,
    write_mask,
)
from dinoscope.seg.splits import find_groups, split_groups

__all__ = ["PrepareResult", "prepare_data"]

logger = logging.getLogger(__name__)


@dataclass
class PrepareResult:
    """What ``seg prepare`` found and wrote.

    Attributes:
        root: The data folder.
        n_images: Images in the splits; ``n_positive``: those with foreground.
        n_empty_written: All-zero masks written for images without one.
        nonbinary: (mask file, pixels neither 0 nor 255) for every mask that was not 0/255.
        rewritten: Whether those masks were rewritten as 0/255.
        skipped: (file, reason) of images left out (size mismatch, unreadable).
        counts: split -> (images, positive images).
        n_groups: Groups of adjacent frames the splits were made of.
    """

    root: Path
    n_images: int = 0
    n_positive: int = 0
    n_empty_written: int = 0
    nonbinary: list[tuple[str, int]] = field(default_factory=list)
    rewritten: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    n_groups: int = 0


def prepare_data(
    root: str | Path,
    val_ratio: float = 0.2,
    test_ratio: float = 0.1,
    min_val_pos: int = 10,
    seed: int = 0,
    overwrite: bool = False,
) -> PrepareResult:
    """Add empty masks, check binarisation and write grouped, stratified splits (see the module docstring).

    Raises:
        OutputExistsError: ``splits/`` already holds split files and ``overwrite`` is False.
        DatasetFormatError: No usable image, or a split would hold no positive image.

    Example:
        >>> result = prepare_data("data/cracks", val_ratio=0.2, test_ratio=0.1, min_val_pos=10)  # doctest: +SKIP
        >>> result.counts["val"]  # doctest: +SKIP
        (42, 12)
    """
    root = Path(root)
    existing = [splits_dir(root) / f"{s}.txt" for s in SPLITS if (splits_dir(root) / f"{s}.txt").exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} already exists; pass --overwrite to re-split {root}")
    result = PrepareResult(root)
    stems, positive = [], []
    for sample in track(list_samples(root), description="checking masks", unit="image"):
        probe = probe_image(sample.image)
        if probe.error:
            result.skipped.append((str(sample.image), probe.error))
            continue
        if sample.mask is None:
            write_mask(masks_dir(root) / f"{sample.stem}.png", np.zeros((probe.height, probe.width), dtype=bool))
            result.n_empty_written += 1
            stems.append(sample.stem)
            positive.append(False)
            continue
        try:
            values = read_mask_array(sample.mask)
        except (OSError, ValueError, SyntaxError) as exc:
            result.skipped.append((str(sample.mask), f"cannot read the mask ({exc})"))
            continue
        if values.shape != (probe.height, probe.width):
            result.skipped.append(
                (str(sample.mask), f"{values.shape[1]}x{values.shape[0]} px, image {probe.width}x{probe.height} px")
            )
            continue
        mask, n_odd = binarize_mask(values)
        if n_odd or (values.size and int(values.max()) == 1):
            result.nonbinary.append((str(sample.mask), n_odd or int(mask.sum())))
            if overwrite:
                write_mask(sample.mask, mask)
        stems.append(sample.stem)
        positive.append(bool(mask.any()))
    result.rewritten = overwrite and bool(result.nonbinary)
    if not stems:
        raise DatasetFormatError(f"{root}: no image with a readable mask; see `dinoscope seg import`")
    metas = [read_meta(root, s) for s in stems]
    groups = find_groups(stems, [_text(m.get("video")) for m in metas], [_number(m.get("frame")) for m in metas])
    pos = np.asarray(positive, dtype=bool)
    plan = split_groups(groups, pos, val_ratio, test_ratio, min_val_pos, seed)
    splits_dir(root).mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        chosen = [stem for stem, sp in zip(stems, plan.split, strict=True) if sp == s]
        if s in plan.counts:
            (splits_dir(root) / f"{s}.txt").write_text("".join(f"{c}\n" for c in chosen), encoding="utf-8")
        else:  # no test split this time: an earlier one (written by prepare, --overwrite given) would be stale
            (splits_dir(root) / f"{s}.txt").unlink(missing_ok=True)
    result.n_images, result.n_positive = len(stems), int(pos.sum())
    result.counts, result.n_groups = plan.counts, plan.n_groups
    return result


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
