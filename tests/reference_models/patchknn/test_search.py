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
