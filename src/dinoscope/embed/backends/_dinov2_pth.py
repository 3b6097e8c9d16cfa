"""Official DINOv2 ``.pth`` checkpoints -> Hugging Face ``Dinov2Model`` / ``Dinov2WithRegistersModel`` weights.

The official checkpoints hold the teacher backbone of ``DinoVisionTransformer`` (facebookresearch/dinov2,
``dinov2/models/vision_transformer.py`` and ``dinov2/layers/{attention,block,mlp,swiglu_ffn,layer_scale}.py``).
The key mapping follows transformers' ``models/dinov2/convert_dinov2_to_hf.py`` (``create_rename_keys`` and
``read_in_q_k_v``: the fused ``attn.qkv`` rows are query, key, value in that order) and, for the module names
of transformers 5 (``attention.q_proj``, ``mlp.gate_proj``/``up_proj``), its ``conversion_mapping.py``.
Both the transformers 4 and 5 layouts are produced, whichever the model at hand has.
"""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch

__all__ = ["Dinov2Arch", "build_hf_config", "convert_to_hf", "extract_backbone", "infer_arch", "load_checkpoint"]

_WRAPPERS = ("teacher", "model", "state_dict", "module")
_PREFIXES = ("module.", "_orig_mod.", "teacher.", "backbone.")
_TOP_LEVEL = ("cls_token", "pos_embed", "register_tokens", "mask_token", "patch_embed.", "blocks.", "norm.")
_REQUIRED = (
    "cls_token",
    "pos_embed",
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "blocks.0.norm1.weight",
    "norm.weight",
    "norm.bias",
)
_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.(.+)$")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")

# official block module -> transformers 4 module (convert_dinov2_to_hf.py); the fused qkv is split separately
_BLOCK_RENAMES = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.proj": "attention.output.dense",
    "ls1.gamma": "layer_scale1.lambda1",
    "ls2.gamma": "layer_scale2.lambda1",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "mlp.w12": "mlp.weights_in",
    "mlp.w3": "mlp.weights_out",
}
# transformers 4 -> transformers 5 names (transformers' conversion_mapping.py, "Dinov2Model")
_V5_RENAMES = {
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
    "mlp.weights_out": "mlp.down_proj",
}


@dataclass(frozen=True)
class Dinov2Arch:
    """Architecture of a DINOv2 backbone, read from the shapes of its weights.

    Attributes:
        embed_dim: Token width (384 ViT-S, 768 ViT-B, 1024 ViT-L, 1536 ViT-g).
        depth: Number of transformer blocks.
        n_heads: Attention heads (``embed_dim // 64`` for the released models).
        patch_size: Patch side in pixels (14).
        image_size: Side the position embeddings were trained for (518 = 37 x 14).
        n_registers: Register tokens (0, or 4 for the ``_reg`` models).
        swiglu: Whether the MLP is SwiGLU (ViT-g) rather than GELU.
        mlp_ratio: MLP width over ``embed_dim`` before the SwiGLU two-thirds rule.
    """

    embed_dim: int
    depth: int
    n_heads: int
    patch_size: int
    image_size: int
    n_registers: int
    swiglu: bool
    mlp_ratio: int


def load_checkpoint(file: Path, n_heads: int | None = None) -> torch.nn.Module:
    """An official DINOv2 ``.pth`` file as a float32 transformers model (strict load, nothing left random).

    Args:
        file: The checkpoint.
        n_heads: Attention heads; default ``embed_dim // 64`` (true of every released DINOv2).

    Raises:
        BackendError: Unreadable file, not a DINOv2 backbone, or weights that do not fit the inferred shapes.
    """
    import torch
    import transformers

    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise BackendError(f"{file}: cannot read it as a PyTorch checkpoint: {_first_line(exc)}") from exc
    state = extract_backbone(obj, str(file))
    arch = infer_arch(state, str(file), n_heads)
    cls = transformers.Dinov2WithRegistersModel if arch.n_registers else transformers.Dinov2Model
    with torch.device("meta"):  # skip the random init of up to 1.1 B parameters that are overwritten next
        module = cls(build_hf_config(arch))
    try:
        module.load_state_dict(convert_to_hf(state, set(module.state_dict())), strict=True, assign=True)
    except RuntimeError as exc:
        raise BackendError(f"{file}: weights do not fit the inferred {arch}: {_first_line(exc)}") from exc
    return module.eval()


def extract_backbone(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The backbone state dict inside a loaded checkpoint, with official key names.

    Unwraps ``{"teacher": ...}`` (``teacher_checkpoint.pth``) / ``{"model": ...}`` (training checkpoints, whose
    ``student.*`` weights are dropped) / ``{"state_dict": ...}``, strips ``module.``, ``_orig_mod.``,
    ``teacher.`` and ``backbone.`` prefixes, drops DINO/iBOT heads and flattens chunked blocks
    (``blocks.1.10.norm1`` -> ``blocks.10.norm1``).

    Args:
        obj: What ``torch.load`` returned.
        source: The file, for error messages.

    Raises:
        BackendError: Not a DINOv2 backbone checkpoint (the message names the missing keys).
    """
    import torch

    while isinstance(obj, dict) and not any(k in obj for k in _REQUIRED):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise BackendError(f"{source}: expected a DINOv2 state dict, found a {type(obj).__name__}")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor) or key.startswith("student."):
            continue
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        if key.startswith(_TOP_LEVEL):
            chunked = _CHUNKED.match(key)
            state[f"blocks.{chunked[1]}.{chunked[2]}" if chunked else key] = value
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        found = ", ".join(list(obj)[:5]) or "nothing"
        raise BackendError(
            f"{source} is not an official DINOv2 backbone checkpoint: missing {', '.join(missing)} "
            f"(found {found}, ...); expected the teacher backbone of facebookresearch/dinov2 "
            "(e.g. dinov2_vitb14_pretrain.pth), or pass a Hugging Face folder"
        )
    return state


def infer_arch(state: dict[str, torch.Tensor], source: str, n_heads: int | None = None) -> Dinov2Arch:
    """Read the architecture from the weight shapes of :func:`extract_backbone` output.

    The number of heads is not in the shapes: it is ``embed_dim // 64`` unless given.

    Example:
        >>> arch = infer_arch(state, "dinov2_vitb14_pretrain.pth")  # doctest: +SKIP
        >>> arch.embed_dim, arch.depth, arch.image_size  # doctest: +SKIP
        (768, 12, 518)
    """
    dim = int(state["cls_token"].shape[-1])
    depth = 1 + max(int(m[1]) for k in state if (m := _BLOCK.match(k)))
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    side = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    if side * side != state["pos_embed"].shape[1] - 1:
        raise BackendError(f"{source}: pos_embed {tuple(state['pos_embed'].shape)} is not 1 + a square grid")
    n_heads = n_heads or dim // 64
    if not n_heads or dim % n_heads:
        raise BackendError(f"{source}: cannot split embed dim {dim} into 64-wide heads; pass num_heads")
    swiglu = "blocks.0.mlp.w12.weight" in state
    if swiglu:
        hidden = int(state["blocks.0.mlp.w12.weight"].shape[0]) // 2
        ratio = next((r for r in range(1, 9) if (int(dim * r * 2 / 3) + 7) // 8 * 8 == hidden), 0)
    else:
        width = int(state["blocks.0.mlp.fc1.weight"].shape[0])
        ratio = width // dim if width % dim == 0 else 0
    if not ratio:
        raise BackendError(f"{source}: MLP width of block 0 does not match a DINOv2 MLP ratio")
    n_registers = int(state["register_tokens"].shape[1]) if "register_tokens" in state else 0
    return Dinov2Arch(dim, depth, n_heads, patch, side * patch, n_registers, swiglu, ratio)


def build_hf_config(arch: Dinov2Arch) -> Any:
    """``Dinov2Config`` or ``Dinov2WithRegistersConfig`` (patch size set explicitly: the latter defaults to 16)."""
    import transformers

    common = dict(
        hidden_size=arch.embed_dim,
        num_hidden_layers=arch.depth,
        num_attention_heads=arch.n_heads,
        mlp_ratio=arch.mlp_ratio,
        image_size=arch.image_size,
        patch_size=arch.patch_size,
        use_swiglu_ffn=arch.swiglu,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
    )
    if arch.n_registers:
        return transformers.Dinov2WithRegistersConfig(num_register_tokens=arch.n_registers, **common)
    return transformers.Dinov2Config(**common)


def convert_to_hf(state: dict[str, torch.Tensor], target_keys: set[str]) -> dict[str, torch.Tensor]:
    """Rename (and split) official keys into the names of the model whose state-dict keys are ``target_keys``.

    Missing layer scales (checkpoints trained without them) become ones and a missing mask token zeros, so a
    strict load still succeeds; both are exact no-ops at inference.

    Returns:
        Float32 tensors keyed by Hugging Face names.
    """
    import torch

    out: dict[str, torch.Tensor] = {
        "embeddings.cls_token": state["cls_token"],
        "embeddings.position_embeddings": state["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "layernorm.weight": state["norm.weight"],
        "layernorm.bias": state["norm.bias"],
    }
    dim = int(state["cls_token"].shape[-1])
    out["embeddings.mask_token"] = state.get("mask_token", torch.zeros(1, dim)).reshape(1, dim)
    if "register_tokens" in state:
        out["embeddings.register_tokens"] = state["register_tokens"]
    for key, value in state.items():
        m = _BLOCK.match(key)
        if m:
            out.update(_convert_block_param(int(m[1]), m[2], value))
    for i in range(1 + max(int(m[1]) for k in state if (m := _BLOCK.match(k)))):
        for scale in ("layer_scale1.lambda1", "layer_scale2.lambda1"):
            out.setdefault(f"encoder.layer.{i}.{scale}", torch.ones(dim))
    if any(".attention.q_proj." in k for k in target_keys):
        out = _to_v5(out)
    return {k: v.float() for k, v in out.items()}


def _convert_block_param(i: int, rest: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
    layer = f"encoder.layer.{i}"
    module, _, param = rest.rpartition(".")
    if module == "attn.qkv":
        q, k, v = value.chunk(3, dim=0)
        names = ("query", "key", "value")
        return {f"{layer}.attention.attention.{n}.{param}": t for n, t in zip(names, (q, k, v), strict=True)}
    if rest in ("ls1.gamma", "ls2.gamma"):
        return {f"{layer}.{_BLOCK_RENAMES[rest]}": value}
    if module in _BLOCK_RENAMES:
        return {f"{layer}.{_BLOCK_RENAMES[module]}.{param}": value}
    raise BackendError(f"unexpected key blocks.{i}.{rest} in a DINOv2 checkpoint")


def _to_v5(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if ".mlp.weights_in." in key:  # fused SwiGLU input: first half gates (silu), second half is "up"
            gate, up = value.chunk(2, dim=0)
            out[key.replace("weights_in", "gate_proj")] = gate
            out[key.replace("weights_in", "up_proj")] = up
            continue
        for old, new in _V5_RENAMES.items():
            key = key.replace(old, new)
        out[key] = value
    return out


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
