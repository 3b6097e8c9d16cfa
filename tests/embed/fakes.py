"""A tiny deterministic CNN backend for engine tests (no weights to load)."""

from __future__ import annotations

import torch

from dinoscope.embed.base import Features, TorchBackend
from dinoscope.embed.spec import ModelSpec


class TinyCNN(TorchBackend):
    """Conv(3->8, stride 2) + ReLU: 8-d average-pooled vectors of 32x32 crops."""

    def __init__(self, interrupt_after: int | None = None) -> None:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU())
        spec = ModelSpec(
            name="tiny-cnn",
            backend="test",
            weights="seed0",
            weights_hash="0",
            loader="test",
            input_size=32,
            patch_size=2,
            mean=(0.5, 0.5, 0.5),
            std=(0.25, 0.25, 0.25),
            interpolation="bilinear",
            pooling="avg",
            embed_dim=8,
            patch_dim=8,
        )
        super().__init__(net, spec)
        self.calls = 0
        self.interrupt_after = interrupt_after

    def forward_features(self, x: torch.Tensor) -> Features:
        self.calls += 1
        if self.interrupt_after is not None and self.calls > self.interrupt_after:
            raise KeyboardInterrupt
        return Features(fmap=self.module(x))


def create_tiny(weights: str, **options: object) -> TinyCNN:
    """Registry factory for :class:`TinyCNN` (``register_model("tiny-cnn", "tests.embed.fakes:create_tiny", ...)``)."""
    return TinyCNN()
