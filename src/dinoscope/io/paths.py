"""Paths as the object table stores them: relative to the dataset root, in POSIX form."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["relpath"]


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (with ``..`` when outside the root, absolute across drives).

    Example:
        >>> relpath(Path("/data/ppe/images/a.jpg"), Path("/data/ppe"))
        'images/a.jpg'
    """
    p, r = os.path.abspath(path), os.path.abspath(root)
    if p.startswith(r.rstrip(os.sep) + os.sep):
        return p[len(r.rstrip(os.sep)) + 1 :].replace(os.sep, "/")
    if p == r:
        return "."
    try:
        return Path(os.path.relpath(p, r)).as_posix()
    except ValueError:  # another drive on Windows
        return Path(p).as_posix()
