"""Curves against scikit-learn's curves (not only the areas), clipping, argument order."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve
from sklearn.metrics import roc_curve as sk_roc_curve

from threecad.eval.accumulator import PixelAccumulator
from threecad.eval.bootstrap import category_samples
from threecad.eval.metrics import (aupro, average_precision, pixel_metrics, pr_curve, pro_curve, roc_auc,
                                   roc_curve, threshold_counts)
from tests.eval.test_metrics import brute_aupro


def case(seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y = rng.random(n) < rng.uniform(0.1, 0.7)
    y[0], y[-1] = True, False
    s = rng.standard_normal(n) + y * rng.uniform(0, 2)
    if ties:
        s = np.round(s * 3) / 3
    return y, s


def corners(fp: np.ndarray, tp: np.ndarray) -> list[tuple[int, int]]:
    """Vertices of a polyline in integer counts, duplicates and collinear points dropped."""
    pts = []
    for p in zip(fp.tolist(), tp.tolist()):
        if pts and pts[-1] == p:
            continue
        if len(pts) >= 2:
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
            if (x1 - x0) * (p[1] - y1) == (y1 - y0) * (p[0] - x1):
                pts[-1] = p
                continue
        pts.append(p)
    return pts


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_is_scikit_learns(seed, ties):
    y, s = case(seed, ties)
    ours = roc_curve(y, s)
    fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=False)
    p, n = int(y.sum()), int((~y).sum())
    mine = corners(np.rint(ours.fpr * n).astype(int), np.rint(ours.tpr * p).astype(int))
    theirs = corners(np.rint(fpr * n).astype(int), np.rint(tpr * p).astype(int))
    assert mine == theirs
    # at each positive score, the same point (ours: after its ties)
    at = {float(t): (f, r) for t, f, r in zip(thr, fpr, tpr)}
    for t, f, r in zip(ours.thresholds[2:-1:2], ours.fpr[2:-1:2], ours.tpr[2:-1:2]):
        assert at[float(t)] == pytest.approx((f, r), abs=1e-15)


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("ties", [False, True])
def test_pr_curve_is_scikit_learns_where_recall_changes(seed, ties):
    y, s = case(seed, ties)
    ours = pr_curve(y, s)
    precision, recall, thr = precision_recall_curve(y, s)
    keep = np.isin(thr, s[y])
    assert np.array_equal(ours.thresholds, thr[keep][::-1])
    assert np.allclose(ours.precision, precision[:-1][keep][::-1], rtol=0, atol=1e-15)
    assert np.allclose(ours.recall, recall[:-1][keep][::-1], rtol=0, atol=1e-15)
    # the points the recall changes at are exactly ours
    changes = np.flatnonzero(np.diff(np.concatenate([recall[:-1], [0.0]])) != 0)
    assert set(thr[changes].tolist()) == set(ours.thresholds.tolist())


def test_threshold_counts_by_definition():
    """What scikit-learn's ``_binary_clf_curve`` returns, at every distinct positive score."""
    for seed in range(10):
        y, s = case(seed, ties=bool(seed % 2))
        tc = threshold_counts(y, s)
        assert np.array_equal(tc.thresholds, np.unique(s[y])[::-1])
        assert tc.tps.tolist() == [int((y & (s >= t)).sum()) for t in tc.thresholds]
        assert tc.fps.tolist() == [int((~y & (s >= t)).sum()) for t in tc.thresholds]
        assert tc.fps_above.tolist() == [int((~y & (s > t)).sum()) for t in tc.thresholds]
        assert tc.n_pos == int(y.sum()) and tc.n_neg == int((~y).sum())


def brute_pro_points(masks, maps):
    """Exact (FPR, PRO) at every distinct score, as fractions (MVTec AD definition)."""
    from skimage.measure import label as sk_label

    s = np.concatenate([m.ravel() for m in maps])
    pos = np.concatenate([(g > 0).ravel() for g in masks])
    weight = []
    n_regions = 0
    for g in masks:
        lab = sk_label(g > 0, connectivity=2).ravel()
        areas = np.bincount(lab)
        n_regions += lab.max()
        weight.append([Fraction(1, int(areas[v])) if v else Fraction(0) for v in lab])
    w = [x for ws in weight for x in ws]
    n_neg = int((~pos).sum())
    points = []
    for t in np.unique(s)[::-1]:
        above = s >= t
        points.append((Fraction(int((above & ~pos).sum()), n_neg),
                       sum((w[i] for i in np.flatnonzero(above & pos)), Fraction(0)) / n_regions))
    return points


@pytest.mark.parametrize("seed", range(8))
def test_pro_curve_and_aupro_against_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    masks, maps = [], []
    for _ in range(3):
        g = np.zeros((9, 11), np.uint8)
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, 7, 2)
            g[y:y + rng.integers(1, 3), x:x + rng.integers(1, 4)] = 1
        masks.append(g)
        maps.append(np.round(rng.random(g.shape) * 4 + g * rng.random(), 0) / 4)  # heavy ties
    curve = pro_curve(masks, maps)
    points = set(zip(curve.fpr.tolist(), curve.pro.tolist()))
    for f, p in brute_pro_points(masks, maps):
        assert any(abs(f - a) < 1e-12 and abs(p - b) < 1e-12 for a, b in points), (float(f), float(p))
    for limit in (0.3, 0.1, 1.0):
        assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(brute_aupro(maps, masks, limit), abs=1e-12)


def test_areas_are_clipped_to_the_unit_interval():
    """Perfect maps: float sums may land at 1 + 2**-52; the areas are clipped, not the scores."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        masks = []
        for _ in range(3):
            g = np.zeros((24, 24), np.uint8)
            for _ in range(rng.integers(1, 6)):
                y, x = rng.integers(0, 20, 2)
                g[y:y + rng.integers(1, 5), x:x + rng.integers(1, 5)] = 1
            masks.append(g)
        maps = [g + rng.random(g.shape) * 0.5 * g for g in masks]
        res = pixel_metrics(masks, maps, workers=1)
        values = [res.ap, res.auroc] + [aupro(masks, maps, fpr_limit=limit) for limit in (0.3, 0.05, 1.0)]
        assert max(values) <= 1.0 and min(values) == pytest.approx(1.0, abs=1e-12)


def test_swapped_arguments_raise_a_clear_error():
    rng = np.random.default_rng(0)
    y = rng.random(50) < 0.3
    s = rng.random(50)
    for fn in (roc_auc, average_precision, roc_curve, pr_curve):
        with pytest.raises(ValueError, match="swapped"):
            fn(s, y)
    masks = [(rng.random((8, 8)) < 0.2).astype(np.uint8) for _ in range(2)]
    maps = [rng.random((8, 8)) for _ in range(2)]
    with pytest.raises(ValueError, match="swapped"):
        pixel_metrics(maps, masks)
    with pytest.raises(ValueError, match="swapped"):
        PixelAccumulator().update(maps[0], masks[0])
    with pytest.raises(ValueError, match="swapped"):
        category_samples(maps, masks)
    # binary truth in its usual spellings is accepted
    for truth in (y, y.astype(np.uint8) * 255, np.where(y, 1, -1), y.astype(np.float32)):
        assert roc_auc(truth, s) == roc_auc(y, s)
