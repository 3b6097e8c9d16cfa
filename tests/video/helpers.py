"""Synthetic videos and a tiny YOLOv8-layout ONNX detector with planted boxes, for the video pipeline tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

#: The two same-class objects of :func:`write_blocks_video`, in frame pixels (x1, y1, x2, y2).
RED_BOX = (20.0, 30.0, 60.0, 70.0)
BLUE_BOX = (100.0, 30.0, 140.0, 70.0)
BLOCKS_HW = (120, 160)
#: Input side of :func:`write_yolov8_onnx` models.
V8_INPUT = 64


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Encode RGB frames with whichever of libx264 / mpeg4 this PyAV build has."""
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_blocks_video(path: Path, n_frames: int = 10, seed: int = 0) -> Path:
    """A grey video with a red and a blue square (the same class) in every frame; a little noise per frame."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        image = np.full((*BLOCKS_HW, 3), 128, np.uint8)
        image = np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)
        for box, colour in ((RED_BOX, (220, 30, 30)), (BLUE_BOX, (30, 30, 220))):
            x1, y1, x2, y2 = (int(v) for v in box)
            image[y1:y2, x1:x2] = colour
        frames.append(image)
    return write_video(path, frames)


def _to_input(box: tuple[float, float, float, float]) -> list[float]:
    """Frame box -> (cx, cy, w, h) in the centred letterbox of a BLOCKS_HW frame into V8_INPUT."""
    h, w = BLOCKS_HW
    ratio = min(V8_INPUT / h, V8_INPUT / w)
    top = round((V8_INPUT - round(h * ratio)) / 2 - 0.1)
    left = round((V8_INPUT - round(w * ratio)) / 2 - 0.1)
    x1, y1, x2, y2 = box[0] * ratio + left, box[1] * ratio + top, box[2] * ratio + left, box[3] * ratio + top
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


#: Planted candidates (cx, cy, w, h in input pixels) and class scores for classes (cat, block, bird):
#: the red and blue blocks as class 1 (0.9, 0.8), a weaker copy of the red one (suppressed by NMS), a
#: low-score bird (under the threshold) and a cat box.
PLANTED = [
    (_to_input(RED_BOX), [0.0, 0.9, 0.0]),
    (_to_input(BLUE_BOX), [0.0, 0.8, 0.1]),
    ([x + 0.5 for x in _to_input(RED_BOX)], [0.0, 0.6, 0.0]),
    ([32.0, 50.0, 10.0, 6.0], [0.0, 0.0, 0.1]),
    ([10.0, 50.0, 8.0, 8.0], [0.7, 0.0, 0.0]),
]


def write_yolov8_onnx(path: Path, names: str | None = "{0: 'cat', 1: 'block', 2: 'bird'}") -> Path:
    """A YOLOv8-layout ONNX (1, 4 + 3, 100) that outputs :data:`PLANTED` whatever the image, batch fixed at 1."""
    import onnx
    import torch

    planted = torch.zeros(4 + 3, 100)  # 100 candidates (real exports have thousands); the rest score 0
    planted[:, : len(PLANTED)] = torch.tensor([box + scores for box, scores in PLANTED], dtype=torch.float32).T

    class Planted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("planted", planted[None])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            level = x.reshape(1, 3, -1).mean(-1).sum(-1, keepdim=True)  # a Reshape with the batch in its shape
            return self.planted + 0.0 * level[:, :, None]

    torch.onnx.export(
        Planted().eval(),
        (torch.zeros(1, 3, V8_INPUT, V8_INPUT),),
        str(path),
        dynamo=False,
        input_names=["images"],
        output_names=["output0"],
    )
    if names is not None:
        model = onnx.load(str(path))
        entry = model.metadata_props.add()
        entry.key, entry.value = "names", names
        onnx.save(model, str(path))
    return path
