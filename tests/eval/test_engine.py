"""The counting engine: partitioned counting and the direct kernels against a brute force."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import threecad.eval.engine as engine
from threecad.eval.engine import (NegativeCounter, NonFiniteScoresError, PositiveIndex, count_outside, distinct_positions,
                                  order_keys, sort_runs)
from threecad.eval.pixels import NegativeTally


def brute_counts(positive_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``below``/``on`` by definition: strictly between distinct positive values, or equal."""
    u = np.unique(np.asarray(positive_values, np.float64) + 0.0)
    v = np.asarray(values, np.float64).ravel() + 0.0
    at = np.searchsorted(u, v, side="left")
    equal = at < u.size
    equal[equal] = u[at[equal]] == v[equal]
    return np.bincount(at[~equal], minlength=u.size + 1), np.bincount(at[equal], minlength=u.size)


def sample(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if kind == "float32":
        return rng.random(n).astype(np.float32)
    if kind == "float32-spread":  # key buckets on 32-bit keys; -0.0, 0.0 and subnormals among them
        v = (rng.standard_normal(n) * 10.0 ** rng.integers(-40, 30, n)).astype(np.float32)
        v[::5] = -0.0
        v[1::5] = 0.0
        return v
    if kind == "spread":      # many orders of magnitude, both signs: key buckets
        return rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)
    if kind == "ties":
        return np.round(rng.standard_normal(n) * 50) / 7
    if kind == "zeros":       # -0.0 and 0.0 are one value
        v = rng.random(n)
        v[::3] = -0.0
        v[1::3] = 0.0
        return v
    return rng.integers(-1000, 1000, n).astype(np.int32)


@pytest.fixture
def partition_everything(monkeypatch):
    """Count partitioned even for small indexes, with a tiny buffer (many flushes, growth)."""
    monkeypatch.setattr(engine, "_PARTITION_MIN_K", 1)
    monkeypatch.setattr(engine, "_FIRST_BUFFER", 64)
    monkeypatch.setattr(engine, "_BUFFER", 1000)
    monkeypatch.setattr(engine, "_BUFFER_PER_VALUE", 0)


@pytest.mark.parametrize("kind", ["float32", "float32-spread", "spread", "ties", "zeros", "int32"])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("partitioned", [False, True])
def test_counts_match_brute_force(kind, seed, partitioned, request):
    if partitioned:
        request.getfixturevalue("partition_everything")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 20000))
    values = sample(kind, rng, n)
    positive = rng.random(n) < rng.uniform(0.02, 0.6)
    index = PositiveIndex(order_keys(values[positive]))
    assert index.partitioned == (partitioned and index.size > 0)
    if kind.startswith("float32") and index.size:
        assert index.fine32() is not None  # the packed 32-bit path counts these
    counter = NegativeCounter(index)
    by_index = NegativeCounter(index)
    for part in np.array_split(np.arange(n), 7):  # image after image
        counter.add(values[part], skip=positive[part])
        by_index.add(values[part], skip_index=np.flatnonzero(positive[part]))
    got = counter.result()
    below, on = brute_counts(values[positive], values[~positive])
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)
    got = by_index.result()
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)
    direct = index.empty_counts()
    index.count(values, direct, skip=positive)
    assert np.array_equal(direct.below, below) and np.array_equal(direct.on, on)


def test_partitioned_counts_equal_direct_counts_on_continuous_maps(monkeypatch):
    rng = np.random.default_rng(3)
    maps = rng.random((6, 64, 64)).astype(np.float32)
    masks = rng.random((6, 64, 64)) < 0.2
    index = PositiveIndex(order_keys(maps[masks]))
    direct = index.empty_counts()
    index.count(maps, direct, skip=masks)   # small index: direct kernel
    assert not index.partitioned
    monkeypatch.setattr(engine, "_PARTITION_MIN_K", 1)
    monkeypatch.setattr(engine, "_BUFFER", 5000)
    monkeypatch.setattr(engine, "_BUFFER_PER_VALUE", 0)
    counter = NegativeCounter(index)
    for m, g in zip(maps, masks):
        counter.add(m, skip=g)
    got = counter.result()
    assert np.array_equal(got.below, direct.below) and np.array_equal(got.on, direct.on)


def test_counts_add_across_threads_and_pickled_indexes(partition_everything):
    rng = np.random.default_rng(5)
    values = rng.random(50000).astype(np.float32)
    positive = rng.random(values.size) < 0.1
    index = PositiveIndex(order_keys(values[positive]))
    index.fine_table()
    shipped = pickle.loads(pickle.dumps(index))
    assert shipped._fine is None  # rebuilt where it is used, not sent
    chunks = np.array_split(np.arange(values.size), 4)

    def run(pair):
        idx, chunk = pair
        tally = NegativeTally(idx.size, index=idx)
        tally.add(values[chunk], skip=positive[chunk], group=int(chunk[0] % 2))
        return tally

    with ThreadPoolExecutor(2) as pool:
        tallies = list(pool.map(run, [(index if i % 2 else shipped, c) for i, c in enumerate(chunks)]))
    total = index.empty_counts()
    for t in tallies:
        for c in t.counts.values():
            total += c
    below, on = brute_counts(values[positive], values[~positive])
    assert np.array_equal(total.below, below) and np.array_equal(total.on, on)


def test_distinct_positions():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 50, 1000).astype(np.uint64)
    distinct, positions = distinct_positions(keys)
    assert np.array_equal(distinct, np.unique(keys))
    assert np.array_equal(distinct[positions], keys)
    empty, where = distinct_positions(np.zeros(0, np.uint64))
    assert empty.size == 0 and where.size == 0


@pytest.mark.parametrize("sizes", [[], [0], [7], [300, 0, 1, 2000, 45], [0, 0, 5000], [700_000, 600_000]])
def test_each_run_is_walked_by_value_from_one_sort(sizes):
    """Each run's entries by key, ties in input order, with their weights and classes: what a
    stable sort of that run alone and gathers give (the large case sorts on two threads)."""
    rng = np.random.default_rng(len(sizes))
    n = int(sum(sizes))
    keys = rng.integers(0, max(1, n // 3), n).astype(np.uint64)  # many ties
    weights, classes = rng.random(n), rng.integers(0, 3, n).astype(np.int8)
    ends = np.cumsum(np.asarray(sizes, np.int64), dtype=np.int64)
    distinct, positions, by_weight, by_class = sort_runs(keys, ends, weights, classes)
    assert np.array_equal(distinct, np.unique(keys))
    assert positions.dtype == np.int32
    for start, end in zip([0, *ends[:-1]], ends):
        order = start + np.argsort(keys[start:end], kind="stable")
        assert np.array_equal(distinct[positions[start:end]], keys[order])
        assert np.array_equal(by_weight[start:end], weights[order])
        assert np.array_equal(by_class[start:end], classes[order])


@pytest.mark.parametrize("kind", ["float64", "float32", "ties", "narrow", "skewed", "tiny-range"])
@pytest.mark.parametrize("threads", [1, 2])
def test_radix_sort_of_many_keys(kind, threads, monkeypatch):
    """Enough keys for the most-significant-digit pass (``_MSD_MIN``): sorted, stable, and the
    same positions as numpy's sort, whatever bits vary; the same with the parts shared by
    two threads."""
    monkeypatch.setattr(engine, "_PARALLEL_SORT_MIN", 1 if threads == 2 else 1 << 62)
    rng = np.random.default_rng(2)
    n = engine._MSD_MIN * 3 + 17
    if kind == "float64":
        values = rng.standard_normal(n) * 10.0 ** rng.integers(-5, 5, n)
    elif kind == "float32":
        values = rng.random(n).astype(np.float32).astype(np.float64)
    elif kind == "ties":
        values = rng.integers(0, 300, n).astype(np.float64)
    elif kind == "narrow":  # only the low bits vary
        values = 1.0 + rng.integers(0, 1 << 20, n) * np.finfo(np.float64).eps
    elif kind == "skewed":  # nearly every key in one top-digit part
        values = np.where(rng.random(n) < 0.99, 0.5 + rng.random(n) * 1e-9, rng.random(n) * 100)
    else:  # fewer varying bits than one digit
        values = 1.0 + rng.integers(0, 1000, n) * np.finfo(np.float64).eps
    keys = order_keys(values)
    ordered, order = engine._radix_sort(keys)
    assert np.array_equal(ordered, np.sort(keys))
    assert np.array_equal(order, np.argsort(keys, kind="stable"))
    distinct, positions = distinct_positions(keys)
    assert np.array_equal(distinct, np.unique(keys)) and np.array_equal(distinct[positions], keys)


def test_order_keys_round_trip_and_order():
    v = np.array([-np.inf, -1e300, -1.0, -0.0, 0.0, 1e-300, 1.0, np.inf])
    k = order_keys(v)
    assert np.all(np.diff(k.astype(object)) >= 0) and k[3] == k[4]
    assert np.array_equal(engine.keys_to_values(k), v + 0.0)


def test_tally_bounds_the_buffers_of_many_groups(partition_everything, monkeypatch):
    import threecad.eval.pixels as pixels

    monkeypatch.setattr(pixels, "_TALLY_BUFFER_BYTES", 20000)
    rng = np.random.default_rng(9)
    values = rng.random(40000)
    positive = rng.random(values.size) < 0.1
    index = PositiveIndex(order_keys(values[positive]))
    tally = NegativeTally(index.size, index=index)
    chunks = np.array_split(np.arange(values.size), 40)
    for i, chunk in enumerate(chunks):
        tally.add(values[chunk], skip=positive[chunk], group=i % 5)
        assert sum(c.buffer_bytes for c in tally._counters.values()) <= 20000 + 2 * 8 * 1000
    for g in range(5):
        sel = np.concatenate([c for i, c in enumerate(chunks) if i % 5 == g])
        below, on = brute_counts(values[positive], values[sel][~positive[sel]])
        assert np.array_equal(tally.counts[g].below, below) and np.array_equal(tally.counts[g].on, on)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_tally_in_group_order_hands_its_buffers_on(dtype, partition_everything):
    """Fed group after group (with a sink), a tally gives each finished group's buffers to the
    next group's counter instead of growing new ones, and every group's counts stay exact."""
    rng = np.random.default_rng(12)
    values = rng.random(60000).astype(dtype)
    positive = rng.random(values.size) < 0.1
    index = PositiveIndex(order_keys(values[positive]))
    received = {}
    tally = NegativeTally(index.size, index=index, sink=lambda g, c: received.setdefault(g, c))
    chunks = np.array_split(np.arange(values.size), 12)
    buffers = []
    for i, chunk in enumerate(chunks):
        group = i // 4  # groups 0, 1, 2 in order
        tally.add(values[chunk], skip=positive[chunk], group=group)
        buffers.append(tally._counters[group]._keys)
    assert buffers[4] is buffers[3] and buffers[8] is buffers[7]  # handed on, not regrown
    for g, c in tally.counts.items():
        received[g] = c
    for g in range(3):
        sel = np.concatenate(chunks[4 * g:4 * g + 4])
        below, on = brute_counts(values[positive], values[sel][~positive[sel]])
        assert np.array_equal(received[g].below, below) and np.array_equal(received[g].on, on)


@pytest.mark.parametrize("partitioned", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_reported(partitioned, dtype, bad, request):
    if partitioned:
        request.getfixturevalue("partition_everything")
    rng = np.random.default_rng(0)
    values = rng.random(5000).astype(dtype)
    index = PositiveIndex(order_keys(values[:100]))
    values[4000] = bad
    counter = NegativeCounter(index)
    with pytest.raises(engine.NonFiniteScoresError, match="1 score is NaN or infinite"):
        counter.add(values)
    with pytest.raises(engine.NonFiniteScoresError):
        index.count(values, index.empty_counts())


def test_one_counter_takes_float32_and_float64_maps(partition_everything):
    rng = np.random.default_rng(1)
    values = rng.random(30000).astype(np.float32)
    positive = rng.random(values.size) < 0.1
    index = PositiveIndex(order_keys(values[positive]))
    counter = NegativeCounter(index)
    for i, part in enumerate(np.array_split(np.arange(values.size), 6)):
        v = values[part] if i % 2 else values[part].astype(np.float64)  # switches buffer kind
        counter.add(v, skip=positive[part])
    got = counter.result()
    below, on = brute_counts(values[positive], values[~positive])
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)


def test_float64_positives_keep_float32_maps_on_the_64_bit_path(partition_everything):
    rng = np.random.default_rng(2)
    values = rng.random(20000)
    positive = rng.random(values.size) < 0.2
    index = PositiveIndex(order_keys(values[positive]))  # not float32 values
    assert index.fine32() is None
    normal = values[~positive].astype(np.float32)
    counter = NegativeCounter(index)
    counter.add(normal)
    got = counter.result()
    below, on = brute_counts(values[positive], normal)
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_crowded_buckets_are_searched_not_scanned(dtype, partition_everything):
    """Thousands of distinct values packed into a few buckets (a tight cluster and two extreme
    outliers stretch the bucket range): the counts stay exact (a bounded binary search runs
    inside a crowded bucket, so such input cannot make the count quadratic)."""
    rng = np.random.default_rng(7)
    base = dtype(0.5)
    steps = rng.integers(0, 30000, 40000)
    values = (base + steps.astype(dtype) * np.finfo(dtype).eps / 2).astype(dtype)
    values[:2] = [np.finfo(dtype).max / 2, -np.finfo(dtype).max / 2]
    positive = rng.random(values.size) < 0.5
    positive[:2] = True
    index = PositiveIndex(order_keys(values[positive]))
    counter = NegativeCounter(index)
    counter.add(values, skip=positive)
    got = counter.result()
    below, on = brute_counts(values[positive], values[~positive])
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("partitioned", [False, True])
def test_normal_scores_far_outside_a_narrow_positive_range(dtype, partitioned, request):
    """Positive scores a few ulps apart (key buckets of one key each) and normal scores spread
    over the whole range of the type, both signs, infinitely far from them in buckets."""
    if partitioned:
        request.getfixturevalue("partition_everything")
    rng = np.random.default_rng(11)
    positive_values = np.nextafter(dtype(1.0), dtype(2.0)) + np.arange(40).astype(dtype) * np.finfo(dtype).eps
    normal = (rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000)).astype(dtype)
    normal[:40] = positive_values  # ties with the positives
    index = PositiveIndex(order_keys(positive_values))
    counter = NegativeCounter(index)
    counter.add(normal)
    got = counter.result()
    below, on = brute_counts(positive_values, normal)
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_index_settings_count_the_same(dtype, partition_everything, monkeypatch):
    """The finer buckets and more partitions used for very many distinct values (native-size
    categories) give the same counts; a pickled index sends its keys once and still counts."""
    monkeypatch.setattr(engine, "_LARGE_K", 1)
    rng = np.random.default_rng(4)
    values = rng.random(40000).astype(dtype)
    positive = rng.random(values.size) < 0.3
    index = pickle.loads(pickle.dumps(PositiveIndex(order_keys(values[positive]))))
    assert np.shares_memory(index.ukeys, index.sentinel_keys)
    assert index.fine_table().partitions > 1 << engine._PARTITION_BITS
    counter = NegativeCounter(index)
    for part in np.array_split(np.arange(values.size), 5):
        counter.add(values[part], skip=positive[part])
    got = counter.result()
    below, on = brute_counts(values[positive], values[~positive])
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)


def test_float32_count_pairs_are_folded_before_they_overflow(partition_everything, monkeypatch):
    """The float32 count adds into int32 pairs, folded into the int64 counts when the pixels
    counted since the last fold could pass the limit (here 2,500, over many flushes of 1,000,
    with subtracted pixels), at every flush from outside, and when the buffers are handed on."""
    monkeypatch.setattr(engine, "_PAIR_LIMIT", 2500)
    rng = np.random.default_rng(7)
    values = np.round(rng.random(30000), 3).astype(np.float32)  # many ties with the positives
    positive = rng.random(values.size) < 0.2
    index = PositiveIndex(order_keys(values[positive]))
    counter = NegativeCounter(index)
    parts = np.array_split(np.arange(values.size), 9)
    for i, part in enumerate(parts):
        counter.add(values[part], skip_index=np.flatnonzero(positive[part]))
        if i == 4:  # counts read half-way: every pixel so far is in them
            counter.flush()
            seen = np.concatenate(parts[:5])
            below, on = brute_counts(values[positive], values[seen][~positive[seen]])
            assert np.array_equal(counter.counts.below, below) and np.array_equal(counter.counts.on, on)
    spare = counter.take_buffers()
    assert spare.pairs is not None and not spare.pairs.any()  # handed on folded: all zero
    got = counter.counts
    below, on = brute_counts(values[positive], values[~positive])
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)
    follower = NegativeCounter(index)
    follower.adopt_buffers(spare)
    follower.add(values[~positive])
    twice = follower.result()
    assert np.array_equal(twice.below, below) and np.array_equal(twice.on, on)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per_bucket", [1, 2, 3, 4, 5, 6, 9])
def test_buckets_of_every_size_around_the_window(dtype, per_bucket, partition_everything, monkeypatch):
    """Fine buckets holding exactly ``per_bucket`` positive values (the branch-free window of
    ``_WINDOW`` comparisons and the search beyond it), with normal scores equal to each value,
    between them, and beyond both ends."""
    monkeypatch.setattr(engine, "_FINE_PER_VALUE", 1)
    groups = 512  # fine buckets are linear in the value: evenly spaced groups of close values
    centres = np.arange(groups, dtype=np.float64) / groups + 1.0
    offsets = np.arange(per_bucket) * 2.0 * float(np.finfo(dtype).eps)  # a few ulps apart
    positive_values = (centres[:, None] + offsets[None, :]).astype(dtype).ravel()
    between = (positive_values[:-1] + np.diff(positive_values) / 2).astype(dtype)
    above = np.nextafter(positive_values, dtype(np.inf))  # in the same bucket, past its last value
    below_ = np.nextafter(positive_values, dtype(-np.inf))
    normal = np.concatenate([positive_values, between, above, below_, np.array([0.0, 1.0, 2.0, 5.0], dtype)])
    index = PositiveIndex(order_keys(positive_values))
    assert index.size == positive_values.size
    if dtype == np.float32:  # each partition's starts: the bucket sizes are their differences
        table = index.fine32()
        sizes = np.diff(table.local.astype(np.int64).reshape(table.partitions, -1), axis=1)
    else:
        sizes = np.diff(index.fine_table().start.astype(np.int64))
    assert sizes.max() == per_bucket  # the buckets meant
    counter = NegativeCounter(index)
    counter.add(normal)
    got = counter.result()
    below, on = brute_counts(positive_values, normal)
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)


def test_tables_are_built_once_when_threads_race(monkeypatch):
    """Counting threads that start together build an index's tables once (and share them)."""
    import threading

    built = []
    real = engine._Fine32.build.__func__

    def counting_build(cls, index):
        built.append(threading.get_ident())
        return real(cls, index)

    monkeypatch.setattr(engine._Fine32, "build", classmethod(counting_build))
    rng = np.random.default_rng(8)
    index = PositiveIndex(order_keys(rng.random(50000).astype(np.float32)))
    barrier = threading.Barrier(4)
    seen = []

    def first_use():
        barrier.wait()
        seen.append(index.fine32())

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(f is seen[0] for f in seen)
    clone = pickle.loads(pickle.dumps(index))  # the lock is not pickled; the clone has its own
    assert clone.fine32() is not None and clone.fine32() is clone.fine32()


@pytest.mark.parametrize("crowded", [100, 70_000])
def test_a_partition_of_more_values_than_16_bits_hold_counts_exactly(crowded):
    """The float32 count keeps each partition's bucket starts in 16 bits while they fit and
    in 32 when a partition holds 2**16 values or more (here: consecutive float32 values
    crowded into one partition by a far outlier)."""
    cluster = (np.float32(1.0).view(np.uint32) + np.arange(crowded, dtype=np.uint32)).view(np.float32)
    spread = np.linspace(2.0, 3.0, 40_000, dtype=np.float32)
    positive_values = np.concatenate([cluster, spread, np.float32([1e30])])
    index = PositiveIndex(order_keys(positive_values))
    table = index.fine32()
    assert table.local.dtype == (np.int32 if crowded >= 1 << 16 else np.uint16)
    rng = np.random.default_rng(3)
    normal = np.concatenate([positive_values[rng.integers(0, positive_values.size, 20_000)],
                             cluster[rng.integers(0, crowded, 20_000)] + np.float32(1e-7),
                             rng.uniform(0.5, 4.0, 50_000).astype(np.float32), np.float32([0.0, 1e31])])
    counter = NegativeCounter(index)
    counter.add(normal)
    got = counter.result()
    below, on = brute_counts(positive_values, normal)
    assert np.array_equal(got.below, below) and np.array_equal(got.on, on)


@pytest.mark.parametrize("kind", ["float32", "float32-spread", "spread", "ties", "zeros", "int32"])
@pytest.mark.parametrize("seed", range(3))
def test_count_outside_matches_brute_force_and_the_maximum(kind, seed):
    """count_outside: every value but the inside indices (any order, repeats) counted as by
    definition, and the highest of them; positives from few to most of the pixels, the
    lowest ones left out of U (most values below U[0], as for an image's own AUPRO)."""
    rng = np.random.default_rng(seed)
    for trial in range(12):
        values = sample(kind, rng, int(rng.integers(1, 5000)))
        inside = rng.random(values.size) < rng.uniform(0, 0.6)
        pos = np.asarray(values, np.float64)[inside]
        if trial % 2 and pos.size:  # U holds only the higher positive values
            pos = pos[pos >= np.quantile(pos, 0.7)]
        index = PositiveIndex(order_keys(pos))
        flat_inside = np.flatnonzero(inside)
        given = np.concatenate([rng.permutation(flat_inside), flat_inside[: flat_inside.size // 3]])
        counts, top = count_outside(index, values.reshape(1, -1), given)
        below, on = brute_counts(pos, np.asarray(values)[~inside])
        assert np.array_equal(counts.below, below) and np.array_equal(counts.on, on), (kind, trial)
        normal = np.asarray(values, np.float64)[~inside] + 0.0
        assert top == (normal.max() if normal.size else -np.inf)


def test_count_outside_refuses_non_finite_and_out_of_range_indices():
    index = PositiveIndex(order_keys(np.array([0.5, 0.7])))
    with pytest.raises(NonFiniteScoresError, match="1 score is NaN"):
        count_outside(index, np.array([0.1, np.nan, 0.9], np.float32), np.array([0]))
    count_outside(index, np.array([0.1, np.nan, 0.9], np.float32), np.array([1]))  # the NaN is left out
    with pytest.raises(ValueError, match="out of 3 values"):
        count_outside(index, np.zeros(3), np.array([3]))
