"""``seg eval MODEL_DIR DATA [--split test]``: foreground dice, IoU, precision and recall, per image and in all.

Scores are those of :mod:`dinoscope.seg.metrics` (foreground class only, counts summed over images). The
files go to ``MODEL_DIR/eval/<data>-<split>/`` (``<data>-<split>-tta/`` with flip test-time augmentation):
``metrics.json``, ``per_image.csv`` and ``index.html``,
a self-contained page of the worst images (lowest dice among images with foreground in the truth or the
prediction), each drawn with true positives green, false positives red and misses yellow.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from dinoscope.progress import track
from dinoscope.run import Run
from dinoscope.seg.data import read_sample, select_split
from dinoscope.seg.metrics import Counts, count_pixels, scores
from dinoscope.seg.predict import load_predictor

if TYPE_CHECKING:
    from dinoscope.seg.config import SegEvalConfig

__all__ = ["EvalResult", "draw_errors", "evaluate_segmentation"]

#: Images shown on the worst-images page.
N_WORST = 12
_THUMB_PX = 512
_COLOURS = {"tp": (40, 200, 70), "fp": (235, 40, 40), "fn": (250, 210, 30)}


@dataclass
class EvalResult:
    """Dataset scores (``dice iou precision recall n_images``), per-image rows and the page written."""

    metrics: dict[str, float]
    per_image: list[dict[str, Any]] = field(default_factory=list)
    folder: Path | None = None

    @property
    def page(self) -> Path | None:
        return self.folder / "index.html" if self.folder else None


def evaluate_segmentation(config: SegEvalConfig) -> EvalResult:
    """Score the model of ``config.model_dir`` on ``config.data`` (module docstring).

    Raises:
        DatasetFormatError: No such split, or images without masks.

    Example:
        >>> result = evaluate_segmentation(build_config(SegEvalConfig, model_dir="m", data="d"))  # doctest: +SKIP
        >>> sorted(result.metrics)  # doctest: +SKIP
        ['dice', 'iou', 'n_images', 'precision', 'recall', 'tta']
    """
    samples = select_split(config.data, config.split)
    predictor = load_predictor(config.model_dir, config.device, config.precision, config.batch_size, config.tta)
    total, rows, worst = Counts(), [], []
    for sample in track(samples, description="evaluating", unit="image"):
        image, truth = read_sample(sample)
        pred = predictor.probabilities(image) > predictor.info.threshold
        counts = count_pixels(pred, truth)
        total = total + counts
        row = {
            "stem": sample.stem,
            **scores(counts),
            "tp": counts.tp,
            "fp": counts.fp,
            "fn": counts.fn,
            "true_px": int(truth.sum()),
            "pred_px": int(pred.sum()),
        }
        rows.append(row)
        if counts.tp + counts.fp + counts.fn:
            worst = sorted([*worst, (row["dice"], sample.stem, draw_errors(image, pred, truth))])[:N_WORST]
    metrics = {**scores(total), "n_images": len(rows), "tta": config.tta}
    name = f"{Path(config.data).resolve().name}-{config.split or 'all'}{'-tta' if config.tta else ''}"
    folder = Run.open(config.model_dir).evaluation_dir(name)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    with (folder / "per_image.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["stem"])
        writer.writeheader()
        writer.writerows(rows)
    (folder / "index.html").write_text(_page(name, metrics, worst, {r["stem"]: r for r in rows}), encoding="utf-8")
    return EvalResult(metrics, rows, folder)


def draw_errors(image: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The image dimmed, with true positives green, false positives red and misses yellow.

    Example:
        >>> draw_errors(np.zeros((1, 2, 3), np.uint8), np.array([[1, 0]], bool), np.array([[0, 1]], bool))[0].tolist()
        [[235, 40, 40], [250, 210, 30]]
    """
    out = (image.astype(np.float32) * 0.6).astype(np.uint8)
    for key, where in (("tp", pred & truth), ("fp", pred & ~truth), ("fn", ~pred & truth)):
        out[where] = _COLOURS[key]
    return out


def _thumb(rgb: np.ndarray) -> str:
    img = Image.fromarray(rgb)
    scale = _THUMB_PX / max(img.size)
    if scale < 1:  # nearest keeps one-pixel cracks visible
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.NEAREST
        )
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _page(name: str, metrics: dict[str, float], worst: list[tuple], rows: dict[str, dict[str, Any]]) -> str:
    head = " · ".join(f"{k} <b>{metrics[k]:.3f}</b>" for k in ("dice", "iou", "precision", "recall"))
    cards = []
    for dice, stem, rgb in worst:
        r = rows[stem]
        cards.append(
            f'<figure><img alt="{html.escape(stem)}" src="data:image/jpeg;base64,{_thumb(rgb)}">'
            f"<figcaption>{html.escape(stem)}: dice {dice:.3f}, {r['true_px']} true px, {r['pred_px']} predicted "
            f"px</figcaption></figure>"
        )
    legend = "green: found · red: false alarm · yellow: missed"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>seg eval " + html.escape(name) + "</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;margin:.5em;vertical-align:top}"
        "img{image-rendering:pixelated;border:1px solid #999;max-width:512px}</style></head><body>"
        f"<h1>Segmentation: {html.escape(name)}</h1><p>{metrics['n_images']} images · {head}</p>"
        f"<h2>Worst images</h2><p>{legend}</p>{''.join(cards) or '<p>No image with foreground.</p>'}</body></html>"
    )
