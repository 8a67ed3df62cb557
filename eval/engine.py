"""The exact counting engine behind every ranking metric.

Anomalous (positive) pixels are few: their scores are kept, turned into order-preserving
64-bit keys, sorted once and reduced to the sorted distinct values ``U`` (length ``K``).
Normal (negative) pixels are many: each one is streamed once and counted into
``below[i]`` (strictly between ``U[i-1]`` and ``U[i]``; ``below[K]`` above the largest) or
``on[i]`` (equal to ``U[i]``). A lookup table on the high bits of the key narrows the
search to a handful of candidates, so a normal pixel costs a few nanoseconds.

These counts are sufficient statistics: ROC, precision-recall and PRO curves follow from
them exactly (every distinct score is a threshold, ties as in scikit-learn), they take
memory proportional to ``K``, not to the number of pixels, and counts from separate chunks
of images simply add (threads, processes, machines).

Scores are compared as float64 after adding ``+0.0`` (so ``-0.0 == 0.0``). Integer maps
beyond 2**53 would be compared at float64 precision. NaN must be rejected by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["order_keys", "keys_to_values", "PositiveIndex", "NegativeCounts"]

_SIGN = np.uint64(1 << 63)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_BLOCK = 4096


def order_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint64 keys of ``values`` (as float64; ``-0.0`` equals ``0.0``).

    Parameters
    ----------
    values : ndarray of shape (n,)
        Any real or integer dtype, no NaN.

    Returns
    -------
    ndarray of shape (n,), uint64
        ``a < b`` exactly when ``key(a) < key(b)``.
    """
    bits = (np.asarray(values, dtype=np.float64).ravel() + 0.0).view(np.uint64)
    negative = (bits & _SIGN) != 0
    return np.where(negative, ~bits, bits | _SIGN)


def keys_to_values(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`order_keys`: the float64 values of the keys."""
    keys = np.asarray(keys, dtype=np.uint64)
    positive = (keys & _SIGN) != 0
    bits = np.where(positive, keys & ~_SIGN, ~keys)
    return bits.view(np.float64)


@njit(nogil=True, cache=True)
def _count_kernel_linear(values, skip, use_skip, uvals, start, scale, nb, below, on):
    """Like :func:`_count_kernel`, with buckets linear in the value: ``(x - U[0]) * scale``.

    The bucket search is written out in both kernels on purpose: factoring it into a shared
    ``@njit`` helper measured 2.3x slower (scripts/bench_eval.py).
    """
    n = values.size
    k_count = uvals.size
    u0 = uvals[0]
    u1 = uvals[k_count - 1]
    for i in range(n):
        if use_skip and skip[i]:
            continue
        x = np.float64(values[i]) + 0.0
        if x < u0:
            below[0] += 1
            continue
        if x > u1:
            below[k_count] += 1
            continue
        b = int((x - u0) * scale)
        if b >= nb:
            b = nb - 1
        lo = start[b]
        hi = start[b + 1]
        top = hi
        while hi - lo > 8:
            mid = (lo + hi) >> 1
            if uvals[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        while lo < top and uvals[lo] < x:
            lo += 1
        if lo < top and uvals[lo] == x:
            on[lo] += 1
        else:
            below[lo] += 1


@njit(nogil=True, cache=True)
def _count_kernel(values, skip, use_skip, ukeys, start, kmin, kmax, shift, below, on):
    """Count ``values`` (minus ``skip``ped pixels) into ``below``/``on`` (in place)."""
    n = values.size
    k_count = ukeys.size
    buf = np.empty(_BLOCK, np.float64)
    kbuf = buf.view(np.uint64)
    sign = np.uint64(1 << 63)
    for s in range(0, n, _BLOCK):
        m = min(_BLOCK, n - s)
        for j in range(m):
            buf[j] = np.float64(values[s + j]) + 0.0
        for j in range(m):
            if use_skip and skip[s + j]:
                continue
            k = kbuf[j]
            if k & sign:
                k = ~k
            else:
                k = k | sign
            if k < kmin:
                below[0] += 1
                continue
            if k > kmax:
                below[k_count] += 1
                continue
            b = (k - kmin) >> shift
            lo = start[b]
            hi = start[b + 1]
            top = hi
            while hi - lo > 8:
                mid = (lo + hi) >> 1
                if ukeys[mid] < k:
                    lo = mid + 1
                else:
                    hi = mid
            while lo < top and ukeys[lo] < k:
                lo += 1
            if lo < top and ukeys[lo] == k:
                on[lo] += 1
            else:
                below[lo] += 1


@dataclass
class NegativeCounts:
    """Normal pixels counted against a :class:`PositiveIndex` (additive across chunks).

    ``below[i]`` counts values strictly between ``U[i-1]`` and ``U[i]`` (``below[0]``: below
    ``U[0]``; ``below[K]``: above ``U[K-1]``); ``on[i]`` counts values equal to ``U[i]``.
    """

    below: np.ndarray  # (K + 1,) int64
    on: np.ndarray     # (K,) int64

    @classmethod
    def zeros(cls, k: int) -> "NegativeCounts":
        """Empty counts for an index of ``k`` distinct values."""
        return cls(np.zeros(k + 1, np.int64), np.zeros(k, np.int64))

    def __iadd__(self, other: "NegativeCounts") -> "NegativeCounts":
        self.below += other.below
        self.on += other.on
        return self

    def copy(self) -> "NegativeCounts":
        """An independent copy."""
        return NegativeCounts(self.below.copy(), self.on.copy())

    @property
    def total(self) -> int:
        """Number of normal pixels counted."""
        return int(self.below.sum() + self.on.sum())

    def strictly_below(self) -> np.ndarray:
        """(K,) int64: how many counted values are strictly below each ``U[i]``."""
        k = self.on.size
        return np.cumsum(self.below[:k]) + np.cumsum(self.on) - self.on

    def restrict(self, index_map: np.ndarray) -> "NegativeCounts":
        """The same values counted against a subset ``U[index_map]`` (sorted indices)."""
        lt = self.strictly_below()
        k_sub = index_map.size
        below = np.empty(k_sub + 1, np.int64)
        on = self.on[index_map].copy()
        if k_sub:
            lt_sub = lt[index_map]
            below[0] = lt_sub[0]
            below[1:k_sub] = lt_sub[1:] - lt_sub[:-1] - on[:-1]
            below[k_sub] = self.total - lt_sub[-1] - on[-1]
        else:
            below[0] = self.total
        return NegativeCounts(below, on)


class PositiveIndex:
    """The sorted distinct positive values ``U`` and a bucket table to count against them.

    Parameters
    ----------
    keys : ndarray of uint64
        Order keys (:func:`order_keys`) of the positive scores; duplicates allowed.
    """

    def __init__(self, keys: np.ndarray) -> None:
        ukeys = np.unique(np.asarray(keys, dtype=np.uint64))
        self.ukeys = ukeys
        k = ukeys.size
        if k == 0:
            self.kmin = np.uint64(1)
            self.kmax = np.uint64(0)  # kmin > kmax: every value lands in below[0]
            self.shift = np.uint64(0)
            self.start = np.zeros(2, np.int32)
            self.linear = False
            return
        bits = int(min(22, max(10, int(np.ceil(np.log2(k + 1))) + 1)))
        nb = 1 << bits
        kmin, kmax = int(ukeys[0]), int(ukeys[-1])
        shift = max(0, (kmax - kmin).bit_length() - bits)
        key_buckets = ((ukeys - np.uint64(kmin)) >> np.uint64(shift)).astype(np.int64)
        self.kmin, self.kmax, self.shift = np.uint64(kmin), np.uint64(kmax), np.uint64(shift)
        # Two bucket functions, both monotone in the score: on the order key (good for
        # scores spread over many orders of magnitude) and linear in the value (good for
        # scores in a bounded range, even across zero). Keep the one with the shorter
        # expected search (sum of squared bucket sizes).
        self.uvals = keys_to_values(ukeys)
        span = float(self.uvals[-1] - self.uvals[0])
        self.scale = (nb / span) * (1 - 1e-12) if span > 0 and np.isfinite(span) else 0.0
        lin_buckets = np.minimum(((self.uvals - self.uvals[0]) * self.scale).astype(np.int64), nb - 1)
        cost_key = float(np.square(np.bincount(key_buckets, minlength=nb).astype(np.float64)).sum())
        cost_lin = float(np.square(np.bincount(lin_buckets, minlength=nb).astype(np.float64)).sum())
        self.linear = self.scale > 0 and cost_lin < cost_key
        self.nb = nb
        chosen = lin_buckets if self.linear else key_buckets
        self.start = np.searchsorted(chosen, np.arange(nb + 1), side="left").astype(np.int32)

    @property
    def size(self) -> int:
        """``K``, the number of distinct positive values."""
        return int(self.ukeys.size)

    @property
    def values(self) -> np.ndarray:
        """``U`` as float64, ascending."""
        return keys_to_values(self.ukeys)

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Index in ``U`` of each key (all keys must be in ``U``)."""
        return np.searchsorted(self.ukeys, keys)

    def empty_counts(self) -> NegativeCounts:
        """Zero counts sized for this index."""
        return NegativeCounts.zeros(self.size)

    def count(self, values: np.ndarray, counts: NegativeCounts, *, skip: np.ndarray | None = None) -> None:
        """Add ``values`` (except where ``skip`` is true) to ``counts``, in place.

        Parameters
        ----------
        values : ndarray of any shape
            Scores; any real or integer dtype (no NaN). Not copied when contiguous.
        counts : NegativeCounts
            Updated in place.
        skip : ndarray of bool, same shape as ``values``, optional
            Pixels to leave out (the positives of an image).
        """
        flat = np.ascontiguousarray(values).reshape(-1)
        if flat.dtype == np.float16 or flat.dtype == np.bool_:
            flat = flat.astype(np.float32)
        if skip is None:
            skip_flat = np.zeros(1, np.bool_)
            use_skip = False
        else:
            skip_flat = np.ascontiguousarray(skip, dtype=np.bool_).reshape(-1)
            if skip_flat.size != flat.size:
                raise ValueError(f"skip has {skip_flat.size} elements, values {flat.size}")
            use_skip = True
        if self.size and self.linear:
            _count_kernel_linear(flat, skip_flat, use_skip, self.uvals, self.start, self.scale, self.nb,
                                 counts.below, counts.on)
        else:
            _count_kernel(flat, skip_flat, use_skip, self.ukeys, self.start, self.kmin, self.kmax,
                          self.shift, counts.below, counts.on)
