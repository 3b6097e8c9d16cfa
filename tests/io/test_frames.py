"""Video probing (io.video_files) and sequential frame sampling (io.frames), with PyAV."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import MissingDependencyError, VideoError
from dinoscope.io.frames import Frame, iter_frames
from dinoscope.io.video_files import list_videos, probe_video

av = pytest.importorskip("av")

BOTTLE_FPS = 179 / 6  # 29.83
KEEP = {*range(0, 1189, 50), 299, 300, 301, 597, 895}  # frames whose pixels the tests compare


@dataclass
class Reference:
    """The bottle video decoded once with PyAV directly (no dinoscope code): times and a few frames."""

    times_s: list[float] = field(default_factory=list)
    images: dict[int, np.ndarray] = field(default_factory=dict)


@pytest.fixture(scope="module")
def full(bottle_video: Path) -> Reference:
    """Decode every frame of the bottle video once (under a second), converting only the frames in KEEP."""
    out = Reference()
    with av.open(str(bottle_video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            out.times_s.append(float(frame.time))
            if index in KEEP:
                out.images[index] = frame.to_ndarray(format="rgb24")
    return out


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 30, rotation: int | None = None, **options: str):
    """Encode RGB frames with whichever of libx264 / mpeg4 this PyAV build has."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


# --- the real video ---------------------------------------------------------------------------------------


def test_probe_reads_size_rate_count_and_codec(bottle_video: Path) -> None:
    info = probe_video(bottle_video)
    assert (info.width, info.height) == (640, 360)
    assert info.fps == pytest.approx(29.8, abs=0.05)
    assert info.n_frames == 1189 and info.n_frames_exact
    assert info.duration_s == pytest.approx(1189 / BOTTLE_FPS, abs=0.1)
    assert info.codec == "h264" and info.rotation_deg == 0


def test_every_frame_in_order_with_its_time_and_pixels(bottle_video: Path, full: Reference) -> None:
    assert len(full.times_s) == 1189
    frames = list(iter_frames(bottle_video, end_s=4.0))  # the first 120 frames
    assert [f.index for f in frames] == list(range(120))
    assert {f.image.shape for f in frames} == {(360, 640, 3)} and {f.image.dtype for f in frames} == {
        np.dtype(np.uint8)
    }
    times = np.array([f.time_s for f in frames])
    assert (np.diff(times) > 0).all()
    np.testing.assert_allclose(times, full.times_s[:120], atol=1e-9)
    np.testing.assert_allclose(times, np.arange(120) / BOTTLE_FPS, atol=1e-3)
    for index in (0, 50, 100):
        np.testing.assert_array_equal(frames[index].image, full.images[index])


def test_stride_yields_every_nth_frame_identical_to_a_full_decode(bottle_video: Path, full: Reference) -> None:
    frames = list(iter_frames(bottle_video, stride=100))
    assert [f.index for f in frames] == list(range(0, 1189, 100))  # 0, 100, ..., 1100: 12 frames
    times = np.array([f.time_s for f in frames])
    assert (np.diff(times) > 0).all()
    np.testing.assert_allclose(times, np.arange(0, 1189, 100) / BOTTLE_FPS, atol=1e-3)
    for f in frames:
        assert f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8
        np.testing.assert_array_equal(f.image, full.images[f.index])


def test_every_s_yields_the_first_frame_at_or_after_each_step(bottle_video: Path, full: Reference) -> None:
    frames = list(iter_frames(bottle_video, every_s=10))
    times = np.array(full.times_s)
    expected = [int(np.argmax(times >= 10 * k - 1e-6)) for k in range(4)]  # the video lasts 39.85 s
    assert [f.index for f in frames] == expected == [0, 299, 597, 895]
    for k, f in enumerate(frames):
        assert 10 * k <= f.time_s + 1e-6 < 10 * k + 1 / BOTTLE_FPS
        np.testing.assert_array_equal(f.image, full.images[f.index])


def test_keyframes_only_yields_the_keyframes_with_their_true_index(bottle_video: Path, full: Reference) -> None:
    frames = list(iter_frames(bottle_video, keyframes_only=True))
    assert [f.index for f in frames] == [0, 250, 500, 750, 1000]  # a keyframe every 250 frames in this file
    for f in frames:
        np.testing.assert_array_equal(f.image, full.images[f.index])


def test_start_end_and_max_frames(bottle_video: Path, full: Reference) -> None:
    first = list(iter_frames(bottle_video, start_s=10, max_frames=3))  # seeks once, to the keyframe before 10 s
    assert [f.index for f in first] == [299, 300, 301]
    for f in first:
        np.testing.assert_array_equal(f.image, full.images[f.index])
    window = list(iter_frames(bottle_video, start_s=10, end_s=12, every_s=0.5))
    assert [round(f.time_s, 2) for f in window] == [10.02, 10.53, 11.03, 11.53]
    assert list(iter_frames(bottle_video, max_frames=0)) == []


# --- synthetic videos -------------------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (128, 128, 128)]


def test_synthetic_video_round_trips_frames_colours_and_times(tmp_path: Path) -> None:
    colours = [COLOURS[i % len(COLOURS)] for i in range(30)]
    path = _write_video(tmp_path / "solid.mp4", [np.full((48, 64, 3), c, np.uint8) for c in colours], fps=10)
    info = probe_video(path)
    assert (info.width, info.height, info.n_frames, info.fps) == (64, 48, 30, 10.0)
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(30))
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(30) / 10, atol=1e-6)
    means = np.array([f.image.reshape(-1, 3).mean(axis=0) for f in frames])
    np.testing.assert_allclose(means, np.array(colours, dtype=float), atol=12)


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display rotation")
    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32], image[:, 32:] = (255, 0, 0), (0, 0, 255)  # red left half, blue right half
    path = _write_video(tmp_path / "phone.mp4", [image] * 3, rotation=90)  # shown turned 90° counter-clockwise
    info = probe_video(path)
    assert (info.width, info.height, info.rotation_deg) == (48, 64, 90)
    upright = next(iter(iter_frames(path))).image
    assert upright.shape == (64, 48, 3)
    np.testing.assert_allclose(upright[:28].reshape(-1, 3).mean(axis=0), [0, 0, 255], atol=12)  # blue on top
    np.testing.assert_allclose(upright[36:].reshape(-1, 3).mean(axis=0), [255, 0, 0], atol=12)


def test_truncated_in_the_middle_yields_the_frames_before_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(60)]
    whole = _write_video(tmp_path / "whole.mp4", noise, movflags="faststart")  # index first, so it still opens
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    reference = [f.image for f in iter_frames(whole)]
    with caplog.at_level(logging.WARNING, logger="dinoscope.io.frames"):
        frames = list(iter_frames(cut))
    assert 0 < len(frames) < 60
    for f in frames:
        np.testing.assert_array_equal(f.image, reference[f.index])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and "cut.mp4" in messages[0] and "truncated" in messages[0]


# --- errors -----------------------------------------------------------------------------------------------


def test_truncated_header_raises_a_clear_error(bottle_video: Path, tmp_path: Path) -> None:
    head = tmp_path / "head.mp4"
    head.write_bytes(bottle_video.read_bytes()[:20_000])  # this file keeps its index (moov) at the end
    with pytest.raises(VideoError, match=r"head\.mp4: cannot open as a video .*ffmpeg -i in\.mp4"):
        probe_video(head)
    with pytest.raises(VideoError, match=r"head\.mp4: cannot open as a video"):
        list(iter_frames(head))


def test_not_a_video_missing_empty_and_audio_only_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoError, match=r"notes\.mp4: cannot open as a video .*expected a complete video file"):
        probe_video(text)
    with pytest.raises(VideoError, match=r"notes\.mp4"):
        next(iter(iter_frames(text)))
    with pytest.raises(VideoError, match=r"missing\.mp4: video file not found"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: the file is empty"):
        probe_video(tmp_path / "empty.mp4")
    wav = tmp_path / "sound.wav"
    with av.open(str(wav), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        samples.sample_rate = 8000
        container.mux(stream.encode(samples))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match=r"sound\.wav: contains no video stream"):
        probe_video(wav)


def test_bad_sampling_arguments(bottle_video: Path) -> None:
    with pytest.raises(ValueError, match="stride"):
        next(iter_frames(bottle_video, stride=0))
    with pytest.raises(ValueError, match="every_s"):
        next(iter_frames(bottle_video, stride=2, every_s=1.0))
    with pytest.raises(ValueError, match="start_s"):
        next(iter_frames(bottle_video, start_s=5, end_s=2))


def test_missing_pyav_names_the_extra(bottle_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingDependencyError, match=r"dinoscope\[video\]"):
        probe_video(bottle_video)


def test_importing_the_frame_decoder_or_the_video_package_does_not_import_pyav() -> None:
    modules = "dinoscope.io.frames, dinoscope.io.video_files, dinoscope.io.videos, dinoscope.video"
    code = f"import sys, {modules}; assert 'av' not in sys.modules, 'av imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_list_videos_finds_every_extension_in_any_case(tmp_path: Path) -> None:
    for name in ["b.MP4", "a.mkv", "c.Mov", "notes.txt", "img.jpg", ".hidden.mp4", "sub/d.webm", ".cache/e.avi"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_videos(tmp_path)]
    assert found == ["a.mkv", "b.MP4", "c.Mov", "sub/d.webm"]
    assert [p.name for p in list_videos(tmp_path, recursive=False)] == ["a.mkv", "b.MP4", "c.Mov"]
    assert list_videos(tmp_path / "nowhere") == []


def test_frame_is_a_frozen_record() -> None:
    frame = Frame(index=0, time_s=0.0, image=np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(AttributeError):
        frame.index = 1  # type: ignore[misc]


class _BreaksAfter:
    """A stand-in container whose decoder fails after ``n_good`` frames, like a damaged stream."""

    def __init__(self, n_good: int) -> None:
        self.n_good = n_good

    def decode(self, stream: object):
        for i in range(self.n_good):
            yield type("F", (), {"time": i / 10})()
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")


def test_a_decoding_error_midway_warns_with_the_frame_and_keeps_earlier_frames(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dinoscope.io.frames import _decode

    failed: list[str] = []
    with caplog.at_level(logging.WARNING, logger="dinoscope.io.frames"):
        frames = list(_decode(Path("cam.mp4"), _BreaksAfter(5), None, failed))  # type: ignore[arg-type]
    assert len(frames) == 5 and failed == ["Invalid data found when processing input"]
    assert "cam.mp4: decoding stopped at frame 5, after 0.40 s (Invalid data" in caplog.records[-1].getMessage()
    with pytest.raises(VideoError, match=r"cam\.mp4: no frame can be decoded .*ffmpeg -i"):
        list(_decode(Path("cam.mp4"), _BreaksAfter(0), None, []))  # type: ignore[arg-type]
