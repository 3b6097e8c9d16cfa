"""The model of a patch PCA: a backend from the embedding registry, placed by the public runtime.

``patches fit`` and ``patches render`` run the same backend: the registry builds it with the input size fixed
(:func:`dinoscope.embed.registry.create_backend`), and :func:`dinoscope.embed.runtime.place_backend` puts it on
its device and precision (``auto``: the rule of :func:`dinoscope.embed.runtime.resolve_precision`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dinoscope._deps import require
from dinoscope.embed.base import Backend
from dinoscope.embed.runtime import place_backend
from dinoscope.errors import ConfigError

__all__ = ["create_patch_backend"]


def create_patch_backend(
    model: str,
    image_size: int | None,
    device: str = "auto",
    precision: str = "auto",
    weights: str | Path | None = None,
    allow_download: bool = False,
    *,
    compile: bool = False,
) -> Backend:
    """A backend from the embedding registry with its input size fixed, on its device.

    Args:
        model: Registry name, ``timm:<name>``, ``onnx:<file>``, a local folder or a DINOv2 ``.pth``.
        image_size: Square model input side (None: the model's).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``; state ``fp32`` to compare with fp32 references.
        weights: Local weights file (``timm:<name>`` models only).
        allow_download: Let the backend download missing weights.
        compile: ``torch.compile`` the model.

    Raises:
        MissingDependencyError: torch is not installed.
        ConfigError: ``weights`` given for a model other than ``timm:<name>``.
        BackendError: The model cannot be loaded offline (one line with the fixes).

    Example:
        >>> backend = create_patch_backend("dinov2-small", 224, device="cpu", precision="fp32")  # doctest: +SKIP
        >>> backend.embed_patches(crops).shape  # doctest: +SKIP
        (B, 16, 16, 384)
    """
    require("torch", "torch", "patch-feature PCA")
    from dinoscope.embed.registry import create_backend

    options: dict[str, Any] = {"input_size": image_size, "allow_download": allow_download}
    if weights is not None:
        if not model.startswith("timm:"):
            raise ConfigError(
                f"--weights applies to timm:<name> models; for {model!r} pass the weights file or folder as --model"
            )
        options["weights"] = str(weights)
    return place_backend(create_backend(model, **options), device, precision, compile=compile)
