"""The window of ``seg collect``'s interactive mode: shows frames, returns key names.

Which toolkit (decided once, in :func:`open_display`):

1. OpenCV highgui (``cv2.imshow`` / ``cv2.waitKeyEx``) when the installed ``cv2`` was built with a GUI
   backend (GTK, Qt, Win32, Cocoa): what the inspection team's scripts use;
2. otherwise Tk (``tkinter``, in the standard library; Pillow's ``ImageTk`` draws the frames). This is the
   common case: ``opencv-python-headless`` (what fiftyone and most servers install) has no highgui, and
   installing ``opencv-python`` beside it breaks both.

Both map their key events to the same names (``s``, ``space``, ``q``, ``escape``, ``left``, ``right``,
``up``, ``down``; closing the window is ``q``), so :class:`~dinoscope.seg.collect_window.CollectController`
never sees a toolkit. Frames larger than :data:`MAX_VIEW` are shown scaled down (the files are not).
Without a display (Linux with neither ``$DISPLAY`` nor ``$WAYLAND_DISPLAY``) :func:`open_display` raises a
one-line error naming the headless modes.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from typing import Any, Protocol

import numpy as np
from PIL import Image

from dinoscope.errors import ConfigError, MissingDependencyError

__all__ = ["MAX_VIEW", "Display", "OpenCvDisplay", "TkDisplay", "has_display", "open_display", "opencv_has_gui"]

#: Largest (width, height) shown; larger frames are scaled down to fit.
MAX_VIEW = (1280, 800)
NO_DISPLAY = (
    "seg collect: no display for the interactive window ($DISPLAY is not set); take frames headless with "
    "--every-s T (one frame per T seconds) or --diverse N (N frames covering the video)"
)
_CV_KEYS = {
    ord("s"): "s",
    ord("S"): "s",
    ord("q"): "q",
    ord("Q"): "q",
    32: "space",
    27: "escape",
    65361: "left",  # X11 / GTK / Qt
    65362: "up",
    65363: "right",
    65364: "down",
    2424832: "left",  # Windows
    2490368: "up",
    2555904: "right",
    2621440: "down",
    63234: "left",  # macOS
    63232: "up",
    63235: "right",
    63233: "down",
}


class Display(Protocol):
    """A window that shows RGB frames and reports key names."""

    def show(self, image: np.ndarray, title: str) -> None: ...

    def wait_key(self, ms: int) -> str | None: ...

    def close(self) -> None: ...


def has_display() -> bool:
    """False on Linux and other X11 / Wayland systems with neither ``$DISPLAY`` nor ``$WAYLAND_DISPLAY``."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def opencv_has_gui() -> bool:
    """Whether the installed ``cv2`` has a highgui backend (``GUI: NONE`` in its build information means not)."""
    try:
        import cv2
    except ImportError:
        return False
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("", "NONE")
    return False


def open_display(title: str) -> Display:
    """The window (module docstring: OpenCV highgui if it has a GUI, else Tk).

    Raises:
        ConfigError: No display.
        MissingDependencyError: Neither a GUI OpenCV nor tkinter.

    Example:
        >>> display = open_display("line.mp4")  # doctest: +SKIP
    """
    if not has_display():
        raise ConfigError(NO_DISPLAY)
    if opencv_has_gui():
        return OpenCvDisplay(title)
    try:
        import tkinter  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "seg collect: the interactive window needs tkinter (python3-tk) or OpenCV with a GUI (opencv-python); "
            "or take frames headless with --every-s T or --diverse N"
        ) from exc
    return TkDisplay(title)


def _fit(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = min(1.0, MAX_VIEW[0] / w, MAX_VIEW[1] / h)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


class OpenCvDisplay:
    """An OpenCV highgui window (``cv2.imshow``); arrow keys through ``cv2.waitKeyEx``."""

    def __init__(self, title: str) -> None:
        import cv2

        self.cv2, self.name = cv2, title
        cv2.namedWindow(self.name, cv2.WINDOW_AUTOSIZE)

    def show(self, image: np.ndarray, title: str) -> None:
        self.cv2.imshow(self.name, np.ascontiguousarray(_fit(image)[:, :, ::-1]))  # RGB -> BGR
        self.cv2.setWindowTitle(self.name, title)

    def wait_key(self, ms: int) -> str | None:
        code = self.cv2.waitKeyEx(max(1, ms))
        if self.cv2.getWindowProperty(self.name, self.cv2.WND_PROP_VISIBLE) < 1:
            return "q"  # the window was closed
        return _CV_KEYS.get(code) if code >= 0 else None

    def close(self) -> None:
        self.cv2.destroyWindow(self.name)


class TkDisplay:
    """A Tk window with one image label; key presses queue up as names, closing the window is ``q``."""

    def __init__(self, title: str) -> None:
        import tkinter

        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise ConfigError(
                f"seg collect: cannot open a window on display {os.environ.get('DISPLAY', '')!r} (Tk: {exc}); take "
                "frames headless with --every-s T or --diverse N"
            ) from exc
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.keys: deque[str] = deque()
        self.photo: Any = None
        self.root.bind("<Key>", lambda event: self.keys.append(event.keysym.lower()))
        self.root.protocol("WM_DELETE_WINDOW", lambda: self.keys.append("q"))
        self.root.focus_force()

    def show(self, image: np.ndarray, title: str) -> None:
        from PIL import ImageTk

        self.photo = ImageTk.PhotoImage(Image.fromarray(_fit(image)), master=self.root)
        self.label.configure(image=self.photo)
        self.root.title(title)

    def wait_key(self, ms: int) -> str | None:
        deadline = time.monotonic() + ms / 1000
        while True:
            self.root.update()
            if self.keys:
                return self.keys.popleft()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def close(self) -> None:
        self.root.destroy()
