"""What a vector means: the model spec and the crop spec, recorded with every store and cache entry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["POOLINGS", "CropSpec", "ModelSpec"]

Pooling = Literal["cls", "mean", "cls+mean", "all-mean", "avg"]
#: Pooling modes: ``cls`` (normed CLS token, the official DINOv2 kNN protocol), ``mean`` (mean of patch
#: tokens), ``cls+mean`` (concatenation, the DINOv2 linear-probe input), ``all-mean`` (mean over CLS,
#: register and patch tokens, as the original scripts did) and ``avg`` (global average pool of a CNN map).
POOLINGS: tuple[str, ...] = ("cls", "mean", "cls+mean", "all-mean", "avg")


@dataclass(frozen=True)
class ModelSpec:
    """A backbone and everything that determines its vectors except the crops.

    Attributes:
        name: Registry name or the path the user gave (``dinov2-base``, ``/models/my-dinov2``).
        backend: Implementation (``hf-dinov2``, ``hf-clip``, ``timm``, ``onnx``, ``efficientnet-lite0``).
        weights: Hub id, local path or package the weights come from.
        weights_hash: Content hash of the weight files (so retrained weights never hit stale cache entries).
        loader: How weights were loaded (``transformers``, ``dinov2-pth``, ``timm``, ``onnxruntime``, ...);
            vectors from different loaders are never mixed (they interpolate position embeddings differently).
        input_size: Square input side in pixels (a multiple of ``patch_size`` for ViTs).
        patch_size: Patch side of a ViT, or the output stride of a CNN's feature map.
        mean: Per-channel mean on the [0, 1] scale.
        std: Per-channel std on the [0, 1] scale.
        interpolation: ``bicubic`` or ``bilinear`` resize.
        pooling: One of :data:`POOLINGS`.
        embed_dim: Length of the pooled vector.
        patch_dim: Channels of ``embed_patches`` output.
    """

    name: str
    backend: str
    weights: str
    weights_hash: str
    loader: str
    input_size: int
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    pooling: str = "cls"
    embed_dim: int = 0
    patch_dim: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {self.pooling!r}")
        if self.input_size <= 0:  # ViT factories check multiples of the patch size; a CNN's stride need not divide
            raise ValueError(f"input_size must be positive; got {self.input_size}")
        try:
            json.dumps(self.extra)
        except TypeError as exc:
            raise ValueError(
                f"ModelSpec.extra must hold JSON values only (it is part of the cache key): {exc}"
            ) from exc
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})

    def key(self) -> str:
        """Hash of everything that changes the vectors (the name is left out: aliases share a key)."""
        d = self.to_dict()
        d.pop("name")
        return _hash(d)


@dataclass(frozen=True)
class CropSpec:
    """How an object becomes the model's square input.

    Attributes:
        policy: ``pad``: keep the whole object, grow the window to a square with the image around it
            and pad where it leaves the image (default); ``squash``: resize the box to the square,
            distorting its aspect; ``center``: resize the shorter side then centre-crop (the original
            scripts' behaviour; cuts the ends off long objects).
        context_frac: Extra margin around the box, as a fraction of its size on each side.
        fill: Padding outside the image: ``mean`` (the model's mean colour), ``edge`` or ``reflect``.
        min_size_px: Smallest crop window side, so tiny boxes get some context.
        denoise: A 3x3 median filter over the decoded image before cutting: removes salt-and-pepper noise,
            the augmentation that moves a copy furthest (the copy view of curation,
            :mod:`~dinoscope.embed.views`). Left out of :meth:`to_dict` when False, so keys of plain crops
            do not change.
    """

    policy: Literal["pad", "squash", "center"] = "pad"
    context_frac: float = 0.0
    fill: Literal["mean", "edge", "reflect"] = "mean"
    min_size_px: float = 8.0
    denoise: bool = False

    def __post_init__(self) -> None:
        if self.policy not in ("pad", "squash", "center"):
            raise ValueError(f"crop policy must be pad, squash or center; got {self.policy!r}")
        if not 0.0 <= self.context_frac <= 2.0:
            raise ValueError(f"context_frac must be in [0, 2]; got {self.context_frac}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``denoise`` only when set)."""
        d = asdict(self)
        if not self.denoise:
            d.pop("denoise")
        return d

    def key(self) -> str:
        """Hash of the crop settings."""
        return _hash(self.to_dict())


def _hash(d: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(d, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()
