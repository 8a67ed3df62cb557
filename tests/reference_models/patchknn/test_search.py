"""The PatchKNN neighbour search is exact: brute-force distances are the reference."""

from __future__ import annotations

import numpy as np
import pytest

from threecad.reference_models.patchknn.search import PatchIndex


def _brute(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((queries[:, None, :].astype(np.float64) - bank[None].astype(np.float64)) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, :k]


def _clustered(rng, n, d):
    """A dense blob (like background patches), a few clusters, outliers and exact duplicates."""
    blob = rng.normal(scale=0.05, size=(n // 2, d))
    centres = rng.normal(scale=3, size=(5, d))
    rest = centres[rng.integers(0, 5, n - n // 2)] + rng.normal(scale=0.5, size=(n - n // 2, d))
    bank = np.concatenate([blob, rest]) * rng.uniform(0.2, 3, size=d)
    bank[: n // 10] = bank[0]  # duplicates
    return bank.astype(np.float32)


@pytest.mark.parametrize("n,d", [(1, 1), (2, 3), (17, 2), (500, 10), (3000, 10), (2000, 25)])
@pytest.mark.parametrize("leaf_size", [1, 4, 16])
def test_distances_equal_brute_force(n, d, leaf_size):
    rng = np.random.default_rng(n * 31 + d)
    bank = _clustered(rng, n, d) if n >= 10 else rng.normal(size=(n, d)).astype(np.float32)
    queries = np.concatenate([
        bank[rng.integers(0, n, 50)],                                  # on bank points
        bank[rng.integers(0, n, 100)] + rng.normal(scale=0.02, size=(100, d)),
        rng.normal(scale=10, size=(50, d)),                            # far away
    ]).astype(np.float32)
    index = PatchIndex(bank, leaf_size=leaf_size)
    for k in sorted({1, min(3, n), n}):
        got = index.kneighbors_distance(queries, k)
        want = _brute(bank, queries, k)
        assert got.shape == (len(queries), k) and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_result_does_not_depend_on_query_order():
    rng = np.random.default_rng(0)
    bank = _clustered(rng, 4000, 10)
    queries = bank[rng.integers(0, 4000, 600)] + rng.normal(scale=0.1, size=(600, 10))
    index = PatchIndex(bank)
    perm = rng.permutation(600)
    a = index.kneighbors_distance(queries, 1)
    b = index.kneighbors_distance(queries[perm], 1)
    np.testing.assert_array_equal(a[perm], b)


def test_approximate_search_keeps_its_bound():
    rng = np.random.default_rng(1)
    bank = _clustered(rng, 5000, 10)
    queries = bank[rng.integers(0, 5000, 1000)] + rng.normal(scale=0.2, size=(1000, 10))
    exact = _brute(bank, queries, 2)
    index = PatchIndex(bank)
    for eps in (0.1, 0.5, 2.0):
        got = index.kneighbors_distance(queries, 2, eps=eps)
        assert np.all(got >= exact - 1e-9) and np.all(got <= (1 + eps) * exact + 1e-9)
    assert np.array_equal(index.kneighbors_distance(queries, 1, eps=0.0)[:, 0] > 0, exact[:, 0] > 0)


def test_bad_arguments_are_refused():
    bank = np.zeros((5, 3))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        PatchIndex(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        PatchIndex(np.full((4, 2), np.nan))
    index = PatchIndex(bank)
    with pytest.raises(ValueError, match=r"shape \(m, 3\)"):
        index.kneighbors_distance(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="k must be"):
        index.kneighbors_distance(np.zeros((2, 3)), k=6)
    with pytest.raises(ValueError, match="eps"):
        index.kneighbors_distance(np.zeros((2, 3)), eps=-1)
    assert index.kneighbors_distance(np.zeros((0, 3)), k=2).shape == (0, 2)


@pytest.mark.parametrize("n", [1, 7, 8, 100, 1000])
def test_tree_nodes_split_at_the_median_and_bound_their_points(n):
    from threecad.reference_models.patchknn.search import _build

    rng = np.random.default_rng(n)
    points = np.round(rng.normal(size=(n, 3)), 1)  # many equal coordinates
    points[: n // 3] = points[0]
    depth = 6
    order, start, end, lo, hi = _build(points, depth)
    assert sorted(order.tolist()) == list(range(n))
    for node in range(len(start)):
        own = points[order[start[node]:end[node]]]
        if len(own):
            np.testing.assert_array_equal(lo[node], own.min(axis=0))
            np.testing.assert_array_equal(hi[node], own.max(axis=0))
        else:
            assert np.all(lo[node] == np.inf) and np.all(hi[node] == -np.inf)
        left = 2 * node + 1
        if left < len(start):
            assert (start[left], end[left + 1]) == (start[node], end[node]) and end[left] == start[left + 1]
            assert end[left] - start[left] == (end[node] - start[node]) // 2
            if len(own) > 1:  # every left point is at most every right point on the widest axis
                axis = int(np.argmax(hi[node] - lo[node]))
                a = points[order[start[left]:end[left]], axis]
                b = points[order[start[left + 1]:end[left + 1]], axis]
                assert a.max() <= b.min()


@pytest.mark.parametrize("leaf_size", [1, 2, 16, 64])
def test_mostly_identical_bank(leaf_size):
    """Thousands of equal points (a saturated background) and a few others: ties everywhere."""
    rng = np.random.default_rng(7)
    bank = np.zeros((5000, 10), np.float32)
    bank[::97] = rng.normal(size=(len(bank[::97]), 10))
    queries = np.concatenate([bank[:20], rng.normal(scale=0.01, size=(50, 10)), rng.normal(size=(50, 10))])
    index = PatchIndex(bank, leaf_size=leaf_size)
    for k in (1, 4):
        got = index.kneighbors_distance(queries, k)
        np.testing.assert_allclose(got, _brute(bank, queries, k), rtol=1e-9, atol=1e-9)
