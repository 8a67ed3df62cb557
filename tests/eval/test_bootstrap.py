"""Bootstrap statistics: exact resamples, binned error bound, intervals, pairing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from threecad.eval.bootstrap import (auroc_tie_bound, category_samples, paired_comparison, percentile_interval,
                            point_metrics, resample_metrics, resample_weights, bootstrap_submission)

from .test_metrics import brute_aupro


def make_category(rng, n_good, n_defect, h=10, w=12, levels=None, signal=1.0):
    """Maps and masks of one category: defective images have blobs that score higher."""
    maps, masks = [], []
    for i in range(n_good + n_defect):
        m = rng.random((h, w))
        g = np.zeros((h, w), np.uint8)
        if i >= n_good:
            for _ in range(int(rng.integers(1, 3))):
                y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
                g[y:y + rng.integers(1, 4), x:x + rng.integers(1, 4)] = 255
            m = m + signal * rng.random() * (g > 0)
        if levels:
            m = np.floor(m * levels) / levels
        maps.append(m)
        masks.append(g)
    return maps, masks


def expand(maps, masks, w):
    """The resampled data set, literally: image i repeated w[i] times."""
    out_m, out_g = [], []
    for m, g, k in zip(maps, masks, w):
        out_m += [m] * int(k)
        out_g += [g] * int(k)
    return out_m, out_g


def reference(maps, masks):
    s = np.concatenate([m.ravel() for m in maps])
    y = np.concatenate([(g > 0).ravel() for g in masks])
    scores = np.array([m.max() for m in maps])
    labels = np.array([g.any() for g in masks])
    return {"pixel_auroc": roc_auc_score(y, s), "pixel_ap": average_precision_score(y, s),
            "aupro": brute_aupro(maps, masks), "image_auroc": roc_auc_score(labels, scores),
            "image_ap": average_precision_score(labels, scores)}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 4])
def test_exact_resamples_equal_scoring_the_resampled_images(seed, levels):
    rng = np.random.default_rng(seed)
    maps, masks = make_category(rng, 4, 5, levels=levels)
    s = category_samples(masks, maps)
    assert s.exact
    w = resample_weights(s.image_ids, s.defect, n_resamples=5, seed=seed, stratum_key="X")
    got = resample_metrics(s, w)
    order = [int(i.rsplit("/", 1)[1]) for i in s.image_ids]  # rows are sorted keys
    for r in range(w.shape[0]):
        counts = np.zeros(len(maps), int)
        counts[order] = w[r]
        want = reference(*expand(maps, masks, counts))
        for metric, value in want.items():
            assert got[metric][r] == pytest.approx(value, abs=1e-9), (metric, r)


def test_point_estimate_is_the_exact_metric():
    rng = np.random.default_rng(7)
    maps, masks = make_category(rng, 5, 6)
    pm = point_metrics(category_samples(masks, maps))
    for metric, value in reference(maps, masks).items():
        assert pm[metric] == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_binned_auroc_error_within_its_bound(seed):
    rng = np.random.default_rng(seed)
    maps, masks = make_category(rng, 6, 6, h=16, w=16)
    exact = reference(maps, masks)
    s = category_samples(masks, maps, max_levels=8)
    assert not s.exact and s.levels.size <= 8
    bound = auroc_tie_bound(s)
    pm = point_metrics(s)
    assert abs(pm["pixel_auroc"] - exact["pixel_auroc"]) <= bound + 1e-12
    assert bound > 0
    # image metrics never binned
    assert pm["image_auroc"] == pytest.approx(exact["image_auroc"], abs=1e-12)
    # more levels, smaller bound
    assert auroc_tie_bound(category_samples(masks, maps, max_levels=64)) < bound


def test_stratified_resamples_keep_stratum_sizes_and_are_seeded():
    ids = [f"A/test/x/{i:03d}" for i in range(30)]
    defect = np.array([i % 3 == 0 for i in range(30)])
    w = resample_weights(ids, defect, n_resamples=50, seed=3, stratum_key="ACC")
    assert (w[:, defect].sum(axis=1) == defect.sum()).all()
    assert (w[:, ~defect].sum(axis=1) == (~defect).sum()).all()
    assert np.array_equal(w, resample_weights(ids, defect, n_resamples=50, seed=3, stratum_key="ACC"))
    assert not np.array_equal(w, resample_weights(ids, defect, n_resamples=50, seed=4, stratum_key="ACC"))
    # depends on keys, not on their order
    perm = np.random.default_rng(0).permutation(30)
    w2 = resample_weights([ids[i] for i in perm], defect[perm], n_resamples=50, seed=3, stratum_key="ACC")
    assert np.array_equal(w2, w[:, perm])


def _width(n_good, n_defect, seed=0):
    rng = np.random.default_rng(seed)
    maps, masks = make_category(rng, n_good, n_defect, signal=0.6)
    s = category_samples(masks, maps)
    w = resample_weights(s.image_ids, s.defect, n_resamples=300, seed=1, stratum_key="X")
    vals = resample_metrics(s, w)
    point = point_metrics(s)
    widths = {}
    for m in ("pixel_auroc", "pixel_ap", "aupro", "image_auroc"):
        lo, hi = percentile_interval(vals[m], 0.95)
        assert lo <= point[m] <= hi, m
        widths[m] = hi - lo
    return widths


def test_intervals_contain_the_point_estimate_and_shrink_with_more_images():
    small, large = _width(6, 6), _width(60, 60)
    for m in small:
        assert large[m] < small[m], m


def test_paired_comparison_of_a_method_with_itself_is_zero():
    rng = np.random.default_rng(2)
    maps, masks = make_category(rng, 5, 5)
    s = category_samples(masks, maps, code="ACC")
    boot = bootstrap_submission({"ACC": s}, n_resamples=40, seed=0, confidence=0.9)
    point = {"categories": {"ACC": point_metrics(s)}}
    cmp = paired_comparison(boot, boot, point, point)
    for m, d in cmp["categories"]["ACC"].items():
        assert (d["difference"], d["low"], d["high"], d["excludes_zero"]) == (0.0, 0.0, 0.0, False), m
    assert cmp["mean"]["pixel_auroc"]["difference"] == 0.0


def test_paired_comparison_detects_a_better_method():
    rng = np.random.default_rng(4)
    maps, masks = make_category(rng, 12, 12, signal=1.5)
    noisy = [m + 1.5 * np.random.default_rng(i).random(m.shape) for i, m in enumerate(maps)]
    a = category_samples(masks, maps, code="ACC")
    b = category_samples(masks, noisy, code="ACC")
    ba = bootstrap_submission({"ACC": a}, n_resamples=100, seed=0, confidence=0.95)
    bb = bootstrap_submission({"ACC": b}, n_resamples=100, seed=0, confidence=0.95)
    cmp = paired_comparison(ba, bb, {"categories": {"ACC": point_metrics(a)}},
                            {"categories": {"ACC": point_metrics(b)}})
    d = cmp["categories"]["ACC"]["pixel_auroc"]
    assert d["difference"] > 0 and d["low"] > 0 and d["excludes_zero"]


def test_percentile_interval_ignores_nan_and_handles_empty():
    assert percentile_interval(np.array([np.nan, np.nan]), 0.95) != percentile_interval(np.array([1.0]), 0.95)
    lo, hi = percentile_interval(np.array([np.nan, 1.0, 2.0, 3.0]), 0.5)
    assert 1.0 <= lo <= hi <= 3.0
