"""Patch features as pictures: projections on a fit's components, their colours, and the panels beside a frame.

Components ``C, C+1, C+2`` of the fit map to red, green and blue (one component: grey; two: red and green).
By default the colour scale comes from the fit's own variances (``+-clip_sigma`` standard deviations span
the range), so colours mean the same in every frame of a video and across images; ``scale="frame"``
min-max scales each frame instead (the DINOv2 figures' choice for single images). In foreground mode the
background patches (the fit's foreground split) are dimmed. The patch grid is upsampled to the frame
(nearest: one flat cell per patch; or bilinear).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dinoscope.embed.base import Backend
from dinoscope.errors import BackendError
from dinoscope.patches._stream import InputGeometry
from dinoscope.patches.config import PatchRenderConfig
from dinoscope.patches.files import PatchPCAFit

if TYPE_CHECKING:
    import torch

__all__ = ["ComponentProjector", "compose_panels", "compute_component_rgb"]


class ComponentProjector:
    """Patch features of frames projected on a fit's components (and on its foreground direction).

    Args:
        backend: The model, on its device.
        fit: The PCA fit.
        config: The rendering options (components shown, colour scale, background).
        size: Model input side.

    Example:
        >>> projector = ComponentProjector(backend, read_pca_file("pca.json"), config, 224)  # doctest: +SKIP
        >>> projector.colours(projector.project(frames).cpu().numpy(), config).shape  # doctest: +SKIP
        (B, 16, 16, 3)
    """

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

    def project(self, images: Any) -> torch.Tensor:
        """(B, S, S, 3) uint8 -> (B, h, w, m) float32: the n component values, then the foreground projection."""
        import torch

        feats = torch.as_tensor(self.backend.embed_patches(images))
        b, h, w, d = feats.shape
        if d != self.fit.embed_dim:
            raise BackendError(
                f"the PCA was fitted on {self.fit.embed_dim}-d patch features but {self.spec.name} gives {d}-d ones"
            )
        self.grid = (h, w)
        x = feats.reshape(-1, d).to(self._pairs[0][0].device, torch.float32)
        return torch.cat([(x - mean) @ directions for mean, directions in self._pairs], dim=1).reshape(b, h, w, -1)

    def split(self, projections: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, h, w, m) projections -> values (B, h, w, n) and the foreground mask (B, h, w) or None."""
        fg = self.fit.foreground
        if fg is None:
            return projections, None
        above = projections[..., self.n] > fg.threshold
        return projections[..., : self.n], above if fg.foreground_is_above else ~above

    def colours(self, projections: np.ndarray, config: PatchRenderConfig) -> np.ndarray:
        """(B, h, w, m) projections -> (B, h, w, 3) uint8 colours (:func:`compute_component_rgb`)."""
        values, fg = self.split(projections)
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
            mask = None if foreground is None else foreground[i]
            ref = frame[mask] if mask is not None and mask.any() else frame.reshape(-1, frame.shape[-1])
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
        geometry: Where the model input lies in the frame (``dinoscope.patches._stream.prepare_input``).
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
