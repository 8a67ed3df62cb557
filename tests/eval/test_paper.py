"""Tests of eval.paper: the 3CAD authors' evaluation protocol (mask resize, per-image PRO)."""

from __future__ import annotations

import logging
import math
import statistics

import numpy as np
import pytest
from PIL import Image

from threecad.eval.paper import (
    PAPER_FPR_LIMIT,
    PAPER_SIZE,
    PAPER_THRESHOLDS,
    mean_pro_paper,
    paper_image_label,
    paper_thresholds,
    per_image_pro_paper,
    resize_map_paper,
    resize_mask_paper,
)

LOGGER = "threecad.eval.paper"


# --------------------------------------------------------------------------- oracle


def _per_image_pro_paper_reference(amap: np.ndarray, mask: np.ndarray, *,
                                   n_thresholds: int = 200, fpr_limit: float = 0.3) -> float:
    """The straightforward loop: one full pass per threshold, as the authors' compute_pro.

    skimage ``label`` with its default connectivity (full, i.e. 8-connected in 2-D) and
    ``regionprops``; ``statistics.mean`` over regions; FPR over the image's normal pixels;
    keep FPR < limit, divide by the largest kept FPR; ``sklearn.metrics.auc``.
    """
    from skimage import measure
    from sklearn.metrics import auc

    amap = np.asarray(amap, dtype=np.float64)
    mask = (np.asarray(mask) > 0).astype(int)
    lo, hi = amap.min(), amap.max()
    delta = (hi - lo) / n_thresholds
    normal = 1 - mask
    regions = measure.regionprops(measure.label(mask))
    pros, fprs = [], []
    for th in np.arange(lo, hi, delta):
        positive = np.zeros_like(amap, dtype=bool)
        positive[amap > th] = True
        per_region = []
        for region in regions:
            rows, cols = region.coords[:, 0], region.coords[:, 1]
            per_region.append(positive[rows, cols].sum() / region.area)
        pros.append(statistics.mean(per_region))
        fprs.append(np.logical_and(normal, positive).sum() / normal.sum())
    pros_a, fprs_a = np.array(pros), np.array(fprs)
    keep = fprs_a < fpr_limit
    x = fprs_a[keep]
    return float(auc(x / x.max(), pros_a[keep]))


# --------------------------------------------------------------------------- constants


def test_constants():
    assert PAPER_SIZE == 256
    assert PAPER_THRESHOLDS == 200
    assert PAPER_FPR_LIMIT == 0.3


# --------------------------------------------------------------------------- mask resize


def _pil_rule(shape_in: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL NEAREST source indices: floor((i + 0.5) * in / out), in exact integers."""
    h, w = shape_in
    i = np.arange(size)
    return (2 * i + 1) * h // (2 * size), (2 * i + 1) * w // (2 * size)


@pytest.mark.parametrize("shape", [(1000, 700), (512, 512), (100, 37), (257, 300), (3, 5), (256, 256)])
def test_resize_mask_follows_pil_nearest(shape):
    rng = np.random.default_rng(sum(shape))
    mask = (rng.random(shape) < 0.3).astype(np.uint8) * 255
    out = resize_mask_paper(mask)
    assert out.dtype == np.bool_ and out.shape == (256, 256)
    rows, cols = _pil_rule(shape, 256)
    np.testing.assert_array_equal(out, mask[np.ix_(rows, cols)] > 0)
    pil = np.asarray(Image.fromarray(mask).resize((256, 256), Image.NEAREST))
    np.testing.assert_array_equal(out, pil > 0)


def test_resize_mask_differs_from_opencv_nearest():
    cv2 = pytest.importorskip("cv2")
    # 4x4 -> 2x2: PIL samples source pixels 1 and 3 of each axis, OpenCV 0 and 2.
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 1] = 255
    np.testing.assert_array_equal(resize_mask_paper(mask, size=2), [[True, False], [False, False]])
    assert not cv2.resize(mask, (2, 2), interpolation=cv2.INTER_NEAREST).any()
    # 512 -> 256, defect on odd columns only: PIL keeps all of it, OpenCV none of it.
    stripes = np.zeros((512, 512), np.uint8)
    stripes[:, 1::2] = 255
    assert resize_mask_paper(stripes).all()
    assert not cv2.resize(stripes, (256, 256), interpolation=cv2.INTER_NEAREST).any()


def test_resize_mask_binarises_at_half():
    mask = np.zeros((8, 8), np.uint8)
    mask[0, :] = 100
    mask[1, :] = 200
    mask[2, :] = 127
    mask[3, :] = 128
    out = resize_mask_paper(mask, size=8)  # same size: PIL copies, only the binarisation acts
    assert not out[0].any() and out[1].all()
    assert not out[2].any() and out[3].all()
    assert not out[4:].any()


def test_resize_mask_zero_one_mask_becomes_empty_with_warning(caplog):
    mask = np.zeros((300, 300), np.uint8)
    mask[100:200, 100:200] = 1
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        out = resize_mask_paper(mask)
    assert not out.any()
    assert "below 128" in caplog.text


def test_resize_mask_bool_is_255():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 3:7] = True
    out = resize_mask_paper(mask, size=10)
    np.testing.assert_array_equal(out, mask)


def test_resize_mask_uint16_nonzero_is_defect():
    mask = np.zeros((512, 512), np.uint16)
    # PIL samples the odd source rows/columns when halving 512 -> 256.
    mask[1, 1] = 65535
    mask[3, 3] = 1
    mask[5, 5] = 2
    mask[4, 4] = 65535  # even: not sampled
    out = resize_mask_paper(mask)
    assert out[0, 0] and out[1, 1] and out[2, 2]
    assert out.sum() == 3


def test_resize_mask_rejects_other_inputs():
    with pytest.raises(TypeError):
        resize_mask_paper(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError):
        resize_mask_paper(np.zeros((4, 4, 3), np.uint8))


def test_vanished_defect_warns_and_gives_nan_pro(caplog):
    mask = np.zeros((512, 512), np.uint8)
    mask[10, 20] = 255  # even row and column: PIL never samples it
    rng = np.random.default_rng(0)
    amap = rng.random((256, 256))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        resized = resize_mask_paper(mask, image_id="bump/000001")
        assert not resized.any()
        assert "vanished" in caplog.text and "bump/000001" in caplog.text
        assert paper_image_label(resized) == 0
        caplog.clear()
        value = per_image_pro_paper(amap, resized, image_id="bump/000001")
    assert math.isnan(value)
    assert "no defect pixel" in caplog.text and "bump/000001" in caplog.text


def test_paper_image_label():
    assert paper_image_label(np.zeros((256, 256), bool)) == 0
    m = np.zeros((256, 256), bool)
    m[5, 7] = True
    assert paper_image_label(m) == 1


# --------------------------------------------------------------------------- map resize


def test_resize_map_identity_at_size():
    amap = np.random.default_rng(0).random((256, 256)).astype(np.float16)
    assert resize_map_paper(amap) is amap


def test_resize_map_bilinear_float64_no_rescale():
    cv2 = pytest.importorskip("cv2")
    amap = np.random.default_rng(1).random((100, 60)).astype(np.float32) * 7 + 3
    out = resize_map_paper(amap)
    assert out.shape == (256, 256) and out.dtype == np.float64
    expected = cv2.resize(amap.astype(np.float64), (256, 256), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out, expected)
    assert out.min() >= amap.min() - 1e-9 and out.max() <= amap.max() + 1e-9
    const = resize_map_paper(np.full((30, 40), 0.25, np.float16))
    assert np.all(const == 0.25)
    with pytest.raises(ValueError):
        resize_map_paper(np.zeros((4, 4, 3)))


# --------------------------------------------------------------------------- thresholds


# (min, max) pairs for which ceil((max - min) / step) is 201, not 200, with the extra
# threshold below, equal to and above max.
RANGES_201 = {"lt": (1.50605, 2.541547), "eq": (0.380889, 2.031429), "gt": (1.032566, 1.967103)}


def test_threshold_count_mirrors_arange():
    assert len(paper_thresholds(np.array([[0.0, 1.0]]))) == 200
    for where, (lo, hi) in RANGES_201.items():
        th = paper_thresholds(np.array([[lo, hi]], np.float64))
        assert len(th) == 201
        assert {"lt": th[-1] < hi, "eq": th[-1] == hi, "gt": th[-1] > hi}[where]
        assert abs(th[-1] - hi) < 1e-12
        np.testing.assert_array_equal(th, np.arange(lo, hi, (hi - lo) / 200))
    # float32 / float16 maps are promoted to float64 first, as the authors' maps are float64
    a32 = np.array([[0.1, 0.7]], np.float32)
    np.testing.assert_array_equal(paper_thresholds(a32), paper_thresholds(a32.astype(np.float64)))
    with pytest.raises(ValueError):
        paper_thresholds(np.ones((3, 3)))


# --------------------------------------------------------------------------- hand cases


def test_pro_hand_computed_one_region():
    # Region = top-left 2x2 block with values 1.0, 0.902, 0.502, 0.202.
    # Normal pixels (12): nine 0.0, and 0.102, 0.252, 0.502.
    # min 0, max 1 -> thresholds t_k = 0.005 k, k = 0..199 (200 of them); a value v is
    # above t_k iff k <= floor(v / 0.005) (no value lies on the grid).
    #   FPR: 3/12 for k <= 20, 2/12 for 21..50, 1/12 for 51..100, 0 after.  All < 0.3,
    #        so x = FPR / (3/12): 1, 2/3, 1/3, 0.
    #   PRO (one region of 4 px): 1 for k <= 40, 3/4 for 41..100, 1/2 for 101..180,
    #        1/4 for 181..199.
    # Trapezoids where x changes:  k 20->21: (1 - 2/3) * (1 + 1)/2       = 1/3
    #                              k 50->51: (2/3 - 1/3) * (3/4 + 3/4)/2 = 1/4
    #                              k 100->101: (1/3 - 0) * (3/4 + 1/2)/2 = 5/24
    # Area = 1/3 + 1/4 + 5/24 = 19/24.
    amap = np.array([[1.0, 0.902, 0.0, 0.0],
                     [0.502, 0.202, 0.0, 0.102],
                     [0.0, 0.0, 0.0, 0.252],
                     [0.0, 0.0, 0.502, 0.0]])
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    assert per_image_pro_paper(amap, mask) == pytest.approx(19 / 24, abs=1e-12)
    assert _per_image_pro_paper_reference(amap, mask) == pytest.approx(19 / 24, abs=1e-12)


def test_pro_hand_computed_two_regions_fpr_cut():
    # Regions: A = {(0,0)} value 0.702; B = {(3,2), (3,3)} values 1.0, 0.402.
    # Normal (13): six 0.0, four 0.302, two 0.602, one 0.802.
    #   FPR: 7/13 (>= 0.3, dropped) for k <= 60; 3/13 for 61..120; 1/13 for 121..160;
    #        0 for 161..199.  Largest kept FPR is 3/13 (not 0.3): x = 1, 1/3, 0.
    #   PRO = mean(A, B): 1 for k <= 80; (1 + 1/2)/2 = 3/4 for 81..140; (0 + 1/2)/2 = 1/4
    #        for 141..199.
    # Kept: k 61..120 at x = 1; 121..160 at x = 1/3; 161..199 at x = 0.
    #   k 120->121: (1 - 1/3) * (3/4 + 3/4)/2 = 1/2;  k 160->161: (1/3) * (1/4 + 1/4)/2 = 1/12
    # Area = 7/12.
    amap = np.array([[0.702, 0.0, 0.0, 0.302],
                     [0.0, 0.302, 0.602, 0.0],
                     [0.302, 0.802, 0.0, 0.302],
                     [0.602, 0.0, 1.0, 0.402]])
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    mask[3, 2:] = True
    assert per_image_pro_paper(amap, mask) == pytest.approx(7 / 12, abs=1e-12)
    assert _per_image_pro_paper_reference(amap, mask) == pytest.approx(7 / 12, abs=1e-12)


def test_diagonal_touching_pixels_are_one_region():
    from skimage import measure

    # A = (0,0), (0,1), (0,2) and B = (1,3) touch only at a corner.
    mask = np.zeros((4, 4), bool)
    mask[0, :3] = True
    mask[1, 3] = True
    assert measure.label(mask.astype(int)).max() == 1  # the authors' label(): 8-connected
    # A = 0.302 each, B = 1.0; normal: ten 0.0 and two 0.502.
    #   FPR = 2/12 for k <= 100, then 0: x = 1 then 0.
    #   One region of 4 px: PRO = 1 for k <= 60, then 1/4 (only B). The only step in x is
    #   k 100->101 at PRO 1/4: area = 1/4. (As two regions A and B it would be 1/2.)
    amap = np.zeros((4, 4))
    amap[0, :3] = 0.302
    amap[1, 3] = 1.0
    amap[3, 0] = amap[3, 1] = 0.502
    assert per_image_pro_paper(amap, mask) == pytest.approx(0.25, abs=1e-12)
    assert _per_image_pro_paper_reference(amap, mask) == pytest.approx(0.25, abs=1e-12)


# --------------------------------------------------------------------------- vs reference


def _smooth(a: np.ndarray, k: int) -> np.ndarray:
    import cv2

    return cv2.blur(a, (k, k)) if k > 1 else a


def _random_case(rng: np.random.Generator, i: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = int(rng.integers(16, 72)), int(rng.integers(16, 72))
    kind = i % 5
    if kind == 0:  # blobs: smoothed noise thresholded
        mask = _smooth(rng.random((h, w)), int(rng.integers(3, 9))) > rng.uniform(0.55, 0.7)
    elif kind == 1:  # scattered single pixels (many diagonal contacts)
        mask = rng.random((h, w)) < rng.uniform(0.02, 0.06)
    elif kind == 2:  # a few rectangles
        mask = np.zeros((h, w), bool)
        for _ in range(int(rng.integers(1, 4))):
            y, x = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
            mask[y:y + int(rng.integers(1, 12)), x:x + int(rng.integers(1, 12))] = True
    elif kind == 3:  # diagonal lines
        mask = np.zeros((h, w), bool)
        d = np.arange(min(h, w) // 2)
        mask[d, d] = True
        mask[d[::-1], d + min(h, w) // 3] = True
    else:  # random noise, dense (a few large irregular regions)
        mask = rng.random((h, w)) < 0.5
    mask[0, 0] = True
    mask[-1, -1] = False
    base = _smooth(rng.random((h, w)), int(rng.integers(1, 6)))
    amap = base + rng.uniform(0, 1.5) * mask * rng.random((h, w))
    q = i % 4
    if q == 1:  # float16 quantisation (values in [0, 2.5]): many ties
        amap = amap.astype(np.float16)
    elif q == 2:  # few levels: heavy ties, ties across mask and background
        amap = np.round((amap - amap.min()) / np.ptp(amap) * int(rng.integers(3, 30)))
    else:
        amap = amap * rng.choice([1e-3, 1.0, 37.0]) + rng.choice([0.0, -2.0, 5.0])
        if q == 3:
            amap = amap.astype(np.float32)
    if i % 9 == 4:  # a range for which np.arange gives 201 thresholds
        lo, hi = list(RANGES_201.values())[(i // 9) % 3]
        amap = np.asarray(amap, np.float64)
        amap = lo + (amap - amap.min()) / np.ptp(amap) * (hi - lo) * 0.98 + (hi - lo) * 0.01
        amap[0, 0], amap[-1, -1] = hi, lo  # a defect pixel at max, a normal pixel at min
    return amap, mask


def test_vectorised_pro_equals_reference_loop():
    rng = np.random.default_rng(20250101)
    n_checked = 0
    counts = set()
    for i in range(54):
        amap, mask = _random_case(rng, i)
        value = per_image_pro_paper(amap, mask)
        if math.isnan(value):  # must be a case the authors' loop cannot score either
            try:
                with np.errstate(invalid="ignore", divide="ignore"):
                    ref = _per_image_pro_paper_reference(amap, mask)
            except ValueError:
                continue
            assert math.isnan(ref)
            continue
        ref = _per_image_pro_paper_reference(amap, mask)
        assert value == pytest.approx(ref, abs=1e-12, rel=0), i
        counts.add(len(paper_thresholds(amap)))
        n_checked += 1
    assert n_checked >= 45
    assert counts == {200, 201}  # both threshold counts np.arange produces were exercised


def test_vectorised_pro_equals_reference_full_size():
    import cv2

    rng = np.random.default_rng(7)
    mask = np.zeros((256, 256), bool)
    cv2.circle(mask.view(np.uint8), (80, 90), 20, 1, -1)
    mask[200:203, 30:140] = True
    mask[10, 10] = True
    amap = cv2.GaussianBlur(rng.random((256, 256)), (0, 0), 4) + 0.05 * mask
    for m in (amap, amap.astype(np.float32)):
        assert per_image_pro_paper(m, mask) == pytest.approx(
            _per_image_pro_paper_reference(m, mask), abs=1e-12, rel=0)


def test_options_forwarded():
    rng = np.random.default_rng(3)
    amap, mask = _random_case(rng, 0)
    for n_th, limit in [(50, 0.3), (200, 0.1), (333, 1.0)]:
        assert per_image_pro_paper(amap, mask, n_thresholds=n_th, fpr_limit=limit) == pytest.approx(
            _per_image_pro_paper_reference(amap, mask, n_thresholds=n_th, fpr_limit=limit),
            abs=1e-12, rel=0)


# --------------------------------------------------------------------------- undefined


def _assert_nan_with(caplog, amap, mask, text):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert math.isnan(per_image_pro_paper(amap, mask))
    assert text in caplog.text


def test_undefined_cases_are_nan_with_warning(caplog):
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    _assert_nan_with(caplog, np.full((8, 8), 0.5), mask, "constant")
    _assert_nan_with(caplog, np.random.default_rng(0).random((8, 8)), np.zeros((8, 8), bool),
                     "no defect pixel")
    _assert_nan_with(caplog, np.random.default_rng(0).random((8, 8)), np.ones((8, 8), bool),
                     "no normal pixel")
    bad = np.random.default_rng(0).random((8, 8))
    bad[0, 0] = np.nan
    _assert_nan_with(caplog, bad, mask, "non-finite")
    # Half of the normal pixels sit at the maximum: FPR >= 0.3 at every threshold.
    high = np.zeros((8, 8))
    high[4:, :] = 1.0
    high[2, 2] = 0.5
    _assert_nan_with(caplog, high, mask, "FPR < 0.3")
    # Normal pixels all at the minimum: FPR is 0 everywhere, 0 / 0 in the normalisation.
    low = np.zeros((8, 8))
    low[2:4, 2:4] = [[0.2, 0.4], [0.6, 0.8]]
    _assert_nan_with(caplog, low, mask, "FPR 0")


def test_input_validation():
    with pytest.raises(ValueError):
        per_image_pro_paper(np.zeros((4, 4)), np.zeros((4, 5), bool))
    with pytest.raises(ValueError):
        per_image_pro_paper(np.zeros((4, 4)), np.zeros((4, 4), bool), n_thresholds=0)
    with pytest.raises(ValueError):
        per_image_pro_paper(np.zeros((4, 4)), np.zeros((4, 4), bool), fpr_limit=0.0)


# --------------------------------------------------------------------------- category mean


def test_mean_skips_nan_and_counts(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = mean_pro_paper([0.5, float("nan"), 0.7, float("nan")], category="ACC")
    assert res.value == pytest.approx(0.6)
    assert (res.n_images, res.n_skipped) == (4, 2)
    assert "skips 2 of 4" in caplog.text and "ACC" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = mean_pro_paper([0.25, 0.75])
    assert res == (0.5, 2, 0) and caplog.text == ""

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        res = mean_pro_paper([float("nan")])
    assert math.isnan(res.value) and res.n_skipped == 1
    assert math.isnan(mean_pro_paper([]).value)


def test_threshold_equal_to_a_pixel_value_is_not_positive():
    # Integer levels 0..4: step 0.02, and 50 * 0.02 etc. round to exactly 1.0, 2.0, 3.0,
    # so some thresholds equal pixel values; those pixels are not above them (value > t).
    rng = np.random.default_rng(11)
    amap = rng.integers(0, 5, (24, 24)).astype(np.float64)
    amap[0, 0], amap[0, 1] = 0.0, 4.0
    mask = np.zeros((24, 24), bool)
    mask[3:9, 4:12] = True
    mask[15:20, 15:17] = True
    amap[mask] = np.minimum(amap[mask] + 1, 4)
    th = paper_thresholds(amap)
    assert np.isin(th, amap).sum() >= 3
    assert per_image_pro_paper(amap, mask) == pytest.approx(
        _per_image_pro_paper_reference(amap, mask), abs=1e-12, rel=0)
