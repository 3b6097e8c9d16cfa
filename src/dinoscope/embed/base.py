"""The backend protocol and the shared machinery of PyTorch backends (normalisation, precision, pooling).

A backend takes a batch of preprocessed crops as uint8 ``(B, S, S, 3)`` — uint8 travels from the decode
workers four times lighter than float — and returns pooled vectors ``(B, D)`` or a patch grid
``(B, h, w, C)``. Normalisation with the spec's mean/std happens on the model's device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from dinoscope.embed.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = ["Backend", "Features", "Precision", "TorchBackend", "cpu_has_native_bf16", "resolve_device"]

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]


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


def resolve_device(device: str | None = None) -> str:
    """``cuda`` when available, else ``mps``, else ``cpu``; an explicit choice is checked."""
    import torch

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from dinoscope.errors import BackendError

        raise BackendError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return device


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
        self.precision: Precision = "fp32"
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
        """Move to a device and choose the numeric precision (``auto``: bf16/fp16 on GPUs, fp32 on CPU)."""
        import torch

        self.device = torch.device(resolve_device(device))
        self.precision = _resolve_precision(precision, self.device.type)
        self.module.to(self.device)
        self._mean, self._std = self._mean.to(self.device), self._std.to(self.device)
        self._channels_last = channels_last and self.device.type != "mps"
        if self._channels_last:
            self.module.to(memory_format=torch.channels_last)
        if compile:
            self.module = torch.compile(self.module)
        return self

    # --- forward --------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> Features:
        """Run the network on a normalised float batch (B, 3, S, S)."""
        raise NotImplementedError

    def normalize(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 normalised on the backend's device."""
        import torch

        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x.contiguous()

    def _features(self, images: torch.Tensor | np.ndarray) -> Features:
        import torch

        x = self.normalize(images)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
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


def _resolve_precision(precision: Precision, device_type: str) -> Precision:
    import torch

    if precision == "auto":
        if device_type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device_type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device_type == "cpu":
        logger.warning("fp16 is slow or unsupported on CPUs; using bf16")
        return "bf16"
    return precision


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX): there autocast bf16 is about twice as
    fast as fp32 with a cosine agreement above 0.9999 (benchmarks/embed.py). Without it (e.g. AVX2-only
    CPUs) bf16 is emulated and several times slower, so ``auto`` stays on fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
