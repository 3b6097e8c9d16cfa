"""Writing MP4 videos frame by frame with PyAV (H.264 where the wheel has libx264, else MPEG-4 Part 2).

The file is written as ``<stem>.partial.mp4`` and renamed when complete, so a killed run never leaves a
truncated video under the final name. Each written frame is one output frame: the frame count is kept.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from dinoscope._deps import require

__all__ = ["Mp4Writer"]


class Mp4Writer:
    """H.264 (yuv420p) MP4 through PyAV, one call of :meth:`write` per frame.

    Args:
        path: The ``.mp4`` to write.
        fps: Frame rate (a ``Fraction`` keeps 29.97 exact).
        width: Frame width in pixels (odd sides are padded by one edge pixel: yuv420p needs even sides).
        height: Frame height in pixels.

    Example:
        >>> writer = Mp4Writer(Path("out.mp4"), Fraction(30), 640, 360)  # doctest: +SKIP
        >>> writer.write(rgb)  # doctest: +SKIP
        >>> writer.close(keep=True)  # doctest: +SKIP
    """

    def __init__(self, path: Path, fps: Fraction, width: int, height: int) -> None:
        av = require("av", "video", "writing MP4 videos")
        self.path, self.tmp = path, path.with_name(f"{path.stem}.partial{path.suffix}")
        self.width, self.height = width + width % 2, height + height % 2  # yuv420p needs even sides
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "18", "preset": "veryfast"}
        self._av = av

    def write(self, rgb: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame (edge-padded to even sides)."""
        if rgb.shape[:2] != (self.height, self.width):
            rgb = np.pad(rgb, ((0, self.height - rgb.shape[0]), (0, self.width - rgb.shape[1]), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self, keep: bool) -> None:
        """Flush and close; ``keep`` renames the partial file to its final name, else it is deleted."""
        try:
            if keep:
                for packet in self.stream.encode():
                    self.container.mux(packet)
        finally:
            self.container.close()
        if keep:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
