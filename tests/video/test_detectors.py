"""Detector backends: YOLOX-Nano for real, the YOLOv8 decoder on planted boxes, the .pt install hint."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import BackendError, ConfigError, MissingDependencyError
from dinoscope.geometry import box_iou
from dinoscope.io import iter_frames
from dinoscope.io.class_names import read_class_names
from dinoscope.video.detectors import create_detector, letterbox, resolve_classes
from tests.video.helpers import BLOCKS_HW, BLUE_BOX, RED_BOX, write_yolov8_onnx

pytest.importorskip("onnxruntime")
YOLOX = Path(__file__).resolve().parents[2].parent / "shared/models/yolox-nano/yolox_nano.onnx"
#: The three water bottles in the first frame of the bottle video (checked by eye), x1 y1 x2 y2.
BOTTLES_FRAME0 = np.array([[58, 110, 123, 316], [286, 109, 344, 316], [509, 106, 571, 318]], dtype=float)


@pytest.fixture(scope="module")
def yolox():
    if not YOLOX.is_file():
        pytest.skip("../shared/models/yolox-nano is not available")
    return create_detector(YOLOX, conf=0.25)


@pytest.mark.slow
def test_yolox_nano_finds_the_three_bottles_batched_like_one_by_one(yolox, bottle_video: Path) -> None:
    assert yolox.description["family"] == "yolox" and yolox.batched  # the fixed batch-1 graph was made dynamic
    assert yolox.rect  # and its height and width: 640x360 frames run at 416x256
    assert len(yolox.class_names) == 80 and yolox.class_names[39] == "bottle"  # coco_classes.txt beside it
    frames = [f.image for f in iter_frames(bottle_video, stride=300)]  # frames 0, 300, 600, 900
    batched = yolox.detect(frames)
    yolox.batched = False
    try:
        single = yolox.detect(frames)
    finally:
        yolox.batched = True
    first = batched[0][batched[0].class_id == 39]
    order = np.argsort(first.xyxy[:, 0])
    np.testing.assert_allclose(first.xyxy[order], BOTTLES_FRAME0, atol=4)
    assert (first.score > 0.8).all()
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.score, b.score, atol=1e-5)
        assert a.class_id.tolist() == b.class_id.tolist()
    assert [int((d.class_id == 39).sum()) for d in batched] == [3, 2, 1, 3]  # bottles taken away, then back
    yolox.rect = False
    try:
        square = yolox.detect(frames)  # the 416x416 letterbox the model was exported for
    finally:
        yolox.rect = True
    for a, b in zip(batched, square, strict=True):  # the same boxes, matched by overlap
        strong = a.score > 0.5
        iou = box_iou(a.xyxy[strong], b.xyxy)
        match = iou.argmax(axis=1)
        assert (iou.max(axis=1) > 0.9).all() and (a.class_id[strong] == b.class_id[match]).all()
        np.testing.assert_allclose(a.score[strong], b.score[match], atol=0.1)


def test_yolov8_layout_decodes_planted_boxes_in_frame_pixels(tmp_path: Path) -> None:
    detector = create_detector(write_yolov8_onnx(tmp_path / "v8.onnx"), conf=0.25)
    assert detector.description["family"] == "yolov8" and detector.batched
    assert detector.class_names == ("cat", "block", "bird")  # from the 'names' metadata
    frame = np.zeros((*BLOCKS_HW, 3), np.uint8)
    [found, again] = detector.detect([frame, frame])
    # red block (0.9), blue block (0.8), cat (0.7); the weaker red copy is suppressed, the bird is under conf
    assert found.class_id.tolist() == [1, 1, 0]
    np.testing.assert_allclose(found.score, [0.9, 0.8, 0.7], atol=1e-6)
    np.testing.assert_allclose(found.xyxy[:2], [RED_BOX, BLUE_BOX], atol=1e-3)
    np.testing.assert_allclose(again.xyxy, found.xyxy)


def test_names_file_overrides_and_must_cover_every_class(tmp_path: Path) -> None:
    model = write_yolov8_onnx(tmp_path / "v8.onnx", names=None)
    (tmp_path / "names.yaml").write_text("names: {0: a, 1: b, 2: c}\n")
    assert create_detector(model, names=tmp_path / "names.yaml").class_names == ("a", "b", "c")
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(BackendError, match=r"outputs 3 classes but 2 class names"):
        create_detector(model, names=tmp_path / "two.txt")
    assert read_class_names(tmp_path / "two.txt") == ("a", "b")


def test_unsupported_files_and_layouts_are_clear_errors(tmp_path: Path) -> None:
    import torch

    with pytest.raises(BackendError, match=r"unknown detector file type '\.tflite'"):
        create_detector(tmp_path / "m.tflite")
    with pytest.raises(BackendError, match="detector file not found"):
        create_detector(tmp_path / "missing.onnx")
    torch.onnx.export(torch.nn.Flatten(), (torch.zeros(1, 3, 8, 8),), str(tmp_path / "flat.onnx"), dynamo=False)
    with pytest.raises(BackendError, match=r"output shape \[1, 192\] is not a supported detector layout"):
        create_detector(tmp_path / "flat.onnx")


def test_pt_without_ultralytics_names_the_extra_and_the_onnx_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    (tmp_path / "best.pt").write_bytes(b"not loaded")
    with pytest.raises(MissingDependencyError, match=r'pip install "dinoscope\[ultralytics\]".*yolo export'):
        create_detector(tmp_path / "best.pt")


def test_classes_by_name_or_id_and_unknown_names_suggest() -> None:
    names = ["person", "bottle", "cup"]
    assert resolve_classes(["Bottle", "2"], names) == [1, 2]
    assert resolve_classes(None, names) is None
    with pytest.raises(ConfigError, match=r"'botle' \(did you mean bottle\?\)"):
        resolve_classes(["botle"], names)


@pytest.mark.parametrize("center", [False, True])
def test_letterbox_maps_boxes_back_to_the_frame(center: bool) -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    canvas, box = letterbox(frame, (416, 416), center=center)
    assert canvas.shape == (416, 416, 3) and box.ratio == pytest.approx(0.65)
    assert (box.pad_x, box.pad_y) == ((0.0, 91.0) if center else (0.0, 0.0))
    xyxy = np.array([[10.0, 20.0, 300.0, 350.0]])
    inside = xyxy * box.ratio + [box.pad_x, box.pad_y, box.pad_x, box.pad_y]
    np.testing.assert_allclose(box.to_frame(inside, 640, 360), xyxy)
    assert canvas[0, 0].tolist() == ([114, 114, 114] if center else [0, 0, 0])
