"""Finding and loading Hugging Face model folders, offline first, shared by the DINOv2 and vision-tower backends.

A hub id is looked up in the local Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``; the network is
used only with ``allow_download``); a failure is one line naming where it looked and the fixes. Preprocessing
(mean, std, resize filter) comes from the folder's ``preprocessor_config.json``, else from the defaults of the
family's released processor, and becomes part of the :class:`ModelSpec`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dinoscope._deps import require
from dinoscope.embed.spec import ModelSpec
from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_PREPROCESSING",
    "Preprocessing",
    "check_pooling",
    "load_module",
    "make_spec",
    "read_config",
    "read_preprocessing",
    "resolve_folder",
    "side",
    "weight_files",
    "with_loader_note",
]

logger = logging.getLogger(__name__)

Preprocessing = tuple[tuple[float, float, float], tuple[float, float, float], str]
#: (mean, std, resize) of each family's released image processor, used when a folder has none saved:
#: DINOv2 ``BitImageProcessor`` (ImageNet statistics), CLIP (OpenAI statistics), SigLIP (0.5); all bicubic.
DEFAULT_PREPROCESSING: dict[str, Preprocessing] = {
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


def resolve_folder(weights: str, *, allow_download: bool, label: str) -> Path:
    """A local folder holding config.json and the weights: the folder given, or the hub cache snapshot.

    Example:
        >>> resolve_folder("facebook/dinov2-small", allow_download=False, label="dinov2-small")  # doctest: +SKIP
        PosixPath('/home/me/.cache/huggingface/hub/models--facebook--dinov2-small/snapshots/ed25f3a...')
    """
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


def read_config(folder: Path, label: str) -> dict[str, Any]:
    """The folder's ``config.json``; a missing or unreadable file is a :class:`BackendError`."""
    file = folder / "config.json"
    try:
        return dict(json.loads(file.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise BackendError(
            f"model {label!r}: {folder} has no config.json (expected a folder written by save_pretrained)"
        ) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise BackendError(f"model {label!r}: cannot read {file}: {_first_line(exc)}") from exc


def load_module(cls_name: str, folder: Path, label: str) -> torch.nn.Module:
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


def weight_files(folder: Path) -> list[Path]:
    """The folder's weight files, sorted: ``*.safetensors``, else ``*.bin``."""
    return sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))


def read_preprocessing(folder: Path, family: str) -> Preprocessing:
    """(mean, std, resize) from ``preprocessor_config.json`` when present, else the family's defaults."""
    mean, std, interpolation = DEFAULT_PREPROCESSING[family]
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


def make_spec(
    cfg: Any, label: str, backend: str, meta: dict[str, str], size: int, pooling: str, preprocessing: Preprocessing
) -> ModelSpec:
    """The :class:`ModelSpec` of a ViT whose transformers config is ``cfg``, run at ``size`` with ``pooling``."""
    patch, dim = side(cfg.patch_size), int(cfg.hidden_size)
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


def with_loader_note(spec: ModelSpec, loader_note: str) -> ModelSpec:
    """The spec with ``loader_note`` recorded in ``spec.extra`` (unchanged when the note is empty)."""
    return dataclasses.replace(spec, extra={**spec.extra, "loader_note": loader_note}) if loader_note else spec


def check_pooling(pooling: str, family: str, label: str) -> None:
    """Raise :class:`BackendError` when ``pooling`` is not one the family (dinov2, clip, siglip) offers."""
    if pooling not in _POOLINGS[family]:
        raise BackendError(
            f"model {label!r}: pooling {pooling!r} is not available for {family} models; "
            f"use one of {', '.join(_POOLINGS[family])}"
        )


def side(value: Any) -> int:
    """A config size that may be an int or an (h, w) pair, as one int (the first)."""
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def _hub_cache_dir() -> Path:
    """The hub cache huggingface_hub uses, resolved now (its constants are frozen at import time)."""
    env = os.environ
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or str(Path(home) / "hub")
    return Path(os.path.expandvars(cache)).expanduser()


def _offline_env() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


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


def _triple(value: Any, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if value is None:
        return default
    values = [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]
    return (values[0], values[1], values[2])


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
