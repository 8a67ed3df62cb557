"""The exact counting engine behind every ranking metric.

Anomalous (positive) pixels are few: their scores are kept, turned into order-preserving
64-bit keys, sorted once and reduced to the sorted distinct values ``U`` (length ``K``).
Normal (negative) pixels are many: each one is streamed once and counted into
``below[i]`` (strictly between ``U[i-1]`` and ``U[i]``; ``below[K]`` above the largest) or
``on[i]`` (equal to ``U[i]``). A lookup table on the high bits of the key narrows the
search to a handful of candidates, so a normal pixel costs a few nanoseconds while ``U``
and the counts fit in the CPU cache. When they do not (continuous float32 maps: ``K`` in
the hundreds of thousands), :class:`NegativeCounter` buffers the normal pixels of a chunk
of images, partitions them by the high bits of a finer bucket (one scatter into 1,024
partitions) and resolves each partition against its own slice of ``U`` and of the counts,
which then stays in cache: the same counts, reached without a cache miss per pixel.

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

__all__ = ["order_keys", "keys_to_values", "PositiveIndex", "NegativeCounts", "NegativeCounter"]

_SIGN = np.uint64(1 << 63)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_BLOCK = 4096
_PARTITION_MIN_K = 1 << 15     # from this many distinct positive values on, count partitioned
_PARTITION_BITS = 10           # 1,024 partitions
_FINE_PER_VALUE = 8            # fine buckets per distinct positive value (power of two above)
_FINE_MAX_BITS = 22
_BUFFER = 1 << 21              # normal pixels buffered per counter before a partitioned pass...
_BUFFER_PER_VALUE = 4          # ...or this many per distinct positive value (each pass walks U once)
_MAX_BUFFER = 1 << 23
_FIRST_BUFFER = 1 << 16        # the buffer starts this small and doubles up to _BUFFER


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


_SIGN_N = np.uint64(1 << 63)


@njit(inline="always")
def _fine_bucket(k, linear, u0, scale, kmin, shift, nb):
    """Fine bucket of order key ``k`` (monotone in the key, as the coarse buckets are)."""
    if linear:
        bits = k & ~_SIGN_N if k & _SIGN_N else ~k
        b = int((np.uint64(bits).view(np.float64) - u0) * scale)
        return nb - 1 if b >= nb else b
    return np.int64((k - kmin) >> shift)


@njit(nogil=True, cache=True)
def _partition_fill(values, skip, use_skip, first, kbuf, pos, hist, below, linear, u0, u1, scale, kmin,
                    shift, nb, pshift):
    """Append the order keys of ``values[first:]`` (not ``skip``ped, within ``[U[0], U[K-1]]``) to
    ``kbuf[pos:]`` and histogram their partitions; values outside the range go straight to
    ``below[0]``/``below[K]``. Stops when the buffer is full; returns ``(next index, next pos)``."""
    n = values.size
    cap = kbuf.size
    k_count = below.size - 1
    i = first
    while i < n and pos < cap:
        j = i
        i += 1
        if use_skip and skip[j]:
            continue
        x = np.float64(values[j]) + 0.0
        if x < u0:
            below[0] += 1
            continue
        if x > u1:
            below[k_count] += 1
            continue
        bits = np.float64(x).view(np.uint64)
        k = ~bits if bits & _SIGN_N else bits | _SIGN_N
        if linear:
            b = int((x - u0) * scale)
            if b >= nb:
                b = nb - 1
        else:
            b = np.int64((k - kmin) >> shift)
        hist[b >> pshift] += 1
        kbuf[pos] = k
        pos += 1
    return i, pos


@njit(nogil=True, cache=True)
def _partition_count(kbuf, m, tmp, hist, ukeys, start, linear, u0, scale, kmin, shift, nb, pshift, below, on):
    """Scatter ``kbuf[:m]`` into partitions (``hist`` from :func:`_partition_fill`, reset here),
    then count each partition against its own slice of ``U``, which stays in cache."""
    npart = hist.size
    offset = np.empty(npart, np.int64)
    total = 0
    for p in range(npart):
        offset[p] = total
        total += hist[p]
        hist[p] = 0
    for i in range(m):
        k = kbuf[i]
        p = _fine_bucket(k, linear, u0, scale, kmin, shift, nb) >> pshift
        tmp[offset[p]] = k
        offset[p] += 1
    for i in range(m):
        k = tmp[i]
        b = _fine_bucket(k, linear, u0, scale, kmin, shift, nb)
        lo = start[b]
        hi = start[b + 1]
        if lo == hi:  # no positive value in this bucket: the common case with fine buckets
            below[lo] += 1
            continue
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


def distinct_positions(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct keys and the position of each key among them (one sort).

    Parameters
    ----------
    keys : ndarray of shape (n,), uint64

    Returns
    -------
    distinct : ndarray of shape (K,), uint64
    positions : ndarray of shape (n,), int64
        ``distinct[positions] == keys``.
    """
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    new = np.empty(ordered.size, bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    positions = np.empty(keys.size, np.int64)
    positions[order] = np.cumsum(new) - 1
    return ordered[new], positions


def _bucket_starts(buckets: np.ndarray, nb: int) -> np.ndarray:
    """``start[b]``: how many of the (sorted) ``buckets`` are below ``b``; shape (nb + 1,), int32."""
    start = np.zeros(nb + 1, np.int32)
    np.cumsum(np.bincount(buckets, minlength=nb), out=start[1:])
    return start


class PositiveIndex:
    """The sorted distinct positive values ``U`` and a bucket table to count against them.

    Parameters
    ----------
    keys : ndarray of uint64
        Order keys (:func:`order_keys`) of the positive scores; duplicates allowed.
    distinct : bool
        The keys are already sorted and distinct (as :func:`distinct_positions` returns them).
    """

    def __init__(self, keys: np.ndarray, *, distinct: bool = False) -> None:
        ukeys = np.asarray(keys, dtype=np.uint64)
        if not distinct:
            ukeys = distinct_positions(ukeys)[0]
        self.ukeys = ukeys
        k = ukeys.size
        if k == 0:
            self.kmin = np.uint64(1)
            self.kmax = np.uint64(0)  # kmin > kmax: every value lands in below[0]
            self.shift = np.uint64(0)
            self.start = np.zeros(2, np.int32)
            self.linear = False
            self._fine = None
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
        self._fine: _FineTable | None = None
        chosen = lin_buckets if self.linear else key_buckets
        self.start = _bucket_starts(chosen, nb)

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

    @property
    def partitioned(self) -> bool:
        """Whether normal pixels are counted partitioned (``K`` too large for the cache)."""
        return self.size >= _PARTITION_MIN_K

    def fine_table(self) -> "_FineTable":
        """The fine bucket table of the partitioned count (built on first use, not pickled)."""
        if self._fine is None:
            self._fine = _FineTable.build(self)
        return self._fine

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fine"] = None  # rebuilt where it is used: cheaper than sending it
        return state

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
        if self.partitioned:
            counter = NegativeCounter(self, counts)
            counter.add(values, skip=skip)
            counter.flush(release=True)
            return
        flat, skip_flat, use_skip = _flat_input(values, skip)
        if self.size and self.linear:
            _count_kernel_linear(flat, skip_flat, use_skip, self.uvals, self.start, self.scale, self.nb,
                                 counts.below, counts.on)
        else:
            _count_kernel(flat, skip_flat, use_skip, self.ukeys, self.start, self.kmin, self.kmax,
                          self.shift, counts.below, counts.on)


def _flat_input(values: np.ndarray, skip: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The kernels' view of ``values`` and ``skip``: flat, contiguous, a dtype numba reads."""
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype == np.float16 or flat.dtype == np.bool_:
        flat = flat.astype(np.float32)
    if skip is None:
        return flat, np.zeros(1, np.bool_), False
    skip_flat = np.ascontiguousarray(skip, dtype=np.bool_).reshape(-1)
    if skip_flat.size != flat.size:
        raise ValueError(f"skip has {skip_flat.size} elements, values {flat.size}")
    return flat, skip_flat, True


@dataclass(frozen=True)
class _FineTable:
    """Buckets about ``_FINE_PER_VALUE`` times finer than ``U`` (same bucket function as the
    coarse table), so that most normal pixels land in a bucket with no positive value."""

    start: np.ndarray   # (nb + 1,) int32
    nb: int
    scale: float        # linear buckets
    shift: np.uint64    # key buckets
    pshift: int         # partition = bucket >> pshift

    @classmethod
    def build(cls, index: "PositiveIndex") -> "_FineTable":
        k = index.size
        bits = int(min(_FINE_MAX_BITS, max(_PARTITION_BITS, int(np.ceil(np.log2(k * _FINE_PER_VALUE))))))
        nb = 1 << bits
        scale, shift = 0.0, 0
        if index.linear:
            span = float(index.uvals[-1] - index.uvals[0])
            scale = (nb / span) * (1 - 1e-12)
            buckets = np.minimum(((index.uvals - index.uvals[0]) * scale).astype(np.int64), nb - 1)
        else:
            shift = max(0, (int(index.kmax) - int(index.kmin)).bit_length() - bits)
            buckets = ((index.ukeys - index.kmin) >> np.uint64(shift)).astype(np.int64)
        return cls(_bucket_starts(buckets, nb), nb, scale, np.uint64(shift), bits - _PARTITION_BITS)


class NegativeCounter:
    """Normal pixels counted against a :class:`PositiveIndex`, image after image.

    With a small index each call counts at once. With a large one (``index.partitioned``)
    the pixels are buffered (2 M of them, or 4 per distinct positive value, up to 8 M; 8
    bytes each, plus as much scratch at a count) and counted partitioned when the buffer is
    full and at :meth:`flush`; read the counts through :meth:`result`, which flushes.

    Parameters
    ----------
    index : PositiveIndex
        The distinct positive values to count against.
    counts : NegativeCounts, optional
        Counts to add to (default: new zeros).
    """

    def __init__(self, index: "PositiveIndex", counts: NegativeCounts | None = None) -> None:
        self.index = index
        self.counts = index.empty_counts() if counts is None else counts
        self._keys: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._pending = 0
        self._cap = min(_MAX_BUFFER, max(_BUFFER, _BUFFER_PER_VALUE * index.size))

    def add(self, values: np.ndarray, *, skip: np.ndarray | None = None) -> None:
        """Count ``values`` except where ``skip`` is true (see :meth:`PositiveIndex.count`)."""
        index = self.index
        if not index.partitioned:
            index.count(values, self.counts, skip=skip)
            return
        flat, skip_flat, use_skip = _flat_input(values, skip)
        fine = index.fine_table()
        if self._keys is None:
            self._keys = np.empty(min(_FIRST_BUFFER, self._cap), np.uint64)
            self._hist = np.zeros(1 << _PARTITION_BITS, np.int64)
        first = 0
        while True:
            if self._pending == self._keys.size and self._keys.size < self._cap:
                grown = np.empty(min(2 * self._keys.size, self._cap), np.uint64)
                grown[:self._pending] = self._keys[:self._pending]
                self._keys = grown
            first, self._pending = _partition_fill(
                flat, skip_flat, use_skip, first, self._keys, self._pending, self._hist, self.counts.below,
                index.linear, index.uvals[0], index.uvals[-1], fine.scale, index.kmin, fine.shift, fine.nb,
                fine.pshift)
            if self._pending == self._keys.size >= self._cap:
                self.flush()
            if first >= flat.size:
                return

    def flush(self, *, release: bool = False) -> None:
        """Count the buffered pixels; ``release`` frees the buffers too."""
        if self._pending:
            index = self.index
            fine = index.fine_table()
            if self._scratch is None or self._scratch.size < self._pending:
                self._scratch = np.empty(self._keys.size, np.uint64)
            _partition_count(self._keys, self._pending, self._scratch, self._hist, index.ukeys, fine.start,
                             index.linear, index.uvals[0], fine.scale, index.kmin, fine.shift, fine.nb,
                             fine.pshift, self.counts.below, self.counts.on)
            self._pending = 0
        if release:
            self._keys = self._scratch = self._hist = None

    @property
    def buffer_bytes(self) -> int:
        """Memory held by the buffers."""
        return sum(b.nbytes for b in (self._keys, self._scratch) if b is not None)

    def result(self) -> NegativeCounts:
        """Every pixel added so far, counted (flushes, frees the buffers)."""
        self.flush(release=True)
        return self.counts
