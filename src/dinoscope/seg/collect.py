"""``seg collect VIDEO --out DIR``: frames to label, chosen in a window or taken headless from videos.

- neither option: the interactive window (:mod:`dinoscope.seg.collect_window`): ``s`` saves the frame shown,
  space pauses, arrows step, ``q`` quits; it needs a display;
- ``--every-s T``: one frame per T seconds (the first frame at or after each step);
- ``--diverse N``: N frames that cover the video's appearance: candidates one per ``every_s`` seconds (default
  1 s) are embedded (``--model``, offline EfficientNet-Lite0 by default) and chosen by k-center greedy
  (Gonzalez 1985; the core-set selection of Sener & Savarese 2018): each pick is the candidate farthest from
  every frame picked so far. A candidate closer to the picked set than the median distance between
  consecutive candidates (how much a video changes in one step) is a near-duplicate: selection stops there,
  so a static video yields fewer than N frames. The threshold is recorded in ``collect.json``.

``--roi`` crops every saved frame to a polygon and ``--grayscale`` saves it in grayscale
(:mod:`dinoscope.seg.roi`). Output (the layout ``seg prepare`` reads; nothing is overwritten without
``--overwrite``)::

    DIR/images/<video>_<frame>.png     lossless frames (the ROI crop, grayscale if asked)
    DIR/meta/<video>_<frame>.json      video, frame, time_s, selected_by, roi, box, frame_size, size, grayscale:
                                       prepare groups by video
    DIR/raw/<video>_<frame>.png        the colour crop (with --roi or --grayscale)
    DIR/roi_masks/<video>_<frame>.png  0/255 polygon of the crop (with --roi)
    DIR/previews/<video>_<frame>.jpg   the whole frame, ROI outlined (with --roi)
    DIR/collect.json                   settings, thresholds, the frames chosen
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dinoscope.embed.registry import create_backend, resolve_model
from dinoscope.embed.runtime import place_backend
from dinoscope.errors import ConfigError, DatasetFormatError
from dinoscope.io.frames import iter_frames
from dinoscope.io.video_files import is_video_file, list_videos, probe_video
from dinoscope.outputs import prepare_output_dir
from dinoscope.progress import track
from dinoscope.seg.roi import cut_frame, parse_roi, roi_box

if TYPE_CHECKING:
    from dinoscope.io.frames import Frame
    from dinoscope.seg.config import SegCollectConfig

__all__ = ["CollectResult", "collect_frames", "save_frame", "select_k_center"]

_DEFAULT_STEP_S = 1.0
_EMBED_BATCH = 32


@dataclass
class CollectResult:
    """Frames written by ``seg collect``: (video, frame index, time) each, and the duplicate threshold used."""

    out: Path
    frames: list[tuple[str, int, float]] = field(default_factory=list)
    n_candidates: int = 0
    duplicate_distance: float | None = None


def select_k_center(vectors: np.ndarray, k: int, min_distance: float = 0.0) -> list[int]:
    """Rows chosen by k-center greedy (Euclidean), starting from row 0; stops early at ``min_distance``.

    Args:
        vectors: (N, D) float array.
        k: At most this many rows.
        min_distance: Near-duplicate distance: selection stops when every remaining row lies within it of a
            chosen row.

    Example:
        >>> select_k_center(np.array([[0.0], [0.1], [5.0], [10.0]]), 3)
        [0, 3, 2]
    """
    if len(vectors) == 0 or k < 1:
        return []
    chosen = [0]
    nearest = np.linalg.norm(vectors - vectors[0], axis=1)
    while len(chosen) < min(k, len(vectors)):
        i = int(np.argmax(nearest))
        if nearest[i] <= min_distance:
            break
        chosen.append(i)
        nearest = np.minimum(nearest, np.linalg.norm(vectors - vectors[i], axis=1))
    return chosen


def collect_frames(config: SegCollectConfig) -> CollectResult:
    """Take frames from ``config.source`` (a video or a folder of videos) into ``config.out`` (module docstring).

    Raises:
        ConfigError: No ``out``.
        DatasetFormatError: No video at ``source``.

    Example:
        >>> config = build_config(SegCollectConfig, source="line.mp4", diverse=40, out="frames")  # doctest: +SKIP
        >>> len(collect_frames(config).frames)  # doctest: +SKIP
    """
    if config.out is None:
        raise ConfigError("seg collect needs --out, the new folder for images/ and meta/")
    roi = parse_roi(config.roi) if config.roi else None
    if config.every_s is None and config.diverse is None:
        from dinoscope.seg.collect_window import collect_interactive

        return collect_interactive(config, roi)
    videos = (
        [config.source]
        if is_video_file(config.source)
        else (list_videos(config.source) if config.source.is_dir() else [])
    )
    if not videos:
        raise DatasetFormatError(f"{config.source}: no video; give a video file or a folder of videos")
    for video in videos if roi else []:  # a ROI outside a video's frames is refused before anything is written
        info = probe_video(video)
        roi_box(roi, info.width, info.height)  # type: ignore[arg-type]
    out = prepare_output_dir(config.out, config.overwrite)
    step = config.every_s or _DEFAULT_STEP_S
    result = CollectResult(out)
    backend = _backend(config) if config.diverse else None
    for video in videos:
        keep: set[int] | None = None
        if backend is not None:
            keep, n, threshold = _diverse(video, step, config.diverse or 0, backend)
            result.n_candidates += n
            result.duplicate_distance = threshold
        how = "diverse" if keep is not None else "every_s"
        for frame in iter_frames(video, every_s=step):
            if keep is None or frame.index in keep:
                save_frame(out, video.name, frame, roi, config.grayscale, how)
                result.frames.append((video.name, frame.index, frame.time_s))
    write_summary(result, {"every_s": step, "diverse": config.diverse, "roi": roi, "grayscale": config.grayscale})
    return result


def write_summary(result: CollectResult, settings: dict[str, Any]) -> None:
    """``collect.json``: the settings, the near-duplicate threshold and the frames saved."""
    summary = {
        **settings,
        "duplicate_distance": result.duplicate_distance,
        "frames": [{"video": v, "frame": f, "time_s": t} for v, f, t in result.frames],
    }
    (result.out / "collect.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


def save_frame(
    out: Path, video: str, frame: Frame, roi: list[tuple[float, float]] | None, grayscale: bool, how: str
) -> str:
    """Write one frame's files (module docstring) and return its stem ``<video stem>_<frame:06d>``.

    Example:
        >>> save_frame(Path("frames"), "line.mp4", frame, [(0, 0), (99, 0), (50, 80)], True, "key")  # doctest: +SKIP
        'line_000042'
    """
    cut = cut_frame(frame.image, roi, grayscale)
    stem = f"{Path(video).stem}_{frame.index:06d}"
    files = {"images": (cut.image, "png"), "meta": (None, "json")}
    if roi or grayscale:
        files["raw"] = (cut.raw, "png")
    if cut.roi_mask is not None and cut.preview is not None:
        files["roi_masks"] = (cut.roi_mask, "png")
        files["previews"] = (cut.preview, "jpg")
    for folder, (array, ext) in files.items():
        (out / folder).mkdir(exist_ok=True)
        if array is not None:
            Image.fromarray(array).save(out / folder / f"{stem}.{ext}", **({"quality": 90} if ext == "jpg" else {}))
    meta = {
        "video": video,
        "frame": frame.index,
        "time_s": round(frame.time_s, 4),
        "selected_by": how,
        "roi": [list(p) for p in roi] if roi else None,
        "box": list(cut.box),
        "frame_size": [frame.image.shape[1], frame.image.shape[0]],
        "size": [cut.image.shape[1], cut.image.shape[0]],
        "grayscale": grayscale,
    }
    (out / "meta" / f"{stem}.json").write_text(json.dumps(meta), encoding="utf-8")
    return stem


def _backend(config: SegCollectConfig) -> Any:
    name, _ = resolve_model(config.model)
    options = {k: v for k, v in {"input_size": config.input_size, "weights": config.weights}.items() if v}
    backend = create_backend(name, allow_download=config.allow_download, **options)
    return place_backend(backend, config.device, config.precision)


def _diverse(video: Path, step: float, n: int, backend: Any) -> tuple[set[int], int, float]:
    side = backend.spec.input_size
    indices, batches, batch = [], [], []
    for frame in track(iter_frames(video, every_s=step), description=f"embedding {video.name}", unit="frame"):
        indices.append(frame.index)
        batch.append(np.asarray(Image.fromarray(frame.image).resize((side, side), Image.Resampling.BICUBIC)))
        if len(batch) == _EMBED_BATCH:
            batches.append(backend.embed(np.stack(batch)).cpu().numpy())
            batch = []
    if batch:
        batches.append(backend.embed(np.stack(batch)).cpu().numpy())
    vectors = np.concatenate(batches) if batches else np.zeros((0, 1))
    steps = np.linalg.norm(np.diff(vectors, axis=0), axis=1)
    threshold = float(np.median(steps)) if len(steps) else 0.0
    return {indices[i] for i in select_k_center(vectors, n, threshold)}, len(indices), threshold
