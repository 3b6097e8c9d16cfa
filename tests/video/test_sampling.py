"""Per-class sampling with bounded memory, and the near-duplicate filter."""

from __future__ import annotations

import numpy as np
import pytest

from dinoscope.video.sampling import ClassSampler, DuplicateFilter


@pytest.mark.parametrize(("n", "k"), [(1000, 10), (37, 10), (10, 10), (5, 10), (1, 1), (4097, 7)])
def test_k_evenly_spread_over_all_detections_with_at_most_2k_held(n: int, k: int) -> None:
    sampler = ClassSampler(k)
    most_held = 0
    for key in range(n):
        if sampler.offer(0, key):
            sampler.put(key, np.zeros(1))
        most_held = max(most_held, len(sampler.crops))
    chosen = sampler.select()[0]
    assert most_held <= 2 * k
    assert len(chosen) == min(n, k) and chosen == sorted(set(chosen)) and set(chosen) <= set(sampler.crops)
    if n > 2 * k:  # spread: starts at the first detection, gaps even, reaches into the last stretch
        gaps = np.diff(chosen)
        assert chosen[0] == 0 and gaps.max() <= 2 * gaps.min() and chosen[-1] >= n - 2 * n / k


def test_classes_are_sampled_independently_and_k0_keeps_everything() -> None:
    sampler = ClassSampler(3)
    for key in range(300):
        sampler.offer(key % 3 == 0, key)  # class 1: every third detection, class 0: the others
    chosen = sampler.select()
    assert len(chosen[0]) == len(chosen[1]) == 3
    assert all(k % 3 == 0 for k in chosen[1]) and all(k % 3 for k in chosen[0])
    everything = ClassSampler(0)
    for key in range(50):
        assert everything.offer(0, key)
    assert everything.select()[0] == list(range(50))


def test_a_released_detection_drops_its_crop_and_ignores_a_late_put() -> None:
    sampler = ClassSampler(1)
    for key in range(3):
        assert sampler.offer(0, key)
        sampler.put(key, np.full(1, key))
    # 0, 1 held with their crops; 2 makes 3 > 2K: the step doubles, 1 and its crop are released
    assert sorted(sampler.crops) == [0, 2] and not sampler.is_held(1)
    sampler.put(1, np.zeros(1))
    assert 1 not in sampler.crops


def _frame(value: int = 100) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(value - 20, value + 20, (100, 100, 3)).astype(np.uint8)


def test_static_object_is_kept_once_and_a_change_is_kept_again() -> None:
    f = DuplicateFilter(iou=0.9, max_diff=3.0)
    box, cls = np.array([[10.0, 10.0, 50.0, 50.0]]), np.array([0])
    image = _frame()
    assert f(image, box, cls).tolist() == [False]
    assert f(image, box, cls).tolist() == [True]  # same place, same look
    assert f(image, box, np.array([1])).tolist() == [False]  # another class is another object
    assert f(image, box, np.array([1])).tolist() == [True]
    brighter = image.copy()
    brighter[10:50, 10:50] += 30
    assert f(brighter, box, np.array([1])).tolist() == [False]  # it changed: kept
    assert f(image, box + 20, np.array([1])).tolist() == [False]  # it moved: kept
    f.reset()
    assert f(image, box, cls).tolist() == [False]  # a new source starts fresh


def test_slow_drift_is_compared_with_the_last_kept_box() -> None:
    f = DuplicateFilter(iou=0.9, max_diff=255.0)  # appearance ignored: boxes only
    image = _frame()
    flags = [bool(f(image, np.array([[10.0 + s, 10, 50.0 + s, 50]]), np.array([0]))[0]) for s in range(0, 8)]
    # IoU with the box kept at shift 0 falls under 0.9 at shift 3 (37/43 = 0.86); shift 3 is kept, and so on
    assert flags == [False, True, True, False, True, True, False, True]


def test_two_objects_of_one_class_in_one_frame_are_both_kept() -> None:
    f = DuplicateFilter()
    boxes = np.array([[5.0, 5.0, 40.0, 40.0], [55.0, 55.0, 95.0, 95.0]])
    assert f(_frame(), boxes, np.array([0, 0])).tolist() == [False, False]
    assert f(_frame(), boxes, np.array([0, 0])).tolist() == [True, True]
