"""Hugging Face DINOv2 backends (with or without registers), and the backend of any Hugging Face folder.

Weights come from a local ``save_pretrained`` folder, from a hub id found in the local Hugging Face cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``; the network is used only with ``allow_download``), or from an official
DINOv2 ``.pth`` checkpoint converted on load (:mod:`dinoscope.embed.backends._dinov2_pth`). Preprocessing
(mean, std, resize filter) comes from the model's saved ``preprocessor_config.json``, else from the defaults of
its family's released processor. Folder finding and loading live in :mod:`dinoscope.embed.backends._hf_loading`;
the CLIP / SigLIP / SigLIP 2 vision towers in :mod:`dinoscope.embed.backends.hf_towers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope._deps import require
from dinoscope.embed.backends._files import hash_files
from dinoscope.embed.backends._hf_loading import (
    DEFAULT_PREPROCESSING,
    check_pooling,
    load_module,
    make_spec,
    read_config,
    read_preprocessing,
    resolve_folder,
    weight_files,
    with_loader_note,
)
from dinoscope.embed.backends.hf_towers import TOWER_CLASSES, HFVisionTowerBackend, create_clip_vision
from dinoscope.embed.base import Features, TorchBackend
from dinoscope.embed.spec import ModelSpec
from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HFViTBackend",
    "create_dinov2",
    "create_from_dinov2_checkpoint",
    "create_from_folder",
]

_DINOV2_TYPES = ("dinov2", "dinov2_with_registers")


class HFViTBackend(TorchBackend):
    """A transformers ``Dinov2Model`` / ``Dinov2WithRegistersModel`` (output tokens are final-normed).

    Args:
        module: The model, in float32.
        spec: Its spec (``patch_size`` gives the grid).
        n_registers: Register tokens between the CLS and the patch tokens (0 or 4).
    """

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, *, n_registers: int = 0) -> None:
        super().__init__(module, spec)
        self.n_registers = n_registers

    def forward_features(self, x: torch.Tensor) -> Features:
        """(B, 3, S, S) normalised -> cls (B, D), patches (B, h*w, D) without registers, tokens (B, T, D)."""
        tokens = self.module(pixel_values=x).last_hidden_state
        p = self.spec.patch_size
        patches = tokens[:, 1 + self.n_registers :]
        return Features(cls=tokens[:, 0], patches=patches, tokens=tokens, grid=(x.shape[-2] // p, x.shape[-1] // p))


def create_dinov2(
    weights: str,
    *,
    pooling: str = "cls",
    input_size: int = 224,
    allow_download: bool = False,
    loader_note: str = "",
    name: str | None = None,
    **_: Any,
) -> HFViTBackend:
    """DINOv2 from a hub id (local cache; network only with ``allow_download``) or a local folder.

    Args:
        weights: Hub id (``facebook/dinov2-base``) or a ``save_pretrained`` folder.
        pooling: ``cls``, ``mean``, ``cls+mean`` (vector 2 x D) or ``all-mean``.
        input_size: Square input side, a multiple of the patch size (14); position embeddings are interpolated.
        allow_download: Let ``huggingface_hub`` fetch missing files.
        loader_note: Free text recorded in ``spec.extra``.
        name: Name recorded in the spec (default: ``weights``).

    Returns:
        A backend whose ``embed`` gives (B, D) and ``embed_patches`` (B, S/14, S/14, D).

    Raises:
        BackendError: Weights not found (one line: where it looked and the fixes), or not a DINOv2 model.

    Example:
        >>> backend = create_dinov2("facebook/dinov2-small", input_size=224)  # doctest: +SKIP
        >>> backend.embed(crops).shape  # crops: (8, 224, 224, 3) uint8  # doctest: +SKIP
        torch.Size([8, 384])
    """
    label = name or weights
    check_pooling(pooling, "dinov2", label)
    folder = resolve_folder(weights, allow_download=allow_download, label=label)
    model_type = read_config(folder, label).get("model_type")
    if model_type not in _DINOV2_TYPES:
        raise BackendError(
            f"model {label!r}: {folder} holds a {model_type!r} model, not DINOv2 ({' or '.join(_DINOV2_TYPES)}); "
            "pass the folder to create_backend to pick the backend from its config.json"
        )
    cls_name = "Dinov2WithRegistersModel" if model_type == "dinov2_with_registers" else "Dinov2Model"
    module = load_module(cls_name, folder, label)
    meta = {"weights": weights, "weights_hash": hash_files(*weight_files(folder)), "loader": "transformers"}
    spec = make_spec(module.config, label, "hf-dinov2", meta, input_size, pooling, read_preprocessing(folder, "dinov2"))
    return HFViTBackend(module, with_loader_note(spec, loader_note), n_registers=_n_registers(module))


def create_from_dinov2_checkpoint(
    path: str,
    *,
    pooling: str = "cls",
    input_size: int = 224,
    num_heads: int | None = None,
    loader_note: str = "",
    name: str | None = None,
    **_: Any,
) -> HFViTBackend:
    """DINOv2 from an official ``.pth`` backbone checkpoint (facebookresearch/dinov2), run by transformers.

    Size, depth, registers, SwiGLU and patch size are read from the weight shapes; ``{"teacher": ...}`` /
    ``{"model": ...}`` wrappers and ``backbone.`` prefixes are removed. The spec records loader ``dinov2-pth``.

    Args:
        path: The ``.pth`` file (e.g. ``dinov2_vitb14_pretrain.pth``).
        pooling, input_size, loader_note: As in :func:`create_dinov2`.
        num_heads: Attention heads (default ``embed_dim // 64``, true of every released DINOv2).
        name: Name recorded in the spec (default: the path as given).

    Raises:
        BackendError: Unreadable file, or not a DINOv2 backbone (the message names the missing keys).

    Example:
        >>> backend = create_from_dinov2_checkpoint("dinov2_vits14_pretrain.pth")  # doctest: +SKIP
        >>> backend.spec.embed_dim, backend.spec.loader  # doctest: +SKIP
        (384, 'dinov2-pth')
    """
    require("transformers", "models", "running DINOv2 checkpoints")
    from dinoscope.embed.backends._dinov2_pth import load_checkpoint

    label, file = name or path, Path(path).expanduser()
    check_pooling(pooling, "dinov2", label)
    module = load_checkpoint(file, num_heads)
    meta = {"weights": str(path), "weights_hash": hash_files(file), "loader": "dinov2-pth"}
    spec = make_spec(module.config, label, "hf-dinov2", meta, input_size, pooling, DEFAULT_PREPROCESSING["dinov2"])
    return HFViTBackend(module, with_loader_note(spec, loader_note), n_registers=_n_registers(module))


def create_from_folder(path: str, **options: Any) -> HFViTBackend | HFVisionTowerBackend:
    """Pick the backend of a Hugging Face folder from the ``model_type`` in its ``config.json``.

    ``**options`` go to :func:`create_dinov2` or :func:`create_clip_vision`; a folder without config.json or
    with another model type raises :class:`BackendError`.

    Example:
        >>> backend = create_from_folder("/models/my-dinov2", pooling="cls+mean")  # doctest: +SKIP
    """
    folder = Path(path).expanduser()
    model_type = read_config(folder, options.get("name") or path).get("model_type")
    if model_type in _DINOV2_TYPES:
        return create_dinov2(path, **options)
    if model_type in TOWER_CLASSES:
        return create_clip_vision(path, **options)
    raise BackendError(
        f"model {path!r}: model_type {model_type!r} in config.json is not supported; supported: "
        f"{', '.join((*_DINOV2_TYPES, *TOWER_CLASSES))} (or use timm:<name> / an .onnx file)"
    )


def _n_registers(module: torch.nn.Module) -> int:
    return int(getattr(module.config, "num_register_tokens", 0) or 0)
