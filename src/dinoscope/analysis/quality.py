"""Image-quality flags for whole images and video frames: blur, exposure and contrast, measured directly.

Every measure is taken on the grey-level image scaled so its shorter side is :data:`MEASURE_SIDE` pixels,
so values compare across resolutions:

- **sharpness**: variance of the 3×3 Laplacian (Pech-Pacheco et al., 2000) divided by the variance of the
  grey levels, so that darkening or flattening an image does not read as blur (a dark frame's Laplacian
  variance drops with the square of its contrast; the ratio does not). A frame is *blurry* when its log
  sharpness is a low outlier of the run (robust z below -:data:`Z_CUT`, median and MAD of the run) or below
  the absolute floor :data:`BLUR_FLOOR` (measured: a Gaussian blur of sigma 2 px at 512 px brings sharp
  photos, PCB scans and synthetic scenes from 0.15-2.7 down to 0.001-0.004).
- **exposure**: mean grey level and the shares of clipped pixels (<= 5 or >= 250 of 255). *Dark*: mean
  below :data:`DARK_MEAN` or more than :data:`CLIPPED_SHARE` of the pixels crushed to black;
  *over-exposed*: the mirror image.
- **contrast**: RMS contrast (standard deviation of the grey levels / 255); *low contrast* below
  :data:`LOW_CONTRAST` in a frame that is not dark or over-exposed (those lose contrast through exposure,
  and are flagged for that).

The fixed cut-offs are physical (what a person calls black, clipped or flat); only blur, whose normal level
depends on the scene, is judged against the run itself. Everything used is recorded in ``info``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from dinoscope.analysis.base import AnalysisResult
from dinoscope.errors import DinoscopeError
from dinoscope.table import ObjectTable

__all__ = ["MEASURE_SIDE", "find_quality_issues", "measure_image", "measure_table"]

logger = logging.getLogger(__name__)

#: Shorter side (pixels) of the grey image every measure is taken on.
MEASURE_SIDE = 512
#: Robust z-score of log Laplacian variance below which a frame is blurry relative to the run.
Z_CUT = 3.5
#: Sharpness (Laplacian variance / grey variance) below which a frame is blurry in absolute terms.
BLUR_FLOOR = 0.005
#: Mean grey level (0-1) below which a frame is dark, above 1 - this over-exposed.
DARK_MEAN = 0.15
#: Share of clipped pixels from which a frame counts as dark / over-exposed.
CLIPPED_SHARE = 0.5
#: RMS contrast (0-1) below which a frame is flat.
LOW_CONTRAST = 0.05
#: Fewest frames for the run-relative blur rule (below, only the floor applies).
MIN_FOR_RELATIVE = 8

MEASURES = ("sharpness", "laplacian_var", "brightness", "dark_share", "bright_share", "contrast")


def measure_image(rgb: np.ndarray) -> dict[str, float]:
    """Sharpness, exposure and contrast of one (H, W, 3) uint8 RGB image (see the module docstring).

    Example:
        >>> flat = np.full((64, 64, 3), 128, np.uint8)
        >>> m = measure_image(flat)
        >>> m["sharpness"], m["laplacian_var"], round(m["brightness"], 2), m["contrast"]
        (0.0, 0.0, 0.5, 0.0)
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    grey = Image.fromarray(rgb).convert("L")
    scale = MEASURE_SIDE / min(grey.size)
    if scale < 1:
        grey = grey.resize((max(1, round(grey.size[0] * scale)), max(1, round(grey.size[1] * scale))), Image.BOX)
    g = np.asarray(grey, dtype=np.float32)
    if min(g.shape) >= 3:
        lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
        lap_var = float(lap.var())
    else:
        lap_var = 0.0
    return {
        "sharpness": lap_var / max(float(g.var()), 1.0),
        "laplacian_var": lap_var,
        "brightness": float(g.mean() / 255.0),
        "dark_share": float((g <= 5).mean()),
        "bright_share": float((g >= 250).mean()),
        "contrast": float(g.std() / 255.0),
    }


def measure_table(table: ObjectTable, *, workers: int = 2) -> pd.DataFrame:
    """Measure every object's whole image or frame, decoding each file once (videos sequentially).

    Args:
        table: Objects whose ``source`` (relative to ``table.root``) and ``frame`` name the images; boxes are
            ignored (the whole image or frame is measured).
        workers: Threads decoding still images (Pillow releases the GIL while decoding).

    Returns:
        One row per object (table row order) with the columns of :data:`MEASURES` plus ``error`` ("" when
        measured; a failed row has NaN measures and the reason).
    """
    root = Path(table.root or ".")
    out = pd.DataFrame(np.nan, index=np.arange(len(table)), columns=list(MEASURES))
    out["error"] = ""
    d = table.data
    stills = d.index[d["frame"].to_numpy() < 0]
    by_source = pd.Series(stills, index=d.loc[stills, "source"].to_numpy()).groupby(level=0).agg(list)

    def one(item: tuple[str, list[int]]) -> tuple[list[int], dict[str, float] | str]:
        source, rows = item
        from dinoscope.io.images import read_image

        try:
            return rows, measure_image(read_image(root / source, max_side=2 * MEASURE_SIDE))
        except DinoscopeError as exc:
            return rows, str(exc)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for rows, result in pool.map(one, list(by_source.items())):
            _store(out, rows, result)
    from dinoscope.io.videos import iter_selected_frames

    videos = d.index[d["frame"].to_numpy() >= 0]
    for source, group in d.loc[videos].groupby("source", sort=False):
        frames = iter_selected_frames(root / source, group["frame"].to_numpy(), group.index.to_numpy())
        for rows, image, error in frames:
            _store(out, rows, error if image is None else measure_image(image))
    return out


def _store(out: pd.DataFrame, rows: list[int] | np.ndarray, result: dict[str, float] | str) -> None:
    if isinstance(result, str):
        out.loc[rows, "error"] = result
    else:
        for key, value in result.items():
            out.loc[rows, key] = value


def find_quality_issues(measures: pd.DataFrame) -> AnalysisResult:
    """Flag blurry, dark, over-exposed and flat images from :func:`measure_table`'s measures.

    Returns:
        ``AnalysisResult("quality")``; findings (index = row) with the measures, ``is_blurry``,
        ``blur_quality`` (a logistic of the robust z: 0.5 at the cut, low = blurry), ``is_dark``,
        ``is_overexposed``, ``exposure_quality``, ``is_low_contrast``, ``contrast_quality``,
        ``is_quality_issue`` (any flag), ``quality_reason`` (the flags in words) and ``quality_quality``
        (the lowest of the three qualities).

    Example:
        >>> m = pd.DataFrame({"sharpness": [0.2] * 9 + [0.002], "brightness": 0.5, "dark_share": 0.0,
        ...                   "bright_share": 0.0, "contrast": 0.2, "error": ""})
        >>> find_quality_issues(m).findings["is_blurry"].tolist()[-2:]
        [False, True]
    """
    f = measures.copy()
    ok = f["error"].fillna("") == ""
    log_sharp = np.log(np.maximum(f["sharpness"].to_numpy(dtype=float), 1e-6))
    info: dict[str, Any] = {
        "measure_side": MEASURE_SIDE,
        "blur_floor": BLUR_FLOOR,
        "z_cut": Z_CUT,
        "dark_mean": DARK_MEAN,
        "clipped_share": CLIPPED_SHARE,
        "low_contrast": LOW_CONTRAST,
        "n_unmeasured": int((~ok).sum()),
    }
    valid = log_sharp[ok.to_numpy()]
    if len(valid) >= MIN_FOR_RELATIVE:
        med = float(np.median(valid))
        mad = float(np.median(np.abs(valid - med))) * 1.4826
        scale = max(mad, 0.05)  # a run of near-identical frames must not make tiny differences "blur"
        z = (log_sharp - med) / scale
        info.update(rule="robust z of log sharpness, or the floor", median_log_sharpness=med, mad=scale)
        info["relative_threshold"] = float(np.exp(med - Z_CUT * scale))
    else:
        z = np.zeros(len(f))
        info["rule"] = f"floor only (fewer than {MIN_FOR_RELATIVE} measured frames)"
    sharp = f["sharpness"].to_numpy(dtype=float)
    blurry = ((z < -Z_CUT) | (sharp < BLUR_FLOOR)) & ok.to_numpy()
    blur_q = 1.0 / (1.0 + np.exp(-(z + Z_CUT)))
    blur_q = np.where(sharp < BLUR_FLOOR, np.minimum(blur_q, sharp / BLUR_FLOOR * 0.5), blur_q)
    bright = f["brightness"].to_numpy(dtype=float)
    dark = ((bright < DARK_MEAN) | (f["dark_share"].to_numpy(dtype=float) > CLIPPED_SHARE)) & ok.to_numpy()
    over = ((bright > 1 - DARK_MEAN) | (f["bright_share"].to_numpy(dtype=float) > CLIPPED_SHARE)) & ok.to_numpy()
    exposure_q = np.clip(np.minimum(bright, 1 - bright) / (2 * DARK_MEAN), 0.0, 1.0)
    contrast = f["contrast"].to_numpy(dtype=float)
    flat = (contrast < LOW_CONTRAST) & ok.to_numpy() & ~dark & ~over  # a dark frame is flat because it is dark
    contrast_q = np.clip(contrast / (2 * LOW_CONTRAST), 0.0, 1.0)
    f["is_blurry"], f["blur_quality"] = blurry, np.where(ok, blur_q, np.nan)
    f["is_dark"], f["is_overexposed"], f["exposure_quality"] = dark, over, np.where(ok, exposure_q, np.nan)
    f["is_low_contrast"], f["contrast_quality"] = flat, np.where(ok, contrast_q, np.nan)
    f["is_quality_issue"] = blurry | dark | over | flat
    qualities = np.stack([f["blur_quality"], f["exposure_quality"], f["contrast_quality"]]).astype(float)
    f["quality_quality"] = np.where(ok, np.min(np.nan_to_num(qualities, nan=1.0), axis=0), np.nan)
    reasons = np.full(len(f), "", dtype=object)
    for flag, word in ((blurry, "blurry"), (dark, "dark"), (over, "over-exposed"), (flat, "low contrast")):
        reasons = np.where(flag, np.where(reasons == "", word, reasons + ", " + word), reasons)
    f["quality_reason"] = reasons
    summary = {
        "n_blurry": int(blurry.sum()),
        "n_dark": int(dark.sum()),
        "n_overexposed": int(over.sum()),
        "n_low_contrast": int(flat.sum()),
        "n_quality_issues": int(f["is_quality_issue"].sum()),
    }
    info.update(summary)
    return AnalysisResult("quality", f, info, summary)
