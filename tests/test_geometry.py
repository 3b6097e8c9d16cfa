"""Crop windows, padded crops, IoU and box conversions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dinoscope.geometry import (
    DEFAULT_FILL,
    box_iou,
    compute_crop_windows,
    crop_and_pad,
    obb_to_xyxy,
    pairwise_iou_same_class,
    polygon_area,
    polygon_to_xyxy,
    round_window,
    xywhn_to_xyxy,
    xyxy_to_xywhn,
)

TOL = 1e-6


@st.composite
def box_in_image(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A box whose centre lies in the image; it may stick out of the image by up to half its size."""
    width = draw(st.integers(1, 2000))
    height = draw(st.integers(1, 2000))
    cx = draw(st.floats(0, width))
    cy = draw(st.floats(0, height))
    bw = draw(st.floats(0, 1.5 * width))
    bh = draw(st.floats(0, 1.5 * height))
    box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    return box, np.array([width, height], dtype=float)


def _clip(box: np.ndarray, wh: np.ndarray) -> np.ndarray:
    return np.concatenate([np.clip(box[:2], 0, wh), np.clip(box[2:], 0, wh)])


@settings(max_examples=300)
@given(
    box_in_image(),
    st.floats(0, 1),
    st.booleans(),
    st.floats(0, 64),
)
def test_windows_contain_the_clipped_box_and_stay_inside(
    box_wh: tuple[np.ndarray, np.ndarray], pad_frac: float, square: bool, min_size_px: float
) -> None:
    box, wh = box_wh
    win = compute_crop_windows(box[None], wh, pad_frac=pad_frac, square=square, min_size_px=min_size_px)[0]
    inner = _clip(box, wh)
    assert (win[:2] <= inner[:2] + TOL).all() and (win[2:] >= inner[2:] - TOL).all()
    assert (win[:2] >= -TOL).all() and (win[2:] <= wh + TOL).all()
    assert (win[2:] >= win[:2]).all()


@settings(max_examples=300)
@given(box_in_image(), st.floats(0, 1), st.floats(0, 64))
def test_square_windows_are_square_when_the_side_fits(
    box_wh: tuple[np.ndarray, np.ndarray], pad_frac: float, min_size_px: float
) -> None:
    box, wh = box_wh
    side = max(max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * pad_frac), min_size_px)
    win = compute_crop_windows(box[None], wh, pad_frac=pad_frac, square=True, min_size_px=min_size_px)[0]
    w, h = win[2] - win[0], win[3] - win[1]
    if side <= wh.min():
        assert w == pytest.approx(side, abs=1e-6 * max(side, 1)) and h == pytest.approx(side, abs=1e-6 * max(side, 1))
    else:  # clipped along the axis where the square does not fit: that side spans the whole image
        assert w == pytest.approx(min(side, wh[0])) and h == pytest.approx(min(side, wh[1]))


@given(
    st.floats(-500, 500),
    st.floats(-500, 500),
    st.floats(0, 300),
    st.floats(0, 300),
    st.floats(0, 2),
)
def test_pad_frac_moves_each_side_by_that_fraction_of_the_box_size(
    x1: float, y1: float, w: float, h: float, pad_frac: float
) -> None:
    box = np.array([[x1, y1, x1 + w, y1 + h]])
    win = compute_crop_windows(box, (640, 360), pad_frac=pad_frac, min_size_px=0, clip=False)[0]
    expected = [x1 - pad_frac * w, y1 - pad_frac * h, x1 + w + pad_frac * w, y1 + h + pad_frac * h]
    np.testing.assert_allclose(win, expected, atol=1e-9)


def test_min_size_grows_tiny_boxes_around_their_centre() -> None:
    win = compute_crop_windows(np.array([[100, 100, 102, 101]]), (640, 360), min_size_px=16)[0]
    np.testing.assert_allclose(win, [93, 92.5, 109, 108.5])


def test_long_thin_box_with_square_keeps_the_whole_object() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    box = np.array([[100.0, 0.0, 300.0, 10.0]])  # 200 x 10 px at the top edge
    win = compute_crop_windows(box, (640, 360), square=True)[0]
    np.testing.assert_allclose(win, [100, 0, 300, 200])  # shifted down into the image, not cut
    crop = crop_and_pad(image, win)
    assert crop.shape == (200, 200, 3)
    np.testing.assert_array_equal(crop[:10, :200], image[0:10, 100:300])  # every box pixel is in the crop


def test_square_too_big_for_the_image_is_clipped_then_padded_to_square() -> None:
    image = np.full((360, 640, 3), 7, dtype=np.uint8)
    win = compute_crop_windows(np.array([[50.0, 170.0, 550.0, 180.0]]), (640, 360), square=True)[0]
    np.testing.assert_allclose(win, [50, 0, 550, 360])
    crop = crop_and_pad(image, win, square=True)
    assert crop.shape == (500, 500, 3)
    assert (crop[70:430] == 7).all()  # the image rows, centred
    assert (crop[:70] == DEFAULT_FILL).all() and (crop[430:] == DEFAULT_FILL).all()


@given(
    st.floats(-1000, 1000),
    st.floats(-1000, 1000),
    st.floats(0, 500),
    st.floats(0, 500),
)
def test_round_window_contains_the_window_and_keeps_squares_square(x1: float, y1: float, w: float, h: float) -> None:
    r = round_window([x1, y1, x1 + w, y1 + h])
    assert r[0] <= x1 + TOL and r[1] <= y1 + TOL and r[2] >= x1 + w - 1e-5 and r[3] >= y1 + h - 1e-5
    assert r[2] - r[0] <= w + 2 and r[3] - r[1] <= h + 2
    rs = round_window([x1, y1, x1 + w, y1 + w])
    assert rs[2] - rs[0] == rs[3] - rs[1]


@st.composite
def image_and_window(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    x1, y1 = draw(st.floats(-20, width + 5)), draw(st.floats(-20, height + 5))
    w, h = draw(st.floats(0, 30)), draw(st.floats(0, 30))
    return image, np.array([x1, y1, x1 + w, y1 + h])


@settings(max_examples=300)
@given(image_and_window(), st.sampled_from([DEFAULT_FILL, (0, 255, 9), "edge", "reflect"]))
def test_crop_and_pad_has_the_rounded_size_and_copies_image_pixels(
    image_window: tuple[np.ndarray, np.ndarray], fill: tuple[int, int, int] | str
) -> None:
    image, window = image_window
    x1, y1, x2, y2 = round_window(window)
    crop = crop_and_pad(image, window, fill=fill)
    assert crop.shape == (y2 - y1, x2 - x1, 3) and crop.dtype == np.uint8
    height, width = image.shape[:2]
    rows, cols = np.arange(y1, y2)[:, None], np.arange(x1, x2)[None, :]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    ri, ci = np.nonzero(inside)
    np.testing.assert_array_equal(crop[ri, ci], image[ri + y1, ci + x1])
    if not isinstance(fill, str):
        assert (crop[~inside] == fill).all()
    elif fill == "edge":
        ro, co = np.nonzero(~inside)
        np.testing.assert_array_equal(
            crop[ro, co], image[np.clip(ro + y1, 0, height - 1), np.clip(co + x1, 0, width - 1)]
        )


def test_reflect_padding_matches_numpy_pad() -> None:
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    crop = crop_and_pad(image, [-3, -2, 10, 8], fill="reflect")
    np.testing.assert_array_equal(crop, np.pad(image, [(2, 3), (3, 3), (0, 0)], mode="reflect"))


def test_crop_and_pad_rejects_a_bad_fill() -> None:
    with pytest.raises(ValueError, match="fill"):
        crop_and_pad(np.zeros((4, 4, 3), np.uint8), [0, 0, 2, 2], fill="wrap")  # type: ignore[arg-type]


boxes_strategy = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(0.5, 80), st.floats(0.5, 80)), min_size=1, max_size=8
)


def _to_xyxy(rows: list[tuple[float, float, float, float]]) -> np.ndarray:
    arr = np.array(rows)
    return np.concatenate([arr[:, :2], arr[:, :2] + arr[:, 2:]], axis=1)


@given(boxes_strategy, boxes_strategy)
def test_iou_is_symmetric_bounded_and_one_for_identical_boxes(a_rows: list, b_rows: list) -> None:
    a, b = _to_xyxy(a_rows), _to_xyxy(b_rows)
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    np.testing.assert_allclose(iou, box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1)).all()
    np.testing.assert_allclose(np.diag(box_iou(a, a)), 1.0)


def test_iou_known_values_and_empty_union() -> None:
    np.testing.assert_allclose(box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2], [5, 5, 6, 6]]), [[1 / 3, 0]])
    assert box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_pairwise_iou_same_class_finds_the_planted_stacked_pair() -> None:
    xyxy = np.array(
        [
            [10, 10, 50, 50],  # 0
            [200, 200, 240, 240],  # 1: alone
            [10, 10, 50, 50],  # 2: same box as 0, other class
            [11, 10, 50, 50],  # 3: stacked on 0, same class
            [30, 30, 70, 70],  # 4: same class, small overlap with 0
        ],
        dtype=float,
    )
    pairs = pairwise_iou_same_class(xyxy, [0, 0, 1, 0, 0], min_iou=0.5)
    assert [(i, j) for i, j, _ in pairs] == [(0, 3)]
    assert pairs[0][2] == pytest.approx(39 / 40)
    assert len(pairwise_iou_same_class(xyxy, [0, 0, 1, 0, 0], min_iou=0.05)) == 3  # (0,3), (0,4), (3,4)


def test_obb_polygon_and_area() -> None:
    diamond = np.array([[5, 0, 10, 5, 5, 10, 0, 5]], dtype=float)
    np.testing.assert_allclose(obb_to_xyxy(diamond), [[0, 0, 10, 10]])
    np.testing.assert_allclose(obb_to_xyxy(diamond.reshape(1, 4, 2)), [[0, 0, 10, 10]])
    assert polygon_area(diamond.reshape(4, 2)) == pytest.approx(50.0)
    assert polygon_area(diamond.reshape(4, 2)[::-1]) == pytest.approx(50.0)  # orientation does not matter
    assert polygon_area([0, 0, 4, 0, 0, 3]) == pytest.approx(6.0)
    np.testing.assert_allclose(polygon_to_xyxy([1, 2, 5, 3, 2, 8]), [1, 2, 5, 8])


@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
        min_size=1,
        max_size=10,
    ),
    st.integers(1, 4000),
    st.integers(1, 4000),
)
def test_xywhn_round_trips(rows: list, width: int, height: int) -> None:
    xywhn = np.array(rows)
    xyxy = xywhn_to_xyxy(xywhn, (width, height))
    np.testing.assert_allclose(xyxy_to_xywhn(xyxy, np.tile([width, height], (len(rows), 1))), xywhn, atol=1e-9)
    np.testing.assert_allclose(xyxy[:, 2] - xyxy[:, 0], xywhn[:, 2] * width, atol=1e-9)


def test_shape_errors_name_the_field_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"xyxy must have shape \(N, 4\); got \(3, 5\)"):
        compute_crop_windows(np.zeros((3, 5)), (10, 10))
    with pytest.raises(ValueError, match=r"image_wh .* got \(2, 2\)"):
        compute_crop_windows(np.zeros((3, 4)), np.ones((2, 2)))
