"""What runs on the Ray cluster for :mod:`~dinoscope.embed.ray_engine`: the decode task and the model actor of
the ``split`` layout, and the actor of the ``fused`` layout that decodes, crops and embeds in-process.

All reuse the local engine's code — :class:`~dinoscope.embed.loader` cuts the crops, the registry builds the
model — so a vector computed on Ray is the local engine's vector.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dinoscope.embed.ray_engine import ModelRecipe
    from dinoscope.embed.spec import CropSpec, ModelSpec

__all__ = ["Embedder", "ShardEmbedder", "decode_shard"]


def decode_shard(
    batch: dict[str, np.ndarray], *, root: str, spec: ModelSpec, crop: CropSpec, batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """A shard (one item: its rows, sources, frames and boxes) -> batches of ``row``, ``shard``, ``image``
    ((B, S, S, 3) uint8; zeros where the source could not be read) and ``error`` ("" or the reason).

    Example:
        >>> batches = decode_shard(item, root="/data", spec=spec, crop=CropSpec(), batch_size=32)  # doctest: +SKIP
        >>> next(batches)["image"].shape  # doctest: +SKIP
        (32, 224, 224, 3)
    """
    from dinoscope.embed.loader import _CropStream

    k, groups = _groups(batch)
    size = spec.input_size
    for b in _CropStream(Path(root), groups, spec, crop, batch_size):
        n_ok, n_bad = len(b["rows"]), len(b["failed_rows"])
        images = b["images"].numpy() if n_ok else np.zeros((0, size, size, 3), np.uint8)
        yield {
            "row": np.concatenate([b["rows"].numpy(), np.asarray(b["failed_rows"], np.int64)]),
            "shard": np.full(n_ok + n_bad, k, np.int64),
            "image": np.concatenate([images, np.zeros((n_bad, size, size, 3), np.uint8)]),
            "error": np.asarray([""] * n_ok + [str(r) for r in b["failed_reasons"]], dtype=object),
        }


def _groups(batch: dict[str, np.ndarray]) -> tuple[int, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]]:
    """The shard number and the (source, frames, rows, boxes) groups of a one-item batch, in source order."""
    k = int(np.asarray(batch["shard"]).reshape(-1)[0])
    rows, sources = np.asarray(batch["row"][0], np.int64), np.asarray(batch["source"][0]).astype(str)
    frames, boxes = np.asarray(batch["frame"][0]), np.asarray(batch["box"][0], np.float64).reshape(-1, 4)
    groups = []
    for source in sorted(set(sources.tolist())):
        mine = sources == source
        groups.append((source, frames[mine], rows[mine], boxes[mine]))
    return k, groups


def _model(recipe: ModelRecipe, threads: int) -> Any:
    """The recipe's model on its device, torch on ``threads`` intra-op threads."""
    import torch

    from dinoscope.embed.registry import create_backend

    torch.set_num_threads(max(1, threads))
    backend = create_backend(recipe.model, **recipe.options, allow_download=recipe.allow_download)
    if hasattr(backend, "to"):
        backend.to(recipe.device, precision=recipe.precision)
    return backend


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


class ShardEmbedder:
    """The ``fused`` actor: a piece of a shard (one item) -> its ``row``, ``shard``, unit ``vector`` and
    ``error`` columns, decoded, cropped and embedded in this process by the local engine's crop stream (its
    ``replicas`` mode: the model runs beside the decoding), so only vectors leave the actor.

    Args:
        recipe: How to build the model.
        threads: torch intra-op threads (the CPUs Ray gives the actor).
        root: Dataset root (``table.root``).
        spec: The model spec the crops are cut by (the driver's, as in the ``split`` layout).
        crop: Crop policy.
        batch_size: Crops per forward pass.

    Example:
        >>> actor = ShardEmbedder(recipe, 1, root="/data", spec=spec, crop=CropSpec(), batch_size=32)  # doctest: +SKIP
        >>> actor(item)["vector"].shape  # doctest: +SKIP
        (64, 1280)
    """

    def __init__(
        self, recipe: ModelRecipe, threads: int, *, root: str, spec: ModelSpec, crop: CropSpec, batch_size: int
    ) -> None:
        self.backend = _model(recipe, threads)
        self.root, self.spec, self.crop, self.batch_size = Path(root), spec, crop, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One piece -> its rows' vectors ((n, D) float32 unit rows; zeros where ``error`` is set)."""
        from dinoscope.embed.loader import _CropStream

        k, groups = _groups(batch)
        rows, vectors, errors = [], [], []
        dim = self.backend.spec.embed_dim
        for b in _CropStream(self.root, groups, self.spec, self.crop, self.batch_size, self.backend):
            n_ok, n_bad = len(b["rows"]), len(b["failed_rows"])
            rows += [b["rows"].numpy(), np.asarray(b["failed_rows"], np.int64)]
            v = b["vectors"].numpy().reshape(n_ok, dim) if n_ok else np.zeros((0, dim), np.float32)
            vectors += [_unit(v.astype(np.float32, copy=False)), np.zeros((n_bad, dim), np.float32)]
            errors += [""] * n_ok + [str(r) for r in b["failed_reasons"]]
        row = np.concatenate(rows) if rows else np.empty(0, np.int64)
        return {
            "row": row,
            "shard": np.full(len(row), k, np.int64),
            "vector": np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32),
            "error": np.asarray(errors, dtype=object),
        }


class Embedder:
    """The model in a Ray actor: ``image`` batches -> unit ``vector`` rows (zeros where ``error`` is set).

    Args:
        recipe: How to build the model.
        threads: torch intra-op threads of this actor.
    """

    def __init__(self, recipe: ModelRecipe, threads: int = 1) -> None:
        self.backend = _model(recipe, threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """One batch of crops -> the same columns with ``vector`` (B, D) float32 instead of ``image``."""
        import torch

        ok = np.asarray(batch["error"]).astype(str) == ""
        vectors = np.zeros((len(ok), self.backend.spec.embed_dim), np.float32)
        if ok.any():
            out = self.backend.embed(torch.from_numpy(np.ascontiguousarray(batch["image"][ok])))
            v = out.float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float32)
            vectors[ok] = _unit(v)
        return {"row": batch["row"], "shard": batch["shard"], "vector": vectors, "error": batch["error"]}
