"""A frozen DINOv2 (or any ViT backend of the embed registry) with a light trainable decoder: ``--model dinov2:<m>``.

``<m>`` is anything :func:`dinoscope.embed.create_backend` loads offline: a registry name (``dinov2-small``,
``dinov2-base-reg``, ...), a local Hugging Face folder or an official ``.pth``. The backbone's patch tokens
(one per 14 x 14 px patch; inputs are multiples of the patch size, the predictor pads) are projected by a
1x1 + 3x3 conv head, upsampled bilinearly to the input size and joined with a two-conv full-resolution stem
on the image itself, because a 14 px patch is wider than a crack; a 1x1 conv gives the logits. Only the head
and the stem train (the linear-probe-style segmentation of the DINOv2 paper, with a stem for thin
structures); the backbone stays in eval mode and is never saved in checkpoints, which record its weights'
hash instead and refuse other weights when loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["BACKBONE_PREFIX", "create_vit_segmenter"]

#: State-dict prefix of the frozen backbone (left out of checkpoints).
BACKBONE_PREFIX = "backbone."
_HEAD_CHANNELS = 64
_STEM_CHANNELS = 16


def create_vit_segmenter(model: str, allow_download: bool = False, weights: Any = None) -> tuple[nn.Module, Any]:
    """The frozen-backbone segmenter and the backend's spec (patch size, mean / std, weights hash).

    Raises:
        BackendError: The model cannot be loaded offline or exposes no patch tokens.

    Example:
        >>> net, spec = create_vit_segmenter("dinov2-small")  # doctest: +SKIP
        >>> spec.patch_size  # doctest: +SKIP
        14
    """
    from dinoscope.embed.registry import create_backend

    options: dict[str, Any] = {"allow_download": allow_download}
    if weights is not None:
        options["weights"] = weights
    backend = create_backend(model, **options)
    if not hasattr(backend, "module") or not backend.spec.patch_size:
        raise BackendError(f"--model dinov2:{model}: not a PyTorch ViT backend with patch tokens")
    return _segmenter_class()(backend), backend.spec


def _segmenter_class() -> type:
    import torch
    from torch import nn
    from torch.nn.functional import interpolate

    def conv(c_in: int, c_out: int, k: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())

    class FrozenViTSegmenter(nn.Module):
        """Frozen ViT patch tokens -> conv head -> upsampled, joined with a full-resolution stem -> logits."""

        def __init__(self, backend: Any) -> None:
            super().__init__()
            self._backend = backend
            self.backbone = backend.module.eval()
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            dim = backend.spec.patch_dim or backend.spec.embed_dim
            self.head = nn.Sequential(conv(dim, _HEAD_CHANNELS * 2, 1), conv(_HEAD_CHANNELS * 2, _HEAD_CHANNELS, 3))
            self.stem = nn.Sequential(conv(3, _STEM_CHANNELS, 3), conv(_STEM_CHANNELS, _STEM_CHANNELS, 3))
            self.out = nn.Conv2d(_HEAD_CHANNELS + _STEM_CHANNELS, 1, 1)

        def train(self, mode: bool = True) -> FrozenViTSegmenter:
            super().train(mode)
            self.backbone.eval()  # frozen: no dropout, no statistics updates
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                features = self._backend.forward_features(x)
            if features.patches is None or features.grid is None:
                raise BackendError(f"{self._backend.spec.name}: no patch tokens for the segmentation decoder")
            b, _, d = features.patches.shape
            fmap = features.patches.transpose(1, 2).reshape(b, d, *features.grid).float()
            up = interpolate(self.head(fmap), size=x.shape[-2:], mode="bilinear", align_corners=False)
            return self.out(torch.cat([up, self.stem(x)], dim=1))

    return FrozenViTSegmenter
