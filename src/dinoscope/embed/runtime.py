"""The public runtime of every model forward pass: device, precision, batch size, OOM back-off, forward context.

Every stage that runs a network (embedding, patch PCA, and later probes, adaptation and segmentation) makes
these choices through this module, so ``--device auto`` and ``--precision auto`` mean the same everywhere:

- :func:`resolve_device`: ``cuda`` when available, else ``mps``, else ``cpu``.
- :func:`resolve_precision`: the ``auto`` rule — bf16 on CUDA GPUs that support it (else fp16), bf16 on CPUs
  that compute it natively (AVX512-BF16 or AMX, :func:`cpu_has_native_bf16`), fp32 on every other CPU.
- :func:`place_backend`: a backend on its device and precision (PyTorch backends; ONNX runs where its session runs).
- :func:`forward_context`: ``inference_mode`` plus autocast to the chosen precision; :func:`to_model_input`:
  uint8 crops to a normalised float batch in the channels-last memory format.
- :func:`choose_batch_size`: crops per forward pass from free GPU memory (a probe batch measures one crop).
- :class:`ChunkedForward`: a forward function over a batch in chunks, halving the chunk on CUDA out-of-memory.

Throughput and memory reporting live in :mod:`dinoscope.embed.runtime_stats`. Nothing here imports torch at
import time.

Example:
    >>> device = resolve_device("cpu")
    >>> resolve_precision("fp32", device)
    'fp32'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast

import numpy as np

from dinoscope.errors import BackendError

if TYPE_CHECKING:
    import torch

    from dinoscope.embed.base import Backend

__all__ = [
    "CPU_BATCH_SIZE",
    "NATIVE_BF16_FLAGS",
    "ChunkedForward",
    "Precision",
    "ResolvedPrecision",
    "Sliceable",
    "autocast_dtype",
    "choose_batch_size",
    "cpu_flags",
    "cpu_has_native_bf16",
    "cuda_supports_bf16",
    "decode_workers",
    "device_type_of",
    "forward_context",
    "place_backend",
    "prepare_module",
    "resolve_device",
    "resolve_precision",
    "to_model_input",
]

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
ResolvedPrecision = Literal["fp32", "bf16", "fp16"]
#: CPU flags (``/proc/cpuinfo``) of native bf16: AVX512-BF16 (Cooper Lake, Zen 4 and later), AMX (Sapphire Rapids).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: Crops per forward pass on CPUs and MPS (no free-memory probe there).
CPU_BATCH_SIZE = 32
_PROBE_BATCH = 8
_GPU_MEMORY_FRAC = 0.6
_MAX_BATCH = 1024
_RESOLVED: dict[str, ResolvedPrecision] = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}

T = TypeVar("T")


# --- device and precision ------------------------------------------------------------------------------------
def resolve_device(device: str | None = None) -> str:
    """The device to run on: ``auto`` (or None) picks ``cuda``, else ``mps``, else ``cpu``; an explicit one is checked.

    Raises:
        BackendError: A CUDA device was asked for but CUDA is not available.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    import torch

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return device


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of this machine's CPU (the first ``flags`` line; empty where it cannot be read).

    Example:
        >>> "avx2" in cpu_flags()  # doctest: +SKIP
        True
    """
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX).

    There autocast bf16 is about twice as fast as fp32 with a cosine agreement above 0.9999
    (benchmarks/embed.py). Without it (e.g. AVX2-only CPUs) bf16 is emulated and several times slower, so
    ``auto`` stays on fp32.
    """
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


def cuda_supports_bf16() -> bool:
    """True when the current CUDA device computes bf16 (Ampere and later)."""
    import torch

    return bool(torch.cuda.is_bf16_supported())


def resolve_precision(precision: Precision | str, device_type: str) -> ResolvedPrecision:
    """The numeric precision of forward passes on a device type (``cuda``, ``cpu``, ``mps``).

    ``auto``: bf16 on CUDA GPUs that support it, else fp16; bf16 on CPUs with native bf16
    (:func:`cpu_has_native_bf16`), else fp32; fp32 on MPS. ``fp16`` on a CPU becomes bf16 (with a warning).
    Tests that compare numbers with fp32 references must pass ``fp32`` rather than rely on ``auto``.

    Raises:
        ValueError: An unknown precision.

    Example:
        >>> resolve_precision("fp32", "cuda"), resolve_precision("fp16", "cpu")
        ('fp32', 'bf16')
    """
    if precision == "auto":
        if device_type == "cuda":
            return "bf16" if cuda_supports_bf16() else "fp16"
        return "bf16" if device_type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and device_type == "cpu":
        logger.warning("fp16 is slow or unsupported on CPUs; using bf16")
        return "bf16"
    resolved = _RESOLVED.get(precision)
    if resolved is None:
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16; got {precision!r}")
    return resolved


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None for fp32: no autocast)."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


# --- placement and the forward context ----------------------------------------------------------------------
def prepare_module(
    module: torch.nn.Module, device: torch.device, *, channels_last: bool = True, compile: bool = False
) -> tuple[torch.nn.Module, bool]:
    """A network in eval mode on ``device``, in the channels-last memory format where it helps, optionally compiled.

    Returns:
        The module (compiled when asked) and whether inputs should be channels-last (never on MPS).
    """
    import torch

    module = module.eval().to(device)
    use_channels_last = channels_last and device.type != "mps"
    if use_channels_last:
        module = module.to(memory_format=torch.channels_last)
    if compile:
        module = cast("torch.nn.Module", torch.compile(module))  # an OptimizedModule: a Module that compiles
    return module, use_channels_last


def to_model_input(
    images: torch.Tensor | np.ndarray, device: torch.device, mean: torch.Tensor, std: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """(B, S, S, 3) uint8 crops -> (B, 3, S, S) float32 ``(x - mean) / std`` on ``device``.

    Args:
        images: uint8 crops (numpy or torch, pinned or not).
        device: Where the model runs.
        mean: (1, 3, 1, 1) mean on the 0-255 scale, on ``device``.
        std: (1, 3, 1, 1) standard deviation on the 0-255 scale, on ``device``.
        channels_last: Lay the batch out channels-last (as :func:`prepare_module` laid out the weights).
    """
    import torch

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


@contextmanager
def forward_context(device_type: str, precision: str) -> Iterator[None]:
    """``torch.inference_mode`` and autocast to ``precision`` (a resolved one) on ``device_type``.

    Example:
        >>> import torch
        >>> with forward_context("cpu", "fp32"):
        ...     torch.ones(2).requires_grad
        False
    """
    import torch

    dtype = autocast_dtype(precision)
    with torch.inference_mode(), torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
        yield


def place_backend(
    backend: Backend, device: str | None = "auto", precision: Precision | str = "auto", *, compile: bool = False
) -> Backend:
    """Put a backend on its device and precision; returns it.

    PyTorch backends (those with a ``to`` method, e.g. :class:`~dinoscope.embed.base.TorchBackend`) move;
    others (ONNX) run where their session runs and are returned as they are.

    Example:
        >>> backend = place_backend(create_backend("efficientnet-lite0"), "cpu", "fp32")  # doctest: +SKIP
    """
    move = getattr(backend, "to", None)
    if callable(move):
        move(device, precision=precision, compile=compile)
    return backend


def device_type_of(backend: object) -> str:
    """The device type (``cuda``, ``cpu``, ``mps``) a backend runs on (``cpu`` when it has no torch device)."""
    return str(getattr(getattr(backend, "device", None), "type", "cpu"))


def decode_workers(device_type: str, minimum: int = 0) -> int:
    """Default number of decoding workers: up to 8 feeding a GPU, one beside the model on a CPU.

    One core is left to the main process (the model); ``minimum`` is the floor (1 for threads, which share it).

    Example:
        >>> decode_workers("cpu", minimum=1)
        1
    """
    spare = (os.cpu_count() or 1) - 1
    return max(minimum, min(8, spare) if device_type == "cuda" else min(1, spare))


# --- batch size and out-of-memory back-off -------------------------------------------------------------------
def choose_batch_size(
    forward: Callable[[torch.Tensor], object],
    input_size: int,
    device_type: str,
    *,
    memory_frac: float = _GPU_MEMORY_FRAC,
    max_batch: int = _MAX_BATCH,
) -> int:
    """Inputs per forward pass: :data:`CPU_BATCH_SIZE` off CUDA; on CUDA, from the free memory per input.

    A probe batch of 8 blank ``(S, S, 3)`` uint8 inputs goes through ``forward``; the peak memory it allocates
    per input, divided into ``memory_frac`` of the free GPU memory, gives the size (a multiple of 8, from 8 to
    ``max_batch``). ``forward`` must not keep anything of the probe (it sees blank images).

    Args:
        forward: What runs on each batch, e.g. ``backend.embed`` (the whole per-batch work, reductions included).
        input_size: Side ``S`` of the model input.
        device_type: ``cuda``, ``cpu`` or ``mps``.
        memory_frac: Fraction of the free GPU memory to fill.
        max_batch: Upper bound.

    Example:
        >>> choose_batch_size(lambda x: x, 224, "cpu")
        32
    """
    if device_type != "cuda":
        return CPU_BATCH_SIZE
    import torch

    probe = torch.zeros((_PROBE_BATCH, input_size, input_size, 3), dtype=torch.uint8)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    forward(probe)
    torch.cuda.synchronize()
    per_item = max((torch.cuda.max_memory_allocated() - base) / _PROBE_BATCH, 1)
    free, _ = torch.cuda.mem_get_info()
    return int(np.clip(memory_frac * free / per_item // 8 * 8, 8, max_batch))


class Sliceable(Protocol):
    """A batch that has a length and gives sub-batches by slicing (arrays, tensors, batch dataclasses)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Any: ...


class ChunkedForward(Generic[T]):
    """Runs ``forward`` over a batch in chunks of at most :attr:`chunk_size`, halving it on CUDA out-of-memory.

    A failed chunk is run again smaller, so ``forward`` must not change any state before it returns (reduce
    first, commit after): every input is then seen exactly once. The lowered size is kept for the next batches.

    Args:
        forward: Sub-batch -> result (e.g. ``backend.embed``: uint8 crops -> vectors).
        chunk_size: Largest chunk (the batch size).

    Example:
        >>> run = ChunkedForward(lambda x: x.sum(axis=(1, 2, 3)), chunk_size=4)
        >>> [len(part) for part in run(np.ones((10, 2, 2, 3)))]
        [4, 4, 2]
    """

    def __init__(self, forward: Callable[[Any], T], chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
        self.forward = forward
        self.chunk_size = chunk_size

    def __call__(self, batch: Sliceable) -> list[T]:
        """The results of the chunks of ``batch``, in order (an empty list for an empty batch).

        Raises:
            BackendError: Out of GPU memory even with one input per chunk.
        """
        import torch

        out: list[T] = []
        i = 0
        while i < len(batch):
            chunk = batch[i : i + self.chunk_size]
            try:
                result = self.forward(chunk)
            except torch.OutOfMemoryError:
                if self.chunk_size == 1:
                    raise BackendError("out of GPU memory even with one input per batch; use --device cpu") from None
                self.chunk_size = max(1, self.chunk_size // 2)
                torch.cuda.empty_cache()
                logger.warning("GPU out of memory: batch size lowered to %d", self.chunk_size)
                continue
            out.append(result)
            i += len(chunk)
        return out
