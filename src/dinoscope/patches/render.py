"""``dinoscope patches render``: principal components of patch features as colours, beside or over the input.

Each input (an image, a folder of images and videos, or a video) goes through the fit's model in batches run
by the public runtime (:mod:`dinoscope.embed.runtime`: batch size from free GPU memory, chunks halved on CUDA
out-of-memory); the patch grids are coloured and composed beside or over the frames
(:mod:`dinoscope.patches.maps`) and written as PNG (Pillow) or MP4 (PyAV, the input's fps).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dinoscope.config import build_config
from dinoscope.embed.base import Backend
from dinoscope.embed.runtime import ChunkedForward, choose_batch_size, device_type_of
from dinoscope.errors import BackendError, ConfigError, DatasetFormatError
from dinoscope.io.images import is_image_file, list_files, read_image
from dinoscope.io.video_files import is_video_file
from dinoscope.io.video_writer import Mp4Writer
from dinoscope.outputs import prepare_output_files
from dinoscope.patches._stream import InputBatch, Resize, iter_input_batches
from dinoscope.patches.config import PatchRenderConfig
from dinoscope.patches.files import PatchPCAFit, read_pca_file
from dinoscope.patches.maps import ComponentProjector, compose_panels
from dinoscope.patches.model import create_patch_backend
from dinoscope.patches.sources import Sample

__all__ = ["RenderResult", "render_patches", "render_patches_from_config"]

logger = logging.getLogger(__name__)
_RENDER_MAX_BATCH = 64
_RESIZE_MODES: dict[str, Resize] = {"squash": "squash", "center": "center"}


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
    if config.out is None:
        raise ConfigError("patches render needs --out: a .png / .mp4 for one input, else a folder")
    config = config.model_copy(update={"stride": config.stride or 1})
    fit = read_pca_file(config.pca)
    k = fit.pca.components_.shape[0]
    if config.start_component + config.n_components > k:
        raise ConfigError(
            f"{config.pca} holds {k} components (0..{k - 1}); --start-component {config.start_component} with "
            f"--n-components {config.n_components} needs {config.start_component + config.n_components}; lower them "
            "or refit with more --components"
        )
    jobs = _plan(config)
    model_name = config.model if config.model != "auto" else str(fit.configuration.get("model_name"))
    size = config.input_size or int(fit.configuration["image_size"])
    backend = create_patch_backend(
        model_name, size, config.device, config.precision, config.weights, config.allow_download, compile=config.compile
    )
    _check_model(fit, backend, config.pca, model_name)
    projector = ComponentProjector(backend, fit, config, size)
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
    src, out = Path(config.source).expanduser(), Path(config.out)
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


# --- images and videos ---------------------------------------------------------------------------------------
def _render_images(
    pairs: list[tuple[Path, Path]], projector: ComponentProjector, config: PatchRenderConfig, bar: Any
) -> int:
    def samples() -> Iterator[Sample]:
        for i, (src, _) in enumerate(pairs):
            yield Sample(read_image(src), i)

    n = 0
    for batch, rgb in _batches([samples], projector, config):
        for j, clip in enumerate(batch.clips):
            frame, geometry = batch.original(j)
            out = compose_panels(frame, geometry, projector.size, rgb[j], config.overlay, config.upsample)
            Image.fromarray(out).save(pairs[int(clip)][1])
            n += 1
        bar.advance(len(batch))
    return n


def _render_video(src: Path, dst: Path, projector: ComponentProjector, config: PatchRenderConfig, bar: Any) -> int:
    from dinoscope.io.frames import iter_frames
    from dinoscope.io.video_files import probe_video

    info = probe_video(src)
    fps = Fraction(info.fps or 25.0).limit_denominator(100_000) / config.stride

    def samples() -> Iterator[Sample]:
        for frame in iter_frames(src, stride=config.stride, max_frames=config.max_frames):
            yield Sample(frame.image, 0)

    writer: Mp4Writer | None = None
    n = 0
    try:
        for batch, rgb in _batches([samples], projector, config):
            for j in range(len(batch)):
                frame, geometry = batch.original(j)
                out = compose_panels(frame, geometry, projector.size, rgb[j], config.overlay, config.upsample)
                if writer is None:
                    writer = Mp4Writer(dst, fps, out.shape[1], out.shape[0])
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


def _batches(
    jobs: list[Any], projector: ComponentProjector, config: PatchRenderConfig
) -> Iterator[tuple[InputBatch, np.ndarray]]:
    """Prepared batches (with their decoded frames) and the colours of their patch grids."""
    device_type = device_type_of(projector.backend)
    # decoded frames wait beside their batch until composed: cap the probed size (1080p: 6 MB a frame)
    batch_size = config.batch_size or min(
        _RENDER_MAX_BATCH, choose_batch_size(projector.project, projector.size, device_type)
    )
    forward = ChunkedForward(projector.project, batch_size)
    for batch in iter_input_batches(
        jobs,
        projector.size,
        batch_size,
        resize=_resize_mode(projector.fit),
        interpolation=projector.spec.interpolation,
        workers=1,
        keep_originals=True,
        prefetch_batches=1,
    ):
        projections = np.concatenate([part.float().cpu().numpy() for part in forward(batch.images)])
        yield batch, projector.colours(projections, config)


def _resize_mode(fit: PatchPCAFit) -> Resize:
    """How the fit resized its frames (``squash`` for files that do not say)."""
    mode = str(fit.configuration.get("resize", "squash"))
    if mode not in _RESIZE_MODES:
        raise DatasetFormatError(
            f"{fit.path}: unknown resize mode {mode!r} in its configuration; expected squash or center (refit it)"
        )
    return _RESIZE_MODES[mode]
