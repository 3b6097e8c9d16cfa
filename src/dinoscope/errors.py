"""The typed errors and warnings of dinoscope.

Every error message says what is wrong, where (file and line when there is one), what was
expected, and how to fix it. The CLI prints a :class:`DinoscopeError` as one red line and
exits 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "DatasetFormatError",
    "DinoscopeError",
    "DinoscopeWarning",
    "MissingDependencyError",
    "OutputExistsError",
    "VideoError",
]


class DinoscopeError(Exception):
    """Base class of every error dinoscope raises on purpose."""


class DatasetFormatError(DinoscopeError):
    """A dataset cannot be read: unknown layout, unreadable annotation file, bad structure."""


class ConfigError(DinoscopeError):
    """A configuration value or file is invalid (all bad keys are listed at once)."""


class MissingDependencyError(DinoscopeError):
    """An optional dependency is not installed; the message names the extra to install."""


class BackendError(DinoscopeError):
    """A model backend cannot be created or run (missing weights, bad checkpoint, ...)."""


class OutputExistsError(DinoscopeError):
    """An output path exists and no flag allows dinoscope to replace it."""


class VideoError(DinoscopeError):
    """A video cannot be opened or decoded."""


class DinoscopeWarning(UserWarning):
    """Warnings emitted by dinoscope (data problems that do not stop a run)."""
