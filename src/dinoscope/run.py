"""The run directory: the contract between commands (see docs/architecture.md).

```
runs/<name>/
  run.yaml            resolved config, versions, model spec, timings (provenance)
  objects.parquet     the object table (+ objects.images.parquet)
  embeddings/<store>.npy + .json
```
A run directory is never replaced silently: an existing one needs ``resume`` or ``overwrite``.
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
from pathlib import Path
from typing import Any

import yaml

from dinoscope._version import __version__
from dinoscope.errors import OutputExistsError

__all__ = ["RunDir"]


class RunDir:
    """A run directory on disk.

    Args:
        path: The folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunDir:
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
        elif non_empty and not overwrite:
            raise OutputExistsError(
                f"{p} already holds a run; pass --resume to continue it or --overwrite to replace its results"
            )
        p.mkdir(parents=True, exist_ok=True)
        run.embeddings_dir.mkdir(exist_ok=True)
        if not run.yaml_path.is_file() or (overwrite and not resume):
            run.write_yaml({"dinoscope": _provenance()}, replace=True)
        return run

    @property
    def yaml_path(self) -> Path:
        return self.path / "run.yaml"

    @property
    def objects_path(self) -> Path:
        return self.path / "objects.parquet"

    @property
    def embeddings_dir(self) -> Path:
        return self.path / "embeddings"

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


def _versions() -> dict[str, str]:
    versions = {"dinoscope": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "timm", "numpy", "onnxruntime"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "?"))
    return versions


def _provenance() -> dict[str, Any]:
    return {
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
