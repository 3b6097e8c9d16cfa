"""The folders of the capabilities that write into a run (probes, training, evaluation), as part of :class:`Run`.

:class:`~dinoscope.run.Run` owns every path of a run; these methods are kept in a mixin only to keep each
module short. Nothing else builds a path inside a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope.errors import DinoscopeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CURATION_FILES", "RoomsMixin", "json_default"]

#: The lists that ``select``, ``prune`` and ``split`` write at the top of their run.
CURATION_FILES = ("selected.csv", "selected.txt", "kept.csv", "dropped.csv", "dropped_summary.csv", "split.csv")


class RoomsMixin:
    """Paths, reads and writes of ``probes/``, ``checkpoints/``, ``metrics.csv`` and ``eval/`` (see :class:`Run`).

    Example:
        >>> Run.open("runs/ppe").read_probe_metrics()  # doctest: +SKIP
    """

    path: Path

    def room(self, name: str) -> Path:  # pragma: no cover - Run defines it
        raise NotImplementedError

    # --- feature probes (dinoscope probe) --------------------------------------------------------------------
    def probe_path(self, name: str) -> Path:
        """A file of the feature probes (``probes/<name>``: ``metrics.json``, ``summary.csv``,
        ``splits.parquet``, ``errors.parquet``); the folder is created on first use."""
        return self.room("probes") / name

    def read_probe_metrics(self) -> dict[str, Any] | None:
        """``probes/metrics.json`` (what ``dinoscope probe`` measured), None when the run has no probe."""
        path = self.path / "probes" / "metrics.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def write_probe_metrics(self, doc: dict[str, Any]) -> Path:
        """Write ``probes/metrics.json`` (atomically)."""
        path = self.probe_path("metrics.json")
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=json_default), encoding="utf-8")
        tmp.replace(path)
        return path

    @property
    def epochs_path(self) -> Path:
        """Per-epoch metrics of a training run (``metrics.csv``)."""
        return self.path / "metrics.csv"

    def checkpoint_path(self, name: str) -> Path:
        """``checkpoints/<name>.pt`` (the folder is created on first use)."""
        return self.room("checkpoints") / f"{name}.pt"

    def evaluation_dir(self, name: str) -> Path:
        """``eval/<name>/`` for one evaluation's files (created on first use)."""
        folder = self.room("eval") / name
        folder.mkdir(exist_ok=True)
        return folder

    # --- similarity index and search pages (dinoscope search) ----------------------------------------------------
    def index_path(self, store: str, suffix: str = ".faiss") -> Path:
        """A file of the similarity index of embedding store ``store`` (``index/<store><suffix>``: ``.faiss``
        the FAISS index, ``.rows.npy`` the store rows it holds, ``.json`` its key); the folder is created."""
        return self.room("index") / f"{store}{suffix}"

    def search_page_path(self, name: str) -> Path:
        """``searches/<name>.html``: the page of one ``dinoscope search`` (the folder is created on first use)."""
        return self.room("searches") / f"{name}.html"

    # --- adaptation (dinoscope adapt): DIR/backbone/, DIR/checkpoints/, DIR/log.csv, DIR/adapt.yaml ----------
    @property
    def backbone_dir(self) -> Path:
        """``backbone/``: the adapted backbone that ``dinoscope embed --model DIR/backbone`` loads."""
        return self.path / "backbone"

    @property
    def adapt_log_path(self) -> Path:
        """``log.csv``: one row per adaptation step (losses, lr, momentum, check figures)."""
        return self.path / "log.csv"

    @property
    def adapt_yaml_path(self) -> Path:
        return self.path / "adapt.yaml"

    def read_adapt_yaml(self) -> dict[str, Any]:
        """``adapt.yaml`` ({} when absent)."""
        import yaml

        path = self.adapt_yaml_path
        return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}

    def write_adapt_yaml(self, sections: dict[str, Any]) -> None:
        """Merge top-level sections into ``adapt.yaml`` (atomically)."""
        import yaml

        doc = {**self.read_adapt_yaml(), **sections}
        tmp = self.adapt_yaml_path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(json.loads(json.dumps(doc, default=json_default)), sort_keys=False), "utf-8")
        tmp.replace(self.adapt_yaml_path)

    def comparison_path(self, suffix: str) -> Path:
        """``compare.html`` / ``.json`` / ``.csv``: the before/after page of an adaptation and its numbers."""
        return self.path / f"compare{suffix}"

    def comparison_run_dir(self, name: str) -> Path:
        """``compare/<name>/``: a run directory of the before/after comparison (``original``, ``adapted``:
        ``dinoscope analyze`` of the evaluation set with each backbone; ``probes``: ``dinoscope probe`` of both)."""
        return self.path / "compare" / name

    # --- evaluation (dinoscope errors) -----------------------------------------------------------------------
    @property
    def metrics_path(self) -> Path:
        """``eval/metrics.json``: a detector's metrics against the run's ground truth."""
        return self.path / "eval" / "metrics.json"

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write ``eval/metrics.json`` (atomically)."""
        path = self.room("eval") / "metrics.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(metrics, indent=2, default=json_default), encoding="utf-8")
        tmp.replace(path)
        return path

    def read_metrics(self) -> dict[str, Any]:
        """``eval/metrics.json``.

        Raises:
            DinoscopeError: The run has no evaluation.
        """
        if not self.metrics_path.is_file():
            raise DinoscopeError(f"{self.path}: no eval/metrics.json; run `dinoscope errors DATASET --predictions P`")
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    def eval_table_path(self, name: str) -> Path:
        """``eval/<name>.parquet`` (e.g. ``images``: one row per image with its loss and error counts)."""
        return self.path / "eval" / f"{name}.parquet"

    def write_eval_table(self, name: str, frame: pd.DataFrame) -> Path:
        """Write ``eval/<name>.parquet``."""
        self.room("eval")
        path = self.eval_table_path(name)
        frame.to_parquet(path, index=False)
        return path

    def read_eval_table(self, name: str) -> pd.DataFrame | None:
        """``eval/<name>.parquet``, None when absent."""
        import pandas as pd

        path = self.eval_table_path(name)
        return pd.read_parquet(path) if path.is_file() else None

    # --- curation (dinoscope select / prune / split) ---------------------------------------------------------
    def curation_path(self, name: str) -> Path:
        """A curation list at the top of the run: ``selected.csv``/``.txt`` (select), ``kept.csv``,
        ``dropped.csv``, ``dropped_summary.csv`` (prune), ``split.csv`` (split)."""
        if name not in CURATION_FILES:
            raise ValueError(f"unknown curation file {name!r}; known: {', '.join(CURATION_FILES)}")
        return self.path / name

    def split_list_path(self, split: str) -> Path:
        """``splits/<split>.txt``: one image path per line (``dinoscope split``); the folder is created."""
        folder = self.path / "splits"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{split}.txt"

    @property
    def chosen_images_dir(self) -> Path:
        """``images/``: links to or copies of the images a selection chose."""
        return self.path / "images"

    @property
    def dataset_dir(self) -> Path:
        """``dataset/``: a dataset written by ``prune --export`` or ``split --export`` (never the source)."""
        return self.path / "dataset"

    def report_page_path(self, name: str) -> Path:
        """``report/<name>.html``: a stand-alone page (e.g. ``select``); the folder is created."""
        folder = self.path / "report"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}.html"


def json_default(value: Any) -> Any:
    """JSON fallback: numpy scalars and arrays as lists, anything else as its string."""
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)
