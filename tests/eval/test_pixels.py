"""PixelStats with groups: breakdowns against brute force, bounded tallies, declared sets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from threecad.eval import engine
from threecad.eval.evaluate import type_breakdowns
from threecad.eval.pixels import PixelStats, extract_positives
from tests.eval.test_metrics import brute_aupro

# group ids as CategoryBuilder gives them: 0 = good, then each defect-type set
GROUPS = {(): 0, ("dent",): 1, ("dent", "scratch"): 2, ("scratch",): 3, ("stain",): 4}


def _images(rng, kind: str, n: int = 14, shape=(18, 22)):
    """``(mask, map, group)`` triples: good images, and defective ones of every group."""
    out = []
    for i in range(n):
        group = i % len(GROUPS)
        mask = np.zeros(shape, np.uint8)
        if group:
            for _ in range(int(rng.integers(1, 4))):
                y, x = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
                mask[y:y + int(rng.integers(1, 6)), x:x + int(rng.integers(1, 7))] = 1
        amap = rng.random(shape) + 0.5 * mask * rng.random()
        if kind == "ties":
            amap = np.round(amap * 6) / 6
        out.append((mask, amap.astype(np.float32), group))
    return out


def _stats(images, sets, *, order):
    stats = PixelStats()
    positives = [extract_positives(amap, mask) for mask, amap, _ in images]
    for pos, (_, _, g) in zip(positives, images):
        stats.add_positives(pos, group=g)
    stats.finalize_positives(sets)
    tallies = [stats.new_tally(), stats.new_tally()]  # two "threads"
    for j, i in enumerate(order):
        mask, amap, g = images[i]
        stats.add_negatives(tallies[j % 2], amap, positives[i].flat_index, group=g)
    for t in tallies:
        stats.merge(t)
    return stats


def _brute(images):
    y = np.concatenate([m.ravel() > 0 for m, _, _ in images])
    s = np.concatenate([a.astype(np.float64).ravel() for _, a, _ in images])
    return (roc_auc_score(y, s), average_precision_score(y, s),
            brute_aupro([a for _, a, _ in images], [m for m, _, _ in images]))


@pytest.mark.parametrize("kind", ["ties", "continuous"])
@pytest.mark.parametrize("partitioned", [False, True])
@pytest.mark.parametrize("ordered", [True, False])
def test_breakdowns_match_brute_force_and_scoring_alone(kind, partitioned, ordered, monkeypatch):
    if partitioned:  # the buffered, partitioned count, with many flushes
        monkeypatch.setattr(engine, "_PARTITION_MIN_K", 1)
        monkeypatch.setattr(engine, "_FIRST_BUFFER", 64)
        monkeypatch.setattr(engine, "_BUFFER", 1000)
        monkeypatch.setattr(engine, "_BUFFER_PER_VALUE", 0)
    rng = np.random.default_rng(3 if kind == "ties" else 4)
    images = _images(rng, kind)
    breakdowns = type_breakdowns(GROUPS)
    assert breakdowns == {"dent": {0, 1, 2}, "scratch": {0, 2, 3}, "stain": {0, 4}}
    # images in order of group (as evaluate feeds them: each tally folds a group when done),
    # or interleaved (a tally then folds a group several times): the same integer counts
    order = sorted(range(len(images)), key=lambda i: (images[i][2], i)) if ordered \
        else list(rng.permutation(len(images)))
    stats = _stats(images, breakdowns.values(), order=order)
    for name, groups in [("whole", None), *breakdowns.items()]:
        subset = [im for im in images if groups is None or im[2] in groups]
        got = stats.compute(groups)
        auroc, ap, aupro = _brute(subset)
        assert got.auroc == pytest.approx(auroc, abs=1e-12), name
        assert got.ap == pytest.approx(ap, abs=1e-12), name
        assert got.aupro == pytest.approx(aupro, abs=1e-12), name
        assert got.n_pixels == sum(m.size for m, _, _ in subset)
        assert got.n_anomalous == sum(int((m > 0).sum()) for m, _, _ in subset)
        # bit for bit what the breakdown's images give when scored on their own
        alone = _stats([(m, a, 0) for m, a, _ in subset], [], order=range(len(subset))).compute()
        assert (got.auroc, got.ap, got.aupro, got.regions_by_size) == \
            (alone.auroc, alone.ap, alone.aupro, alone.regions_by_size), name
        for size in got.aupro_by_size:  # NaN where a size class is empty
            a, b = got.aupro_by_size[size], alone.aupro_by_size[size]
            assert a == b or (np.isnan(a) and np.isnan(b)), (name, size)


@pytest.mark.parametrize("partitioned", [False, True])
def test_tally_in_group_order_holds_one_group_at_a_time(partitioned, monkeypatch):
    if partitioned:  # float32 maps: the int32 pairs go straight to fold_pairs, no int64 counts made
        monkeypatch.setattr(engine, "_PARTITION_MIN_K", 1)
        monkeypatch.setattr(engine, "_BUFFER", 1000)
    rng = np.random.default_rng(0)
    images = _images(rng, "continuous", n=10)
    stats = PixelStats()
    positives = [extract_positives(a, m) for m, a, _ in images]
    for pos, (_, _, g) in zip(positives, images):
        stats.add_positives(pos, group=g)
    stats.finalize_positives(type_breakdowns(GROUPS).values())
    folded = []
    tally = stats.new_tally()
    sink, pair_sink = tally.sink, tally.pair_sink
    tally.sink = lambda g, c: (folded.append(g), sink(g, c))
    tally.pair_sink = lambda g, pairs: (folded.append(g), pair_sink(g, pairs))
    for i in sorted(range(len(images)), key=lambda i: images[i][2]):
        m, a, g = images[i]
        stats.add_negatives(tally, a, positives[i].flat_index, group=g)
        assert set(tally._counts) | set(tally._counters) == {g}  # the previous group went to a sink
        assert not partitioned or (not tally._counts and not tally._counters[g].has_counts)
    assert sorted(set(folded)) == [0, 1, 2, 3] and folded == sorted(folded)
    stats.merge(tally)
    assert tally.counts == {}
    assert stats.compute().n_pixels == sum(m.size for m, _, _ in images)


def test_sets_not_declared_are_refused_and_released_sets_are_gone():
    rng = np.random.default_rng(1)
    images = _images(rng, "ties", n=10)
    stats = _stats(images, [{0, 1}], order=range(len(images)))
    with pytest.raises(ValueError, match="not kept"):
        stats.compute({0, 3})
    every, whole = stats.compute({0, 1, 2, 3, 4}), stats.compute()  # every group: the whole
    assert (every.auroc, every.ap, every.aupro, every.n_pixels) == (whole.auroc, whole.ap, whole.aupro,
                                                                     whole.n_pixels)
    stats.compute({0, 1})
    stats.release()
    with pytest.raises(ValueError, match="not kept"):
        stats.compute({0, 1})
    stats.compute()
    stats.release(whole=True)
    with pytest.raises(RuntimeError):
        stats.compute()


@pytest.mark.parametrize("seed", range(6))
def test_folding_into_a_set_adds_exactly_the_restricted_counts(seed):
    from threecad.eval.engine import NegativeCounts
    from threecad.eval.pixels import _add_restricted

    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, 50))
    counts = NegativeCounts(rng.integers(0, 9, k + 1), rng.integers(0, 3, k))
    index_map = np.flatnonzero(rng.random(k) < rng.uniform(0, 1)).astype(np.int32)
    start = NegativeCounts(rng.integers(0, 5, index_map.size + 1), rng.integers(0, 5, index_map.size))
    got = start.copy()
    _add_restricted(counts.below, counts.on, index_map, got.below, got.on)
    want = start.copy()
    want += counts.restrict(index_map)
    assert np.array_equal(got.below, want.below) and np.array_equal(got.on, want.on)


def _plain_aupro(tc, fpr_limit):
    """The AUPRO area as first written: the whole curve as cumsums of interleaved arrays."""
    flat = (tc.fps_above - np.concatenate([[0], tc.fps[:-1]])).astype(np.float64)
    tail = float(tc.n_neg - (tc.fps[-1] if tc.fps.size else 0))
    sx = np.concatenate([np.column_stack([flat, tc.on.astype(np.float64)]).ravel(), [tail]])
    sy = np.concatenate([np.column_stack([np.zeros_like(tc.pro_weight), tc.pro_weight]).ravel(), [0.0]])
    x_end = np.cumsum(sx)
    y_start = np.cumsum(sy) - sy
    limit = fpr_limit * tc.n_neg
    j = min(int(np.searchsorted(x_end, limit, side="left")), sx.size - 1)
    area = float(np.dot(sx[:j], y_start[:j] + 0.5 * sy[:j]))
    x0 = x_end[j] - sx[j]
    if sx[j] > 0:
        frac = (limit - x0) / sx[j]
        area += (limit - x0) * (y_start[j] + 0.5 * frac * sy[j])
    return min(1.0, max(0.0, area / tc.n_regions / tc.n_neg / fpr_limit))


@pytest.mark.parametrize("seed", range(40))
def test_aupro_walk_equals_the_plain_formulation(seed):
    """The compiled walk up to the limit against the whole curve as cumsums (sums in another
    order: equal to the last few bits)."""
    from threecad.eval.curves import ThresholdCounts, aupro_from
    from threecad.eval.engine import NegativeCounts

    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, 3000)) if seed else 0
    values = np.sort(rng.random(k))
    pos = rng.integers(1, 4, k)
    neg = NegativeCounts(rng.integers(0, 30, k + 1) * (rng.random(k + 1) < 0.7),
                         rng.integers(0, 3, k) * (rng.random(k) < 0.3))
    weight = rng.random(k) / rng.integers(1, 50, k)
    tc = ThresholdCounts.build(values, pos, neg, pro_weight=weight, n_regions=max(1, k // 7))
    for limit in (0.3, 0.05, 1.0, float(rng.uniform(0.01, 1))):
        if tc.n_neg:
            assert aupro_from(tc, fpr_limit=limit) == pytest.approx(_plain_aupro(tc, limit), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int16, np.uint8])
def test_max_outside_equals_the_masked_maximum(dtype):
    """The highest value outside given flat indices, against the boolean-mask maximum: with
    the maximum inside, at the ends, ties across the border, nothing or everything inside."""
    from threecad.eval.pixels import max_outside

    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(1, 400))
        flat = (rng.random(n) * 100).astype(dtype)
        p = int(rng.integers(0, n + 1))
        inside = np.sort(rng.choice(n, p, replace=False))
        if p and trial % 3 == 0:
            flat[inside[0]] = dtype(120)  # the maximum is inside
        mask = np.ones(n, bool)
        mask[inside] = False
        expected = float(flat[mask].max()) if mask.any() else -np.inf
        assert max_outside(flat, inside) == expected
        assert max_outside(flat, rng.permutation(np.concatenate([inside, inside]))) == expected  # any order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finalize_can_prepare_the_count_table_beside_the_sets(dtype, monkeypatch):
    """prepare=True builds the partitioned count's table (float32 when U is, else 64-bit)
    before finalize_positives returns; the statistics are those without it."""
    monkeypatch.setattr(engine, "_PARTITION_MIN_K", 1)
    rng = np.random.default_rng(11)
    images = [(m, a.astype(dtype) + (rng.random(a.shape) * 1e-9 if dtype == np.float64 else 0), g)
              for m, a, g in _images(rng, "continuous")]
    results = []
    for prepare in (False, True):
        stats = PixelStats()
        positives = [extract_positives(a, m) for m, a, _ in images]
        for pos, (_, _, g) in zip(positives, images):
            stats.add_positives(pos, group=g)
        index = stats.finalize_positives(type_breakdowns(GROUPS).values(), prepare=prepare)
        built = (index._fine32 not in (None, False)) if dtype == np.float32 else index._fine is not None
        assert built == prepare
        tally = stats.new_tally()
        for i, (m, a, g) in sorted(enumerate(images), key=lambda item: item[1][2]):
            stats.add_negatives(tally, a, positives[i].flat_index, group=g)
        stats.merge(tally)
        results.append([stats.compute(s) for s in (None, *type_breakdowns(GROUPS).values())])
    assert repr(results[0]) == repr(results[1])  # NaN where a size class is empty
