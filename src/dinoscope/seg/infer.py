"""Foreground probabilities of whole images: sliding windows with Gaussian weighting (nnU-Net's inference).

An image no larger than the training crop is padded (reflect) to the network's multiple and run once. A
larger one is covered by windows of the training crop side, half a window apart; each window's
probabilities are weighted by a Gaussian centred on it (sigma = side / 8, Isensee et al. 2021, nnU-Net),
because predictions near a window's border see less context, and the weighted sum is normalised. Windows
are batched. Images are RGB uint8, normalised on the device with the encoder's mean and std.

Flip test-time augmentation (``tta``, nnU-Net's mirroring): each batch is also run flipped left-right,
up-down and both, each output flipped back, and the four logits averaged before the sigmoid; 4x the
compute.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from dinoscope.embed.runtime import autocast_dtype

if TYPE_CHECKING:
    import torch
    from torch import nn

    from dinoscope.seg.model import ModelInfo

__all__ = ["Predictor", "window_starts"]


def window_starts(length: int, window: int) -> list[int]:
    """Start offsets of windows of ``window`` px covering ``length`` px, at most half a window apart.

    Example:
        >>> window_starts(512, 256)
        [0, 128, 256]
    """
    if length <= window:
        return [0]
    n = math.ceil((length - window) / (window / 2)) + 1
    return [round(i * (length - window) / (n - 1)) for i in range(n)]


class Predictor:
    """Foreground probabilities of images from a trained network (``eval`` mode, no gradients).

    Args:
        net: The network (one output channel of logits).
        info: Its :class:`~dinoscope.seg.model.ModelInfo` (window side, mean / std, multiple).
        device: torch device string.
        precision: Resolved precision (``fp32``, ``bf16``, ``fp16``).
        batch_size: Windows per forward pass.
        tta: Average the logits of the four flips (module docstring).

    Example:
        >>> prob = Predictor(net, info, "cpu", "fp32").probabilities(image)  # doctest: +SKIP
        >>> prob.shape == image.shape[:2]  # doctest: +SKIP
        True
    """

    def __init__(
        self, net: nn.Module, info: ModelInfo, device: str, precision: str, batch_size: int = 8, tta: bool = False
    ) -> None:
        import torch

        self.net, self.info, self.device, self.precision = net, info, torch.device(device), precision
        self.tta = tta
        self.batch_size = max(1, batch_size)
        self.mean = torch.tensor(info.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(info.std, device=self.device).view(1, 3, 1, 1) * 255.0
        side = info.input_size
        yy = np.exp(-0.5 * ((np.arange(side) - (side - 1) / 2) / (side / 8)) ** 2)
        self.gauss = torch.tensor(np.outer(yy, yy) / yy.max() ** 2, dtype=torch.float32, device=self.device)
        self.gauss.clamp_(min=1e-3)

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 on the device -> normalised float32."""
        return (batch.float() - self.mean) / self.std

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 (sides multiples of ``info.multiple``) -> (B, H, W) float32 logits."""
        import torch

        dtype = autocast_dtype(self.precision)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            x = self.normalise(batch.to(self.device))
            if not self.tta:
                return self.net(x).float()[:, 0]
            total = torch.zeros_like(x[:, 0])
            for dims in ((), (3,), (2,), (2, 3)):
                out = self.net(x.flip(dims) if dims else x).float()
                total += (out.flip(dims) if dims else out)[:, 0]
            return total / 4

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 foreground probability of an (H, W, 3) uint8 RGB image."""
        import torch

        self.net.eval()
        h, w = image.shape[:2]
        side, multiple = self.info.input_size, self.info.multiple
        ph, pw = max(h, _ceil_to(min(h, side), multiple)), max(w, _ceil_to(min(w, side), multiple))
        padded = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="reflect" if ph < 2 * h else "edge")
        tensor = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)
        if ph <= side and pw <= side:
            return torch.sigmoid(self.logits(tensor[None]))[0, :h, :w].cpu().numpy()
        win_h, win_w = min(side, ph), min(side, pw)
        boxes = [(y, x) for y in window_starts(ph, win_h) for x in window_starts(pw, win_w)]
        total = torch.zeros((ph, pw), device=self.device)
        weight = torch.zeros((ph, pw), device=self.device)
        gauss = self.gauss[:win_h, :win_w]
        for i in range(0, len(boxes), self.batch_size):
            chunk = boxes[i : i + self.batch_size]
            batch = torch.stack([tensor[:, y : y + win_h, x : x + win_w] for y, x in chunk])
            prob = torch.sigmoid(self.logits(batch))
            for (y, x), p in zip(chunk, prob, strict=True):
                total[y : y + win_h, x : x + win_w] += p * gauss
                weight[y : y + win_h, x : x + win_w] += gauss
        return (total / weight)[:h, :w].cpu().numpy()


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
