"""COCO mAP computed by dinoscope equals pycocotools' on the same inputs (boxes, crowds, ties, masks)."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.detection_eval import confusion_matrix, evaluate_detections, operating_point
from dinoscope.analysis.detection_match import Instances, compute_overlaps, match_greedy, rank_within
from tests.analysis.detection_synthetic import instances, pycocotools_eval, random_scene


@pytest.mark.parametrize("seed", range(6))
def test_box_map_equals_pycocotools_with_crowds_and_tied_scores(seed: int) -> None:
    gts, dts = random_scene(seed, crowd_frac=0.1)
    gt, dt = instances(gts, dts)
    ours = evaluate_detections(dt, gt, 4)
    ref = pycocotools_eval(gts, dts, 40, 4)
    assert abs(ours.map50_95 - ref.stats[0]) < 1e-3 and abs(ours.map50 - ref.stats[1]) < 1e-3
    precision = ref.eval["precision"][:, :, :, 0, 2]  # T, R, K at area 'all', maxDets 100
    ref_ap = np.where(precision > -1, precision, np.nan).mean(axis=1)
    np.testing.assert_allclose(ours.ap, ref_ap, atol=1e-9)  # per class and threshold, not only the mean


def test_max_dets_keeps_the_best_hundred_per_image_and_class_as_coco_does() -> None:
    rng = np.random.default_rng(3)
    gts = [(0, 0, [i * 2.0, 0, i * 2 + 10, 10], False) for i in range(60)]
    dts = [(0, 0, (np.array(g[2]) + rng.normal(0, 1, 4)).tolist(), float(rng.random())) for g in gts for _ in (0, 1)]
    dts += [(0, 1, [0, 50, 10, 60], 0.5)] * 3
    gt, dt = instances(gts, dts)
    ours = evaluate_detections(dt, gt, 2)
    ref = pycocotools_eval(gts, dts, 1, 2)
    assert ours.n_dt.tolist() == [100, 3] and abs(ours.map50_95 - ref.stats[0]) < 1e-9


def test_mask_map_equals_pycocotools() -> None:
    mask_api = pytest.importorskip("pycocotools.mask")
    gts, dts = random_scene(11, n_images=15, crowd_frac=0.1)

    def rle(box: list[float], seed: int) -> dict:
        x1, y1, x2, y2 = box
        rng = np.random.default_rng(seed)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        radius = rng.uniform(0.5, 1.0, 7)
        poly = np.stack([cx + radius * (x2 - x1) / 2 * np.cos(angles), cy + radius * (y2 - y1) / 2 * np.sin(angles)])
        return mask_api.merge(mask_api.frPyObjects([poly.T.ravel().tolist()], 300, 300))

    gt_masks = [rle(g[2], n) for n, g in enumerate(gts)]
    dt_masks = [rle(d[2], 1000 + n) for n, d in enumerate(dts)]
    gt, dt = instances(gts, dts)
    gt = Instances(gt.image, gt.class_id, gt.xyxy, crowd=gt.crowd, masks=gt_masks)
    dt = Instances(dt.image, dt.class_id, dt.xyxy, dt.score, masks=dt_masks)
    ours = evaluate_detections(dt, gt, 4, kind="mask")
    ref = pycocotools_eval(gts, dts, 15, 4, "segm", masks=(gt_masks, dt_masks))
    assert ours.kind == "mask" and abs(ours.map50_95 - ref.stats[0]) < 1e-3 and abs(ours.map50 - ref.stats[1]) < 1e-3


def test_overlaps_pair_every_intersecting_prediction_and_object_of_an_image() -> None:
    gt = Instances([0, 0, 1], [0, 1, 0], [[0, 0, 10, 10], [5, 5, 15, 15], [0, 0, 10, 10]])
    dt = Instances([0, 1, 1], [0, 0, 0], [[5, 0, 15, 10], [0, 0, 10, 10], [50, 50, 60, 60]], score=[1, 1, 1])
    pairs = compute_overlaps(dt, gt)
    assert list(zip(pairs.dt.tolist(), pairs.gt.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 2)]
    np.testing.assert_allclose(pairs.iou, [50 / 150, 50 / 150, 1.0])


def test_greedy_matching_gives_an_object_to_the_higher_score_first() -> None:
    gt = Instances([0], [0], [[0, 0, 10, 10]])
    dt = Instances([0, 0], [0, 0], [[0, 0, 10, 8], [0, 0, 10, 10]], score=[0.4, 0.9])
    rank = rank_within([dt.image, dt.class_id], dt.score)
    assert rank.tolist() == [1, 0]
    assert match_greedy(compute_overlaps(dt, gt), dt, gt, [0.5], rank).tolist() == [[-1, 0]]


def test_operating_point_and_confusion_matrix_with_background() -> None:
    # object 0 (class 0) found, object 1 (class 1) predicted as class 0, object 2 missed, one false box
    gt = Instances([0, 0, 0], [0, 1, 1], [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]])
    dt = Instances(
        [0, 0, 0, 0], [0, 0, 1, 1], [[0, 0, 10, 10], [20, 0, 30, 10], [80, 80, 90, 90], [40, 0, 50, 10]],
        score=[0.9, 0.8, 0.7, 0.05],
    )  # fmt: skip
    ev = evaluate_detections(dt, gt, 2)
    op = operating_point(ev, dt)
    # F1 by threshold: 0.9 -> 0.5, 0.8 -> 0.4, 0.7 -> 0.33, 0.05 -> 0.57 (2 of 3 found, 2 of 4 right)
    assert op["score_threshold"] == 0.05 and op["recall"] == pytest.approx(2 / 3) and op["precision"] == 0.5
    matrix = confusion_matrix(dt, gt, 2, 0.5)
    assert matrix.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]  # rows: class 0, class 1, background
