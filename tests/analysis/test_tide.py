"""TIDE error types: planted errors are typed exactly; the vectorised code equals a per-image loop port of
tidecv's procedure on random scenes; the AP gains of the oracle fixes; the per-object loss."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.analysis.detection_loss import compute_image_loss, compute_object_loss
from dinoscope.analysis.detection_match import Instances, compute_overlaps
from dinoscope.analysis.segmentation_errors import find_segmentation_errors
from dinoscope.analysis.tide import find_tide_errors
from tests.analysis.detection_synthetic import instances, random_scene

CAT, DOG = 0, 1
#: Ground truth of one 400x400 image: (class, box).
GT = [
    (CAT, [10, 10, 60, 60]),  # 0: found exactly, and found a second time (duplicate)
    (CAT, [100, 10, 150, 60]),  # 1: found with the wrong class
    (CAT, [200, 10, 250, 60]),  # 2: found shifted by 30 px (IoU 0.25)
    (CAT, [300, 10, 350, 60]),  # 3: dropped
    (CAT, [10, 100, 50, 140]),  # 4: merged with 5 into one box
    (CAT, [55, 100, 95, 140]),  # 5
    (CAT, [200, 100, 300, 200]),  # 6: split into two halves
    (DOG, [300, 300, 350, 350]),  # 7: found as a cat, poorly placed (IoU 0.43)
]
#: Predictions planted from the ground truth: (class, box, score, expected type).
PRED = [
    (CAT, [10, 10, 60, 60], 0.9, "tp"),
    (DOG, [100, 10, 150, 60], 0.8, "cls"),
    (CAT, [230, 10, 280, 60], 0.7, "loc"),
    (DOG, [10, 300, 40, 330], 0.6, "bkg"),
    (CAT, [11, 11, 61, 61], 0.5, "dupe"),
    (CAT, [10, 100, 95, 140], 0.85, "loc"),  # the merge: IoU 0.47 with 4 and 5
    (CAT, [200, 100, 248, 200], 0.75, "loc"),  # the halves: IoU 0.48 each
    (CAT, [252, 100, 300, 200], 0.65, "loc"),
    (CAT, [320, 300, 370, 350], 0.55, "both"),
]
GT_TYPES = ["tp", "cls", "loc", "miss", "loc", "miss", "loc", "miss"]


def planted() -> tuple[Instances, Instances]:
    gt = Instances([0] * len(GT), [c for c, _ in GT], [b for _, b in GT])
    dt = Instances([0] * len(PRED), [p[0] for p in PRED], [p[1] for p in PRED], score=[p[2] for p in PRED])
    return gt, dt


def test_every_planted_error_gets_its_type() -> None:
    gt, dt = planted()
    tide = find_tide_errors(dt, gt, 2)
    assert tide.dt_type.tolist() == [p[3] for p in PRED]
    assert tide.gt_type.tolist() == GT_TYPES
    # partners: the swap targets object 1, the shift object 2, the duplicate the object already found (0), the
    # merge the first of the two objects it covers (4, TIDE's argmax), the best-scored half fixes object 6
    assert tide.dt_partner.tolist()[:3] == [0, 1, 2] and tide.dt_partner[4] == 0 and tide.dt_partner[5] == 4
    assert tide.gt_partner[6] == 6 and tide.gt_partner[1] == 1
    np.testing.assert_allclose(tide.dt_iou[[0, 2]], [1.0, 0.25])


def test_merge_and_split_are_under_and_over_segmentation() -> None:
    gt, dt = planted()
    seg = find_segmentation_errors(dt, gt, compute_overlaps(dt, gt))
    assert np.flatnonzero(seg.dt_under).tolist() == [5] and seg.dt_involved[5] == [4, 5]
    assert np.flatnonzero(seg.gt_under).tolist() == [4, 5] and seg.gt_involved[4] == [5]
    # object 6 holds the two halves; object 0 holds its exact box and the duplicate (a piece by containment)
    assert np.flatnonzero(seg.gt_over).tolist() == [0, 6] and seg.gt_involved[6] == [6, 7]
    assert np.flatnonzero(seg.dt_over).tolist() == [0, 4, 6, 7]
    # at the operating point 0.6, the duplicate (0.5) no longer counts
    high = find_segmentation_errors(dt, gt, compute_overlaps(dt, gt), score_threshold=0.6)
    assert np.flatnonzero(high.gt_over).tolist() == [6] and high.info["score_threshold"] == 0.6


def test_containment_threshold_and_classes() -> None:
    gt = Instances([0, 0], [0, 0], [[0, 0, 10, 10], [10, 0, 20, 10]])
    wide = compute_overlaps(Instances([0], [0], [[0, 0, 18.5, 10]], score=[1]), gt)  # covers 85% of object 1
    assert find_segmentation_errors(Instances([0], [0], [[0, 0, 18.5, 10]], score=[1]), gt, wide).dt_under[0]
    short = Instances([0], [0], [[0, 0, 17.5, 10]], score=[1])  # 75% of object 1: not contained
    assert not find_segmentation_errors(short, gt, compute_overlaps(short, gt)).dt_under[0]
    other = Instances([0], [1], [[0, 0, 20, 10]], score=[1])  # another class: no merge
    assert not find_segmentation_errors(other, gt, compute_overlaps(other, gt)).dt_under[0]


def test_fixing_each_type_gains_ap_only_where_that_type_occurs() -> None:
    gt, dt = planted()
    tide = find_tide_errors(dt, gt, 2)
    assert set(tide.dap) == {"cls", "loc", "both", "dupe", "bkg", "miss"}
    # turning the cls/loc boxes into hits and dropping the missed objects raise AP; the both/dupe/bkg boxes all
    # score below the only hit, so removing them changes nothing
    assert tide.dap["cls"] > 0 and tide.dap["loc"] > tide.dap["cls"] and tide.dap["miss"] > 0
    assert tide.dap["both"] == tide.dap["dupe"] == tide.dap["bkg"] == 0.0
    only_bkg = Instances([0, 0], [0, 0], [[0, 0, 10, 10], [50, 50, 60, 60]], score=[0.5, 0.9])
    one = Instances([0], [0], [[0, 0, 10, 10]])
    t = find_tide_errors(only_bkg, one, 1)
    assert t.ap50 == pytest.approx(0.5, abs=0.01) and t.dap["bkg"] == pytest.approx(1 - t.ap50, abs=1e-9)
    assert t.dap["loc"] == t.dap["cls"] == t.dap["miss"] == 0.0


def test_crowd_regions_ignore_predictions_inside_them() -> None:
    gt = Instances([0, 0], [0, 0], [[0, 0, 10, 10], [50, 50, 100, 100]], crowd=[False, True])
    dt = Instances([0, 0], [0, 0], [[0, 0, 10, 10], [60, 60, 70, 70]], score=[0.9, 0.8])
    tide = find_tide_errors(dt, gt, 1)
    assert tide.dt_type.tolist() == ["tp", "ignored"] and tide.gt_type.tolist() == ["tp", "ignored"]


def test_loss_terms() -> None:
    gt, dt = planted()
    loss = compute_object_loss(dt, gt, find_tide_errors(dt, gt, 2))
    np.testing.assert_allclose(loss.dt_terms[0], [0.0, 0.0, 0.1])  # exact hit at 0.9: only unsureness
    np.testing.assert_allclose(loss.dt_terms[3], [0.6, 0.6, 0.6])  # background box at 0.6: its score thrice
    np.testing.assert_allclose(loss.gt_terms[3], [1, 1, 1])  # dropped object, nothing near: 1
    assert loss.gt[0] == loss.dt[0]  # a matched object shares its prediction's loss
    assert np.all((loss.dt >= 0) & (loss.dt <= 1)) and np.all((loss.gt >= 0) & (loss.gt <= 1))
    per_image, count = compute_image_loss(np.zeros(len(gt), np.int64), loss.gt, 2)
    assert per_image[0] == pytest.approx(loss.gt.mean()) and count.tolist() == [len(gt), 0]


def _reference_tide(dt: Instances, gt: Instances, pos: float = 0.5, bg: float = 0.1) -> tuple[list, list]:
    """A per-image loop port of tidecv's TIDEExample/TIDERun typing (boxes, no crowd regions)."""
    dt_type, gt_type = ["ignored"] * len(dt), ["miss"] * len(gt)
    best: dict[int, tuple[float, int]] = {}
    for img in sorted(set(dt.image.tolist()) | set(gt.image.tolist())):
        preds = [int(i) for i in np.flatnonzero(dt.image == img)]
        preds.sort(key=lambda i: -dt.score[i])
        preds = preds[:100]
        gts = [int(j) for j in np.flatnonzero(gt.image == img)]
        if not preds:
            continue
        iou = np.zeros((len(preds), len(gts)))
        for a, i in enumerate(preds):
            for b, j in enumerate(gts):
                p, g = dt.xyxy[i], gt.xyxy[j]
                w = max(0.0, min(p[2], g[2]) - max(p[0], g[0]))
                h = max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
                union = (p[2] - p[0]) * (p[3] - p[1]) + (g[2] - g[0]) * (g[3] - g[1]) - w * h
                iou[a, b] = w * h / union
        same = np.array([[dt.class_id[i] == gt.class_id[j] for j in gts] for i in preds]).reshape(iou.shape)
        buffer, used = iou * same, np.zeros(len(gts), bool)
        for a, i in enumerate(preds):
            if len(gts) and buffer[a].max() >= pos:
                b = int(np.argmax(buffer[a]))
                dt_type[i], gt_type[gts[b]], used[b] = "tp", "tp", True
                buffer[:, b] = 0
        for a, i in enumerate(preds):
            if dt_type[i] == "tp":
                continue
            if not gts:
                dt_type[i] = "bkg"
                continue
            c, o, u = iou[a] * same[a], iou[a] * ~same[a], iou[a] * same[a] * used
            if bg <= c.max() <= pos:
                dt_type[i], target = "loc", gts[int(np.argmax(c))]
            elif o.max() >= pos:
                dt_type[i], target = "cls", gts[int(np.argmax(o))]
            elif u.max() >= pos:
                dt_type[i], target = "dupe", -1
            elif iou[a].max() <= bg:
                dt_type[i], target = "bkg", -1
            else:
                dt_type[i], target = "both", -1
            if target >= 0 and gt_type[target] != "tp" and (target not in best or best[target][0] < dt.score[i]):
                best[target] = (float(dt.score[i]), i)
    for target, (_, i) in best.items():
        gt_type[target] = dt_type[i]
    return dt_type, gt_type


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_types_equal_the_reference_loop(seed: int) -> None:
    gts, dts = random_scene(seed, crowd_frac=0.0)
    rng = np.random.default_rng(seed)
    dts = [(i, c, b, s + rng.uniform(0, 0.001)) for i, c, b, s in dts]  # no exact ties (the order is tidecv's)
    gt, dt = instances(gts, dts)
    tide = find_tide_errors(dt, gt, 4)
    ref_dt, ref_gt = _reference_tide(dt, gt)
    assert tide.dt_type.tolist() == ref_dt and tide.gt_type.tolist() == ref_gt
    assert set(ref_dt) >= {"tp", "cls", "loc", "bkg", "both"}  # the scenes exercise most types
