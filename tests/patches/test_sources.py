"""Sources of patches fit: layouts (file, folder, subject/clip tree, dataset), sampling, preprocessing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dinoscope.errors import DatasetFormatError
from dinoscope.patches._stream import iter_input_batches, patch_masks, prepare_input
from dinoscope.patches.sources import Clip, Sample, find_clips, iter_clip_samples, plan_quotas, select_shard
from tests.patches.helpers import noise_frames, write_image
from tests.video.helpers import write_video

pytest.importorskip("av")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """faces/<subject>/<clip>: alice has two video clips, bob a video and a frame folder, plus a flat video."""
    root = tmp_path_factory.mktemp("faces")
    write_video(root / "alice" / "c1.mp4", noise_frames(12, seed=1))
    write_video(root / "alice" / "c2.mp4", noise_frames(5, seed=2))
    write_video(root / "bob" / "c1.mp4", noise_frames(7, seed=3))
    for i, frame in enumerate(noise_frames(9, seed=4)):
        write_image(root / "bob" / "c2" / f"{i:04d}.png", frame)
    write_video(root / "loose.mp4", noise_frames(3, seed=5))
    return root


def test_subject_clip_tree(tree: Path) -> None:
    clips, layout = find_clips(tree)
    assert layout == "folder"
    assert [(c.subject, c.name) for c in clips] == [
        ("alice", "alice/c1.mp4"),
        ("alice", "alice/c2.mp4"),
        ("bob", "bob/c1.mp4"),
        ("bob", "bob/c2"),
        ("", "loose.mp4"),
    ]
    assert len(clips[3].images) == 9 and clips[3].video is None
    assert clips[3].key == (tree / "bob" / "c2").resolve().as_posix()
    assert [c.name for c in select_shard(clips, "1/2")] == ["alice/c2.mp4", "bob/c2"]


def test_single_files(tree: Path) -> None:
    clips, layout = find_clips(tree / "alice" / "c1.mp4")
    video = tree / "alice" / "c1.mp4"
    assert layout == "video" and clips == [Clip("c1.mp4", path=video, video=video)]
    clips, layout = find_clips(tree / "bob" / "c2" / "0003.png")
    assert layout == "image" and clips[0].images == (tree / "bob" / "c2" / "0003.png",)


def test_frames_per_clip_spreads_uniformly(tree: Path) -> None:
    video = Clip("c1", video=tree / "alice" / "c1.mp4")  # 12 frames
    frames = list(iter_clip_samples(video, 0, quota=4))
    reference = noise_frames(12, seed=1)
    # every 12 // 4 = 3rd frame: 0, 3, 6, 9 (compared by their closest source frame: lossy codec)
    picked = [int(np.argmin([np.abs(s.image.astype(int) - r).mean() for r in reference])) for s in frames]
    assert picked == [0, 3, 6, 9]
    folder = find_clips(tree / "bob" / "c2")[0][0]  # 9 images
    assert [len(list(iter_clip_samples(folder, 0, q))) for q in (None, 4, 20)] == [9, 4, 9]
    assert len(list(iter_clip_samples(folder, 0, None, stride=4))) == 3  # images 0, 4, 8


def test_quotas_share_max_samples_evenly() -> None:
    assert plan_quotas(4, None, 6) == [2, 1, 2, 1]
    assert plan_quotas(5, None, 2) == [0, 1, 0, 1, 0]
    assert plan_quotas(5, None, 1) == [0, 0, 1, 0, 0]
    assert sum(plan_quotas(7, None, 100)) == 100
    assert plan_quotas(3, 2, 100) == [2, 2, 2]
    assert plan_quotas(2, None, None) == [None, None]


def test_unreadable_files_are_skipped_and_recorded(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", noise_frames(1)[0])
    (tmp_path / "b.png").write_bytes(b"not an image")
    (tmp_path / "v.mp4").write_bytes(b"not a video")
    clips, _ = find_clips(tmp_path)
    failures: dict[str, str] = {}
    samples = [s for i, c in enumerate(clips) for s in iter_clip_samples(c, i, None, 1, failures)]
    assert len(samples) == 1
    assert set(failures) == {str(tmp_path / "b.png"), str(tmp_path / "v.mp4")}


def test_dataset_layout_and_boxes(ppe_dir: Path) -> None:
    clips, layout = find_clips(ppe_dir, in_boxes=True)
    assert layout == "dataset" and [c.name for c in clips] == ["train/images"]
    clip = clips[0]
    assert clip.boxes is not None and len(clip.boxes) == len(clip.images) and clip.boxes[0].shape[1] == 4
    first = next(iter_clip_samples(clip, 0, quota=1))
    assert first.boxes is not None and len(first.boxes) == len(clip.boxes[0])


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no such file or folder"):
        find_clips(tmp_path / "missing")
    with pytest.raises(DatasetFormatError, match="no image or video files"):
        find_clips(tmp_path)
    write_image(tmp_path / "x.png", noise_frames(1)[0])
    with pytest.raises(DatasetFormatError, match="--in-boxes needs a labelled dataset"):
        find_clips(tmp_path, in_boxes=True)


def test_prepare_input_squash_and_center() -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    image[:, 320:] = 255  # right half white
    x, geo = prepare_input(image, 28, "squash")
    assert x.shape == (28, 28, 3) and geo.window(28) == (0, 0, 640, 360)
    assert x[:, :13].max() == 0 and x[:, 15:].min() == 255
    x, geo = prepare_input(image, 36, "center")  # 360 x 640 -> 36 x 64, central 36 columns
    assert x.shape == (36, 36, 3) and geo.window(36) == (140, 0, 500, 360)


def test_patch_masks_select_patch_centres_inside_boxes() -> None:
    masks = patch_masks([np.array([[0.0, 0.0, 20.0, 10.0]]), None], (2, 2), 28)
    assert masks is not None
    assert masks[0].tolist() == [[True, False], [False, False]] and masks[1].all()
    assert patch_masks([None, None], (2, 2), 28) is None


def test_input_batches_keep_order_and_bound_size() -> None:
    def job(k: int) -> Callable[[], Iterator[Sample]]:
        return lambda: (Sample(np.full((10, 12, 3), k, np.uint8), k) for _ in range(3))

    batches = list(iter_input_batches([job(k) for k in range(3)], 14, 4))
    assert [len(b) for b in batches] == [4, 4, 1]
    assert np.concatenate([b.clips for b in batches]).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert batches[0].images.shape == (4, 14, 14, 3) and batches[0][1:3].images.shape == (2, 14, 14, 3)


def test_input_batches_raise_producer_errors() -> None:
    def bad() -> Iterator[Sample]:
        yield Sample(np.zeros((4, 4, 3), np.uint8), 0)
        raise DatasetFormatError("broken.png: cannot decode")

    with pytest.raises(DatasetFormatError, match=r"broken\.png"):
        list(iter_input_batches([bad], 14, 8, workers=2))
