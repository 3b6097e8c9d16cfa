"""Class-name lists: a text file with one name per line, a YAML ``names:`` entry, or a model's metadata.

Detectors and prediction files name their classes by id; these readers turn what sits beside them
(``classes.txt``, ``coco_classes.txt``, ``data.yaml``, ...) into a tuple indexed by class id.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from dinoscope.errors import ConfigError

__all__ = ["NAMES_FILES", "parse_names", "read_class_names"]

#: File names beside a model or predictions that hold class names (one per line), in the order they are tried.
NAMES_FILES = ("classes.txt", "coco_classes.txt", "names.txt", "labels.txt")


def parse_names(value: Any) -> tuple[str, ...] | None:
    """Class names from a list, an ``{id: name}`` dict or its string form (ONNX metadata); None if unusable.

    Example:
        >>> parse_names("{0: 'person', 1: 'bicycle'}")
        ('person', 'bicycle')
    """
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return None
    if isinstance(value, dict):
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            return None
        if ids != list(range(len(ids))):
            return None
        return tuple(str(value[k] if k in value else value[str(k)]) for k in ids)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names from a text file (one per line) or a YAML file with ``names:`` (list or ``{id: name}``).

    Raises:
        ConfigError: The file is missing or holds no names.

    Example:
        >>> read_class_names("coco_classes.txt")[:2]  # doctest: +SKIP
        ('person', 'bicycle')
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: class-names file not found; expected a text file with one name per line")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        doc = yaml.safe_load(text) or {}
        names = parse_names(doc.get("names") if isinstance(doc, dict) else doc)
        if not names:
            raise ConfigError(f"{path}: no usable 'names:' (a list or an {{id: name}} mapping from 0)")
        return names
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise ConfigError(f"{path}: holds no class name; expected one name per line")
    return names
