"""Full training state of an adaptation, written atomically, and read back for an exact ``--resume``.

``checkpoints/last.pt`` holds everything the next step depends on: student (backbone + DINO head), teacher,
optimiser (AdamW moments), the schedules' position (they are pure functions of the step, so the step is their
state), the teacher centres of the DINO and iBOT losses, the RNG states (torch, CUDA, numpy, Python), the data
order (seed and the next stream position), the log rows and the checks so far. ``checkpoints/best.pt`` holds
the teacher backbone of the best check. Both are written to ``*.tmp`` then renamed: a run killed while saving
keeps its previous checkpoint.

Example:
    >>> save_state(run.checkpoint_path("last"), {"step": 10})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dinoscope.errors import DinoscopeError

__all__ = ["capture_rng", "load_state", "restore_rng", "save_state"]


def save_state(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to ``path.tmp``, flushed to disk, then renamed over ``path``."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def load_state(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_state`.

    Raises:
        DinoscopeError: Missing or unreadable (one line naming the file and the fix).
    """
    if not path.is_file():
        raise DinoscopeError(f"{path}: no checkpoint to resume from; drop --resume to start again (with --overwrite)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise DinoscopeError(
            f"{path}: cannot read the checkpoint ({type(exc).__name__}); restart with --overwrite"
        ) from exc


def capture_rng() -> dict[str, Any]:
    """The states of every random generator a step may use."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the generators back to :func:`capture_rng`'s states."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
