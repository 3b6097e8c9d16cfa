"""``dinoscope video`` end to end through the real CLI: YOLOX-Nano on the bottle video, two same-class objects
in one frame, a corrupted video, an interrupted and resumed run, a refused overwrite, a folder of images."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.embed.engine import embed_table
from dinoscope.embed.registry import _REGISTRY, register_model
from dinoscope.embed.store import EmbeddingStore
from dinoscope.table import ObjectTable
from tests.embed.fakes import TinyCNN
from tests.video.helpers import BLUE_BOX, RED_BOX, write_blocks_video, write_yolov8_onnx

pytest.importorskip("av")
pytest.importorskip("onnxruntime")
runner = CliRunner()
YOLOX = Path(__file__).resolve().parents[2].parent / "shared/models/yolox-nano/yolox_nano.onnx"
BOTTLE_FPS = 179 / 6
#: Set by a test to make the embedding model raise KeyboardInterrupt after this many batches.
INTERRUPT_AFTER: list[int | None] = [None]


def create_tiny(weights: str, **options: object) -> TinyCNN:
    """Registry factory: TinyCNN, interrupted after ``INTERRUPT_AFTER[0]`` batches when set."""
    return TinyCNN(interrupt_after=INTERRUPT_AFTER[0])


@pytest.fixture(autouse=True)
def tiny_model():
    register_model("tiny-cnn", "tests.video.test_video_cli:create_tiny", "seed0", "test model")
    yield
    _REGISTRY.pop("tiny-cnn", None)
    INTERRUPT_AFTER[0] = None


def _invoke(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _text(output: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(output.split())


def _vectors(run: Path) -> tuple[ObjectTable, np.ndarray, EmbeddingStore]:
    table = ObjectTable.read_parquet(run / "objects.parquet")
    store = EmbeddingStore.open(run / "embeddings")
    assert list(store.object_ids) == list(table.object_id)
    return table, store.as_array(), store


def _decoded_vectors(table: ObjectTable, tmp: Path) -> np.ndarray:
    """The same objects embedded the usual way, decoding their frames again (no in-memory crops)."""
    store = EmbeddingStore.create(tmp, "decoded", list(table.object_id), 8, {})
    embed_table(table, TinyCNN(), store, num_workers=0)
    return store.as_array()


@pytest.mark.slow
def test_yolox_nano_on_the_bottle_video(bottle_video: Path, tmp_path: Path) -> None:
    if not YOLOX.is_file():
        pytest.skip("../shared/models/yolox-nano is not available")
    result = _invoke(
        "video", bottle_video, "--detector", YOLOX, "--classes", "bottle", "--stride", 20, "--max-frames", 15,
        "--per-class", 12, "--model", "tiny-cnn", "--precision", "fp32", "--map-method", "pca",
        "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "yolox detector: 15 frames" in _text(result.stdout) and "12 objects sampled" in _text(result.stdout)
    table, vectors, store = _vectors(tmp_path / "run")
    d = table.data
    assert table.class_names == ("bottle",) and len(d) == 12 and store.valid_mask().all()
    assert set(d["source"]) == {"bottle-detection.mp4"} and (d["frame"] % 20 == 0).all() and d["frame"].max() <= 280
    np.testing.assert_allclose(d["time_s"], d["frame"] / BOTTLE_FPS, atol=1e-3)
    assert (
        (d["confidence"] >= 0.25).all() and (d["origin"] == "prediction").all() and (d["detector_class_id"] == 39).all()
    )
    assert d["frame"].iloc[0] == 0 and d["frame"].iloc[-1] >= 200  # spread over the whole stretch
    detections = pd.read_parquet(tmp_path / "run/detections.parquet")
    assert detections["sampled"].sum() == 12 and set(detections.loc[detections["sampled"], "object_id"]) == set(
        d["object_id"]
    )
    assert len(detections) >= 15 * 2 and detections["duplicate"].any()  # static bottles repeat
    np.testing.assert_allclose(vectors, _decoded_vectors(table, tmp_path / "decoded"), atol=1e-5)
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["classes"]["bottle"]["n"] == 12


def test_two_same_class_objects_in_one_frame_are_both_kept(tmp_path: Path) -> None:
    write_blocks_video(tmp_path / "clips/blocks.mp4", n_frames=6)
    detector = write_yolov8_onnx(tmp_path / "v8.onnx")
    result = _invoke(
        "video", tmp_path / "clips", "-d", detector, "--classes", "block", "--per-class", 0, "--no-dedup", "--model",
        "tiny-cnn", "--precision", "fp32", "--no-analyze", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table, vectors, _ = _vectors(tmp_path / "run")
    d = table.data
    assert len(d) == 12 and d.groupby("frame").size().tolist() == [2] * 6  # red and blue block, every frame
    assert d["object_id"].is_unique and (d["class_name"] == "block").all()
    frame3 = d[d["frame"] == 3]
    np.testing.assert_allclose(frame3[["x1", "y1", "x2", "y2"]].to_numpy(), [RED_BOX, BLUE_BOX], atol=1e-3)
    red, blue = vectors[frame3.index.to_numpy()]
    assert float(red @ blue) < 0.999  # two crops, two different vectors: nothing overwritten
    np.testing.assert_allclose(vectors, _decoded_vectors(table, tmp_path / "decoded"), atol=1e-5)


def test_a_corrupted_video_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    write_blocks_video(tmp_path / "clips/good.mp4", n_frames=4)
    (tmp_path / "clips/broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    detector = write_yolov8_onnx(tmp_path / "v8.onnx")
    common = ["-d", detector, "--model", "tiny-cnn", "--no-analyze", "--cache-dir", tmp_path / "cache"]
    result = _invoke("video", tmp_path / "clips", *common, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "not read broken.mp4" in result.stdout and "cannot open as a video" in _text(result.stdout)
    table = ObjectTable.read_parquet(tmp_path / "run/objects.parquet")
    assert set(table.data["source"]) == {"good.mp4"}
    images = table.images.set_index("source")
    assert images.loc["good.mp4", "error"] == "" and "cannot open" in images.loc["broken.mp4", "error"]
    alone = _invoke("video", tmp_path / "clips/broken.mp4", *common, "--out", tmp_path / "run2")
    assert alone.exit_code == 1
    lines = alone.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.mp4: cannot open as a video" in lines[0] and "ffmpeg -i" in lines[0]


def test_interrupted_embedding_resumes_without_detecting_again(tmp_path: Path) -> None:
    write_blocks_video(tmp_path / "blocks.mp4", n_frames=8)
    args = [
        "video", tmp_path / "blocks.mp4", "-d", write_yolov8_onnx(tmp_path / "v8.onnx"), "--per-class", 0,
        "--no-dedup", "--model", "tiny-cnn", "--batch-size", 4, "--no-analyze", "--cache-dir", tmp_path / "cache",
        "--out", tmp_path / "run",
    ]  # fmt: skip
    INTERRUPT_AFTER[0] = 2
    interrupted = _invoke(*args)
    assert interrupted.exit_code == 1 and "--resume" in interrupted.stderr
    INTERRUPT_AFTER[0] = None
    resumed = _invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "detection: already complete" in resumed.stdout and "8 already done" in _text(resumed.stdout)
    table, vectors, store = _vectors(tmp_path / "run")
    assert len(table) == 24 and store.valid_mask().all()
    np.testing.assert_allclose(vectors, _decoded_vectors(table, tmp_path / "decoded"), atol=2e-3)


def test_interrupted_detection_resumes_from_the_finished_videos(tmp_path: Path, monkeypatch) -> None:
    import dinoscope.video.detectors as detectors

    for seed, name in enumerate(("a.mp4", "b.mp4")):
        write_blocks_video(tmp_path / "clips" / name, n_frames=5, seed=seed)
    onnx = write_yolov8_onnx(tmp_path / "v8.onnx")
    args = ["video", tmp_path / "clips", "-d", onnx, "--per-class", 3, "--model", "tiny-cnn", "--no-analyze"]
    reference = _invoke(*args, "--no-cache", "--out", tmp_path / "reference")
    assert reference.exit_code == 0, reference.output
    real = detectors.create_detector
    calls = []

    def interrupting(*a: object, **kw: object) -> object:
        det = real(*a, **kw)
        detect = det.detect

        def detect_then_stop(frames):
            calls.append(len(frames))
            if len(calls) > 1:  # the first video (5 frames, one batch) is done, the second is interrupted
                raise KeyboardInterrupt
            return detect(frames)

        det.detect = detect_then_stop
        return det

    monkeypatch.setattr(detectors, "create_detector", interrupting)
    run = ["--no-cache", "--out", tmp_path / "run"]
    assert _invoke(*args, *run).exit_code == 130
    monkeypatch.setattr(detectors, "create_detector", real)
    resumed = _invoke(*args, *run, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "1 video(s) from the checkpoint" in _text(resumed.stdout)
    a = ObjectTable.read_parquet(tmp_path / "reference/objects.parquet").data
    b = ObjectTable.read_parquet(tmp_path / "run/objects.parquet").data
    assert b["object_id"].tolist() == a["object_id"].tolist()  # the same selection as without interruption
    np.testing.assert_allclose(_vectors(tmp_path / "run")[1], _vectors(tmp_path / "reference")[1], atol=1e-6)


def test_an_existing_run_is_refused_then_overwritten(tmp_path: Path) -> None:
    write_blocks_video(tmp_path / "blocks.mp4", n_frames=3)
    args = [
        "video", tmp_path / "blocks.mp4", "-d", write_yolov8_onnx(tmp_path / "v8.onnx"), "--model", "tiny-cnn",
        "--no-analyze", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run",
    ]  # fmt: skip
    assert _invoke(*args).exit_code == 0
    before = (tmp_path / "run/objects.parquet").stat().st_mtime_ns
    refused = _invoke(*args)
    assert refused.exit_code == 1 and "--resume" in refused.stderr and "--overwrite" in refused.stderr
    assert (tmp_path / "run/objects.parquet").stat().st_mtime_ns == before
    again = _invoke(*args, "--overwrite")
    assert again.exit_code == 0, again.output


def test_detector_over_a_folder_of_images(bottle_video: Path, tmp_path: Path) -> None:
    if not YOLOX.is_file():
        pytest.skip("../shared/models/yolox-nano is not available")
    from dinoscope.io import iter_frames

    for frame in iter_frames(bottle_video, stride=300):  # frames 0, 300, 600, 900: 3, 2, 1, 3 bottles (by eye)
        Image.fromarray(frame.image).save(tmp_path / f"shot{frame.index}.png")
    shutil.copy(tmp_path / "shot0.png", tmp_path / "copy.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = _invoke(
        "video", tmp_path, "-d", YOLOX, "--classes", "bottle", "--model", "tiny-cnn", "--no-analyze",
        "--cache-dir", tmp_path / "cache", "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    d = ObjectTable.read_parquet(tmp_path / "run/objects.parquet").data
    counts = d.groupby("source").size().to_dict()
    assert counts == {"copy.png": 3, "shot0.png": 3, "shot300.png": 2, "shot600.png": 1, "shot900.png": 3}
    assert (d["frame"] == -1).all() and d["time_s"].isna().all() and d["object_id"].is_unique
    assert "not read broken.png" in result.stdout


def test_pt_detector_without_ultralytics_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    (tmp_path / "best.pt").write_bytes(b"checkpoint")
    write_blocks_video(tmp_path / "blocks.mp4", n_frames=2)
    result = _invoke(
        "video", tmp_path / "blocks.mp4", "-d", tmp_path / "best.pt", "--model", "tiny-cnn", "--out", tmp_path / "run"
    )
    assert result.exit_code == 1
    assert 'pip install "dinoscope[ultralytics]"' in result.stderr and "format=onnx" in _text(result.stderr)
