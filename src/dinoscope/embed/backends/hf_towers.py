"""CLIP, SigLIP and SigLIP 2 (NaFlex) vision towers from Hugging Face, without the text tower or projection.

Weights come from a local ``save_pretrained`` folder (a full image-text model or its vision part) or from a hub
id found in the local Hugging Face cache (see :mod:`dinoscope.embed.backends._hf_loading`); preprocessing comes
from the saved ``preprocessor_config.json``, else from the family's released processor.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dinoscope.embed.backends._files import hash_files
from dinoscope.embed.backends._hf_loading import (
    check_pooling,
    load_module,
    make_spec,
    read_config,
    read_preprocessing,
    resolve_folder,
    side,
    weight_files,
    with_loader_note,
)
from dinoscope.embed.base import Features, TorchBackend
from dinoscope.embed.spec import ModelSpec
from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch

__all__ = ["TOWER_CLASSES", "HFVisionTowerBackend", "create_clip_vision"]

_TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel", "siglip2": "Siglip2VisionModel"}
#: config.json model_type (a full image-text model or its vision part) -> transformers vision-tower class
TOWER_CLASSES = {f"{t}{s}": c for t, c in _TOWERS.items() for s in ("", "_vision_model")}


class HFVisionTowerBackend(TorchBackend):
    """A CLIP, SigLIP or SigLIP 2 (NaFlex) vision tower without projection.

    ``pooled`` is the model's ``pooler_output`` (CLIP: the CLS token after ``post_layernorm``; SigLIP: the
    attention-pooling head). Patch tokens are taken after the final layer norm. Inputs whose side differs from
    the size the position embeddings were trained for are handled with ``interpolate_pos_encoding``.

    Args:
        module: ``CLIPVisionModel``, ``SiglipVisionModel`` or ``Siglip2VisionModel`` in float32.
        spec: Its spec.
        family: ``clip`` (has a CLS token) or ``siglip`` (patch tokens only).
        native_size: Input side of the position embeddings.
    """

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, *, family: str, native_size: int) -> None:
        super().__init__(module, spec)
        self.family = family
        self.native_size = native_size
        self.naflex = type(module).__name__.startswith("Siglip2")

    def forward_features(self, x: torch.Tensor) -> Features:
        """(B, 3, S, S) normalised -> pooled (B, D), patches (B, h*w, D), tokens, cls (CLIP only)."""
        p = self.spec.patch_size
        grid = (x.shape[-2] // p, x.shape[-1] // p)
        if self.naflex:
            out = self.module(**_naflex_inputs(x, p))
        else:
            resize = tuple(x.shape[-2:]) != (self.native_size, self.native_size)
            out = self.module(pixel_values=x, interpolate_pos_encoding=resize)
        tokens, cls = out.last_hidden_state, None
        if self.family == "clip":  # CLIP normalises only the pooled CLS; apply the same norm to every token
            tokens = getattr(self.module, "vision_model", self.module).post_layernorm(tokens)  # 4.x nests it
            cls = tokens[:, 0]
        patches = tokens[:, 1:] if cls is not None else tokens
        pooled = out.pooler_output if out.pooler_output is not None else patches.mean(dim=1)
        return Features(cls=cls, patches=patches, tokens=tokens, pooled=pooled, grid=grid)


def create_clip_vision(
    weights: str,
    *,
    pooling: str = "avg",
    input_size: int | None = None,
    allow_download: bool = False,
    loader_note: str = "",
    name: str | None = None,
    **_: Any,
) -> HFVisionTowerBackend:
    """The vision tower of a CLIP, SigLIP or SigLIP 2 model from a hub id or a local folder.

    Args:
        weights: Hub id (``google/siglip-base-patch16-224``) or folder (full model or vision model alone).
        pooling: ``avg`` (the model's pooled output, default), ``mean``, ``all-mean``; CLIP also ``cls`` (same
            as ``avg``) and ``cls+mean``.
        input_size: Square input side (default: the model's native size); another multiple of the patch size
            interpolates the position embeddings.
        allow_download, loader_note, name: As in :func:`~dinoscope.embed.backends.hf.create_dinov2`.

    Returns:
        A backend whose ``embed`` gives (B, D) (D = hidden size, no text projection).

    Example:
        >>> backend = create_clip_vision("openai/clip-vit-base-patch16")  # doctest: +SKIP
        >>> backend.spec.input_size, backend.spec.embed_dim  # doctest: +SKIP
        (224, 768)
    """
    label = name or weights
    folder = resolve_folder(weights, allow_download=allow_download, label=label)
    model_type = read_config(folder, label).get("model_type")
    if model_type not in TOWER_CLASSES:
        raise BackendError(f"model {label!r}: {folder} holds a {model_type!r} model, not {', '.join(TOWER_CLASSES)}")
    cls_name = TOWER_CLASSES[model_type]
    family = "clip" if cls_name.startswith("CLIP") else "siglip"
    check_pooling(pooling, family, label)
    module = load_module(cls_name, folder, label)
    cfg = module.config
    patch = side(cfg.patch_size)
    native = math.isqrt(cfg.num_patches) * patch if cls_name.startswith("Siglip2") else side(cfg.image_size)
    meta = {"weights": weights, "weights_hash": hash_files(*weight_files(folder)), "loader": "transformers"}
    preprocessing = read_preprocessing(folder, family)
    spec = make_spec(cfg, label, "hf-clip", meta, input_size or native, pooling, preprocessing)
    return HFVisionTowerBackend(module, with_loader_note(spec, loader_note), family=family, native_size=native)


def _naflex_inputs(x: torch.Tensor, patch: int) -> dict[str, torch.Tensor]:
    """(B, 3, S, S) -> SigLIP 2 NaFlex inputs: (B, h*w, p*p*3) patches, an all-ones mask and (h, w) shapes.

    Same patch layout as transformers' ``siglip2`` image processor (``convert_image_to_patches``).
    """
    import torch

    b, c, h, w = x.shape[0], x.shape[1], x.shape[2] // patch, x.shape[3] // patch
    x = x[:, :, : h * patch, : w * patch].reshape(b, c, h, patch, w, patch)
    pixels = x.permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, patch * patch * c)
    mask = torch.ones(b, h * w, dtype=torch.long, device=x.device)
    shapes = torch.tensor([[h, w]] * b, dtype=torch.long, device=x.device)
    return {"pixel_values": pixels, "pixel_attention_mask": mask, "spatial_shapes": shapes}
