"""Content hashes of weight files, computed once per process (weights change -> cache keys change)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["hash_files"]

_HASHES: dict[tuple[tuple[str, int, int], ...], str] = {}


def hash_files(*files: str | Path) -> str:
    """BLAKE2b-128 of the files' bytes in order, cached per process by (resolved path, size, mtime).

    Example:
        >>> hash_files("model.safetensors")  # doctest: +SKIP
        '5c1f...'
    """
    paths = [Path(f) for f in files]
    key = tuple((str(p.resolve()), (st := p.stat()).st_size, st.st_mtime_ns) for p in paths)
    if key not in _HASHES:
        digest = hashlib.blake2b(digest_size=16)
        for p in paths:
            with p.open("rb") as fh:
                while chunk := fh.read(1 << 22):
                    digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]
