"""``dinoscope patches render``: principal components of patch features as colours, beside or over the input.

Components ``C, C+1, C+2`` of the fit map to red, green and blue (one component: grey; two: red and green).
By default the colour scale comes from the fit's own variances (``+-clip_sigma`` standard deviations span
the range), so colours mean the same in every frame of a video and across images; ``scale="frame"``
min-max scales each frame instead (the DINOv2 figures' choice for single images). In foreground mode the
background patches (the fit's foreground split) are dimmed. The patch grid is upsampled to the frame
(nearest: one flat cell per patch; or bilinear) and written as PNG (Pillow) or MP4 (PyAV, the input's fps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dinoscope._deps import require
from dinoscope.config import build_config
from dinoscope.embed.base import Backend
from dinoscope.errors import BackendError, ConfigError, DatasetFormatError
from dinoscope.io._output import prepare_output_files
from dinoscope.io.images import is_image_file, list_files, read_image
from dinoscope.io.video_files import is_video_file
from dinoscope.patches._stream import InputGeometry, iter_input_batches
from dinoscope.patches.config import PatchRenderConfig
from dinoscope.patches.files import PatchPCAFit, read_pca_file
from dinoscope.patches.fit import create_patch_backend
from dinoscope.patches.sources import Sample

__all__ = ["RenderResult", "compose_panels", "compute_component_rgb", "render_patches", "render_patches_from_config"]

logger = logging.getLogger(__name__)
_RENDER_MAX_BATCH = 64


@dataclass
class RenderResult:
    """What ``render`` wrote.

    Attributes:
        outputs: The PNG and MP4 files.
        n_frames: Frames and images rendered.
        seconds: Wall time.
        grid: Patch grid (h, w) of the model.
        model: The model that was run.
    """

    outputs: list[Path] = field(default_factory=list)
    n_frames: int = 0
    seconds: float = 0.0
    grid: tuple[int, int] | None = None
    model: str = ""


def render_patches(**kwargs: Any) -> RenderResult:
    """Render a fit's components over images or videos; keyword arguments are :class:`PatchRenderConfig` fields.

    Example:
        >>> render_patches(input="clip.mp4", pca="pca.json", out="clip-pca.mp4")  # doctest: +SKIP
        RenderResult(outputs=[PosixPath('clip-pca.mp4')], n_frames=1189, ...)
    """
    return render_patches_from_config(build_config(PatchRenderConfig, **kwargs))


def render_patches_from_config(config: PatchRenderConfig) -> RenderResult:
    """Run the rendering described by a validated config (see :func:`render_patches`)."""
    started = time.perf_counter()
    fit = read_pca_file(config.pca)
    k = fit.pca.components_.shape[0]
    if config.start_component + config.n_components > k:
        raise ConfigError(
            f"{config.pca} holds {k} components (0..{k - 1}); --start-component {config.start_component} with "
            f"--n-components {config.n_components} needs {config.start_component + config.n_components}; lower them "
            "or refit with more --components"
        )
    jobs = _plan(config)
    model_name = config.model or str(fit.configuration.get("model_name"))
    size = config.image_size or int(fit.configuration["image_size"])
    backend = create_patch_backend(
        model_name, size, config.device, config.precision, config.weights, config.allow_download
    )
    _check_model(fit, backend, config.pca, model_name)
    projector = _Projector(backend, fit, config, size)
    result = RenderResult(model=model_name)
    from dinoscope.progress import ProgressBar

    with ProgressBar(None, "rendering", "frame") as bar:
        images = [(src, dst) for src, dst in jobs if not is_video_file(src)]
        if images:
            result.n_frames += _render_images(images, projector, config, bar)
            result.outputs += [dst for _, dst in images]
        for src, dst in jobs:
            if is_video_file(src):
                result.n_frames += _render_video(src, dst, projector, config, bar)
                result.outputs.append(dst)
    result.seconds, result.grid = time.perf_counter() - started, projector.grid
    return result


def _plan(config: PatchRenderConfig) -> list[tuple[Path, Path]]:
    """(input, output) pairs; outputs checked against overwriting before any work."""
    src, out = Path(config.input).expanduser(), Path(config.out)
    if src.is_file():
        if not (is_image_file(src) or is_video_file(src)):
            raise DatasetFormatError(f"{src}: neither an image nor a video; expected an image, a video or a folder")
        ext = ".mp4" if is_video_file(src) else ".png"
        if out.suffix and out.suffix.lower() != ext:
            raise ConfigError(f"--out {out}: {src.name} renders to a {ext} file; give a {ext} path or a folder")
        dst = out if out.suffix else out / f"{src.stem}{ext}"
        pairs = [(src, dst)]
    elif src.is_dir():
        files = list_files(src, lambda f: is_image_file(f) or is_video_file(f))
        if not files:
            raise DatasetFormatError(f"{src}: no image or video files found")
        if out.suffix:
            raise ConfigError(f"--out {out}: rendering a folder writes one file per input; give a folder, not a file")
        pairs = [(f, out / f.relative_to(src).with_suffix(".mp4" if is_video_file(f) else ".png")) for f in files]
    else:
        raise DatasetFormatError(f"{src}: no such file or folder")
    root = out.parent if len(pairs) == 1 and pairs[0][1] == out else out
    prepare_output_files(root, [d.relative_to(root).as_posix() for _, d in pairs], overwrite=config.overwrite)
    for _, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
    return pairs


def _check_model(fit: PatchPCAFit, backend: Backend, pca_path: Path, model_name: str) -> None:
    fitted = fit.configuration.get("model_name")
    dim = backend.spec.patch_dim
    if dim and dim != fit.embed_dim:
        raise BackendError(
            f"{pca_path} was fitted on {fit.embed_dim}-d patch features of {fitted!r}, but {model_name!r} gives "
            f"{dim}-d patch features; render with --model {fitted} (or fit a PCA for {model_name})"
        )
    if fit.configuration.get("model_key") and backend.spec.key() != fit.configuration["model_key"]:
        logger.warning(
            "%s was fitted with %r; %r has the same feature size but other weights or preprocessing, so the "
            "colours may not mean what they meant in the fit",
            pca_path,
            fitted,
            model_name,
        )


class _Projector:
    """The backend as ``engine._forward`` sees it: ``embed`` returns each image's projections, flattened."""

    def __init__(self, backend: Backend, fit: PatchPCAFit, config: PatchRenderConfig, size: int) -> None:
        import torch

        self.backend, self.spec, self.fit, self.size = backend, backend.spec, fit, size
        lo, hi = config.start_component, config.start_component + config.n_components
        device = getattr(backend, "device", "cpu")
        self.n = config.n_components
        self.variance = fit.pca.explained_variance_[lo:hi]
        # (centre (D,), directions (D, m)) pairs: the components, and the foreground direction in that mode
        pairs = [(fit.pca.mean_, fit.pca.components_[lo:hi].T)]
        if fit.foreground is not None:
            pairs.append((fit.foreground.mean, fit.foreground.direction[:, None]))
        as_tensor = partial(torch.as_tensor, dtype=torch.float32, device=device)
        self._pairs = [(as_tensor(m), as_tensor(v)) for m, v in pairs]
        self.grid: tuple[int, int] | None = None

    def embed(self, images: Any) -> Any:
        """(B, S, S, 3) uint8 -> (B, h * w * m) float32: the n component values, then the foreground projection."""
        import torch

        feats = torch.as_tensor(self.backend.embed_patches(images))
        b, h, w, d = feats.shape
        if d != self.fit.embed_dim:
            raise BackendError(
                f"the PCA was fitted on {self.fit.embed_dim}-d patch features but {self.spec.name} gives {d}-d ones"
            )
        self.grid = (h, w)
        x = feats.reshape(-1, d).to(self._pairs[0][0].device, torch.float32)
        return torch.cat([(x - mean) @ directions for mean, directions in self._pairs], dim=1).reshape(b, -1)

    def split(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, h*w*m) projections -> values (B, h, w, n) and the foreground mask (B, h, w) or None."""
        h, w = self.grid  # type: ignore[misc]
        x = flat.reshape(len(flat), h, w, -1)
        fg = self.fit.foreground
        if fg is None:
            return x, None
        above = x[..., self.n] > fg.threshold
        return x[..., : self.n], above if fg.foreground_is_above else ~above

    def colours(self, flat: np.ndarray, config: PatchRenderConfig) -> np.ndarray:
        values, fg = self.split(flat)
        return compute_component_rgb(values, self.variance, config.scale, config.clip_sigma, fg, config.background)


def compute_component_rgb(
    values: np.ndarray,
    variance: np.ndarray,
    scale: str = "fit",
    clip_sigma: float = 2.0,
    foreground: np.ndarray | None = None,
    background: float = 0.25,
) -> np.ndarray:
    """Colours of patch projections.

    Args:
        values: (B, h, w, n) projections on n = 1..3 components.
        variance: (n,) the components' variances in the fit (``fit`` scale).
        scale: ``fit``: ``0.5 + v / (2 clip_sigma sigma)`` clipped to [0, 1], the same for every frame;
            ``frame``: min-max per frame and channel (over the foreground patches when a mask is given).
        clip_sigma: Standard deviations mapped to the ends of the range (``fit``).
        foreground: (B, h, w) bool, or None; background patches are multiplied by ``background``.
        background: Brightness of background patches (0 = black).

    Returns:
        (B, h, w, 3) uint8: 3 components -> RGB, 2 -> red/green, 1 -> grey.

    Example:
        >>> v = np.array([[[[0.0], [1.0], [2.0]]]])  # one frame, a 1 x 3 grid, one component of variance 1
        >>> compute_component_rgb(v, np.array([1.0]))[0, 0, :, 0].tolist()  # +-2 sigma span the range
        [128, 191, 255]
    """
    values = np.asarray(values, dtype=np.float64)
    if scale == "fit":
        sigma = np.sqrt(np.maximum(np.asarray(variance, dtype=np.float64), 1e-30))
        unit = np.clip(0.5 + values / (2.0 * clip_sigma * sigma), 0.0, 1.0)
    else:
        unit = np.empty_like(values)
        for i, frame in enumerate(values):
            use_fg = foreground is not None and foreground[i].any()
            ref = frame[foreground[i]] if use_fg else frame.reshape(-1, frame.shape[-1])  # type: ignore[index]
            lo, hi = ref.min(axis=0), ref.max(axis=0)
            unit[i] = np.clip((frame - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    n = unit.shape[-1]
    if n == 1:
        rgb = np.repeat(unit, 3, axis=-1)
    elif n == 2:
        rgb = np.concatenate([unit, np.zeros_like(unit[..., :1])], axis=-1)
    else:
        rgb = unit[..., :3]
    if foreground is not None:
        rgb = np.where(foreground[..., None], rgb, rgb * background)
    return np.round(rgb * 255.0).astype(np.uint8)


def compose_panels(
    frame: np.ndarray,
    geometry: InputGeometry,
    size: int,
    grid_rgb: np.ndarray,
    overlay: float | None = None,
    upsample: str = "nearest",
) -> np.ndarray:
    """The input (the part the model saw) and its feature map, side by side or blended.

    Args:
        frame: (H, W, 3) uint8 decoded frame.
        geometry: Where the model input lies in the frame (:func:`~dinoscope.patches._stream.prepare_input`).
        size: Model input side.
        grid_rgb: (h, w, 3) uint8 patch colours.
        overlay: Alpha of the map over the frame; None: the map to the right of the frame.
        upsample: ``nearest`` or ``bilinear``.

    Returns:
        (H', 2 W', 3) side by side, or (H', W', 3) blended, uint8, where (H', W') is the visible window.

    Example:
        >>> from dinoscope.patches._stream import prepare_input
        >>> frame = np.zeros((36, 64, 3), np.uint8)
        >>> _, geo = prepare_input(frame, 28)
        >>> compose_panels(frame, geo, 28, np.zeros((2, 2, 3), np.uint8)).shape
        (36, 128, 3)
    """
    x0, y0, x1, y1 = geometry.window(size)
    region = frame[max(0, y0) : y1, max(0, x0) : x1]
    h, w = region.shape[:2]
    resample = Image.Resampling.NEAREST if upsample == "nearest" else Image.Resampling.BILINEAR
    fmap = np.asarray(Image.fromarray(grid_rgb).resize((w, h), resample))
    if overlay is None:
        return np.concatenate([region, fmap], axis=1)
    blended = region.astype(np.float32) * (1.0 - overlay) + fmap.astype(np.float32) * overlay
    return np.round(blended).astype(np.uint8)


# --- images and videos ---------------------------------------------------------------------------------------
def _render_images(pairs: list[tuple[Path, Path]], projector: _Projector, config: PatchRenderConfig, bar: Any) -> int:
    def samples() -> Iterator[Sample]:
        for i, (src, _) in enumerate(pairs):
            yield Sample(read_image(src), i)

    n = 0
    for batch, rgb in _batches([samples], projector, config):
        for j, clip in enumerate(batch.clips):
            frame, geometry = batch.originals[j]
            out = compose_panels(frame, geometry, projector.size, rgb[j], config.overlay, config.upsample)
            Image.fromarray(out).save(pairs[int(clip)][1])
            n += 1
        bar.advance(len(batch))
    return n


def _render_video(src: Path, dst: Path, projector: _Projector, config: PatchRenderConfig, bar: Any) -> int:
    from dinoscope.io.frames import iter_frames
    from dinoscope.io.video_files import probe_video

    info = probe_video(src)
    fps = Fraction(info.fps or 25.0).limit_denominator(100_000) / config.stride

    def samples() -> Iterator[Sample]:
        for frame in iter_frames(src, stride=config.stride, max_frames=config.max_frames):
            yield Sample(frame.image, 0)

    writer: _Mp4Writer | None = None
    n = 0
    try:
        for batch, rgb in _batches([samples], projector, config):
            for j in range(len(batch)):
                frame, geometry = batch.originals[j]
                out = compose_panels(frame, geometry, projector.size, rgb[j], config.overlay, config.upsample)
                if writer is None:
                    writer = _Mp4Writer(dst, fps, out.shape[1], out.shape[0])
                writer.write(out)
                n += 1
            bar.advance(len(batch))
    except BaseException:
        if writer is not None:
            writer.close(keep=False)
        raise
    if writer is None:
        raise DatasetFormatError(f"{src}: no frame was rendered (the video has no decodable frame)")
    writer.close(keep=True)
    logger.info("%s: %d frames at %.3f fps -> %s", src, n, float(fps), dst)
    return n


def _batches(jobs: list[Any], projector: _Projector, config: PatchRenderConfig) -> Iterator[tuple[Any, np.ndarray]]:
    """Prepared batches (with their decoded frames) and the colours of their patch grids."""
    from dinoscope.embed.engine import _default_batch_size, _forward

    device_type = getattr(getattr(projector.backend, "device", None), "type", "cpu")
    # decoded frames wait beside their batch until composed: cap the probed size (1080p: 6 MB a frame)
    batch_size = config.batch_size or min(_RENDER_MAX_BATCH, _default_batch_size(projector, device_type))  # type: ignore[arg-type]
    max_chunk = batch_size
    for batch in iter_input_batches(
        jobs,
        projector.size,
        batch_size,
        resize=str(projector.fit.configuration.get("resize", "squash")),  # type: ignore[arg-type]
        interpolation=projector.spec.interpolation,
        workers=1,
        keep_originals=True,
        prefetch_batches=1,
    ):
        flat, max_chunk = _forward(projector, batch.images, max_chunk)  # type: ignore[arg-type]
        yield batch, projector.colours(flat, config)


class _Mp4Writer:
    """H.264 (yuv420p) through PyAV, written to a ``.partial.mp4`` file renamed when complete."""

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
        if rgb.shape[:2] != (self.height, self.width):
            rgb = np.pad(rgb, ((0, self.height - rgb.shape[0]), (0, self.width - rgb.shape[1]), (0, 0)), mode="edge")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self, keep: bool) -> None:
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
