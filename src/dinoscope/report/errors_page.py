"""The model-errors page of the report (``errors.html``), written when the run holds ``eval/metrics.json``.

One self-contained HTML file (styles and images inline, no script): the headline metrics and TIDE's dAP per
error type, error types per class, the map of every object coloured and sized by its loss, a gallery per error
type with the ground truth (green) and the prediction (red) drawn on the image, the merge and split cases
(under/over-segmentation, with every object involved drawn), and the images of highest loss.
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from dinoscope.io.images import read_image
from dinoscope.report.view import esc, fmt_int, fmt_num, fmt_pct, hbar, table
from dinoscope.run import Run

__all__ = ["write_errors_page"]

logger = logging.getLogger(__name__)
_GALLERY = 8
_THUMB_PX = 180
_TYPES = ("cls", "loc", "both", "dupe", "bkg", "miss")
_GT, _PRED, _OTHER = (44, 160, 44), (214, 39, 40), (255, 187, 120)
_STYLE = """body{font:14px system-ui,sans-serif;margin:0 auto;max-width:1180px;padding:16px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse}td,th{padding:3px 8px;
border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}.muted{color:#666}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumbs figure{margin:0;width:180px;font-size:11px}
.thumbs img{width:180px;height:180px;object-fit:contain;background:#eee}.bar{display:flex;gap:8px;
align-items:center}.bar i{display:inline-block;height:10px}.hbar{display:flex;gap:8px;align-items:center}"""


def write_errors_page(objects: pd.DataFrame, run_dir: Path, root: Path | None, out: Path) -> Path | None:
    """Write ``out/errors.html`` from the run's evaluation (None when the run has none).

    Args:
        objects: The report's objects (object table + findings + map coordinates ``x``, ``y``).
        run_dir: The run.
        root: Where the images are (None: no pictures).
        out: The report folder being written.
    """
    run = Run(run_dir)
    if not run.metrics_path.is_file():
        return None
    metrics = run.read_metrics()
    errors = run.read_findings("detection_errors")
    seg = run.read_findings("segmentation_errors")
    images = run.read_eval_table("images")
    boxes = _boxes(errors)
    body = [
        f"<h1>Model errors</h1><p class='muted'>{esc(_source(metrics))}</p>",
        _headline(metrics),
        _tide(metrics),
        _per_class(metrics),
        _confusions(metrics),
        _pr_curves(metrics),
        _loss_map(objects),
        _insights(metrics),
        *(_gallery(t, errors, boxes, root) for t in _TYPES),
        _segmentation(seg, errors, boxes, root),
        _worst_images(images, errors, boxes, root),
    ]
    page = f"<!doctype html><meta charset='utf-8'><title>Model errors</title><style>{_STYLE}</style>"
    page += "<p><a href='index.html'>&larr; report</a></p>" + "".join(body)
    path = out / "errors.html"
    path.write_text(page, encoding="utf-8")
    return path


def _source(metrics: dict[str, Any]) -> str:
    p = metrics.get("predictions", {})
    what = p.get("file") or (p.get("detector") or {}).get("file", "")
    return f"Predictions: {what}; IoU {metrics['iou_type']}; {metrics['counts']['n_images']} images."


def _headline(m: dict[str, Any]) -> str:
    op, seg, c = m["operating_point"], m["segmentation"], m["counts"]
    rows = [
        ("box mAP@0.5", fmt_pct(m["map50"])),
        ("box mAP@0.5:0.95", fmt_pct(m["map50_95"])),
        *((("mask mAP@0.5", fmt_pct(m["mask"]["map50"])), ("mask mAP@0.5:0.95", fmt_pct(m["mask"]["map50_95"])))
          if "mask" in m else ()),
        ("objects / predictions", f"{fmt_int(c['n_gt'])} / {fmt_int(c['n_pred'])}"),
        ("operating point (best F1)", f"score >= {op['score_threshold']:.3f}: F1 {fmt_num(op['f1'])}, precision "
         f"{fmt_pct(op['precision'])}, recall {fmt_pct(op['recall'])}"),
        ("under-segmenting predictions", f"{seg['n_under_segmenting_predictions']} in {seg['n_images_under']} images"),
        ("over-segmented objects", f"{seg['n_over_segmented_gt']} in {seg['n_images_over']} images"),
        ("mean object loss", fmt_num(m["loss"]["mean"], 3)),
    ]  # fmt: skip
    cells = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<h2>Metrics</h2><table>{cells}</table>"


def _tide(m: dict[str, Any]) -> str:
    t = m["tide"]
    top = max(max(t["dap"].values(), default=0.0), 1e-9)
    counts = {**t["counts"].get("prediction", {}), "miss": t["counts"].get("label", {}).get("miss", 0)}
    bars = "".join(
        hbar(f"{k} (n={counts.get(k, 0)})", v / top, "#d62728", f"+{100 * v:.2f}") for k, v in t["dap"].items()
    )
    return (
        f"<h2>AP gained by fixing each error type (TIDE, AP@0.5 {fmt_pct(t['ap50'])})</h2><p class='muted'>cls: "
        "right box, wrong class; loc: right class, IoU 0.1-0.5; both: wrong class and poor box; dupe: a second "
        "box on an object already found; bkg: box on nothing (IoU <= 0.1); miss: object no box found.</p>" + bars
    )


def _per_class(m: dict[str, Any]) -> str:
    per_type = m["tide"]["per_class"]
    rows = []
    for name, c in sorted(m["per_class"].items(), key=lambda kv: -(kv[1]["n_gt"])):
        types = per_type.get(name, {})
        cells = [fmt_int(c["n_gt"]), fmt_int(c["n_pred"]), fmt_pct(c["ap50"]), fmt_pct(c["ap50_95"])]
        cells += [fmt_int(types.get(t, 0)) for t in ("tp", *_TYPES)]
        rows.append(f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    head = ["class", "objects", "predictions", "AP50", "AP50:95", "tp", *_TYPES]
    return "<h2>Error types per class</h2>" + table(head, "".join(rows))


def _confusions(m: dict[str, Any]) -> str:
    """The largest off-diagonal cells of the confusion matrix (background included)."""
    names, counts = m["confusion_matrix"]["classes"], np.asarray(m["confusion_matrix"]["counts"])
    off = counts.copy()
    np.fill_diagonal(off, 0)
    cells = [(int(off[i, j]), names[i], names[j]) for i, j in zip(*np.nonzero(off), strict=True)]
    cells.sort(key=lambda c: -c[0])
    rows = "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{n}</td></tr>" for n, a, b in cells[:15])
    thr = m["operating_point"]["score_threshold"]
    return (
        f"<h2>Most frequent confusions (score >= {thr:.3f}, IoU 0.5)</h2><p class='muted'>Row: the object's class "
        "(background: a box on nothing); column: what was predicted (background: missed).</p>"
        + table(["true", "predicted", "count"], rows)
    )


def _pr_curves(m: dict[str, Any], n: int = 8) -> str:
    """Precision-recall curves at IoU 0.5 of the classes with the most objects."""
    per = [(k, c) for k, c in m["per_class"].items() if c.get("pr_curve50")]
    per = sorted(per, key=lambda kv: -kv[1]["n_gt"])[:n]
    if not per:
        return ""
    w, h, pad = 360, 240, 24
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    lines, keys = [], []
    for (name, c), color in zip(per, colors, strict=False):
        p = np.asarray(c["pr_curve50"])
        pts = " ".join(f"{pad + r * (w - 2 * pad):.1f},{h - pad - v * (h - 2 * pad):.1f}" for r, v in
                       zip(np.linspace(0, 1, len(p)), p, strict=True))  # fmt: skip
        lines.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        keys.append(f"<span><i style='background:{color};width:10px'></i> {esc(name)} {fmt_pct(c['ap50'])}</span> ")
    axes = f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" stroke="#999"/>'
    return (
        "<h2>Precision-recall at IoU 0.5</h2><p class='muted'>x: recall 0-1, y: precision 0-1 (interpolated as COCO "
        f"does); classes with the most objects, AP50 in the key.</p><svg viewBox='0 0 {w} {h}' width='{w}' "
        f"height='{h}' xmlns='http://www.w3.org/2000/svg'>{axes}{''.join(lines)}</svg>"
        f"<div class='bar'>{''.join(keys)}</div>"
    )


def _loss_map(objects: pd.DataFrame) -> str:
    if "x" not in objects or "loss" not in objects or objects["x"].isna().all():
        return "<h2>Map coloured by loss</h2><p class='muted'>No map in this run (run with embedding).</p>"
    o = objects[objects["x"].notna()]
    loss = o["loss"].fillna(0).to_numpy(float)
    x, y = o["x"].to_numpy(float), o["y"].to_numpy(float)
    w, h, pad = 760, 480, 10
    sx = pad + (x - x.min()) / (np.ptp(x) or 1) * (w - 2 * pad)
    sy = h - pad - (y - y.min()) / (np.ptp(y) or 1) * (h - 2 * pad)
    order = np.argsort(loss)
    ring = ' stroke="#000" stroke-width="0.5"'
    pred = (o["origin"] == "prediction").to_numpy()
    dots = "".join(
        f'<circle cx="{sx[i]:.1f}" cy="{sy[i]:.1f}" r="{1.5 + 5 * loss[i]:.1f}" fill="{_ramp(loss[i])}"'
        f"{ring if pred[i] else ''}>"
        f"<title>{esc(o['class_name'].iloc[i])} {esc(o['origin'].iloc[i])} {esc(o['error_type'].iloc[i])} "
        f"loss {loss[i]:.2f}</title></circle>"
        for i in order
    )
    return (
        "<h2>Map coloured and sized by loss</h2><p class='muted'>Every object (ground truth and predictions at the "
        "operating point; predictions ringed). Yellow/large = high loss.</p>"
        f'<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
        f'<g fill-opacity="0.75">{dots}</g></svg>'
    )


def _ramp(v: float) -> str:
    """Dark blue (0) to yellow (1)."""
    v = float(np.clip(v, 0, 1))
    r, g, b = int(40 + 215 * v), int(30 + 190 * v), int(120 - 90 * v)
    return f"#{r:02x}{g:02x}{b:02x}"


def _insights(m: dict[str, Any]) -> str:
    items = m.get("loss_clusters") or []
    if not items:
        return "<h2>Sub-groups of high loss</h2><p class='muted'>None (or no embedding in this run).</p>"
    return "<h2>Sub-groups of high loss</h2><ul>" + "".join(f"<li>{esc(i['text'])}</li>" for i in items[:20]) + "</ul>"


def _boxes(errors: pd.DataFrame) -> pd.DataFrame:
    """Boxes, sides, classes and types of every object, indexed by object id."""
    out = errors.set_index("object_id")[["x1", "y1", "x2", "y2", "source", "origin", "class_name", "error_type"]]
    return out.assign(error_type=out["error_type"].astype(str))


def _gallery(kind: str, errors: pd.DataFrame, boxes: pd.DataFrame, root: Path | None) -> str:
    rows = errors[(errors["error_type"].astype(str) == kind)].sort_values("loss", ascending=False)
    rows = rows[boxes.loc[rows["object_id"], "x1"].notna().to_numpy()].head(_GALLERY)
    if rows.empty:
        return f"<h2>{kind}</h2><p class='muted'>No {kind} errors among the objects shown.</p>"
    figs = []
    for _, r in rows.iterrows():
        ids = [r["object_id"], *([r["matched_id"]] if r["matched_id"] else [])]
        caption = f"{r['class_name']} ({r['origin']}) loss {r['loss']:.2f}, IoU {r['iou']:.2f}"
        figs.append(_figure(ids, boxes, root, caption))
    return f"<h2>{kind}: worst {len(figs)}</h2><div class='thumbs'>{''.join(figs)}</div>"


def _segmentation(seg: pd.DataFrame, errors: pd.DataFrame, boxes: pd.DataFrame, root: Path | None) -> str:
    parts = []
    for flag, origin, title in (
        ("is_under_segmented", "prediction", "Under-segmentation: one prediction holds several objects"),
        ("is_over_segmented", "label", "Over-segmentation: one object split into several predictions"),
    ):
        rows = seg[seg[flag] & (seg["origin"] == origin)]
        rows = rows[boxes.loc[rows["object_id"], "x1"].notna().to_numpy()].head(_GALLERY)
        figs = [
            _figure([r["object_id"], *r["involved_ids"]], boxes, root, f"{len(r['involved_ids'])} involved")
            for _, r in rows.iterrows()
        ]
        body = f"<div class='thumbs'>{''.join(figs)}</div>" if figs else "<p class='muted'>None.</p>"
        parts.append(f"<h2>{title}</h2>{body}")
    return "".join(parts)


def _worst_images(images: pd.DataFrame | None, errors: pd.DataFrame, boxes: pd.DataFrame, root: Path | None) -> str:
    if images is None or images.empty:
        return ""
    worst = images.sort_values("loss", ascending=False).head(_GALLERY)
    figs = []
    for _, r in worst.iterrows():
        ids = boxes.index[(boxes["source"] == r["source"]) & boxes["x1"].notna()].tolist()
        caption = f"{Path(r['source']).name}: loss {r['loss']:.2f}, {r['n_miss']} missed, {r['n_false_pos_at_op']} FP"
        figs.append(_figure(ids, boxes, root, caption, whole=True))
    return f"<h2>Images of highest loss</h2><div class='thumbs'>{''.join(figs)}</div>"


def _figure(ids: list[str], boxes: pd.DataFrame, root: Path | None, caption: str, whole: bool = False) -> str:
    """A thumbnail of the image region holding ``ids`` (first one outlined thicker), boxes drawn."""
    sub = boxes.loc[[i for i in ids if i in boxes.index]].dropna(subset=["x1"])
    img = _picture(sub, root, whole)
    return f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>"


def _picture(sub: pd.DataFrame, root: Path | None, whole: bool) -> str:
    if root is None or sub.empty:
        return "<div class='muted'>(image not available)</div>"
    try:
        rgb = read_image(root / sub["source"].iloc[0])
    except Exception as exc:  # an unreadable image must not stop the report
        logger.debug("errors page: %s", exc)
        return "<div class='muted'>(image not readable)</div>"
    h, w = rgb.shape[:2]
    pil = Image.fromarray(rgb)
    draw = ImageDraw.Draw(pil)
    for n, (_, b) in enumerate(sub.iterrows()):
        color = _GT if b["origin"] == "label" else _PRED if n == 0 or b["error_type"] != "tp" else _OTHER
        draw.rectangle([b["x1"], b["y1"], b["x2"], b["y2"]], outline=color, width=max(2, w // 300) + (n == 0))
    if not whole:
        x1, y1 = sub[["x1", "y1"]].min().to_numpy()
        x2, y2 = sub[["x2", "y2"]].max().to_numpy()
        m = 0.15 * max(x2 - x1, y2 - y1) + 8
        pil = pil.crop((max(0, x1 - m), max(0, y1 - m), min(w, x2 + m), min(h, y2 + m)))
    scale = 2 * _THUMB_PX / max(pil.size)
    pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=80)
    return f"<img src='data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}' alt=''>"
