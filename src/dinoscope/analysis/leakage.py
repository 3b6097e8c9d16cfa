"""Cross-split leakage: duplicate groups (exact or near) whose copies sit in more than one split.

A validation or test object with a copy in train inflates every metric measured on it; the fix is to move or
drop the copy. The groups come from :func:`~dinoscope.analysis.duplicates.find_duplicates`, so leakage uses
the same data-driven near-duplicate threshold, recorded in that analysis's info.

Example:
    >>> dup = find_duplicates(vectors, graph, keys)  # doctest: +SKIP
    >>> leak = find_leakage(dup, table.data["split"].to_numpy())  # doctest: +SKIP
    >>> leak.info["pairs"]["train-val"]  # doctest: +SKIP
    {'n_groups': 12, 'n_objects': 25, 'n_train': 13, 'n_val': 12}
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.base import AnalysisResult

__all__ = ["SPLIT_ORDER", "find_leakage", "split_rank"]

logger = logging.getLogger(__name__)

#: Natural order of the usual split names; other names follow, alphabetically.
SPLIT_ORDER = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}


def split_rank(split: np.ndarray) -> np.ndarray:
    """(N,) int rank of each split name in the natural order (train 0, val 1, test 2, others after, by name).

    Example:
        >>> split_rank(np.array(["test", "train", "extra", "val"])).tolist()
        [2, 0, 3, 1]
    """
    names = sorted({str(s) for s in split}, key=lambda s: (SPLIT_ORDER.get(s, 3), s))
    rank = {s: i for i, s in enumerate(names)}
    return np.array([rank[str(s)] for s in split], dtype=np.int64)


def find_leakage(duplicates: AnalysisResult | np.ndarray, split: np.ndarray) -> AnalysisResult:
    """Flag objects whose duplicate group spans several splits and count the groups per split pair.

    Args:
        duplicates: The result of ``find_duplicates`` (its ``duplicate_group`` and ``duplicate_quality``
            columns are read) or an (N,) int array of group ids (-1 = no group).
        split: (N,) split name of every object.

    Returns:
        ``AnalysisResult("leakage")``; findings indexed by global row with ``is_leaked``, ``leakage_quality``
        (the object's ``duplicate_quality`` when leaked, 0 without one, 1 when not leaked; low = suspicious),
        ``leak_pair`` (the splits of its group in natural order joined by ``-``, e.g. ``train-val``; ``""``
        when not leaked) and ``leaked_with`` (row of a copy in another split, the earliest split first; -1).
        ``info["pairs"]`` and ``summary`` count, per split pair ``a-b``, the groups holding both splits
        (``n_groups``), their members in either split (``n_objects``) and per split (``n_<a>``, ``n_<b>``).

    Example:
        >>> res = find_leakage(np.array([0, 0, -1, 1, 1]), np.array(["train", "val", "val", "val", "val"]))
        >>> res.findings["leak_pair"].tolist(), res.info["pairs"]["train-val"]["n_groups"]
        (['train-val', 'train-val', '', '', ''], 1)
    """
    if isinstance(duplicates, AnalysisResult):
        group = duplicates.findings["duplicate_group"].to_numpy(dtype=np.int64)
        dup_quality = duplicates.findings["duplicate_quality"].to_numpy(dtype=np.float64)
    else:
        group = np.asarray(duplicates, dtype=np.int64)
        dup_quality = np.zeros(len(group))
    split = np.asarray(split).astype(str)
    if split.shape != group.shape or group.ndim != 1:
        raise ValueError(f"split has shape {split.shape}, expected {group.shape} to match the duplicate groups")
    n = len(group)
    ranks = split_rank(split)
    names = sorted(set(split.tolist()), key=lambda s: (SPLIT_ORDER.get(s, 3), s))
    members = np.flatnonzero(group >= 0)
    gid, g = np.unique(group[members], return_inverse=True)
    first = np.full((len(gid), len(names)), n, dtype=np.int64)  # lowest row of each (group, split)
    np.minimum.at(first, (g, ranks[members]), members)
    first[first == n] = -1
    present = first >= 0
    leaked_group = present.sum(axis=1) >= 2

    is_leaked = np.zeros(n, dtype=bool)
    is_leaked[members] = leaked_group[g]
    pattern = present.astype(np.int64) @ (1 << np.arange(len(names), dtype=np.int64))
    codes, inverse = np.unique(pattern, return_inverse=True)
    labels = np.array(["-".join(s for i, s in enumerate(names) if c >> i & 1) for c in codes], dtype=object)
    pair_names = labels[inverse] if len(codes) else np.zeros(0, dtype=object)
    leak_pair = np.full(n, "", dtype=object)
    leak_pair[members[leaked_group[g]]] = pair_names[g[leaked_group[g]]]
    leaked_with = np.full(n, -1, dtype=np.int64)
    lm = members[leaked_group[g]]
    other = first[g[leaked_group[g]]].copy()
    other[np.arange(len(lm)), ranks[lm]] = -1
    pick = np.argmax(other >= 0, axis=1)
    leaked_with[lm] = other[np.arange(len(lm)), pick]
    quality = np.where(is_leaked, np.clip(dup_quality, 0.0, 1.0), 1.0)

    findings = pd.DataFrame(
        {"is_leaked": is_leaked, "leakage_quality": quality, "leak_pair": leak_pair, "leaked_with": leaked_with}
    )
    pairs = _pair_counts(present, g, ranks[members], names)
    info: dict[str, Any] = {
        "splits": names,
        "n_leaked": int(is_leaked.sum()),
        "n_leaked_groups": int(leaked_group.sum()),
        "pairs": pairs,
        "source": "duplicate groups (exact and near) of find_duplicates",
    }
    logger.info("leakage: %d objects in %d groups span splits", info["n_leaked"], info["n_leaked_groups"])
    return AnalysisResult("leakage", findings, info=info, summary=pairs)


def _pair_counts(
    present: np.ndarray, g: np.ndarray, member_rank: np.ndarray, names: list[str]
) -> dict[str, dict[str, int]]:
    """{"a-b": counts} for every split pair that shares at least one group."""
    out: dict[str, dict[str, int]] = {}
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            both = present[:, a] & present[:, b]
            if not both.any():
                continue
            in_pair = both[g]
            n_a = int((in_pair & (member_rank == a)).sum())
            n_b = int((in_pair & (member_rank == b)).sum())
            out[f"{names[a]}-{names[b]}"] = {
                "n_groups": int(both.sum()),
                "n_objects": n_a + n_b,
                f"n_{names[a]}": n_a,
                f"n_{names[b]}": n_b,
            }
    return out
