"""What ``patches fit`` reads: clips of frames from images, videos, subject/clip trees and datasets.

Every source becomes a list of :class:`Clip` (the unit the reference tool counted): a video file, or the
images of one folder. In a folder source, a clip whose path below the root has at least two parts belongs to
the subject named by the first part (``subject/clip.mp4``, ``subject/clip/000001.jpg``); flat folders have no
subject. A labelled dataset (YOLO, COCO, VOC, MMPretrain, masks) is read with
:func:`~dinoscope.io.dataset.read_dataset`, its images grouped into clips by folder, optionally with their
boxes so that only the patches inside a box are used.

Sampling: ``stride`` keeps every k-th frame (or image) of a clip; ``frames_per_clip`` spreads N samples
uniformly over the kept ones (videos: every ``n // N``-th frame from the first, decoded straight through with
:func:`~dinoscope.io.frames.iter_frames`; frame folders: evenly spaced files); ``max_samples`` shares a
total evenly across the clips (an upper bound: short clips give fewer).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from dinoscope.errors import DatasetFormatError, VideoError
from dinoscope.io.images import is_image_file, list_files, read_image
from dinoscope.io.video_files import is_video_file

__all__ = ["Clip", "Sample", "SourceLayout", "find_clips", "iter_clip_samples", "plan_quotas", "select_shard"]

logger = logging.getLogger(__name__)

SourceLayout = Literal["auto", "folder", "dataset"]
_LABELLED = ("yolo", "coco", "voc", "mmpretrain", "masks")
_DATASET_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Clip:
    """A video or the images of one folder.

    Attributes:
        name: Path below the source root (posix), ``.`` for the root folder itself.
        subject: First folder of ``name`` when it has two or more parts, else ``""``.
        path: The video file, or the folder of the images (the image itself for a single-image source).
        video: The video file, or None for an image clip.
        images: The image files of an image clip, sorted.
        boxes: Per image, (K, 4) xyxy pixel boxes whose patches are used (dataset ``in_boxes`` mode), else None.
    """

    name: str
    subject: str = ""
    path: Path = Path()
    video: Path | None = None
    images: tuple[Path, ...] = ()
    boxes: tuple[np.ndarray, ...] | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def key(self) -> str:
        """Identity of the clip across fits (its absolute path), so merged counts of unique clips are exact."""
        return self.path.resolve().as_posix()


@dataclass
class Sample:
    """One decoded frame or image.

    Attributes:
        image: (H, W, 3) RGB uint8.
        clip: Index of its clip.
        boxes: (K, 4) xyxy pixel boxes to keep the patches of, or None for the whole frame.
    """

    image: np.ndarray
    clip: int
    boxes: np.ndarray | None = None


def find_clips(source: str | Path, layout: SourceLayout = "auto", in_boxes: bool = False) -> tuple[list[Clip], str]:
    """The clips of a source and the layout that was used.

    Args:
        source: An image or video file, a folder (images, videos, a ``subject/clip`` tree) or a dataset.
        layout: ``folder`` (walk files), ``dataset`` (read labels) or ``auto`` (dataset when a labelled
            format is detected, else folder).
        in_boxes: Dataset layout only: keep only the patches inside the boxes (images without a box are
            skipped).

    Returns:
        ``(clips, layout)`` with ``layout`` one of ``video``, ``image``, ``folder``, ``dataset``.

    Raises:
        DatasetFormatError: Missing source, nothing to read, or ``in_boxes`` without a labelled dataset.

    Example:
        >>> clips, layout = find_clips("faces/")  # faces/<subject>/<clip>.mp4  # doctest: +SKIP
        >>> clips[0].subject, clips[0].name  # doctest: +SKIP
        ('alice', 'alice/clip01.mp4')
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetFormatError(f"{path}: no such file or folder; expected an image, a video, a folder or a dataset")
    if layout == "auto":
        layout = "dataset" if _is_labelled_dataset(path) else "folder"
    if in_boxes and layout != "dataset":
        raise DatasetFormatError(
            f"{path}: --in-boxes needs a labelled dataset (YOLO, COCO, VOC, MMPretrain or masks); this source is "
            "read as plain files - drop --in-boxes or point at the dataset"
        )
    if layout == "dataset":
        return _dataset_clips(path, in_boxes), "dataset"
    if path.is_file():
        if is_video_file(path):
            return [Clip(path.name, path=path, video=path)], "video"
        if is_image_file(path):
            return [Clip(path.name, path=path, images=(path,))], "image"
        raise DatasetFormatError(f"{path}: neither an image nor a video file; expected a file, folder or dataset")
    clips = _folder_clips(path)
    if not clips:
        raise DatasetFormatError(f"{path}: no image or video files found (searched all sub-folders)")
    return clips, "folder"


def _is_labelled_dataset(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in _DATASET_SUFFIXES
    from dinoscope.io.dataset import detect_format

    try:
        return detect_format(path) in _LABELLED
    except DatasetFormatError:
        return False


def _subject(name: str) -> str:
    parts = name.split("/")
    return parts[0] if len(parts) >= 2 else ""


def _folder_clips(root: Path) -> list[Clip]:
    files = list_files(root, lambda f: is_video_file(f) or is_image_file(f))
    clips: list[Clip] = []
    by_folder: dict[Path, list[Path]] = {}
    for f in files:
        if is_video_file(f):
            name = f.relative_to(root).as_posix()
            clips.append(Clip(name, _subject(name), f, video=f))
        else:
            by_folder.setdefault(f.parent, []).append(f)
    for folder, images in by_folder.items():
        name = folder.relative_to(root).as_posix()
        clips.append(Clip(name, _subject(name), folder, images=tuple(sorted(images))))
    return sorted(clips, key=lambda c: c.name)


def _dataset_clips(path: Path, in_boxes: bool) -> list[Clip]:
    from dinoscope.io.dataset import read_dataset

    table = read_dataset(path)
    if (table.data["frame"] >= 0).any():
        raise DatasetFormatError(f"{path}: holds video frames; point patches fit at the videos instead")
    root = Path(table.root or (path if path.is_dir() else path.parent))
    images = table.images[table.images["error"] == ""]["source"].drop_duplicates().tolist()
    boxes: dict[str, np.ndarray] = {}
    if in_boxes:
        for source, g in table.data.groupby("source", sort=False):
            boxes[str(source)] = g[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)
        images = [s for s in images if s in boxes]
    by_folder: dict[str, list[str]] = {}
    for source in sorted(images):
        by_folder.setdefault(str(Path(source).parent.as_posix()), []).append(source)
    clips = []
    for folder, sources in sorted(by_folder.items()):
        clip_boxes = tuple(boxes[s] for s in sources) if in_boxes else None
        images_ = tuple(root / s for s in sources)
        clips.append(Clip(folder, _subject(folder), root / folder, images=images_, boxes=clip_boxes))
    if not clips:
        what = "images with boxes" if in_boxes else "readable images"
        raise DatasetFormatError(f"{path}: the dataset holds no {what}")
    return clips


def select_shard(clips: list[Clip], shard: str | None) -> list[Clip]:
    """The clips of shard ``"k/n"`` (every n-th clip from the k-th, 0-based), or all of them for None.

    Fits of the n shards of a source merge into exactly the fit of the whole source.

    Example:
        >>> [c.name for c in select_shard([Clip(str(i)) for i in range(5)], "1/2")]
        ['1', '3']
    """
    if shard is None:
        return clips
    k, n = (int(v) for v in shard.split("/"))
    if not 0 <= k < n:
        raise ValueError(f"shard must be k/n with 0 <= k < n; got {shard!r}")
    return clips[k::n]


def plan_quotas(n_clips: int, frames_per_clip: int | None, max_samples: int | None) -> list[int | None]:
    """Samples wanted from each clip (None: every kept frame).

    ``max_samples`` M is shared evenly over the n clips: clip ``i`` gets
    ``floor((i + 1) M / n + 1/2) - floor(i M / n + 1/2)`` (the shares sum to M, and the clips chosen when
    ``M < n`` are spread evenly over the list), capped by ``frames_per_clip``.

    Example:
        >>> plan_quotas(4, None, 6)
        [2, 1, 2, 1]
        >>> plan_quotas(5, None, 2)
        [0, 1, 0, 1, 0]
        >>> plan_quotas(3, 5, None)
        [5, 5, 5]
    """
    quotas: list[int | None] = [frames_per_clip] * n_clips
    if max_samples is not None:
        edges = [(2 * i * max_samples + n_clips) // (2 * n_clips) for i in range(n_clips + 1)]
        shares = [b - a for a, b in itertools.pairwise(edges)]
        quotas = [s if q is None else min(q, s) for q, s in zip(quotas, shares, strict=True)]
    return quotas


def iter_clip_samples(
    clip: Clip, index: int, quota: int | None, stride: int = 1, failures: dict[str, str] | None = None
) -> Iterator[Sample]:
    """Decode the samples of one clip (see the module docstring for the sampling rules).

    Unreadable images and videos are logged, recorded in ``failures`` (path -> reason) and skipped.

    Example:
        >>> clip = Clip("cam", video=Path("cam.mp4"))  # doctest: +SKIP
        >>> [s.image.shape for s in iter_clip_samples(clip, 0, quota=2)]  # doctest: +SKIP
        [(360, 640, 3), (360, 640, 3)]
    """
    failures = {} if failures is None else failures
    if quota == 0:
        return
    if clip.video is not None:
        yield from _video_samples(clip, index, quota, stride, failures)
        return
    positions = np.arange(0, len(clip.images), stride)
    if quota is not None and quota < len(positions):
        positions = positions[np.floor(np.arange(quota) * len(positions) / quota).astype(int)]
    for i in positions:
        path = clip.images[i]
        try:
            image = read_image(path)
        except DatasetFormatError as exc:
            failures[str(path)] = str(exc)
            logger.warning("%s", exc)
            continue
        yield Sample(image, index, None if clip.boxes is None else clip.boxes[i])


def _video_samples(
    clip: Clip, index: int, quota: int | None, stride: int, failures: dict[str, str]
) -> Iterator[Sample]:
    from dinoscope.io.frames import iter_frames
    from dinoscope.io.video_files import probe_video

    if clip.video is None:
        return
    step = stride
    try:
        if quota is not None:
            n_frames = probe_video(clip.video).n_frames
            n_kept = -(-n_frames // stride)
            step = max(1, n_kept // quota) * stride
        for frame in iter_frames(clip.video, stride=step, max_frames=quota):
            yield Sample(frame.image, index)
    except VideoError as exc:
        failures[str(clip.video)] = str(exc)
        logger.warning("%s", exc)
