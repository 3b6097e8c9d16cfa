"""The run directory, owned by one class: :class:`Run` knows the path of every artefact, reads and writes it.

```
runs/<name>/
  run.yaml                    provenance: layout version, resolved configs, versions, model spec, timings
  objects.parquet             the object table (+ objects.images.parquet)
  checks/                     dataset checks (checks.json, .parquet, .csv)
  embeddings/<store>.npy      vectors (+ .json spec, .done flags)
  findings/<analysis>.parquet one table per analysis, keyed by object_id
  map.parquet                 2-D coordinates
  summary.json                headline numbers and recommendations
  detections.parquet          every detection of a video run (+ detections/ per-video logs)
  eval/metrics.json           a detector's metrics (``dinoscope errors``; + eval/<table>.parquet)
  report/                     the offline HTML report
  probes/                     feature probes: metrics.json, summary.csv, splits.parquet, errors.parquet
  index/<store>.faiss         the similarity index of a store (+ .rows.npy, .json key); searches/: search pages
  checkpoints/ predictions/ selections/ reviews/   later capabilities
  backbone/ log.csv adapt.yaml compare.html compare/   an adaptation (`dinoscope adapt`)
  metrics.csv                 per-epoch training metrics (a training run: ``seg train``)
```
No other module builds a path inside a run. A run directory is never replaced silently: an existing one
needs ``resume`` or ``overwrite``. ``run.yaml`` records the layout version; a run written by an incompatible
version is refused in one line that says how to re-create it.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dinoscope._version import __version__
from dinoscope.errors import DinoscopeError, OutputExistsError
from dinoscope.run_rooms import RoomsMixin, json_default

if TYPE_CHECKING:
    import pandas as pd

    from dinoscope.table import ObjectTable

__all__ = ["LAYOUT_VERSION", "Run"]

#: Version of the run directory layout written by this dinoscope. Version 1 (no ``layout`` key, dinoscope
#: 0.x before the Run class) has the same files and opens as is.
LAYOUT_VERSION = 2
_READABLE_LAYOUTS = (1, 2)
#: Folders kept for the capabilities that write into a run (probes, training, predictions, curation).
_ROOMS = ("probes", "checkpoints", "predictions", "eval", "selections", "reviews", "index", "searches")


class Run(RoomsMixin):
    """A run directory on disk: every artefact's path, read and write.

    Args:
        path: The folder.

    Example:
        >>> run = Run.create("runs/ppe")  # doctest: +SKIP
        >>> run.write_objects(table)  # doctest: +SKIP
        >>> Run.open("runs/ppe").read_objects().class_names  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, resume: bool = False, overwrite: bool = False) -> Run:
        """Open a new run, or an existing one when ``resume``/``overwrite`` allows it.

        Raises:
            OutputExistsError: The folder exists with content and neither flag is set, or ``resume`` is asked
                for a folder that is not a dinoscope run.
        """
        run = cls(path)
        p = run.path
        if p.exists() and not p.is_dir():
            raise OutputExistsError(f"{p} exists and is not a folder; choose another --out")
        non_empty = p.is_dir() and any(p.iterdir())
        if resume:
            if not run.yaml_path.is_file():
                raise OutputExistsError(f"{p}: nothing to resume (no run.yaml); drop --resume to start a new run")
            run.check_layout()
        elif non_empty and not overwrite:
            raise OutputExistsError(
                f"{p} already holds a run; pass --resume to continue it or --overwrite to replace its results"
            )
        p.mkdir(parents=True, exist_ok=True)
        run.embeddings_dir.mkdir(exist_ok=True)
        if not run.yaml_path.is_file() or (overwrite and not resume):
            run.write_yaml({"dinoscope": _provenance()}, replace=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """An existing run (any readable layout version).

        Raises:
            DinoscopeError: Not a run directory, or written by an incompatible dinoscope version.
        """
        run = cls(path)
        if not run.yaml_path.is_file() and not run.objects_path.is_file():
            raise DinoscopeError(f"{run.path}: not a dinoscope run (no run.yaml); create one with `dinoscope analyze`")
        run.check_layout()
        return run

    @property
    def layout(self) -> int:
        """The layout version recorded in ``run.yaml`` (1 for runs written before it was recorded)."""
        return int((self.read_yaml().get("dinoscope") or {}).get("layout", 1))

    def check_layout(self) -> None:
        """Raise one clear line when the run's layout cannot be read by this version."""
        layout = self.layout
        if layout not in _READABLE_LAYOUTS:
            newer = "a newer" if layout > LAYOUT_VERSION else "an older"
            raise DinoscopeError(
                f"{self.path}: run layout {layout} was written by {newer} dinoscope (this one reads "
                f"{', '.join(map(str, _READABLE_LAYOUTS))}); re-create it with `dinoscope analyze DATASET --out "
                f"{self.path} --overwrite`"
            )

    # --- paths -----------------------------------------------------------------------------------------------
    @property
    def yaml_path(self) -> Path:
        return self.path / "run.yaml"

    @property
    def objects_path(self) -> Path:
        return self.path / "objects.parquet"

    @property
    def checks_dir(self) -> Path:
        return self.path / "checks"

    @property
    def embeddings_dir(self) -> Path:
        return self.path / "embeddings"

    @property
    def findings_dir(self) -> Path:
        return self.path / "findings"

    @property
    def map_path(self) -> Path:
        return self.path / "map.parquet"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def detections_path(self) -> Path:
        return self.path / "detections.parquet"

    @property
    def detection_logs_dir(self) -> Path:
        """Per-video detection logs, so a resumed video run does not decode finished videos again."""
        return self.path / "detections"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    def room(self, name: str) -> Path:
        """The folder of a capability (``probes``, ``checkpoints``, ``predictions``, ``eval``, ``selections``,
        ``reviews``), created on first use."""
        if name not in _ROOMS:
            raise ValueError(f"unknown run folder {name!r}; known: {', '.join(_ROOMS)}")
        folder = self.path / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def findings_path(self, analysis: str) -> Path:
        return self.findings_dir / f"{analysis}.parquet"

    def store_path(self, name: str) -> Path:
        """The ``.npy`` file of embedding store ``name`` (its ``.json`` and ``.done`` lie beside it)."""
        return self.embeddings_dir / f"{name}.npy"

    def store_shards_dir(self, name: str) -> Path:
        """The folder of the finished shards of store ``name`` (``dinoscope embed --engine ray``)."""
        return self.embeddings_dir / f"{name}.shards"

    def store_names(self) -> list[str]:
        """Names of the run's embedding stores, sorted."""
        if not self.embeddings_dir.is_dir():
            return []
        return sorted(p.stem for p in self.embeddings_dir.glob("*.json") if p.with_suffix(".npy").is_file())

    def store_name(self, name: str | None = None) -> str:
        """``name`` checked to exist, or the run's only store when None.

        Raises:
            DinoscopeError: No such store, no store at all, or several stores and none named.
        """
        names = self.store_names()
        if name is not None:
            if name not in names:
                raise DinoscopeError(f"{self.embeddings_dir}: no store {name!r}; stores: {', '.join(names) or 'none'}")
            return name
        if not names:
            raise DinoscopeError(f"{self.path}: no vectors yet; run `dinoscope embed DATASET --out {self.path}` first")
        if len(names) > 1:
            raise DinoscopeError(
                f"{self.path}: {len(names)} embedding stores ({', '.join(names)}); pick one with --store"
            )
        return names[0]

    # --- run.yaml --------------------------------------------------------------------------------------------
    def read_yaml(self) -> dict[str, Any]:
        """The run's provenance record ({} when absent)."""
        if not self.yaml_path.is_file():
            return {}
        return yaml.safe_load(self.yaml_path.read_text(encoding="utf-8")) or {}

    def write_yaml(self, sections: dict[str, Any], replace: bool = False) -> None:
        """Merge top-level sections into ``run.yaml`` (atomically: temp file + rename)."""
        doc = {} if replace else self.read_yaml()
        doc.update(sections)
        tmp = self.yaml_path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(_plain(doc), sort_keys=False, allow_unicode=True), encoding="utf-8")
        tmp.replace(self.yaml_path)

    def record_versions(self) -> None:
        """Add the versions of the libraries loaded so far (torch, transformers...) to the provenance."""
        doc = self.read_yaml().get("dinoscope", {})
        doc["versions"] = {**doc.get("versions", {}), **_versions()}
        self.write_yaml({"dinoscope": doc})

    # --- tables ----------------------------------------------------------------------------------------------
    def has_objects(self) -> bool:
        return self.objects_path.is_file()

    def write_objects(self, table: ObjectTable) -> None:
        """Write the object table (``objects.parquet`` and ``objects.images.parquet``)."""
        table.to_parquet(self.objects_path)

    def read_objects(self) -> ObjectTable:
        """The run's object table.

        Raises:
            DinoscopeError: The run has none yet.
        """
        from dinoscope.table import ObjectTable

        if not self.objects_path.is_file():
            raise DinoscopeError(
                f"{self.path}: no objects.parquet; run `dinoscope embed DATASET --out {self.path}` first"
            )
        return ObjectTable.read_parquet(self.objects_path)

    def write_findings(self, analysis: str, frame: pd.DataFrame) -> Path:
        """Write one analysis' findings (a column ``object_id`` first)."""
        self.findings_dir.mkdir(exist_ok=True)
        path = self.findings_path(analysis)
        frame.to_parquet(path, index=False)
        return path

    def findings_names(self) -> list[str]:
        """Analyses with a findings file, sorted."""
        if not self.findings_dir.is_dir():
            return []
        return sorted(p.stem for p in self.findings_dir.glob("*.parquet"))

    def read_findings(self, analysis: str) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.findings_path(analysis))

    def write_map(self, frame: pd.DataFrame) -> None:
        frame.to_parquet(self.map_path, index=False)

    def read_map(self) -> pd.DataFrame | None:
        """The 2-D map coordinates, None when the run has none."""
        import pandas as pd

        return pd.read_parquet(self.map_path) if self.map_path.is_file() else None

    def write_detections(self, frame: pd.DataFrame) -> None:
        frame.to_parquet(self.detections_path, index=False)

    def read_detections(self) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.detections_path)

    # --- summary ---------------------------------------------------------------------------------------------
    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` (atomically)."""
        tmp = self.summary_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(summary, indent=2, default=json_default), encoding="utf-8")
        tmp.replace(self.summary_path)

    def read_summary(self) -> dict[str, Any]:
        """``summary.json``.

        Raises:
            DinoscopeError: The run is not analysed yet.
        """
        if not self.summary_path.is_file():
            raise DinoscopeError(f"{self.path}: no summary.json; run `dinoscope analyze {self.path}` first")
        return json.loads(self.summary_path.read_text(encoding="utf-8"))


def _versions() -> dict[str, str]:
    versions = {"dinoscope": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "timm", "numpy", "onnxruntime"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "?"))
    return versions


def _provenance() -> dict[str, Any]:
    return {
        "layout": LAYOUT_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "command": " ".join(sys.argv),
        "host": platform.node(),
    }


def _plain(value: Any) -> Any:
    """YAML-safe copy: paths and tuples become strings and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (Path, str)):  # str subclasses (torch's version) are not YAML-safe
        return str(value)
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # numpy arrays
        return _plain(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value
