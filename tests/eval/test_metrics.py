"""Exactness: the engine against scikit-learn and a brute-force MVTec AD AUPRO."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage.measure import label as sk_label
from sklearn.metrics import average_precision_score, roc_auc_score

from threecad.eval.curves import UndefinedMetricWarning
from threecad.eval.metrics import aupro, average_precision, pixel_metrics, pro_curve, roc_auc

TOL = 1e-6


def brute_aupro(maps, masks, fpr_limit=0.3):
    """The MVTec AD definition, literally: every distinct score a threshold (>= t), PRO
    pooled over all regions (8-connected), FPR over all normal pixels, the curve from (0, 0),
    linear interpolation at the limit, area divided by the limit."""
    scores, pos, weight = [], [], []
    n_regions = 0
    for m, g in zip(maps, masks):
        lab = sk_label(g > 0, connectivity=2)
        areas = np.bincount(lab.ravel())
        n_regions += lab.max()
        scores.append(m.astype(np.float64).ravel())
        pos.append((g > 0).ravel())
        weight.append(np.where(lab.ravel() > 0, 1.0 / np.maximum(areas[lab.ravel()], 1), 0.0))
    s, p, w = np.concatenate(scores), np.concatenate(pos), np.concatenate(weight)
    n_neg = (~p).sum()
    xs, ys = [0.0], [0.0]
    for t in np.unique(s)[::-1]:
        above = s >= t
        xs.append((above & ~p).sum() / n_neg)
        ys.append(w[above & p].sum() / n_regions)
    area = 0.0
    for i in range(1, len(xs)):
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        if x1 <= fpr_limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            if x0 < fpr_limit:
                y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
                area += (fpr_limit - x0) * (y0 + y_lim) / 2
            break
    return area / fpr_limit


def random_case(rng, n=3, h=12, w=14, levels=None, dtype=np.float64, p_blob=0.3):
    maps, masks = [], []
    for _ in range(n):
        m = rng.random((h, w))
        if levels:
            m = np.floor(m * levels) / levels
        maps.append(m.astype(dtype))
        g = np.zeros((h, w), np.uint8)
        for _ in range(rng.integers(0, 4)):
            y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
            g[y:y + rng.integers(1, 4), x:x + rng.integers(1, 4)] = 255
        g[rng.random((h, w)) < 0.02] = 255
        if rng.random() < p_blob:  # correlate scores with defects
            maps[-1] = (maps[-1].astype(np.float64) + (g > 0) * rng.random()).astype(dtype)
        masks.append(g)
    if not any(g.any() for g in masks):
        masks[0][0, 0] = 255
    return maps, masks


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("levels", [None, 3, 17])
def test_image_level_matches_sklearn_with_ties(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    scores = rng.normal(size=n)
    if levels:
        scores = np.round(scores * levels) / levels
    labels = rng.random(n) < 0.4
    labels[0], labels[-1] = True, False
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=TOL)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("levels,dtype", [(None, np.float64), (4, np.float64), (None, np.float16),
                                          (None, np.float32), (9, np.uint8)])
def test_pixel_metrics_match_sklearn_and_brute_force(seed, levels, dtype):
    rng = np.random.default_rng(1000 + seed)
    if dtype == np.uint8:
        maps, masks = random_case(rng)
        maps = [(m * 7).astype(np.uint8) for m in maps]
    else:
        maps, masks = random_case(rng, levels=levels, dtype=dtype)
    res = pixel_metrics(masks, maps, workers=2)
    y = np.concatenate([(g > 0).ravel() for g in masks])
    s = np.concatenate([m.astype(np.float64).ravel() for m in maps])
    assert res.auroc == pytest.approx(roc_auc_score(y, s), abs=TOL)
    assert res.ap == pytest.approx(average_precision_score(y, s), abs=TOL)
    for limit in (0.3, 0.05, 1.0):
        assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(brute_aupro(maps, masks, limit), abs=TOL)


def test_float16_quantised_maps_are_not_rescaled():
    rng = np.random.default_rng(5)
    maps, masks = random_case(rng, n=4, h=20, w=20)
    q = [m.astype(np.float16) for m in maps]
    res = pixel_metrics(masks, q)
    y = np.concatenate([(g > 0).ravel() for g in masks])
    s = np.concatenate([m.astype(np.float32).ravel() for m in q])
    assert res.auroc == pytest.approx(roc_auc_score(y, s), abs=TOL)
    # an order-preserving transform changes nothing
    shifted = [np.exp(m.astype(np.float64) * 3) - 100 for m in q]
    res2 = pixel_metrics(masks, shifted)
    assert (res2.auroc, res2.ap, res2.aupro) == pytest.approx((res.auroc, res.ap, res.aupro), abs=1e-12)


def test_constant_maps():
    masks = [np.zeros((6, 6), np.uint8) for _ in range(2)]
    masks[0][1:3, 1:3] = 1
    maps = [np.full((6, 6), 0.5) for _ in range(2)]
    res = pixel_metrics(masks, maps)
    assert res.auroc == pytest.approx(0.5)
    y = np.concatenate([(g > 0).ravel() for g in masks])
    assert res.ap == pytest.approx(average_precision_score(y, np.full(y.size, 0.5)))
    assert res.aupro == pytest.approx(brute_aupro(maps, masks))
    assert res.aupro == pytest.approx(0.15)  # the diagonal from (0,0) to (1,1), up to 0.3, / 0.3


def test_single_region_and_diagonal_touch():
    g = np.zeros((8, 8), np.uint8)
    g[2, 2] = g[3, 3] = g[4, 4] = 1  # one region under 8-connectivity
    m = np.zeros((8, 8))
    m[2, 2], m[3, 3], m[4, 4] = 0.9, 0.1, 0.5
    res = pixel_metrics([g], [m])
    assert res.n_regions == 1 and res.regions_by_size == {"small": 1, "medium": 0, "large": 0}
    assert res.aupro == pytest.approx(brute_aupro([m], [g]), abs=TOL)
    curve = pro_curve([g], [m])
    assert curve.fpr[0] == 0 and curve.pro[0] == 0
    assert np.all(np.diff(curve.fpr) >= 0)
    # the three pixels count as thirds of one region
    assert np.isin(np.round(curve.pro, 6), np.round([0, 1 / 3, 2 / 3, 1], 6)).all()


def test_perfect_and_inverted_maps():
    g = np.zeros((10, 10), np.uint8)
    g[2:5, 2:5] = 1
    perfect = pixel_metrics([g], [g.astype(float)])
    assert (perfect.auroc, perfect.ap, perfect.aupro) == pytest.approx((1.0, 1.0, 1.0))
    inverted = pixel_metrics([g], [-g.astype(float)])
    assert inverted.auroc == pytest.approx(0.0) and inverted.aupro == pytest.approx(0.0)


def test_one_class_absent_is_nan_with_warning():
    maps = [np.random.default_rng(0).random((5, 5))]
    with pytest.warns(UndefinedMetricWarning):
        res = pixel_metrics([np.zeros((5, 5))], maps)
    assert np.isnan(res.auroc) and np.isnan(res.ap) and np.isnan(res.aupro)
    with pytest.warns(UndefinedMetricWarning):
        res = pixel_metrics([np.ones((5, 5))], maps)
    assert np.isnan(res.auroc) and np.isnan(res.aupro)
    assert res.ap == pytest.approx(1.0)  # defined: every pixel is a true positive
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(roc_auc([0, 0], [0.1, 0.2]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        roc_auc([0, 1], [0.1, 0.2])  # defined: no warning


def test_size_class_breakdown_matches_restricted_brute_force():
    rng = np.random.default_rng(3)
    h = w = 140
    g = np.zeros((h, w), np.uint8)
    g[5:10, 5:10] = 1            # small (25 px)
    g[20:60, 20:60] = 1          # medium (1600 px)
    g[30:130, 70:135] = 1        # large (6500 px... > 9216? no: 100*65 = 6500 -> medium)
    g[100:135, 5:40] = 1         # medium (1225)
    m = rng.random((h, w)) + g * rng.random((h, w))
    res = pixel_metrics([g], [m])
    assert res.regions_by_size == {"small": 1, "medium": 3, "large": 0}
    assert np.isnan(res.aupro_by_size["large"]) or res.regions_by_size["large"] == 0
    small_only = g.copy()
    small_only[20:, :] = 0
    # AUPRO of small regions = AUPRO with only the small region as ground truth, all other
    # defective pixels removed from both classes
    keep = (g == 0) | (small_only > 0)
    ref = brute_aupro([np.where(keep, m, 0)[keep].reshape(1, -1)], [small_only[keep].reshape(1, -1)])
    assert res.aupro_by_size["small"] == pytest.approx(ref, abs=TOL)


def test_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        pixel_metrics([np.array([[0, 1]])], [np.array([[np.nan, 1.0]])])
    with pytest.raises(ValueError, match="shape"):
        pixel_metrics([np.zeros((2, 3))], [np.zeros((2, 2))])
    with pytest.raises(ValueError, match="1 masks but 2 maps"):
        pixel_metrics([np.zeros((2, 2))], [np.zeros((2, 2))] * 2)
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([1, 0], [np.inf, 0.0])


@pytest.mark.parametrize("kind", ["linear", "key"])
def test_both_bucket_modes_are_exact(kind):
    from threecad.eval.engine import PositiveIndex, order_keys

    rng = np.random.default_rng(11)
    n = 5000
    if kind == "linear":
        scores = np.round(rng.normal(size=n), 2)             # bounded, across zero, ties
    else:
        scores = np.exp(rng.normal(scale=40, size=n))        # many orders of magnitude
        scores[::7] = scores[3]                              # ties
    labels = rng.random(n) < 0.3
    index = PositiveIndex(order_keys(scores[labels]))
    assert index.linear == (kind == "linear")
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores), abs=TOL)


@pytest.mark.parametrize("where", ["normal", "anomalous"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("partitioned", [False, True])
def test_non_finite_map_values_name_the_image(where, bad, partitioned, monkeypatch):
    import threecad.eval.engine as engine

    if partitioned:
        monkeypatch.setattr(engine, "_PARTITION_MIN_K", 1)
    rng = np.random.default_rng(0)
    maps = rng.random((4, 32, 32)).astype(np.float32)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[:, 10:14, 10:14] = 1
    maps[2, 0, 0] = bad
    if where == "anomalous":
        maps[2, 0, 0] = 0.5
        maps[2, 11, 11] = bad
    with pytest.raises(ValueError, match="image 2: the map contains NaN or infinite values"):
        pixel_metrics(masks, maps, workers=2)


def _binary_by_the_rule(truth: np.ndarray) -> bool:
    """Binary: finite, at most two distinct values, at most one of them positive."""
    values = np.unique(truth.astype(np.float64))
    return bool(np.isfinite(values).all()) and values.size <= 2 and int((values > 0).sum()) <= 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, np.uint16, np.float16, np.float32, np.float64])
def test_the_binary_truth_check_is_the_rule_on_every_pattern(dtype):
    from threecad.eval.metrics import _check_binary_truth

    rng = np.random.default_rng(7)
    palette = [0, 1, 2, -1, 255, 5] + ([np.nan, np.inf, -np.inf] if np.dtype(dtype).kind == "f" else [])
    cases = [np.zeros((0, 3)), np.full((2, 3), 5), np.full((2, 3), -1)]
    for _ in range(300):
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        picks = rng.choice(len(palette), size=int(rng.integers(1, 4)), replace=False)
        cases.append(np.asarray(palette, dtype=np.float64)[picks][rng.integers(0, picks.size, size=shape)])
    for case in cases:
        truth = case.astype(dtype) if np.isfinite(case).all() or np.dtype(dtype).kind == "f" else None
        if truth is None or not np.array_equal(truth.astype(np.float64), case, equal_nan=True):
            continue  # the value does not exist in this dtype
        if _binary_by_the_rule(truth):
            out = _check_binary_truth(truth, "t")
            assert out.dtype == np.bool_ and out.shape == truth.shape
            assert np.array_equal(out, truth > 0)
        else:
            with pytest.raises(ValueError, match="NaN or infinite" if not np.isfinite(case).all() else "binary"):
                _check_binary_truth(truth, "t")
