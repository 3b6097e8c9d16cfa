"""Any timm model as a backend, with weights from a local file or the local caches only (never the network).

Preprocessing (input size, mean/std, interpolation) comes from the model's own pretrained config through
``timm.data.resolve_data_config`` (Wightman, "PyTorch Image Models", https://github.com/huggingface/pytorch-image-models).
Token models (ViT, DeiT, EVA, DINOv2 ...) yield CLS, patch tokens and their grid; CNNs (and Swin) yield the
last feature map.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from dinoscope._deps import require
from dinoscope.embed.backends._files import hash_files
from dinoscope.embed.base import Features, TorchBackend
from dinoscope.embed.spec import ModelSpec
from dinoscope.errors import BackendError

if TYPE_CHECKING:
    from types import ModuleType

    import torch

__all__ = ["WEIGHT_SUFFIXES", "TimmBackend", "create_timm"]

logger = logging.getLogger(__name__)

#: Weight files accepted as ``weights=`` (``.npz``: the original JAX/Flax ViT checkpoints timm converts).
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".npz")
#: File names timm looks for in a Hugging Face Hub repository, in its order of preference.
_HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin", "open_clip_model.safetensors")
_TOKEN_POOLINGS = ("cls", "mean", "cls+mean", "all-mean", "avg")


class TimmBackend(TorchBackend):
    """A timm model: token models fill CLS/patches/tokens/grid, others fill the last feature map.

    Args:
        module: The timm model.
        spec: Its model spec.
        is_token_model: Whether ``forward_features`` returns (B, T, D) tokens (ViT family).
    """

    def __init__(self, module: torch.nn.Module, spec: ModelSpec, is_token_model: bool) -> None:
        super().__init__(module, spec)
        self.is_token_model = is_token_model

    def forward_features(self, x: torch.Tensor) -> Features:
        """(B, 3, S, S) normalised float -> tokens (B, T, D) with CLS and patches, or fmap (B, C, h, w)."""
        out = self.module.forward_features(x)
        if isinstance(out, (list, tuple)):
            out = out[-1]
        if out.ndim == 3:
            return self._token_features(out, (x.shape[-2], x.shape[-1]))
        if out.ndim == 4:
            channels = self.spec.patch_dim
            nhwc = out.shape[1] != channels and out.shape[-1] == channels  # Swin and friends
            return Features(fmap=out.permute(0, 3, 1, 2) if nhwc else out)
        return Features(pooled=out.flatten(1))

    def _token_features(self, tokens: torch.Tensor, image_hw: tuple[int, int]) -> Features:
        n_prefix = int(getattr(self.module, "num_prefix_tokens", 0))
        patches = tokens[:, n_prefix:]
        grid = _grid(self.module, image_hw, patches.shape[1])
        has_cls = getattr(self.module, "cls_token", None) is not None
        pooled = self.module.forward_head(tokens, pre_logits=True) if self.spec.pooling == "avg" else None
        return Features(cls=tokens[:, 0] if has_cls else None, patches=patches, tokens=tokens, grid=grid, pooled=pooled)


def create_timm(
    name: str,
    *,
    weights: str | None = None,
    pooling: str | None = None,
    input_size: int | None = None,
    allow_download: bool = False,
    pretrained: bool = True,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    **_: Any,
) -> TimmBackend:
    """A timm model with local weights and the preprocessing of its pretrained config.

    Weights come from ``weights`` (or ``pretrained_cfg_overlay=dict(file=...)``), else from the local Hugging
    Face cache or torch hub cache. Only ``allow_download=True`` lets timm download.

    Args:
        name: timm model name, optionally with a pretrained tag (``vit_small_patch14_dinov2.lvd142m``).
        weights: A local ``.safetensors``/``.pth``/``.pt``/``.bin``/``.npz`` file (timm or original format).
        pooling: ``cls``, ``mean``, ``cls+mean``, ``all-mean`` or ``avg`` (the model's own head pooling) for
            token models; ``avg`` for CNNs. Default: ``cls`` for models with a class token, else ``avg``.
        input_size: Square input side; a different size than the config's turns on ``dynamic_img_size``.
        allow_download: Let timm fetch missing weights from the network.
        pretrained: ``False`` builds a randomly initialised model (for tests and smoke runs).
        pretrained_cfg_overlay: timm's overrides of the pretrained config (``file``, ``mean``, ``std`` ...).
        **_: Options of other backends, ignored.

    Returns:
        A backend on the CPU: ``embed`` gives (B, D), ``embed_patches`` (B, h, w, C).

    Raises:
        MissingDependencyError: timm is not installed.
        BackendError: Unknown name, weights not available offline, bad weights file or option (one line).

    Example:
        >>> backend = create_timm("vit_small_patch14_dinov2.lvd142m", weights="dinov2_vits14.pth")  # doctest: +SKIP
        >>> backend.spec.input_size, backend.spec.embed_dim  # doctest: +SKIP
        (518, 384)
    """
    timm = require("timm", "models", "timm models", "pip install timm")
    overlay = dict(pretrained_cfg_overlay or {})
    file = overlay.pop("file", None)
    weights = weights or file
    cfg = _pretrained_cfg(timm, name, allow_download)
    local_dir = name.startswith("local-dir:")  # timm reads config and weights from that folder
    path = _locate_weights(name, cfg, weights, allow_download) if (pretrained and not local_dir) or weights else None
    kwargs: dict[str, Any] = {}
    if path is not None:
        kwargs = _load_kwargs(timm, cfg, path, overlay)
    elif pretrained:  # a local-dir: model, or allow_download: timm fetches and caches the weights
        kwargs = {"pretrained": True, "pretrained_cfg_overlay": overlay or None}
    model = _create_model(timm, name, kwargs, input_size, cfg)
    getattr(model, "pretrained_cfg", {}).pop("state_dict", None)  # timm keeps the config: free the loaded copy
    if path is None and pretrained:
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        path = next((folder / f for f in _HF_FILES if (folder / f).is_file()), None) if local_dir else _find_cached(cfg)
    if path is not None:
        source = (str(path), hash_files(path))
    elif pretrained:  # downloaded to a cache we cannot see: the pretrained tag names the weights
        tag = getattr(model, "pretrained_cfg", {}).get("hf_hub_id") or name
        source = (tag, f"timm:{tag}")
    else:
        source = ("random-init", "random-init")
    return TimmBackend(model, _spec(timm, name, model, source, pooling, input_size), _is_token_model(model))


def _pretrained_cfg(timm: ModuleType, name: str, allow_download: bool) -> Any:
    """The pretrained config of a registered name (``None`` for an architecture without one)."""
    if name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        if not allow_download and not name.startswith("local-dir:"):
            raise BackendError(
                f"timm model {name!r} is read from the Hugging Face Hub, which needs the network; "
                "pass allow_download=True (--allow-download) or a registered name with --weights FILE"
            )
        return None
    arch, _ = timm.models.split_model_name_tag(name)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise BackendError(f"unknown timm model {name!r}{hint} (see timm.list_models())")
    return timm.models.get_pretrained_cfg(name)


def _locate_weights(name: str, cfg: Any, weights: str | None, allow_download: bool) -> Path | None:
    """The local weight file: the one given, else one in the local caches; None only if downloads are allowed."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise BackendError(f"timm model {name!r}: weights file {weights} does not exist")
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise BackendError(f"{path}: expected one of {', '.join(WEIGHT_SUFFIXES)} weights for timm model {name!r}")
        return path
    cached = _find_cached(cfg)
    if cached is not None or allow_download:
        return cached
    where = (cfg.hf_hub_id or cfg.url) if cfg is not None else None
    if where is None:
        raise BackendError(f"timm model {name!r} has no pretrained weights; pass --weights FILE (a local file)")
    raise BackendError(
        f"timm model {name!r}: weights are not in the local cache (they would be downloaded from {where}); "
        "pass --weights FILE, or --allow-download to fetch them once"
    )


def _find_cached(cfg: Any) -> Path | None:
    """The weight file in the local Hugging Face cache, else in the torch hub cache (no network)."""
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        import torch

        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(cfg.url).path).name
        if path.is_file():
            return path
    return None


def _load_kwargs(timm: ModuleType, cfg: Any, path: Path, overlay: dict[str, Any]) -> dict[str, Any]:
    """``create_model`` arguments that load ``path`` through timm (checkpoint filters included), strictly."""
    if path.suffix.lower() == ".npz":  # original JAX checkpoints: the model's own converter
        return {"pretrained": True, "pretrained_cfg_overlay": {**overlay, "file": str(path), "custom_load": True}}
    try:
        state_dict = timm.models.load_state_dict(str(path))
    except Exception as exc:  # torch/safetensors raise many types for bad files
        raise BackendError(f"{path}: cannot read the weights ({type(exc).__name__}: {exc})".splitlines()[0]) from exc
    classifier = cfg.classifier if cfg is not None else None
    head = classifier if isinstance(classifier, str) else (classifier or ("",))[0]
    # a head in the file decides num_classes (fine-tuned checkpoints); no head: build the model without one
    num_classes = int(state_dict[f"{head}.weight"].shape[0]) if f"{head}.weight" in state_dict else 0
    return {
        "pretrained": True,
        "num_classes": num_classes,
        "pretrained_cfg_overlay": {**overlay, "state_dict": state_dict, "num_classes": num_classes, "source": ""},
    }


def _create_model(
    timm: ModuleType, name: str, kwargs: dict[str, Any], input_size: int | None, cfg: Any
) -> torch.nn.Module:
    default_size = cfg.input_size[-1] if cfg is not None and cfg.input_size else None
    try:
        if input_size is not None and input_size != default_size:
            try:
                return timm.create_model(name, dynamic_img_size=True, **kwargs).eval()
            except TypeError as exc:  # not a ViT-like model: CNNs take any input size
                if "dynamic_img_size" not in str(exc):
                    raise
        return timm.create_model(name, **kwargs).eval()
    except BackendError:
        raise
    except (RuntimeError, ValueError, KeyError, TypeError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        reason = reason if len(reason) <= 240 else reason[:240] + "..."
        raise BackendError(
            f"timm model {name!r}: cannot create it with these weights ({reason}); check that --weights "
            "belongs to this architecture"
        ) from exc


def _is_token_model(model: torch.nn.Module) -> bool:
    return hasattr(model, "num_prefix_tokens") and hasattr(model, "patch_embed")


def _grid(model: torch.nn.Module, image_hw: tuple[int, int], n_patches: int) -> tuple[int, int] | None:
    embed = getattr(model, "patch_embed", None)
    if embed is None:
        return None
    if hasattr(embed, "dynamic_feat_size"):
        grid = tuple(embed.dynamic_feat_size(image_hw))
    else:
        grid = tuple(getattr(embed, "grid_size", (0, 0)))
    return (int(grid[0]), int(grid[1])) if grid[0] * grid[1] == n_patches else None


def _spec(
    timm: ModuleType,
    name: str,
    model: torch.nn.Module,
    source: tuple[str, str],
    pooling: str | None,
    input_size: int | None,
) -> ModelSpec:
    """The spec: preprocessing from timm's data config, dimensions and pooling checked against the model."""
    config = timm.data.resolve_data_config({}, model=model)
    size = input_size or int(config["input_size"][-1])
    token = _is_token_model(model)
    has_cls = getattr(model, "cls_token", None) is not None
    pooling = pooling or ("cls" if token and has_cls else "avg")
    allowed = tuple(p for p in _TOKEN_POOLINGS if has_cls or "cls" not in p) if token else ("avg",)
    if pooling not in allowed:
        raise BackendError(f"timm model {name!r}: pooling must be one of {', '.join(allowed)}; got {pooling!r}")
    n_features = int(model.num_features)
    if token:
        patch = int(model.patch_embed.patch_size[0])
        if size % patch:
            raise BackendError(f"timm model {name!r}: input_size {size} is not a multiple of the patch size {patch}")
        pooled_dim = int(getattr(model, "head_hidden_size", n_features))
        embed_dim = {"cls+mean": 2 * n_features, "avg": pooled_dim}.get(pooling, n_features)
    else:
        info = getattr(model, "feature_info", None)
        stride = int(info[-1].get("reduction", 0)) if isinstance(info, list) and info else 0
        patch = stride if stride and size % stride == 0 else 0  # 0: the map's stride does not divide the input
        embed_dim = n_features
    interpolation = config.get("interpolation", "bicubic")
    return ModelSpec(
        name=f"timm:{name}",
        backend="timm",
        weights=source[0],
        weights_hash=source[1],
        loader="timm",
        input_size=size,
        patch_size=patch,
        mean=_rgb(config["mean"]),
        std=_rgb(config["std"]),
        interpolation=interpolation if interpolation in ("bicubic", "bilinear") else "bilinear",
        pooling=pooling,
        embed_dim=embed_dim,
        patch_dim=n_features,
        extra={"crop_pct": float(config.get("crop_pct", 1.0))},
    )


def _rgb(values: Any) -> tuple[float, float, float]:
    v = [float(x) for x in values]
    return (v[0], v[0], v[0]) if len(v) == 1 else (v[0], v[1], v[2])
