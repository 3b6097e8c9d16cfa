"""What every detector backend shares: the :class:`Detections` record, the :class:`Detector` protocol,
letterboxing, non-maximum suppression and a model's class names (the files are read by
:mod:`dinoscope.io.class_names`).

A detector takes a list of RGB uint8 frames and returns one :class:`Detections` per frame, boxes in the
frame's own pixels. Backends own their preprocessing (letterbox layout, channel order, scaling); the
pipeline never knows which model family it runs.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from dinoscope._deps import require
from dinoscope.errors import BackendError, ConfigError
from dinoscope.io.class_names import NAMES_FILES, read_class_names

__all__ = [
    "Detections",
    "Detector",
    "Letterbox",
    "compute_nms",
    "letterbox",
    "rect_canvas",
    "resolve_classes",
]

logger = logging.getLogger(__name__)

#: Pad value of the YOLO letterbox (grey), shared by YOLOX and Ultralytics.
PAD_VALUE = 114


@dataclass(frozen=True)
class Detections:
    """Boxes found in one frame (struct of arrays; indexing returns a new record).

    Attributes:
        xyxy: (N, 4) float64 boxes in the frame's pixels.
        score: (N,) float64 detector confidence (NaN when the source gives none).
        class_id: (N,) int64 ids into the detector's class names.

    Example:
        >>> d = Detections(np.array([[0, 0, 4, 4.0]]), np.array([0.9]), np.array([2]))
        >>> len(d[d.score > 0.5])
        1
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64).reshape(-1, 4)
        score = np.asarray(self.score, dtype=np.float64).reshape(-1)
        class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        if not len(xyxy) == len(score) == len(class_id):
            raise ValueError(
                f"Detections fields must have the same length: xyxy {xyxy.shape}, score {score.shape}, "
                f"class_id {class_id.shape}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)

    @classmethod
    def empty(cls) -> Detections:
        """No detection."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, index: Any) -> Detections:
        """Subset with a boolean mask or an index array."""
        return Detections(self.xyxy[index], self.score[index], self.class_id[index])


@runtime_checkable
class Detector(Protocol):
    """A detector backend.

    Attributes:
        class_names: Names indexed by class id.
        description: What runs (family, file, input size), recorded in ``run.yaml``.
    """

    class_names: tuple[str, ...]
    description: dict[str, Any]

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per (H, W, 3) RGB uint8 frame, boxes in that frame's pixels."""
        ...


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits in the square model input: ``input = frame * ratio + (pad_x, pad_y)``."""

    ratio: float
    pad_x: float
    pad_y: float

    def to_frame(self, xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N, 4) input-pixel boxes -> frame-pixel boxes clipped to the frame."""
        out = np.empty_like(xyxy, dtype=np.float64)
        out[:, [0, 2]] = (xyxy[:, [0, 2]] - self.pad_x) / self.ratio
        out[:, [1, 3]] = (xyxy[:, [1, 3]] - self.pad_y) / self.ratio
        np.clip(out[:, [0, 2]], 0, width, out=out[:, [0, 2]])
        np.clip(out[:, [1, 3]], 0, height, out=out[:, [1, 3]])
        return out


def letterbox(
    image: np.ndarray, size: tuple[int, int], *, center: bool, ratio: float | None = None
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio into a ``size = (height, width)`` canvas filled with grey 114.

    YOLOX puts the image at the top-left corner and truncates the new size (``center=False``); Ultralytics
    centres it and rounds (``center=True``), as their own preprocessing does (Ge et al. 2021, YOLOX
    ``preproc``; Ultralytics ``LetterBox``).

    Args:
        image: (H, W, 3) uint8.
        size: Canvas (height, width): the model input, or a smaller stride multiple (rectangular inference).
        center: Centre the image (Ultralytics) or put it top-left (YOLOX).
        ratio: Scale factor (default: the largest that fits the canvas).

    Returns:
        The (h, w, 3) uint8 canvas and the :class:`Letterbox` that maps boxes back.

    Example:
        >>> canvas, box = letterbox(np.zeros((360, 640, 3), np.uint8), (416, 416), center=False)
        >>> canvas.shape, round(box.ratio, 3)
        ((416, 416, 3), 0.65)
    """
    h, w = image.shape[:2]
    out_h, out_w = size
    ratio = ratio or min(out_h / h, out_w / w)
    if center:
        new_w, new_h = round(w * ratio), round(h * ratio)
    else:
        new_w, new_h = int(w * ratio), int(h * ratio)
    new_w, new_h = max(1, min(new_w, out_w)), max(1, min(new_h, out_h))
    resized = (
        image
        if (new_w, new_h) == (w, h)
        else np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    )
    canvas = np.full((out_h, out_w, 3), PAD_VALUE, dtype=np.uint8)
    if center:
        left, top = round((out_w - new_w) / 2 - 0.1), round((out_h - new_h) / 2 - 0.1)
    else:
        left = top = 0
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox(ratio, float(left), float(top))


def rect_canvas(shapes: Sequence[tuple[int, ...]], size: tuple[int, int], stride: int = 32) -> tuple[int, int]:
    """The smallest canvas (height, width), in multiples of ``stride``, that holds every frame letterboxed for a
    ``size`` input: a 16:9 frame for a 416 x 416 model needs 256 x 416, 38% less compute than the square
    (the minimal-padding letterbox of Ultralytics' rectangular inference).

    Example:
        >>> rect_canvas([(360, 640, 3)], (416, 416))
        (256, 416)
    """
    out_h = out_w = 0
    for shape in shapes:
        h, w = shape[:2]
        ratio = min(size[0] / h, size[1] / w)
        out_h = max(out_h, -(-int(h * ratio) // stride) * stride)
        out_w = max(out_w, -(-int(w * ratio) // stride) * stride)
    return min(out_h, size[0]), min(out_w, size[1])


def compute_nms(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Indices kept by per-class non-maximum suppression, best score first (``torchvision.ops.batched_nms``).

    Args:
        xyxy: (N, 4) boxes.
        score: (N,) scores.
        class_id: (N,) classes; boxes of different classes never suppress each other.
        iou: Overlap above which the lower-scored box is dropped.
        max_det: Keep at most this many.

    Returns:
        (K,) int64 indices into the inputs.
    """
    if not len(score):
        return np.zeros(0, np.int64)
    torch = require("torch", "torch", "non-maximum suppression of detector outputs")
    ops = require("torchvision.ops", "torch", "non-maximum suppression of detector outputs")
    keep = ops.batched_nms(
        torch.from_numpy(np.ascontiguousarray(xyxy, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(score, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(class_id, dtype=np.int64)),
        float(iou),
    )
    return keep[:max_det].numpy().astype(np.int64)


def names_beside(model: Path) -> tuple[str, ...] | None:
    """Class names from a file next to the model (see :data:`NAMES_FILES`), or None."""
    for name in (f"{model.stem}.names", f"{model.stem}.txt", *NAMES_FILES):
        candidate = model.with_name(name)
        if candidate.is_file():
            return read_class_names(candidate)
    return None


def fallback_names(n_classes: int, model: Path) -> tuple[str, ...]:
    """``class_0 ... class_{n-1}`` with a logged hint, when no names were found."""
    logger.warning(
        "%s: no class names found (no --names file, no 'names' metadata, no %s beside it); using class_0..class_%d",
        model,
        "/".join(NAMES_FILES),
        n_classes - 1,
    )
    return tuple(f"class_{i}" for i in range(n_classes))


def check_names(names: tuple[str, ...], n_classes: int, where: str) -> tuple[str, ...]:
    """Names must cover every class the model outputs."""
    if len(names) != n_classes:
        raise BackendError(
            f"{where}: the model outputs {n_classes} classes but {len(names)} class names were given; "
            "pass a --names file with one name per class, in class-id order"
        )
    return names


def resolve_classes(requested: Sequence[str | int] | None, names: Sequence[str]) -> list[int] | None:
    """Class ids of the requested classes (names, case-insensitive, or ids); None keeps every class.

    Raises:
        ConfigError: A name or id the detector does not know (with the closest names).

    Example:
        >>> resolve_classes(["bottle", "0"], ["person", "bottle"])
        [1, 0]
    """
    if not requested:
        return None
    lower = {n.lower(): i for i, n in enumerate(names)}
    ids, unknown = [], []
    for item in requested:
        text = str(item).strip()
        if text.lower() in lower:
            ids.append(lower[text.lower()])
        elif text.isdigit() and int(text) < len(names):
            ids.append(int(text))
        else:
            unknown.append(text)
    if unknown:
        close = {u: difflib.get_close_matches(u.lower(), list(lower), n=3) for u in unknown}
        hints = "; ".join(f"{u!r} (did you mean {', '.join(c)}?)" if c else repr(u) for u, c in close.items())
        raise ConfigError(
            f"--classes: unknown class {hints}; the detector knows {len(names)} classes: "
            f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''}"
        )
    return list(dict.fromkeys(ids))
