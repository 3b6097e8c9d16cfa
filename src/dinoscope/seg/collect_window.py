"""``seg collect VIDEO --out DIR`` without ``--every-s`` / ``--diverse``: pick frames to label in a window.

The video plays at its frame rate; ``s`` saves the frame shown (once; with ``--roi`` / ``--grayscale`` the
same files as the headless modes, :func:`~dinoscope.seg.collect.save_frame`), space pauses and resumes,
left / right step one frame and up / down one second (stepping pauses), ``q`` or Esc (or closing the
window) quits. At the end the video stops on its last frame until ``q``.

The parts are separate so the logic is tested without a screen:

- :class:`CollectController`: a pure state machine (key name -> action; frame index, paused, saved);
- :class:`FrameBuffer`: frames decoded straight through (no seeking) and the last :data:`BUFFER_BYTES` of
  them kept, so stepping back reaches about 25 s of 640x360 video or 3 s of 1080p;
- a :class:`~dinoscope.seg.display.Display` (OpenCV highgui or Tk) that shows frames and reports key names.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dinoscope.errors import DatasetFormatError, VideoError
from dinoscope.io.frames import Frame, iter_frames
from dinoscope.io.video_files import is_video_file, probe_video
from dinoscope.outputs import prepare_output_dir
from dinoscope.seg.collect import CollectResult, save_frame, write_summary
from dinoscope.seg.display import Display, open_display
from dinoscope.seg.roi import outline, roi_box

if TYPE_CHECKING:
    from dinoscope.seg.config import SegCollectConfig

__all__ = ["BUFFER_BYTES", "KEYS", "CollectController", "FrameBuffer", "collect_interactive", "run_window"]

#: Decoded frames kept for stepping back.
BUFFER_BYTES = 512 * 2**20
#: Key name -> what it does.
KEYS = {
    "s": "save",
    "space": "pause",
    "q": "quit",
    "escape": "quit",
    "left": "back",
    "right": "forward",
    "down": "back_1s",
    "up": "forward_1s",
}
HELP = "s save · space pause · arrows step · q quit"


@dataclass
class CollectController:
    """The window's state machine: no display, no video, only frame indices.

    Attributes:
        fps: Frames per second (up / down step this many frames).
        index: The frame shown.
        paused: Playback stopped (stepping pauses).
        done: ``q`` was pressed.
        first: The oldest frame still reachable (stepping back stops there).
        last: The last frame of the video, once the end was reached (``None`` before).
        saved: Frame indices saved, in the order saved.

    Example:
        >>> c = CollectController(fps=10)
        >>> [c.press(k) for k in ("s", "s", "right", "s", "q")]
        ['save', None, 'forward', 'save', 'quit']
        >>> c.saved, c.paused, c.done
        ([0, 1], True, True)
    """

    fps: float = 25.0
    index: int = 0
    paused: bool = False
    done: bool = False
    first: int = 0
    last: int | None = None
    saved: list[int] = field(default_factory=list)

    def press(self, key: str | None) -> str | None:
        """Apply a key name; return its action (``save`` only when the frame is new), ``None`` if nothing."""
        action = KEYS.get(key or "")
        if action is None:
            return None
        if action == "save":
            if self.index in self.saved:
                return None
            self.saved.append(self.index)
        elif action == "pause":
            self.paused = not self.paused
        elif action == "quit":
            self.done = True
        else:
            step = max(1, round(self.fps)) if action.endswith("_1s") else 1
            self.paused = True
            self._go(self.index + (step if action.startswith("forward") else -step))
        return action

    def tick(self) -> None:
        """One frame time passed without a key: the next frame while playing; pause on the last one."""
        if self.paused or self.done:
            return
        if self.last is not None and self.index >= self.last:
            self.paused = True
        else:
            self.index += 1

    def _go(self, index: int) -> None:
        self.index = max(self.first, index if self.last is None else min(self.last, index))

    def status(self, name: str) -> str:
        """The window title: video, frame, state, saved count and the keys."""
        state = "paused" if self.paused else "playing"
        return f"{name} · frame {self.index} · {state} · {len(self.saved)} saved · {HELP}"


class FrameBuffer:
    """Random access to the recent frames of a sequential decoder (module docstring).

    Example:
        >>> import numpy as np
        >>> buffer = FrameBuffer(iter([Frame(i, i / 10, np.zeros((2, 2, 3), np.uint8)) for i in range(3)]))
        >>> buffer.get(1).index, buffer.get(5), buffer.last
        (1, None, 2)
    """

    def __init__(self, frames: Iterator[Frame], max_bytes: int = BUFFER_BYTES) -> None:
        self._frames, self._kept, self._bytes, self._max = frames, deque[Frame](), 0, max_bytes
        self.last: int | None = None

    @property
    def first(self) -> int:
        """The oldest frame index kept."""
        return self._kept[0].index if self._kept else 0

    def get(self, index: int) -> Frame | None:
        """Frame ``index``, decoding forward as needed; ``None`` past the end or before :attr:`first`."""
        while self.last is None and (not self._kept or self._kept[-1].index < index):
            frame = next(self._frames, None)
            if frame is None:
                self.last = self._kept[-1].index if self._kept else -1
                break
            self._kept.append(frame)
            self._bytes += frame.image.nbytes
            while self._bytes > self._max and len(self._kept) > 1:
                self._bytes -= self._kept.popleft().image.nbytes
        offset = index - self.first
        return self._kept[offset] if self._kept and 0 <= offset < len(self._kept) else None


def run_window(
    frames: Iterator[Frame],
    display: Display,
    controller: CollectController,
    name: str,
    on_save: Callable[[Frame], None],
    roi: list[tuple[float, float]] | None = None,
) -> None:
    """The window's loop: show the controller's frame, wait a frame time for a key, apply it, save on ``s``."""
    buffer = FrameBuffer(frames)
    frame_ms = 1000 / max(controller.fps, 1e-3)
    shown_at = time.perf_counter()
    while not controller.done:
        frame = buffer.get(controller.index)
        if frame is None:  # past the end, or before the oldest frame kept
            if buffer.last is not None and buffer.last < 0:
                raise VideoError(f"{name}: no frame could be decoded")
            controller.last = buffer.last
            past_end = buffer.last is not None and controller.index > buffer.last
            controller.index = buffer.last if past_end else buffer.first  # type: ignore[assignment]
            controller.paused = controller.paused or past_end
            continue
        controller.first = buffer.first
        display.show(outline(frame.image, roi) if roi else frame.image, controller.status(name))
        spent_ms = (time.perf_counter() - shown_at) * 1000  # decoding and drawing count against the frame time
        key = display.wait_key(100 if controller.paused else max(1, round(frame_ms - spent_ms)))
        shown_at = time.perf_counter()
        if key is None:
            controller.tick()
        elif controller.press(key) == "save":
            on_save(frame)


def collect_interactive(config: SegCollectConfig, roi: list[tuple[float, float]] | None) -> CollectResult:
    """The window on ``config.source`` (one video); the saved frames go to ``config.out`` like the headless ones.

    Raises:
        ConfigError: No display (the message names ``--every-s`` / ``--diverse``).
        DatasetFormatError: The source is not one video file.

    Example:
        >>> collect_interactive(build_config(SegCollectConfig, source="line.mp4", out="frames"), None)  # doctest: +SKIP
    """
    source = Path(config.source)
    if not (source.is_file() and is_video_file(source)):
        raise DatasetFormatError(
            f"{source}: the interactive window takes one video file; for a folder of videos use --every-s T or "
            "--diverse N, or run once per video"
        )
    info = probe_video(source)
    if roi:
        roi_box(roi, info.width, info.height)
    display = open_display(f"dinoscope seg collect: {source.name}")  # before any file is written
    try:
        out = prepare_output_dir(config.out, config.overwrite)  # type: ignore[arg-type]
        result = CollectResult(out)
        controller = CollectController(fps=info.fps or 25.0)

        def save(frame: Frame) -> None:
            save_frame(out, source.name, frame, roi, config.grayscale, "key")
            result.frames.append((source.name, frame.index, frame.time_s))

        run_window(iter_frames(source), display, controller, source.name, save, roi)
    finally:
        display.close()
    write_summary(result, {"interactive": True, "roi": roi, "grayscale": config.grayscale})
    return result
