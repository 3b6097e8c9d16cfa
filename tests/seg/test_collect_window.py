"""seg collect's interactive window: the controller driven by scripted keys, the loop with a scripted display,
the one-line message without a display, and the real Tk window under Xvfb (skipped where Xvfb is absent)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.io.frames import Frame
from dinoscope.seg import collect_window
from dinoscope.seg.collect_window import CollectController, FrameBuffer, run_window
from dinoscope.seg.display import TkDisplay
from tests.seg.test_collect import _three_scenes

runner = CliRunner()


def _frames(n: int) -> Iterator[Frame]:
    return (Frame(i, i / 10, np.full((6, 8, 3), i, np.uint8)) for i in range(n))


class ScriptedDisplay:
    """Returns the scripted keys one per wait (``None`` = the frame time passed), then ``q``."""

    def __init__(self, keys: list[str | None]) -> None:
        self.keys, self.shown, self.titles = list(keys), [], []

    def show(self, image: np.ndarray, title: str) -> None:
        self.shown.append(int(image[0, 0, 0]))
        self.titles.append(title)

    def wait_key(self, ms: int) -> str | None:
        return self.keys.pop(0) if self.keys else "q"

    def close(self) -> None:
        pass


def test_controller_follows_scripted_keys() -> None:
    c = CollectController(fps=10)
    c.tick()
    c.tick()
    assert (c.index, c.paused) == (2, False)
    assert c.press("s") == "save" and c.press("s") is None  # a frame is saved once
    assert c.press("space") == "pause" and c.paused
    c.tick()
    assert c.index == 2  # paused: time passes, the frame stays
    assert c.press("up") == "forward_1s" and c.index == 12  # one second = fps frames
    assert c.press("left") == "back" and c.index == 11
    c.first = 10
    c.press("down")
    assert c.index == 10  # not before the oldest frame kept
    assert c.press("x") is None and c.index == 10  # unknown keys do nothing
    c.last = 11
    c.press("space")
    c.tick()
    c.tick()
    assert (c.index, c.paused) == (11, True)  # playback stops on the last frame
    assert c.press("right") == "forward" and c.index == 11
    assert c.press("s") == "save" and c.saved == [2, 11]
    assert c.press("escape") == "quit" and c.done
    assert "2 saved" in c.status("line.mp4")


def test_frame_buffer_keeps_the_recent_frames() -> None:
    buffer = FrameBuffer(_frames(10), max_bytes=3 * 6 * 8 * 3)  # room for 3 frames
    assert buffer.get(5).index == 5 and buffer.first == 3
    assert buffer.get(2) is None  # dropped
    assert buffer.get(12) is None and buffer.last == 9


def test_window_loop_saves_what_the_keys_say() -> None:
    saved: list[int] = []
    display = ScriptedDisplay([None, None, "s", "space", "right", "right", "s", "left", "left", "left", "s"])
    controller = CollectController(fps=10)
    run_window(_frames(20), display, controller, "v", lambda f: saved.append(f.index))
    assert saved == [2, 4, 1]
    assert display.shown[:4] == [0, 1, 2, 2] and controller.done
    # the end of the video: playback stops on the last frame, which can be saved
    saved.clear()
    run_window(
        _frames(3), ScriptedDisplay([None] * 6 + ["s"]), CollectController(), "v", lambda f: saved.append(f.index)
    )
    assert saved == [2]


def test_no_display_is_one_line_naming_the_headless_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = _three_scenes(tmp_path / "line.mp4")
    out = runner.invoke(app, ["seg", "collect", str(video), "--out", str(tmp_path / "f")])
    assert out.exit_code != 0
    text = " ".join(out.output.split())
    assert "no display" in text and "--every-s" in text and "--diverse" in text and "Traceback" not in text
    assert not (tmp_path / "f").exists()  # nothing written


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read_end, write_end = os.pipe()  # Xvfb picks a free display number and writes it here
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write_end), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as f:
            number = f.readline().strip()
        if not number:
            pytest.skip("Xvfb did not start")
        display = f":{number}"
        monkeypatch.setenv("DISPLAY", display)
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_tk_window_under_xvfb(tmp_path: Path, xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Tk window: key presses sent as X events through Tk; two frames saved with a ROI, grayscale."""
    pytest.importorskip("tkinter")
    script = ["s", "space", "Right", "Right", "s", "q"]  # Tk keysyms
    windows: list[TkDisplay] = []

    class Driven(TkDisplay):
        def wait_key(self, ms: int) -> str | None:
            if not script:
                return super().wait_key(ms)
            deadline = time.monotonic() + 5
            while not self.root.winfo_viewable() and time.monotonic() < deadline:
                self.root.update()  # X drops key events sent to a window not yet mapped
            self.root.event_generate(f"<KeyPress-{script.pop(0)}>", when="tail")
            return super().wait_key(5000)  # returns as soon as Tk delivers the key

    def open_driven(title: str) -> TkDisplay:
        windows.append(Driven(title))
        return windows[-1]

    monkeypatch.setattr(collect_window, "open_display", open_driven)
    monkeypatch.setattr(collect_window, "opencv_has_gui", lambda: False, raising=False)
    video = _three_scenes(tmp_path / "line.mp4")
    args = ["seg", "collect", str(video), "--out", str(tmp_path / "f"), "--roi", "4,4,40,4,40,30", "--grayscale"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "2 frames" in out.output and windows
    names = sorted(p.name for p in (tmp_path / "f" / "images").iterdir())
    assert names == ["line_000000.png", "line_000002.png"]
    meta = json.loads((tmp_path / "f" / "meta" / "line_000002.json").read_text())
    assert meta["selected_by"] == "key" and meta["grayscale"] and meta["box"] == [4, 4, 41, 31]
    for folder in ("raw", "roi_masks", "previews"):
        assert len(list((tmp_path / "f" / folder).iterdir())) == 2


class FakeCv2:
    """The highgui calls OpenCvDisplay makes, with scripted key codes (what cv2.waitKeyEx returns on X11)."""

    WINDOW_AUTOSIZE, WND_PROP_VISIBLE = 1, 4

    def __init__(self, codes: list[int], gui: str = "GTK3") -> None:
        self.codes, self.gui, self.shown, self.visible = list(codes), gui, [], 1.0

    def getBuildInformation(self) -> str:  # noqa: N802 (OpenCV's name)
        return f"General configuration\n  GUI:                           {self.gui}\n"

    def namedWindow(self, name: str, flags: int) -> None:  # noqa: N802
        pass

    def imshow(self, name: str, image: np.ndarray) -> None:
        self.shown.append(image)

    def setWindowTitle(self, name: str, title: str) -> None:  # noqa: N802
        pass

    def waitKeyEx(self, ms: int) -> int:  # noqa: N802
        return self.codes.pop(0) if self.codes else -1

    def getWindowProperty(self, name: str, prop: int) -> float:  # noqa: N802
        return self.visible

    def destroyWindow(self, name: str) -> None:  # noqa: N802
        pass


def test_opencv_window_is_chosen_when_cv2_has_a_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from dinoscope.seg.display import OpenCvDisplay, open_display, opencv_has_gui

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setitem(sys.modules, "cv2", FakeCv2([], gui="NONE"))
    assert not opencv_has_gui()
    fake = FakeCv2([ord("s"), 32, 65363, 65361, 65362, 65364, 27, -1, ord("x")])
    monkeypatch.setitem(sys.modules, "cv2", fake)
    display = open_display("v")
    assert isinstance(display, OpenCvDisplay)
    display.show(np.array([[[255, 0, 0]]], np.uint8), "title")
    assert fake.shown[0][0, 0].tolist() == [0, 0, 255]  # shown as BGR
    keys = [display.wait_key(10) for _ in range(9)]
    assert keys == ["s", "space", "right", "left", "up", "down", "escape", None, None]
    fake.visible = 0.0  # the user closed the window
    assert display.wait_key(10) == "q"
