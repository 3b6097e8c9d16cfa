"""Tiny models, images and videos with planted answers for the patch-PCA tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from dinoscope.embed.base import Features, TorchBackend
from dinoscope.embed.spec import ModelSpec

#: The tiny DINOv2 of TECH-NOTES (hidden 32, 2 layers, patch 14).
TINY_DINOV2 = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=28, patch_size=14
)
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
#: Side of the square planted object in :func:`object_image`, as a fraction of the image side.
OBJECT_FRAC = 0.5


def randomize(model: Any, seed: int = 0) -> Any:
    """Perturb every parameter so that norms and layer scales are not the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def save_tiny_dinov2(folder: Path, registers: int = 0, seed: int = 0) -> Path:
    """A random tiny DINOv2 (optionally with registers) saved with its image processor; loads offline."""
    import transformers

    if registers:
        config = transformers.Dinov2WithRegistersConfig(**TINY_DINOV2, num_register_tokens=registers)
        model = transformers.Dinov2WithRegistersModel(config)
    else:
        model = transformers.Dinov2Model(transformers.Dinov2Config(**TINY_DINOV2))
    randomize(model, seed).save_pretrained(folder)
    transformers.BitImageProcessor(image_mean=IMAGENET[0], image_std=IMAGENET[1]).save_pretrained(folder)
    return folder


def noise_frames(n: int, height: int = 48, width: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def object_image(size: int = 56, seed: int = 0, colour: tuple[int, int, int] = (220, 40, 40)) -> np.ndarray:
    """A grey, slightly noisy image with a saturated square in the middle (the planted foreground)."""
    rng = np.random.default_rng(seed)
    image = np.clip(128 + rng.integers(-12, 13, (size, size, 3)), 0, 255).astype(np.uint8)
    lo, hi = round(size * (1 - OBJECT_FRAC) / 2), round(size * (1 + OBJECT_FRAC) / 2)
    image[lo:hi, lo:hi] = colour
    return image


class PatchColourBackend(TorchBackend):
    """Patch features = mean colour of each 14 x 14 patch and its square (6-d): a model whose patch PCA is known."""

    def __init__(self, input_size: int = 56) -> None:
        spec = ModelSpec(
            name="test-patch-colour",
            backend="test",
            weights="none",
            weights_hash="0",
            loader="test",
            input_size=input_size,
            patch_size=14,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            interpolation="bilinear",
            pooling="avg",
            embed_dim=6,
            patch_dim=6,
        )
        super().__init__(torch.nn.Identity(), spec)

    def forward_features(self, x: torch.Tensor) -> Features:
        m = torch.nn.functional.avg_pool2d(x, 14)
        return Features(fmap=torch.cat([m, m * m], dim=1))


def create_patch_colour(weights: str, input_size: int = 56, **_: object) -> PatchColourBackend:
    """Registry factory of :class:`PatchColourBackend`."""
    return PatchColourBackend(input_size)
