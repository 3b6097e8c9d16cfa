"""Backbones exported by ``dinoscope adapt`` (``DIR/backbone/``), loaded through the registry like any model.

The folder holds ``dinoscope-backbone.json`` (how to load it, the original model, the adaptation's provenance)
and the weights: a Hugging Face DINOv2 folder (``config.json`` + ``model.safetensors``), or ``backbone.pth`` for
EfficientNet-Lite0 and timm models, read by those backends' own loaders. The spec's ``weights_hash`` is the hash
of the adapted weight files, so content caches never mix adapted and original vectors; ``name`` is the folder
and ``extra["adapted_from"]`` records the original weights' hash.

Example:
    >>> backend = create_backend("runs/pcb-adapt/backbone")  # doctest: +SKIP
    >>> backend.spec.extra["adapted_from"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from dinoscope.embed.base import TorchBackend
from dinoscope.errors import BackendError

__all__ = ["MANIFEST", "create_adapted", "is_adapted_folder"]

#: The manifest file of an exported backbone.
MANIFEST = "dinoscope-backbone.json"


def is_adapted_folder(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``dinoscope adapt``."""
    return (path / MANIFEST).is_file()


def create_adapted(folder: str, **options: Any) -> TorchBackend:
    """The backend of an adapted backbone folder (options as for the original model: ``input_size``, ``pooling``).

    Raises:
        BackendError: An unreadable manifest or an unknown kind.
    """
    path = Path(folder).expanduser()
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path / MANIFEST}: cannot read the adapted backbone's manifest ({exc})") from exc
    options = {"input_size": manifest.get("input_size"), **{k: v for k, v in options.items() if v is not None}}
    options.pop("name", None)
    options.pop("weights", None)
    kind, backend_name = manifest.get("kind"), manifest.get("base_backend")
    if kind == "hf-vit":
        from dinoscope.embed.backends.hf import create_dinov2

        backend: Any = create_dinov2(str(path), name=folder, **options)
    elif backend_name == "efficientnet-lite0":
        from dinoscope.embed.backends.efficientnet import create_efficientnet_lite0

        backend = create_efficientnet_lite0(str(path / manifest["weights"]), **options)
    elif backend_name == "timm":
        from dinoscope.embed.backends.timm_backend import create_timm

        backend = create_timm(manifest["timm_name"], weights=str(path / manifest["weights"]), **options)
    else:
        raise BackendError(f"{path / MANIFEST}: unknown adapted backbone kind {kind!r} ({backend_name!r})")
    extra = {
        **backend.spec.extra,
        "adapted_from": manifest.get("base_weights_hash"),
        "adapted_base": manifest.get("base"),
    }
    backend.spec = dataclasses.replace(backend.spec, name=folder, extra=extra)
    return backend
