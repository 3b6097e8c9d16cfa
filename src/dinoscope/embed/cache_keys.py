"""Cache keys: the identity of a crop, independent of where its file lies or what class it was given.

A key is the BLAKE2b-128 of the source's content hash, the frame and the box rounded to 0.01 px, so renamed
files and relabelled boxes still hit the :class:`~dinoscope.embed.cache.EmbeddingCache`; an unknown content
hash gives the empty key "", which is never cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["cache_key", "cache_keys"]


def cache_key(content_hash: str, frame: int, x1: float, y1: float, x2: float, y2: float) -> str:
    """The identity of a crop: source content, frame and box rounded to 0.01 px (not path, not class).

    Example:
        >>> cache_key("ab12", -1, 0, 0, 10.004, 20) == cache_key("ab12", -1, 0, 0, 10.0, 20)
        True
    """
    return str(_digests([content_hash], [frame], np.array([[x1, y1, x2, y2]], dtype=np.float64))[0])


def cache_keys(data: pd.DataFrame) -> np.ndarray:
    """(N,) cache keys of an object table's rows (columns ``content_hash frame x1 y1 x2 y2``).

    Args:
        data: ``ObjectTable.data`` or any frame with those columns (an ``ObjectTable`` is accepted too).

    Example:
        >>> keys = cache_keys(table.data)  # doctest: +SKIP
    """
    data = data if hasattr(data, "columns") else data.data  # an ObjectTable
    return _digests(
        data["content_hash"].fillna(""), data["frame"], data[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)
    )


def _digests(hashes: Sequence[str], frames: Sequence[int], xyxy: np.ndarray) -> np.ndarray:
    """(N,) hex keys, "" for an unknown (empty) content hash; boxes become integer hundredths of a pixel."""
    boxes = np.rint(xyxy * 100.0).astype(np.int64).tolist()
    frames = np.asarray(frames, dtype=np.int64).tolist()
    text = [f"{h}|{f}|{b[0]},{b[1]},{b[2]},{b[3]}" if h else "" for h, f, b in zip(hashes, frames, boxes, strict=True)]
    return np.array([hashlib.blake2b(t.encode(), digest_size=16).hexdigest() if t else "" for t in text], dtype=object)
