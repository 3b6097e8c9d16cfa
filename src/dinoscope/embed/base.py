"""The backend protocol and the shared machinery of PyTorch backends (normalisation, pooling).

A backend takes a batch of preprocessed crops as uint8 ``(B, S, S, 3)`` — uint8 travels from the decode
workers four times lighter than float — and returns pooled vectors ``(B, D)`` or a patch grid
``(B, h, w, C)``. Normalisation with the spec's mean/std happens on the model's device. Device, precision,
memory format and the forward context come from the public runtime (:mod:`dinoscope.embed.runtime`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from dinoscope.embed.runtime import (
    Precision,
    ResolvedPrecision,
    forward_context,
    prepare_module,
    resolve_device,
    resolve_precision,
    to_model_input,
)
from dinoscope.embed.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = ["Backend", "Features", "TorchBackend", "pool"]


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a model."""

    spec: ModelSpec

    def embed(self, images: Any) -> Any:
        """(B, S, S, 3) uint8 crops -> (B, D) float32 pooled vectors (not yet L2-normalised)."""
        ...

    def embed_patches(self, images: Any) -> Any:
        """(B, S, S, 3) uint8 crops -> (B, h, w, C) float32 patch features."""
        ...


@dataclass
class Features:
    """What a forward pass yields; backends fill what their architecture has.

    Attributes:
        cls: (B, D) class token after the final norm (ViTs).
        patches: (B, N, D) patch tokens after the final norm, row-major over the (h, w) grid (ViTs).
        tokens: (B, T, D) every output token, CLS and registers included (for ``all-mean`` pooling).
        fmap: (B, C, h, w) last feature map (CNNs).
        pooled: (B, D) a model-defined pooled output (e.g. CLIP/SigLIP projection-free pooler).
    """

    cls: torch.Tensor | None = None
    patches: torch.Tensor | None = None
    tokens: torch.Tensor | None = None
    fmap: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    grid: tuple[int, int] | None = None


class TorchBackend:
    """Base of PyTorch backends: subclasses implement :meth:`forward_features` on normalised input.

    Args:
        module: The network (in eval mode after construction).
        spec: Its model spec; ``spec.pooling`` selects the pooled vector.
    """

    def __init__(self, module: torch.nn.Module, spec: ModelSpec) -> None:
        import torch

        self.module = module.eval()
        self.spec = spec
        self.device = torch.device("cpu")
        self.precision: ResolvedPrecision = "fp32"
        self._mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0
        self._channels_last = False

    # --- set-up ---------------------------------------------------------------------------------------
    def to(
        self,
        device: str | None = None,
        precision: Precision = "fp32",
        channels_last: bool = True,
        compile: bool = False,
    ) -> TorchBackend:
        """Move to a device and choose the numeric precision.

        ``auto`` follows :func:`~dinoscope.embed.runtime.resolve_precision`: bf16 (or fp16) on CUDA, bf16 on
        CPUs with native bf16, fp32 on other CPUs.
        """
        import torch

        self.device = torch.device(resolve_device(device))
        self.precision = resolve_precision(precision, self.device.type)
        self.module, self._channels_last = prepare_module(
            self.module, self.device, channels_last=channels_last, compile=compile
        )
        self._mean, self._std = self._mean.to(self.device), self._std.to(self.device)
        return self

    # --- forward --------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> Features:
        """Run the network on a normalised float batch (B, 3, S, S)."""
        raise NotImplementedError

    def normalize(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 normalised on the backend's device."""
        return to_model_input(images, self.device, self._mean, self._std, self._channels_last)

    def _features(self, images: torch.Tensor | np.ndarray) -> Features:
        x = self.normalize(images)
        with forward_context(self.device.type, self.precision):
            return self.forward_features(x)

    def embed(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 -> (B, D) float32 pooled vectors, on the backend's device."""
        return pool(self._features(images), self.spec.pooling).float()

    def embed_patches(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 -> (B, h, w, C) float32 patch features."""
        f = self._features(images)
        if f.fmap is not None:
            return f.fmap.permute(0, 2, 3, 1).float()
        if f.patches is None or f.grid is None:
            from dinoscope.errors import BackendError

            raise BackendError(f"{self.spec.name} exposes no patch features; choose a ViT or CNN backbone")
        b, _, c = f.patches.shape
        return f.patches.reshape(b, *f.grid, c).float()


def pool(f: Features, pooling: str) -> torch.Tensor:
    """Pooled vector of a forward pass (see :data:`dinoscope.embed.spec.POOLINGS`)."""
    import torch

    if pooling == "cls" and f.cls is not None:
        return f.cls
    if pooling == "mean" and f.patches is not None:
        return f.patches.mean(dim=1)
    if pooling == "cls+mean" and f.cls is not None and f.patches is not None:
        return torch.cat([f.cls, f.patches.mean(dim=1)], dim=1)
    if pooling == "all-mean" and f.tokens is not None:
        return f.tokens.mean(dim=1)
    if pooling == "avg":
        if f.fmap is not None:
            return f.fmap.mean(dim=(2, 3))
        if f.pooled is not None:
            return f.pooled
    raise ValueError(f"pooling {pooling!r} is not available for this model")
