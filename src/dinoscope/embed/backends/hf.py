"""Hugging Face ViT backends: DINOv2 (with or without registers) and CLIP / SigLIP / SigLIP 2 vision towers.

Weights come from a local ``save_pretrained`` folder, from a hub id found in the local Hugging Face cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``; the network is used only with ``allow_download``), or from an official
DINOv2 ``.pth`` checkpoint converted on load (:mod:`dinoscope.embed.backends._dinov2_pth`). Preprocessing
(mean, std, resize filter) comes from the model's saved ``preprocessor_config.json``, else from the defaults of
its family's released processor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope._deps import require
from dinoscope.embed.backends._files import hash_files
from dinoscope.embed.base import Features, TorchBackend
from dinoscope.embed.spec import ModelSpec
from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HFViTBackend",
    "HFVisionTowerBackend",
    "create_clip_vision",
    "create_dinov2",
    "create_from_dinov2_checkpoint",
    "create_from_folder",
]

logger = logging.getLogger(__name__)

_DINOV2_TYPES = ("dinov2", "dinov2_with_registers")
_TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel", "siglip2": "Siglip2VisionModel"}
#: config.json model_type (a full image-text model or its vision part) -> transformers vision-tower class
_TOWER_CLASSES = {f"{t}{s}": c for t, c in _TOWERS.items() for s in ("", "_vision_model")}
Preprocessing = tuple[tuple[float, float, float], tuple[float, float, float], str]
#: (mean, std, resize) of each family's released image processor, used when a folder has none saved:
#: DINOv2 ``BitImageProcessor`` (ImageNet statistics), CLIP (OpenAI statistics), SigLIP (0.5); all bicubic.
_DEFAULT_PREPROCESSING: dict[str, Preprocessing] = {
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bicubic"),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), "bicubic"),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic"),
}
_POOLINGS = {
    "dinov2": ("cls", "mean", "cls+mean", "all-mean"),
    "clip": ("avg", "cls", "mean", "cls+mean", "all-mean"),
    "siglip": ("avg", "mean", "all-mean"),
}
_PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
#: What a download fetches (configs and weights, not tokenizers or TF/Flax weights).
_FILES = ["config.json", "preprocessor_config.json", "*.safetensors", "*.safetensors.index.json"]
_BIN_FILES = ["config.json", "preprocessor_config.json", "pytorch_model*.bin", "pytorch_model.bin.index.json"]
_FIXES = (
    "fixes: pass a local folder with --model /path/to/folder, copy a Hugging Face cache from a connected machine "
    "(hf download {repo}) and set HF_HOME, pass --allow-download, or use the offline model --model efficientnet-lite0"
)
#: Content hashes of weight files keyed by (resolved path, size, mtime) of each file: computed once per process.


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
    _check_pooling(pooling, "dinov2", label)
    folder = _resolve_folder(weights, allow_download=allow_download, label=label)
    model_type = _read_config(folder, label).get("model_type")
    if model_type not in _DINOV2_TYPES:
        raise BackendError(
            f"model {label!r}: {folder} holds a {model_type!r} model, not DINOv2 ({' or '.join(_DINOV2_TYPES)}); "
            "pass the folder to create_backend to pick the backend from its config.json"
        )
    cls_name = "Dinov2WithRegistersModel" if model_type == "dinov2_with_registers" else "Dinov2Model"
    module = _load_module(cls_name, folder, label)
    meta = {"weights": weights, "weights_hash": hash_files(*_weight_files(folder)), "loader": "transformers"}
    spec = _make_spec(
        module.config, label, "hf-dinov2", meta, input_size, pooling, _read_preprocessing(folder, "dinov2")
    )
    return HFViTBackend(module, _note(spec, loader_note), n_registers=_n_registers(module))


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
    _check_pooling(pooling, "dinov2", label)
    module = load_checkpoint(file, num_heads)
    meta = {"weights": str(path), "weights_hash": hash_files(file), "loader": "dinov2-pth"}
    spec = _make_spec(module.config, label, "hf-dinov2", meta, input_size, pooling, _DEFAULT_PREPROCESSING["dinov2"])
    return HFViTBackend(module, _note(spec, loader_note), n_registers=_n_registers(module))


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
        allow_download, loader_note, name: As in :func:`create_dinov2`.

    Returns:
        A backend whose ``embed`` gives (B, D) (D = hidden size, no text projection).

    Example:
        >>> backend = create_clip_vision("openai/clip-vit-base-patch16")  # doctest: +SKIP
        >>> backend.spec.input_size, backend.spec.embed_dim  # doctest: +SKIP
        (224, 768)
    """
    label = name or weights
    folder = _resolve_folder(weights, allow_download=allow_download, label=label)
    model_type = _read_config(folder, label).get("model_type")
    if model_type not in _TOWER_CLASSES:
        raise BackendError(f"model {label!r}: {folder} holds a {model_type!r} model, not {', '.join(_TOWER_CLASSES)}")
    cls_name = _TOWER_CLASSES[model_type]
    family = "clip" if cls_name.startswith("CLIP") else "siglip"
    _check_pooling(pooling, family, label)
    module = _load_module(cls_name, folder, label)
    cfg = module.config
    patch = _side(cfg.patch_size)
    native = math.isqrt(cfg.num_patches) * patch if cls_name.startswith("Siglip2") else _side(cfg.image_size)
    meta = {"weights": weights, "weights_hash": hash_files(*_weight_files(folder)), "loader": "transformers"}
    preprocessing = _read_preprocessing(folder, family)
    spec = _make_spec(cfg, label, "hf-clip", meta, input_size or native, pooling, preprocessing)
    return HFVisionTowerBackend(module, _note(spec, loader_note), family=family, native_size=native)


def create_from_folder(path: str, **options: Any) -> HFViTBackend | HFVisionTowerBackend:
    """Pick the backend of a Hugging Face folder from the ``model_type`` in its ``config.json``.

    ``**options`` go to :func:`create_dinov2` or :func:`create_clip_vision`; a folder without config.json or
    with another model type raises :class:`BackendError`.

    Example:
        >>> backend = create_from_folder("/models/my-dinov2", pooling="cls+mean")  # doctest: +SKIP
    """
    folder = Path(path).expanduser()
    model_type = _read_config(folder, options.get("name") or path).get("model_type")
    if model_type in _DINOV2_TYPES:
        return create_dinov2(path, **options)
    if model_type in _TOWER_CLASSES:
        return create_clip_vision(path, **options)
    raise BackendError(
        f"model {path!r}: model_type {model_type!r} in config.json is not supported; supported: "
        f"{', '.join((*_DINOV2_TYPES, *_TOWER_CLASSES))} (or use timm:<name> / an .onnx file)"
    )


# --- helpers ------------------------------------------------------------------------------------------
def _make_spec(
    cfg: Any, label: str, backend: str, meta: dict[str, str], size: int, pooling: str, preprocessing: Preprocessing
) -> ModelSpec:
    patch, dim = _side(cfg.patch_size), int(cfg.hidden_size)
    if size <= 0 or size % patch:
        good = max(patch, round(size / patch) * patch)
        raise BackendError(f"model {label!r}: input size {size} is not a multiple of patch size {patch} (try {good})")
    mean, std, interpolation = preprocessing
    return ModelSpec(
        name=label,
        backend=backend,
        input_size=size,
        patch_size=patch,
        mean=mean,
        std=std,
        interpolation=interpolation,  # type: ignore[arg-type]
        pooling=pooling,
        embed_dim=2 * dim if pooling == "cls+mean" else dim,
        patch_dim=dim,
        **meta,
    )


def _note(spec: ModelSpec, loader_note: str) -> ModelSpec:
    return dataclasses.replace(spec, extra={**spec.extra, "loader_note": loader_note}) if loader_note else spec


def _n_registers(module: torch.nn.Module) -> int:
    return int(getattr(module.config, "num_register_tokens", 0) or 0)


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


def _hub_cache_dir() -> Path:
    """The hub cache huggingface_hub uses, resolved now (its constants are frozen at import time)."""
    env = os.environ
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or str(Path(home) / "hub")
    return Path(os.path.expandvars(cache)).expanduser()


def _offline_env() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _resolve_folder(weights: str, *, allow_download: bool, label: str) -> Path:
    """A local folder holding config.json and the weights: the folder given, or the hub cache snapshot."""
    path = Path(weights).expanduser()
    if path.is_dir():
        return path
    if path.exists() or weights.startswith((".", "/", "~")) or weights.count("/") > 1 or "\\" in weights:
        raise BackendError(f"model {label!r}: {weights} is not a folder (expected a Hugging Face model folder)")
    hub = require("huggingface_hub", "models", "finding Hugging Face models")
    cache, offline = _hub_cache_dir(), not allow_download or _offline_env()
    try:
        folder = hub.snapshot_download(weights, cache_dir=cache, local_files_only=offline, allow_patterns=_FILES)
        if not offline and not any(Path(folder).glob("*.safetensors")):  # an old repo with .bin weights only
            folder = hub.snapshot_download(weights, cache_dir=cache, allow_patterns=_BIN_FILES)
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, ...
        what = f"model {label!r}" + (f" ({weights})" if label != weights else "")
        why = "is not in the Hugging Face cache" if offline else f"could not be downloaded ({_first_line(exc)})"
        note = " (HF_HUB_OFFLINE is set)" if allow_download and _offline_env() else ""
        raise BackendError(f"{what} {why} (looked in {cache}{note}); {_FIXES.format(repo=weights)}") from exc
    return Path(folder)


def _read_config(folder: Path, label: str) -> dict[str, Any]:
    file = folder / "config.json"
    try:
        return dict(json.loads(file.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise BackendError(
            f"model {label!r}: {folder} has no config.json (expected a folder written by save_pretrained)"
        ) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise BackendError(f"model {label!r}: cannot read {file}: {_first_line(exc)}") from exc


def _load_module(cls_name: str, folder: Path, label: str) -> torch.nn.Module:
    """``cls.from_pretrained(folder)`` in float32; weights that leave parameters uninitialised are an error."""
    torch = require("torch", "models", "running Hugging Face models")
    transformers = require("transformers", "models", "loading Hugging Face models")
    try:
        with _quiet_loading(transformers):
            module, info = getattr(transformers, cls_name).from_pretrained(
                str(folder), dtype=torch.float32, output_loading_info=True
            )
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise BackendError(f"model {label!r}: cannot load {cls_name} from {folder}: {_first_line(exc)}") from exc
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise BackendError(
            f"model {label!r}: the weights in {folder} do not fit {cls_name}: {len(missing)} parameters missing "
            f"({', '.join(missing[:3])}, ...)"
        )
    ignored = [k for k in info.get("unexpected_keys") or () if not k.startswith(("text_", "logit_", "visual_"))]
    if ignored:
        logger.warning("%s: %d weights in %s are not used (e.g. %s)", label, len(ignored), folder, ignored[0])
    return module


@contextlib.contextmanager
def _quiet_loading(transformers: Any) -> Iterator[None]:
    """Mute the load report (it lists the text tower left behind) and the per-tensor progress bar. A filter, not
    a level: transformers 5 warns about tensor-parallel plans whenever that logger's level is WARNING or higher."""
    log, bars = logging.getLogger("transformers.modeling_utils"), transformers.utils.logging
    was_on = bars.is_progress_bar_enabled()
    log.addFilter(_errors_only)
    bars.disable_progress_bar()
    try:
        yield
    finally:
        log.removeFilter(_errors_only)
        if was_on:
            bars.enable_progress_bar()


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))


def _read_preprocessing(folder: Path, family: str) -> Preprocessing:
    """(mean, std, resize) from ``preprocessor_config.json`` when present, else the family's defaults."""
    mean, std, interpolation = _DEFAULT_PREPROCESSING[family]
    file = folder / "preprocessor_config.json"
    try:
        cfg = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read {file}: {_first_line(exc)}") from exc
    if cfg.get("do_normalize") is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        mean, std = _triple(cfg.get("image_mean"), mean), _triple(cfg.get("image_std"), std)
    resample = cfg.get("resample", cfg.get("interpolation"))
    if resample is not None:
        filt = _PIL_FILTERS.get(resample, str(resample).lower().rpartition(".")[2])
        interpolation = "bicubic" if filt in ("bicubic", "lanczos") else "bilinear"
    return mean, std, interpolation


def _triple(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if value is None:
        return default
    values = [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]
    return (values[0], values[1], values[2])


def _side(value: Any) -> int:
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def _check_pooling(pooling: str, family: str, label: str) -> None:
    if pooling not in _POOLINGS[family]:
        raise BackendError(
            f"model {label!r}: pooling {pooling!r} is not available for {family} models; "
            f"use one of {', '.join(_POOLINGS[family])}"
        )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
