"""Validated configuration: one path for the Python API, config files and the CLI.

Every command has a pydantic model with ``extra="forbid"``; :func:`build_config` turns keyword arguments
(from the CLI or a YAML file) into it and reports every bad key or value at once as a :class:`ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from dinoscope.errors import ConfigError

__all__ = ["CheckConfig", "StrictModel", "build_config", "load_config_file"]

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class CheckConfig(StrictModel):
    """Settings of ``dinoscope check``.

    Attributes:
        dataset: Dataset folder or annotation file.
        format: Reader to use, or ``auto``.
        task: YOLO label type (``detect``, ``segment``, ``obb``) or ``auto`` from the label lines.
        out: Folder to write ``checks.parquet``/``checks.csv``/``checks.json`` into.
        overwrite: Replace those files if they exist.
        strict: Exit non-zero when any finding is an error.
    """

    dataset: Path
    format: Literal["auto", "yolo", "coco", "voc", "mmpretrain", "class-folders", "masks", "images"] = "auto"
    task: Literal["auto", "detect", "segment", "obb"] = "auto"
    out: Path | None = None
    overwrite: bool = False
    strict: bool = False


def build_config(model: type[M], **values: Any) -> M:
    """Validate ``values`` into ``model``, raising one :class:`ConfigError` that lists every problem.

    Example:
        >>> build_config(CheckConfig, dataset="data", strict=True).strict
        True
    """
    try:
        return model(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(config)"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{key}'")
            else:
                problems.append(f"'{key}': {err['msg']} (got {err.get('input')!r})")
        allowed = ", ".join(model.model_fields)
        raise ConfigError(f"invalid {model.__name__}: {'; '.join(problems)}. Allowed keys: {allowed}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict (validated later by :func:`build_config`)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return doc
