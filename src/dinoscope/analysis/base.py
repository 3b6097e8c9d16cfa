"""What every analysis shares: the neighbour graph type and the result convention.

Every analysis returns an :class:`AnalysisResult`: a findings table with one row per object (``object_id``),
a boolean ``is_<issue>`` flag and an ``<issue>_quality`` score in [0, 1] where LOW means suspicious (the
cleanlab convention), plus an ``info`` dict recording every threshold and parameter it used — thresholds
are derived from the data and written to ``run.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["AnalysisResult", "NeighborGraph"]


@dataclass(frozen=True)
class NeighborGraph:
    """k nearest neighbours of every row of a vector matrix (self excluded), by cosine similarity.

    Attributes:
        indices: (N, k) int64 row numbers of the neighbours in the GLOBAL row numbering of the run's
            vectors, most similar first; -1 pads rows that have fewer than k candidates (small classes).
        sims: (N, k) float32 cosine similarities, descending per row; -inf where ``indices`` is -1.
        rows: (N,) int64 global row numbers of the graph's own rows (``arange`` for the all-object graph,
            the class's rows for a within-class graph).
        method: ``exact`` or the ANN index used (``hnsw``), recorded in run.yaml.
        info: Parameters (k, index settings, build/search seconds, recall estimate when measured).
    """

    indices: np.ndarray
    sims: np.ndarray
    rows: np.ndarray
    method: str = "exact"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.indices.shape != self.sims.shape or self.indices.ndim != 2:
            raise ValueError(f"indices {self.indices.shape} and sims {self.sims.shape} must be equal (N, k) shapes")
        if len(self.rows) != len(self.indices):
            raise ValueError(f"rows has {len(self.rows)} entries for {len(self.indices)} graph rows")

    @property
    def k(self) -> int:
        """Neighbours per row."""
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class AnalysisResult:
    """Findings of one analysis.

    Attributes:
        name: Analysis name; the findings are written to ``findings/<name>.parquet``.
        findings: One row per object analysed, indexed by the object's row in the analysed vectors (the
            caller adds ``object_id``): ``is_<issue>``, ``<issue>_quality`` and any detail columns
            (suggested class, group id, reason...).
        info: Thresholds and parameters used (JSON-ready), written to run.yaml.
        summary: Headline numbers ({key: {metric: value}}): per class for most analyses, ``"all"`` for
            dataset-wide ones (duplicates) and per split pair for leakage.
    """

    name: str
    findings: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
