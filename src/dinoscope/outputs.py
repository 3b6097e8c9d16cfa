"""Output paths that never replace a user's file without an explicit flag."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dinoscope.errors import OutputExistsError

__all__ = ["prepare_output_dir", "prepare_output_files"]


def prepare_output_files(out_dir: Path, names: Sequence[str], overwrite: bool = False) -> list[Path]:
    """Create ``out_dir`` and return ``out_dir/name`` paths, refusing existing files unless ``overwrite``.

    Raises:
        OutputExistsError: Some files exist and ``overwrite`` is False (all of them are named).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir} exists and is not a folder; choose another output folder")
    paths = [out_dir / n for n in names]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        listed = ", ".join(str(p) for p in existing)
        raise OutputExistsError(f"{listed} already exist(s); pass --overwrite to replace or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return paths


def prepare_output_dir(out_dir: Path, overwrite: bool = False) -> Path:
    """Create an output folder that must be new or empty, unless ``overwrite`` allows writing into it.

    Files already there are never deleted; with ``overwrite`` the ones dinoscope writes are replaced.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputExistsError(f"{out_dir} exists and is not a folder; choose another output folder")
        if any(out_dir.iterdir()) and not overwrite:
            raise OutputExistsError(
                f"{out_dir} exists and is not empty; pass --overwrite to write into it or choose another folder"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir
