"""ONNX models through onnxruntime: uint8 crops in, numpy float32 vectors or patch grids out.

The model's first input takes a float batch, NCHW (or NHWC when its last axis is 3); its output is used as
it comes: (B, D) vectors directly, (B, N, D) tokens pooled per ``pooling`` (CLS and register tokens found
from the token count), (B, C, h, w) maps average-pooled, their cells being the patch features.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from dinoscope._deps import require
from dinoscope.embed.backends._files import hash_files
from dinoscope.embed.spec import POOLINGS, ModelSpec
from dinoscope.errors import BackendError

__all__ = ["OnnxBackend", "create_onnx"]

logger = logging.getLogger(__name__)

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxBackend:
    """An onnxruntime session behind the :class:`~dinoscope.embed.base.Backend` protocol.

    Args:
        session: The ``onnxruntime.InferenceSession``.
        spec: Its model spec.
        output: Name of the output used.
        n_prefix_tokens: CLS/register tokens in front of the patch tokens (token outputs only).
    """

    def __init__(self, session: Any, spec: ModelSpec, output: str, n_prefix_tokens: int = 0) -> None:
        self.session = session
        self.spec = spec
        self.output = output
        self.n_prefix_tokens = n_prefix_tokens
        model_input = session.get_inputs()[0]
        self._input = model_input.name
        self._dtype = _FLOAT_TYPES[model_input.type]
        self._nhwc = model_input.shape[1] != 3 and model_input.shape[-1] == 3
        batch = model_input.shape[0]
        self._static_batch = batch if isinstance(batch, int) and batch > 0 else None
        self._mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
        self._std = np.asarray(spec.std, dtype=np.float32) * 255.0

    def run(self, images: Any) -> np.ndarray:
        """Raw model output of (B, S, S, 3) uint8 crops (numpy or torch): (B, D), (B, N, D) or (B, C, h, w)."""
        x = images.cpu().numpy() if hasattr(images, "cpu") else np.asarray(images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise BackendError(f"{self.spec.name}: expected (B, S, S, 3) uint8 crops; got shape {x.shape}")
        x = (x.astype(np.float32) - self._mean) / self._std
        x = np.ascontiguousarray(x if self._nhwc else x.transpose(0, 3, 1, 2), dtype=self._dtype)
        step = self._static_batch or len(x)
        outs = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            n = len(chunk)
            if n < step:  # a static batch axis: pad the last chunk
                chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self.session.run([self.output], {self._input: chunk})[0][:n])
        return np.concatenate(outs).astype(np.float32, copy=False)

    def embed(self, images: Any) -> np.ndarray:
        """(B, S, S, 3) uint8 crops -> (B, D) float32 pooled vectors (not L2-normalised).

        Example:
            >>> create_onnx("model.onnx").embed(crops).shape  # doctest: +SKIP
            (B, 768)
        """
        out = self.run(images)
        if out.ndim == 2:
            return out
        if out.ndim == 4:
            return out.mean(axis=(2, 3))
        p = self.n_prefix_tokens
        pooled = {
            "cls": lambda: out[:, 0],
            "mean": lambda: out[:, p:].mean(axis=1),
            "cls+mean": lambda: np.concatenate([out[:, 0], out[:, p:].mean(axis=1)], axis=1),
            "all-mean": lambda: out.mean(axis=1),
        }[self.spec.pooling]()
        return np.ascontiguousarray(pooled, dtype=np.float32)

    def embed_patches(self, images: Any) -> np.ndarray:
        """(B, S, S, 3) uint8 crops -> (B, h, w, C) float32 patch features.

        Example:
            >>> create_onnx("vit.onnx").embed_patches(crops).shape  # doctest: +SKIP
            (B, 16, 16, 384)
        """
        out = self.run(images)
        if out.ndim == 4:
            return np.ascontiguousarray(out.transpose(0, 2, 3, 1))
        if out.ndim == 3:
            patches = out[:, self.n_prefix_tokens :]
            side = math.isqrt(patches.shape[1])
            return np.ascontiguousarray(patches.reshape(len(out), side, side, out.shape[-1]))
        raise BackendError(f"{self.spec.name}: the model outputs (B, D) vectors only, no patch features")


def create_onnx(
    path: str,
    *,
    input_size: int | None = None,
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
    std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    pooling: str | None = None,
    name: str | None = None,
    output: str | None = None,
    n_prefix_tokens: int | None = None,
    interpolation: str = "bicubic",
    **_: Any,
) -> OnnxBackend:
    """An ONNX image model run by onnxruntime (CUDA when its provider is installed, else CPU).

    Args:
        path: The ``.onnx`` file.
        input_size: Square input side; required when the model's spatial axes are dynamic, else checked.
        mean: Per-channel mean on the [0, 1] scale (the model's training normalisation).
        std: Per-channel std on the [0, 1] scale.
        pooling: For (B, N, D) token outputs ``cls``, ``mean``, ``cls+mean`` or ``all-mean`` (default ``cls``
            when a CLS token is found, else ``mean``); ``avg`` (default) for (B, C, h, w) maps; ignored
            (recorded as ``avg``) for (B, D) vectors.
        name: Name recorded in the spec (default: the file name).
        output: Output to use (default: the first).
        n_prefix_tokens: CLS + register tokens before the patch tokens of a token output (default: the
            smallest of 1, 0, 2, 5, 4 that leaves a square number of patch tokens).
        interpolation: ``bicubic`` or ``bilinear`` resize recorded for the crop pipeline.
        **_: Options of other backends, ignored.

    Returns:
        A backend whose ``embed`` and ``embed_patches`` return numpy float32 arrays.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        BackendError: Missing or invalid file, unknown input size, unsupported input or output, bad pooling.

    Example:
        >>> backend = create_onnx("dinov2_vits14.onnx", input_size=224, pooling="cls")  # doctest: +SKIP
        >>> backend.embed(crops).shape  # crops: (B, 224, 224, 3) uint8  # doctest: +SKIP
        (B, 384)
    """
    ort = require("onnxruntime", "onnx", "running ONNX models", "pip install onnxruntime")
    file = Path(path).expanduser()
    if not file.is_file():
        raise BackendError(f"ONNX model {path}: no such file")
    session = _session(ort, file)
    model_input = session.get_inputs()[0]
    if model_input.type not in _FLOAT_TYPES or len(model_input.shape) != 4:
        raise BackendError(
            f"{file}: input {model_input.name!r} is {model_input.type} {model_input.shape}; "
            "expected a float image batch (B, 3, S, S) or (B, S, S, 3)"
        )
    size = _input_size(file, model_input.shape, input_size)
    names = [o.name for o in session.get_outputs()]
    if output is not None and output not in names:
        raise BackendError(f"{file}: no output {output!r}; outputs: {', '.join(names)}")
    spec = ModelSpec(
        name=name or file.name,
        backend="onnx",
        weights=str(file),
        weights_hash=hash_files(file),
        loader="onnxruntime",
        input_size=size,
        patch_size=0,
        mean=mean,
        std=std,
        interpolation="bilinear" if interpolation == "bilinear" else "bicubic",
    )
    backend = OnnxBackend(session, spec, output or names[0])
    probe = backend.run(np.zeros((1, size, size, 3), dtype=np.uint8))  # learn the output's layout
    n_prefix, pooling, embed_dim, patch_dim, patch = _layout(file, probe.shape, size, pooling, n_prefix_tokens)
    backend.n_prefix_tokens = n_prefix
    backend.spec = ModelSpec(
        **{**spec.to_dict(), "pooling": pooling, "embed_dim": embed_dim, "patch_dim": patch_dim, "patch_size": patch}
    )
    return backend


def _session(ort: Any, file: Path) -> Any:
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(file), sess_options=options, providers=providers or None)
    except Exception as exc:  # onnxruntime raises its own exception types
        reason = " ".join(str(exc).split())[:240]
        raise BackendError(f"{file}: not a loadable ONNX model ({reason})") from exc


def _input_size(file: Path, shape: list[Any], input_size: int | None) -> int:
    spatial = shape[2:] if shape[1] == 3 or shape[-1] != 3 else shape[1:3]
    static = [s for s in spatial if isinstance(s, int) and s > 0]
    if len(static) == 2:
        if static[0] != static[1]:
            raise BackendError(f"{file}: input is {static[0]}x{static[1]}; only square inputs are supported")
        if input_size is not None and input_size != static[0]:
            raise BackendError(f"{file}: the model takes {static[0]}x{static[0]} inputs; got input_size {input_size}")
        return static[0]
    if input_size is None:
        raise BackendError(f"{file}: the model's input size is dynamic; pass input_size (--input-size PX)")
    return int(input_size)


def _layout(
    file: Path, shape: tuple[int, ...], size: int, pooling: str | None, n_prefix: int | None
) -> tuple[int, str, int, int, int]:
    """(prefix tokens, pooling, embed_dim, patch_dim, patch_size) of an output shape."""
    if pooling is not None and pooling not in POOLINGS:
        raise BackendError(f"{file}: pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    if len(shape) == 2:
        return 0, "avg", shape[1], 0, 0
    if len(shape) == 4:
        if pooling not in (None, "avg"):
            raise BackendError(f"{file}: the model outputs a (B, C, h, w) map; pooling must be avg, got {pooling!r}")
        stride = size // shape[2] if shape[2] == shape[3] and size % shape[2] == 0 else 0
        return 0, "avg", shape[1], shape[1], stride
    if len(shape) != 3:
        raise BackendError(f"{file}: output shape {shape} is not (B, D), (B, N, D) or (B, C, h, w)")
    n_tokens, dim = shape[1], shape[2]
    candidates = (n_prefix,) if n_prefix is not None else (1, 0, 2, 5, 4)
    n_prefix = next((p for p in candidates if 0 <= p < n_tokens and math.isqrt(n_tokens - p) ** 2 == n_tokens - p), -1)
    if n_prefix < 0:
        raise BackendError(
            f"{file}: {n_tokens} output tokens do not form a square patch grid after "
            f"{' or '.join(map(str, candidates))} prefix tokens; pass n_prefix_tokens"
        )
    pooling = pooling or ("cls" if n_prefix else "mean")
    if pooling == "avg" or ("cls" in pooling and not n_prefix):
        raise BackendError(
            f"{file}: pooling {pooling!r} does not apply to these {n_tokens} tokens "
            f"({n_prefix} prefix); use {'cls, ' if n_prefix else ''}mean{', cls+mean' if n_prefix else ''} or all-mean"
        )
    side = math.isqrt(n_tokens - n_prefix)
    return n_prefix, pooling, 2 * dim if pooling == "cls+mean" else dim, dim, size // side if size % side == 0 else 0
