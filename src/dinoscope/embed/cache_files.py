"""The cache's files on disk: where the cache root is, what databases it holds, and removing them.

Databases live in ``<root>/embeddings/<model_key>-<crop_key>.sqlite`` (with SQLite's ``-wal`` / ``-shm``
companions, and ``.corrupt-<timestamp>`` copies moved aside by :class:`~dinoscope.embed.cache.EmbeddingCache`).
Only files of that name pattern are ever listed or deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CacheInfo", "cache_info", "clear", "resolve_cache_root"]

_FILE_RE = re.compile(r"^([0-9a-f]{8,64})-([0-9a-f]{8,64})\.sqlite(-wal|-shm)?(\.corrupt-[0-9T]+)?$")


def resolve_cache_root(root: str | Path | None = None) -> Path:
    """The cache root: ``root``, ``$DINOSCOPE_CACHE``, ``$XDG_CACHE_HOME/dinoscope`` or ``~/.cache/dinoscope``."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dinoscope"
    return Path(root if root is not None else os.environ.get("DINOSCOPE_CACHE") or default).expanduser()


@dataclass(frozen=True)
class CacheInfo:
    """One cache database: spec name, entries and bytes on disk, and this session's hits and misses.

    ``entries`` is -1 and ``error`` says why when the file cannot be read; hits/misses are 0 in :func:`cache_info`."""

    path: Path
    name: str
    model_key: str
    crop_key: str
    entries: int
    bytes: int
    hits: int = 0
    misses: int = 0
    error: str | None = None


def cache_info(root: str | Path | None = None) -> list[CacheInfo]:
    """Every cache database under ``root`` with its spec name, entries and size on disk.

    Example:
        >>> for info in cache_info():  # doctest: +SKIP
        ...     print(info.name, info.entries, info.bytes)
    """
    out = []
    for path in (p for p in _cache_files(resolve_cache_root(root)) if p.suffix == ".sqlite"):  # not companions
        name, entries, error = "", -1, None
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5.0)) as conn:
                spec = json.loads(dict(conn.execute("SELECT name, value FROM meta").fetchall()).get("spec", "{}"))
                name = _spec_name(spec)
                entries = int(conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        except (sqlite3.Error, ValueError, AttributeError) as exc:
            error = str(exc)
        model_key, crop_key = path.stem.split("-")
        out.append(CacheInfo(path, name, model_key, crop_key, entries, _disk_bytes(path), error=error))
    return out


def clear(root: str | Path | None = None, model_key: str | None = None) -> int:
    """Delete dinoscope's cache databases (all, or one model's) and their companions; nothing else.

    Returns the number of files removed.

    Example:
        >>> clear(model_key=mspec.key())  # doctest: +SKIP
    """
    removed = 0
    for path in _cache_files(resolve_cache_root(root)):
        m = _FILE_RE.match(path.name)
        if m is not None and (model_key is None or m.group(1) == model_key):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _cache_files(root: Path) -> list[Path]:
    files = (root / "embeddings").iterdir() if (root / "embeddings").is_dir() else []
    return sorted(p for p in files if p.is_file() and not p.is_symlink() and _FILE_RE.match(p.name))


def _spec_name(spec: dict[str, Any]) -> str:
    return str((spec.get("model") if isinstance(spec.get("model"), dict) else spec).get("name", ""))


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.is_file())
