"""Which detections of a video become objects: per-class sampling with bounded memory, and the skipping of
near-identical consecutive detections.

**Sampling** (:class:`ClassSampler`): K detections per class spread evenly over all of that class's
detections, with at most 2K crops held per class at any time, whatever the video's length. It is systematic
sampling with a doubling step (the bounded-memory scheme of uniform stream sampling, e.g. the "doubling"
reservoir used for evenly spaced thinning of streams): detection number ``i`` of a class (0-based, in
decoding order) is held when ``i % step == 0``; when more than 2K are held, ``step`` doubles and the held
detections off the new step are released. At the end the held detections are evenly spaced, ``step`` apart,
over the whole sequence, and K of them are chosen evenly (``round(linspace(0, m - 1, K))``). The selection
depends only on the order of the detections, so a resumed run selects the same ones.

**Near-duplicates** (:class:`DuplicateFilter`): a detection is skipped when the previous processed frame of
the same source holds a reference detection of the same class with box IoU >= ``iou`` and the two look the
same (mean absolute difference of their 16x16 grey thumbnails <= ``max_diff`` grey levels). The reference is
the detection that was last kept for that object: a skipped detection inherits it, so an object that
drifts slowly is kept again once it has moved or changed enough, and a static one is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from dinoscope.geometry import box_iou

__all__ = ["ClassSampler", "DuplicateFilter"]

_THUMB_PX = 16


@dataclass
class _ClassState:
    step: int = 1
    n_seen: int = 0
    held: list[tuple[int, int]] = field(default_factory=list)  # (sequence number in the class, detection key)


class ClassSampler:
    """K detections per class, evenly spread over the class's detections, holding at most 2K crops per class.

    Args:
        per_class: K; 0 keeps every detection.

    Example:
        >>> s = ClassSampler(2)
        >>> held = [s.offer(0, key) for key in range(10)]
        >>> s.select()[0]
        [0, 8]
    """

    def __init__(self, per_class: int) -> None:
        if per_class < 0:
            raise ValueError(f"per_class must be >= 0 (0 = all); got {per_class}")
        self.per_class = per_class
        self._classes: dict[int, _ClassState] = {}
        self.crops: dict[int, np.ndarray] = {}  # detection key -> crop, for held keys only
        self._held: set[int] = set()

    def offer(self, class_id: int, key: int) -> bool:
        """Count one detection of ``class_id``; True when it is held (its crop is wanted)."""
        state = self._classes.setdefault(int(class_id), _ClassState())
        seq = state.n_seen
        state.n_seen += 1
        if seq % state.step:
            return False
        state.held.append((seq, key))
        self._held.add(key)
        if self.per_class and len(state.held) > 2 * self.per_class:
            state.step *= 2
            kept = [(s, k) for s, k in state.held if s % state.step == 0]
            for _, k in set(state.held) - set(kept):
                self._held.discard(k)
                self.crops.pop(k, None)
            state.held = kept
        return key in self._held

    def is_held(self, key: int) -> bool:
        """Whether ``key`` is still held (a later detection of its frame may have released it)."""
        return key in self._held

    def put(self, key: int, crop: np.ndarray) -> None:
        """Attach the crop of a held detection (ignored if it was released meanwhile)."""
        if key in self._held:
            self.crops[key] = crop

    def n_seen(self, class_id: int) -> int:
        """Detections of a class offered so far."""
        state = self._classes.get(int(class_id))
        return state.n_seen if state else 0

    def select(self) -> dict[int, list[int]]:
        """Per class, the keys of the chosen detections (at most K, evenly spaced, in decoding order)."""
        out = {}
        for class_id, state in self._classes.items():
            keys = [k for _, k in state.held]
            if self.per_class and len(keys) > self.per_class:
                positions = np.round(np.linspace(0, len(keys) - 1, self.per_class)).astype(int)
                keys = [keys[p] for p in positions]
            out[class_id] = keys
        return out


class DuplicateFilter:
    """Flags detections that repeat, nearly unchanged, a detection of the previous processed frame.

    Args:
        iou: Box overlap at or above which two detections of one class may be the same object.
        max_diff: Largest mean absolute difference of their 16x16 grey thumbnails (0-255) to count as
            unchanged.

    Example:
        >>> f = DuplicateFilter()
        >>> frame = np.zeros((40, 40, 3), np.uint8)
        >>> box = np.array([[5, 5, 30, 30.0]])
        >>> f(frame, box, np.array([0])).tolist(), f(frame, box, np.array([0])).tolist()
        ([False], [True])
    """

    def __init__(self, iou: float = 0.9, max_diff: float = 3.0) -> None:
        self.iou, self.max_diff = iou, max_diff
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (a new source starts)."""
        self._xyxy = np.zeros((0, 4))
        self._class = np.zeros(0, np.int64)
        self._thumbs = np.zeros((0, _THUMB_PX, _THUMB_PX), np.float32)

    def __call__(self, image: np.ndarray, xyxy: np.ndarray, class_id: np.ndarray) -> np.ndarray:
        """(N,) bool: which of this frame's detections repeat a reference of the previous processed frame.

        Args:
            image: (H, W, 3) RGB uint8 frame.
            xyxy: (N, 4) boxes in pixels.
            class_id: (N,) classes.
        """
        n = len(xyxy)
        duplicate = np.zeros(n, dtype=bool)
        ref_xyxy, ref_thumbs = (
            np.asarray(xyxy, dtype=np.float64).copy(),
            np.zeros((n, _THUMB_PX, _THUMB_PX), np.float32),
        )
        iou = box_iou(ref_xyxy, self._xyxy) if n and len(self._xyxy) else np.zeros((n, 0))
        if iou.size:
            iou[class_id[:, None] != self._class[None, :]] = 0.0
        for i in range(n):
            thumb = _thumb(image, ref_xyxy[i])
            j = int(iou[i].argmax()) if iou.shape[1] else -1
            if j >= 0 and iou[i, j] >= self.iou and np.abs(thumb - self._thumbs[j]).mean() <= self.max_diff:
                duplicate[i] = True
                ref_xyxy[i], ref_thumbs[i] = self._xyxy[j], self._thumbs[j]  # keep comparing with the kept one
            else:
                ref_thumbs[i] = thumb
        self._xyxy, self._class, self._thumbs = ref_xyxy, np.asarray(class_id, np.int64).copy(), ref_thumbs
        return duplicate


def _thumb(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(16, 16) float32 grey thumbnail of a box (area-averaged)."""
    h, w = image.shape[:2]
    x1, y1 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
    x2, y2 = int(np.clip(np.ceil(box[2]), x1 + 1, w)), int(np.clip(np.ceil(box[3]), y1 + 1, h))
    patch = Image.fromarray(np.ascontiguousarray(image[y1:y2, x1:x2])).convert("L")
    return np.asarray(patch.resize((_THUMB_PX, _THUMB_PX), Image.Resampling.BOX), dtype=np.float32)
