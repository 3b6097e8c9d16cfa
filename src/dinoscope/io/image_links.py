"""Place chosen image files in a folder: symbolic links or copies, never replacing a file that is there."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from dinoscope.errors import OutputExistsError

__all__ = ["place_images"]

PlaceMode = Literal["link", "copy"]


def place_images(sources: Sequence[str | Path], out_dir: str | Path, mode: PlaceMode = "link") -> list[Path]:
    """Link (absolute symbolic links) or copy each image into ``out_dir``, keeping its file name.

    Names that repeat get ``_1``, ``_2`` ... before the suffix, so two chosen files never collide.

    Args:
        sources: Image files.
        out_dir: Destination folder (created); it must not already hold a file of a name written here.
        mode: ``link`` or ``copy``.

    Returns:
        The written paths, in the order of ``sources``.

    Raises:
        OutputExistsError: A destination file exists (nothing is written then).

    Example:
        >>> place_images(["a/x.jpg", "b/x.jpg"], "chosen")  # doctest: +SKIP
        [PosixPath('chosen/x.jpg'), PosixPath('chosen/x_1.jpg')]
    """
    out = Path(out_dir)
    used: set[str] = set()
    targets = []
    for src in sources:
        name, stem, suffix, i = Path(src).name, Path(src).stem, Path(src).suffix, 0
        while name in used:
            i += 1
            name = f"{stem}_{i}{suffix}"
        used.add(name)
        targets.append(out / name)
    existing = [t for t in targets if t.exists() or t.is_symlink()]
    if existing:
        raise OutputExistsError(
            f"{existing[0]} (and {len(existing) - 1} more) already exist; choose another --out (files are never "
            "replaced)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for src, dst in zip(sources, targets, strict=True):
        if mode == "link":
            dst.symlink_to(Path(src).resolve())
        else:
            shutil.copy2(src, dst)
    return targets
