"""The model-error stage: ground truth and predictions (two object tables) -> metrics, error types, losses.

:func:`evaluate_predictions` composes the pieces over one set of overlaps: COCO mAP per class
(:mod:`~dinoscope.analysis.detection_eval`, box IoU, and mask IoU too when both sides carry masks), the
operating point and confusion matrix, TIDE error types and their dAP (:mod:`~dinoscope.analysis.tide`, on mask
IoU when available), over/under-segmentation (:mod:`~dinoscope.analysis.segmentation_errors`) and the loss
(:mod:`~dinoscope.analysis.detection_loss`). It returns the findings tables the run stores:

- ``detection_errors``: one row per ground-truth object and per prediction: ``object_id``, ``origin``
  (``label``/``prediction``), ``label_ref`` (file:line), ``source``, ``class_name``, ``confidence``,
  ``error_type``, ``matched_id`` (the partner's object id, "" without), ``iou``, ``loss`` and its three terms,
  ``is_evaluated`` (False for ignored ones), ``area_px`` and the box ``x1 y1 x2 y2``;
- ``segmentation_errors``: ``object_id``, ``origin``, ``is_over_segmented``, ``is_under_segmented``,
  ``involved_ids`` (the objects involved);
- ``images``: one row per image: counts per outcome, over/under-segmentation counts, ``loss``;
- ``metrics``: the dict of ``eval/metrics.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dinoscope.analysis.detection_eval import (
    IOU_THRESHOLDS,
    RECALL_POINTS,
    confusion_matrix,
    evaluate_detections,
    operating_point,
)
from dinoscope.analysis.detection_loss import compute_image_loss, compute_object_loss
from dinoscope.analysis.detection_match import Instances, compute_overlaps
from dinoscope.analysis.segmentation_errors import find_segmentation_errors
from dinoscope.analysis.tide import ERROR_TYPES, find_tide_errors
from dinoscope.io.prediction_table import object_masks
from dinoscope.table import ObjectTable

__all__ = ["DetectionErrors", "evaluate_predictions", "instances_of"]


@dataclass
class DetectionErrors:
    """What :func:`evaluate_predictions` found (see the module docstring for the tables' columns)."""

    detection_errors: pd.DataFrame
    segmentation_errors: pd.DataFrame
    images: pd.DataFrame
    metrics: dict[str, Any]


def instances_of(table: ObjectTable, image_index: dict[str, int], masks: bool) -> Instances:
    """A table's objects as :class:`Instances` (image numbers from ``image_index``; crowd from ``iscrowd``)."""
    data = table.data
    crowd = data["iscrowd"].fillna(False).to_numpy(bool) if "iscrowd" in data else None
    score = data["confidence"].to_numpy(float)
    score = np.where(np.isnan(score), 1.0, score) if (data["origin"] == "prediction").any() else None
    return Instances(
        image=np.array([image_index[s] for s in data["source"]], dtype=np.int64),
        class_id=table.class_id,
        xyxy=table.xyxy,
        score=score,
        crowd=crowd,
        masks=object_masks(table) if masks else None,
    )


def evaluate_predictions(gt_table: ObjectTable, dt_table: ObjectTable, *, max_dets: int = 100) -> DetectionErrors:
    """Metrics, error types, segmentation errors and losses of predictions against ground truth.

    Args:
        gt_table: The dataset's objects (origin ``label``; ``iscrowd`` honoured when present).
        dt_table: The predictions on the same images (origin ``prediction``, ``confidence`` = score).
        max_dets: Predictions per image (and per class, for mAP) as COCO counts them.

    Returns:
        The :class:`DetectionErrors`.

    Example:
        >>> gt = read_dataset("data.yaml")  # doctest: +SKIP
        >>> found = evaluate_predictions(gt, read_prediction_table("preds", gt))  # doctest: +SKIP
        >>> found.metrics["map50_95"]  # doctest: +SKIP
    """
    started = time.perf_counter()
    sources = sorted(set(gt_table.images["source"]) | set(gt_table.data["source"]) | set(dt_table.data["source"]))
    index = {s: i for i, s in enumerate(sources)}
    masks = _has_masks(gt_table) and _has_masks(dt_table)
    gt, dt = instances_of(gt_table, index, masks), instances_of(dt_table, index, masks)
    k = len(gt_table.class_names)
    box_pairs = compute_overlaps(dt, gt, "box")
    box = evaluate_detections(dt, gt, k, kind="box", max_dets=max_dets, overlaps=box_pairs)
    metrics: dict[str, Any] = {"iou_type": "mask" if masks else "box", **_headline(box, gt_table.class_names)}
    pairs, main = box_pairs, box
    if masks:
        pairs = compute_overlaps(dt, gt, "mask")
        main = evaluate_detections(dt, gt, k, kind="mask", max_dets=max_dets, overlaps=pairs)
        metrics["mask"] = _headline(main, gt_table.class_names)
    op = operating_point(main, dt)
    tide = find_tide_errors(dt, gt, k, overlaps=pairs, max_dets=max_dets)
    seg = find_segmentation_errors(dt, gt, pairs, score_threshold=op["score_threshold"])
    loss = compute_object_loss(dt, gt, tide)
    matrix = confusion_matrix(dt, gt, k, op["score_threshold"], overlaps=box_pairs)

    errors = _error_rows(gt_table, dt_table, tide, loss)
    segmentation = _segmentation_rows(gt_table, dt_table, seg)
    at_op = np.r_[np.ones(len(gt), bool), dt.score >= op["score_threshold"]]
    images = _image_rows(sources, errors, segmentation, at_op, np.r_[gt.image, dt.image])
    metrics.update(
        operating_point=op,
        confusion_matrix={"classes": [*gt_table.class_names, "background"], "counts": matrix.tolist()},
        tide={
            "ap50": tide.ap50,
            "dap": tide.dap,
            **tide.info,
            "counts": _type_counts(errors),
            "per_class": _per_class_types(errors),
        },
        segmentation={**seg.info, **_seg_counts(segmentation)},
        loss={"mean": _mean(errors["loss"]), "terms": ["overlap", "class", "confidence"]},
        thresholds={"iou": [round(float(t), 2) for t in IOU_THRESHOLDS], "recall_points": len(RECALL_POINTS)},
        counts={"n_images": len(sources), "n_gt": len(gt), "n_pred": len(dt), "n_crowd": int(gt.crowd.sum())},
        seconds=round(time.perf_counter() - started, 3),
    )
    return DetectionErrors(errors, segmentation, images, metrics)


def _has_masks(table: ObjectTable) -> bool:
    data = table.data
    if not len(data):
        return False
    rle = (data["mask_rle"].fillna("") != "") if "mask_rle" in data else pd.Series(False, index=data.index)
    poly = data["polygon"].notna() if "polygon" in data else pd.Series(False, index=data.index)
    return bool((rle | poly).all())


def _headline(ev: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {"map50": ev.map50, "map50_95": ev.map50_95, "max_dets": ev.max_dets, "per_class": ev.per_class(names)}


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if values.notna().any() else float("nan")


def _error_rows(gt_table: ObjectTable, dt_table: ObjectTable, tide: Any, loss: Any) -> pd.DataFrame:
    gt_ids, dt_ids = gt_table.object_id, dt_table.object_id
    parts = []
    for table, types, partner, iou, value, terms, other in (
        (gt_table, tide.gt_type, tide.gt_partner, tide.gt_iou, loss.gt, loss.gt_terms, dt_ids),
        (dt_table, tide.dt_type, tide.dt_partner, tide.dt_iou, loss.dt, loss.dt_terms, gt_ids),
    ):
        d = table.data
        matched = np.where(partner >= 0, other[np.maximum(partner, 0)] if len(other) else "", "")
        parts.append(
            pd.DataFrame(
                {
                    "object_id": d["object_id"].to_numpy(),
                    "origin": d["origin"].to_numpy(),
                    "label_ref": d["label_ref"].to_numpy(),
                    "source": d["source"].to_numpy(),
                    "class_name": d["class_name"].to_numpy(),
                    "confidence": d["confidence"].to_numpy(float),
                    "error_type": pd.Categorical(types, categories=ERROR_TYPES),
                    "matched_id": matched.astype(object),
                    "iou": iou,
                    "loss": value,
                    "loss_overlap": terms[:, 0],
                    "loss_class": terms[:, 1],
                    "loss_confidence": terms[:, 2],
                    "is_evaluated": types != "ignored",
                    "area_px": (d["x2"] - d["x1"]).to_numpy() * (d["y2"] - d["y1"]).to_numpy(),
                    **{c: d[c].to_numpy(float) for c in ("x1", "y1", "x2", "y2")},
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _segmentation_rows(gt_table: ObjectTable, dt_table: ObjectTable, seg: Any) -> pd.DataFrame:
    gt_ids, dt_ids = gt_table.object_id, dt_table.object_id
    frames = []
    for table, over, under, involved, other in (
        (gt_table, seg.gt_over, seg.gt_under, seg.gt_involved, dt_ids),
        (dt_table, seg.dt_over, seg.dt_under, seg.dt_involved, gt_ids),
    ):
        frames.append(
            pd.DataFrame(
                {
                    "object_id": table.object_id,
                    "origin": table.data["origin"].to_numpy(),
                    "source": table.data["source"].to_numpy(),
                    "is_over_segmented": over,
                    "is_under_segmented": under,
                    "involved_ids": [[str(other[j]) for j in rows] for rows in involved],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _image_rows(
    sources: list[str], errors: pd.DataFrame, seg: pd.DataFrame, counted: np.ndarray, image: np.ndarray
) -> pd.DataFrame:
    n = len(sources)
    value, n_counted = compute_image_loss(image[counted], errors["loss"].to_numpy()[counted], n)
    frame = pd.DataFrame({"source": sources, "loss": value, "n_objects_counted": n_counted})
    label = (errors["origin"] == "label").to_numpy()
    for name, mask in (
        ("n_gt", label),
        ("n_pred_at_op", ~label & counted),
        ("n_tp", label & (errors["error_type"] == "tp").to_numpy()),
        ("n_miss", label & (errors["error_type"] == "miss").to_numpy()),
        ("n_false_pos_at_op", ~label & counted & ~errors["error_type"].isin(["tp", "ignored"]).to_numpy()),
        ("n_over_segmented", label & seg["is_over_segmented"].to_numpy()),
        ("n_under_segmented", ~label & seg["is_under_segmented"].to_numpy()),
    ):
        frame[name] = np.bincount(image[mask], minlength=n)
    return frame


def _type_counts(errors: pd.DataFrame) -> dict[str, dict[str, int]]:
    out = {}
    for origin, group in errors.groupby("origin", observed=True):
        counts = group["error_type"].value_counts()
        out[str(origin)] = {t: int(counts.get(t, 0)) for t in ERROR_TYPES if counts.get(t, 0)}
    return out


def _per_class_types(errors: pd.DataFrame) -> dict[str, dict[str, int]]:
    table = pd.crosstab(errors["class_name"], errors["error_type"])
    return {str(c): {str(t): int(v) for t, v in row.items() if v} for c, row in table.iterrows()}


def _seg_counts(seg: pd.DataFrame) -> dict[str, int]:
    label = seg["origin"] == "label"
    return {
        "n_over_segmented_gt": int((label & seg["is_over_segmented"]).sum()),
        "n_under_segmenting_predictions": int((~label & seg["is_under_segmented"]).sum()),
        "n_images_over": int(seg.loc[label & seg["is_over_segmented"], "source"].nunique()),
        "n_images_under": int(seg.loc[~label & seg["is_under_segmented"], "source"].nunique()),
    }
