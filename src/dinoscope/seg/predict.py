"""``seg predict MODEL_DIR SOURCE --out DIR``: masks, overlays and crack measurements of images and videos.

```
DIR/
  masks/<stem>.png                 0/255 foreground of each image (videos: masks/<video>/<frame>.png)
  overlays/<stem>.jpg              the image with the foreground tinted red
  <video>.overlay.mp4              every frame of a video with its overlay (same frame count and rate)
  predictions.csv                  source, frame, width, height, area_px, area_frac, n_components
```
Whole images are predicted with the sliding window of :class:`~dinoscope.seg.infer.Predictor` at their own
resolution; components are 8-connected (``scipy.ndimage.label``).
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dinoscope.embed.runtime import resolve_device, resolve_precision
from dinoscope.errors import BackendError, ConfigError, DatasetFormatError
from dinoscope.io.frames import iter_frames
from dinoscope.io.images import is_image_file, list_images, read_image
from dinoscope.io.video_files import is_video_file, list_videos, probe_video
from dinoscope.io.video_writer import Mp4Writer
from dinoscope.outputs import prepare_output_dir
from dinoscope.progress import track
from dinoscope.run import Run
from dinoscope.seg.data import write_mask
from dinoscope.seg.infer import Predictor
from dinoscope.seg.model import load_checkpoint

if TYPE_CHECKING:
    from dinoscope.seg.config import SegPredictConfig

__all__ = ["CSV_COLUMNS", "PredictResult", "load_predictor", "overlay", "predict_segmentation"]

CSV_COLUMNS = ("source", "frame", "width", "height", "area_px", "area_frac", "n_components")
_TINT = np.array([255, 40, 40], dtype=np.float32)
_CONNECTIVITY_8 = np.ones((3, 3), dtype=bool)


@dataclass
class PredictResult:
    """What ``seg predict`` wrote: one CSV row per image or video frame, and the time it took."""

    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    n_images: int = 0
    n_videos: int = 0
    videos: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.rows) / max(1e-9, self.seconds)


def load_predictor(
    model_dir: Path, device: str = "auto", precision: str = "auto", batch_size: int | None = None, tta: bool = False
) -> Predictor:
    """The best checkpoint of a ``seg train`` folder, ready to predict (``tta``: flip test-time augmentation).

    Raises:
        DinoscopeError: Not a model folder, or no checkpoint in it.

    Example:
        >>> predictor = load_predictor(Path("models/cracks"), device="cpu")  # doctest: +SKIP
    """
    import torch

    if not Run(model_dir).yaml_path.is_file():
        raise BackendError(
            f"{model_dir}: not a model folder (no run.yaml); train one: `dinoscope seg train DATA --out {model_dir}`"
        )
    net, info, _ = load_checkpoint(Run.open(model_dir).checkpoint_path("best"))
    resolved = resolve_device(device)
    net = net.to(resolved).eval()
    prec = resolve_precision(precision, torch.device(resolved).type)
    return Predictor(net, info, resolved, prec, batch_size or (16 if resolved.startswith("cuda") else 4), tta)


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) uint8 image with the foreground of a bool (H, W) mask tinted red.

    Example:
        >>> overlay(np.zeros((2, 2, 3), np.uint8), np.eye(2, dtype=bool))[0, 0].tolist()
        [140, 22, 22]
    """
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * _TINT
    return out.round().astype(np.uint8)


def measure(mask: np.ndarray) -> dict[str, Any]:
    """Foreground area (px and fraction) and 8-connected component count of a bool mask."""
    from scipy import ndimage

    area = int(mask.sum())
    n = int(ndimage.label(mask, structure=_CONNECTIVITY_8)[1]) if area else 0
    return {"area_px": area, "area_frac": area / max(1, mask.size), "n_components": n}


def predict_segmentation(config: SegPredictConfig) -> PredictResult:
    """Predict every image and video of ``config.source`` into ``config.out`` (module docstring).

    Raises:
        ConfigError: No ``out``.
        DatasetFormatError: The source holds no image or video.

    Example:
        >>> config = build_config(SegPredictConfig, model_dir="m", source="line.mp4", out="p")  # doctest: +SKIP
        >>> predict_segmentation(config).rows[0]["area_px"]  # doctest: +SKIP
    """
    if config.out is None:
        raise ConfigError("seg predict needs --out, the folder of masks, overlays and predictions.csv")
    images, videos = _sources(config.source)
    predictor = load_predictor(config.model_dir, config.device, config.precision, config.batch_size, config.tta)
    out = prepare_output_dir(config.out, config.overwrite)
    result = PredictResult(out, n_images=len(images), n_videos=len(videos))
    start = time.perf_counter()
    names = _output_names(images, config.source)
    for path in track(images, description="predicting images", unit="image"):
        image = read_image(path)
        mask = predictor.probabilities(image) > predictor.info.threshold
        name = names[path]
        write_mask(out / "masks" / f"{name}.png", mask)
        (out / "overlays").mkdir(exist_ok=True)
        Image.fromarray(overlay(image, mask)).save(out / "overlays" / f"{name}.jpg", quality=90)
        result.rows.append(_row(str(path), -1, mask))
    for video in videos:
        result.videos.append(_predict_video(video, predictor, out, result.rows))
    result.seconds = time.perf_counter() - start
    with (out / "predictions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(result.rows)
    return result


def _row(source: str, frame: int, mask: np.ndarray) -> dict[str, Any]:
    return {"source": source, "frame": frame, "width": mask.shape[1], "height": mask.shape[0], **measure(mask)}


def _output_names(images: list[Path], root: Path) -> dict[Path, str]:
    """Output stem per image: its path below ``root`` joined by ``__`` (``a.jpg`` + ``a.png``: ``a_jpg``, ``a_png``)."""
    flat = {p: "__".join(p.relative_to(root).with_suffix("").parts) if root in p.parents else p.stem for p in images}
    taken = Counter(flat.values())
    return {p: f"{n}_{p.suffix.lstrip('.').lower()}" if taken[n] > 1 else n for p, n in flat.items()}


def _sources(source: Path) -> tuple[list[Path], list[Path]]:
    if source.is_file():
        if is_video_file(source):
            return [], [source]
        if is_image_file(source):
            return [source], []
        raise DatasetFormatError(f"{source}: neither an image nor a video file")
    if not source.is_dir():
        raise DatasetFormatError(f"{source}: not found; give an image, a video or a folder of them")
    images, videos = list_images(source), list_videos(source)
    if not images and not videos:
        raise DatasetFormatError(f"{source}: no image or video files in this folder")
    return images, videos


def _predict_video(video: Path, predictor: Predictor, out: Path, rows: list[dict[str, Any]]) -> Path:
    """Every frame of a video: its mask PNG, its CSV row and one overlay frame of the MP4 (frame count kept)."""
    info = probe_video(video)
    fps = Fraction(info.fps or 25.0).limit_denominator(100_000)
    target = out / f"{video.stem}.overlay.mp4"
    (out / "masks" / video.stem).mkdir(parents=True, exist_ok=True)
    writer: Mp4Writer | None = None
    ok = False
    try:
        for frame in track(iter_frames(video), total=info.n_frames or None, description=video.name, unit="frame"):
            mask = predictor.probabilities(frame.image) > predictor.info.threshold
            if writer is None:
                writer = Mp4Writer(target, fps, frame.image.shape[1], frame.image.shape[0])
            writer.write(overlay(frame.image, mask))
            write_mask(out / "masks" / video.stem / f"{frame.index:06d}.png", mask)
            rows.append(_row(str(video), frame.index, mask))
        ok = writer is not None
    finally:
        if writer is not None:
            writer.close(keep=ok)
    return target
