"""Lazy import of optional dependencies with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from dinoscope.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str, purpose: str, alternative: str | None = None) -> ModuleType:
    """Import an optional dependency or raise a :class:`MissingDependencyError` saying how to get it.

    Args:
        module: Importable module name, e.g. ``"av"``.
        extra: The dinoscope extra that installs it, e.g. ``"video"``.
        purpose: What it is needed for, e.g. ``"decoding videos"``.
        alternative: An optional way to do without it.

    Example:
        >>> av = require("av", "video", "decoding videos")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f'{module!r} is needed for {purpose} but is not installed: pip install "dinoscope[{extra}]"'
        if alternative:
            hint += f" (or {alternative})"
        raise MissingDependencyError(hint) from exc
