"""Validated configuration: one path for the Python API, config files and the CLI.

Every command has a pydantic model with ``extra="forbid"``, composed from the option groups of
:mod:`dinoscope.options` in its :mod:`dinoscope.workflows` module; :func:`build_config` turns keyword arguments
(from the CLI or a YAML file) into it and reports every bad key or value at once as a :class:`ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from dinoscope.errors import ConfigError

__all__ = ["StrictModel", "build_config", "load_config_file", "settings_with_file"]

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def build_config(schema: type[M], /, **values: Any) -> M:
    """Validate ``values`` into the ``schema`` model, raising one :class:`ConfigError` that lists every problem.

    Example:
        >>> class Settings(StrictModel):
        ...     k: int = 15
        >>> build_config(Settings, k=5).k
        5
    """
    try:
        return schema(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(config)"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{key}'")
            elif err["type"] == "missing":
                problems.append(f"'{key}' is required (--{key.replace('_', '-')}, or the key in a --config file)")
            else:
                problems.append(f"'{key}': {err['msg']} (got {err.get('input')!r})")
        allowed = ", ".join(schema.model_fields)
        raise ConfigError(f"invalid {schema.__name__}: {'; '.join(problems)}. Allowed keys: {allowed}") from None


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


def settings_with_file(config: str | Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The settings of a command: those of the YAML file ``config``, overridden by ``given`` (flags win).

    Example:
        >>> settings_with_file(None, {"k": 5})
        {'k': 5}
    """
    settings = load_config_file(config) if config is not None else {}
    settings.update(given)
    return settings
