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
beyond 2**53 would be compared at float64 precision. NaN and infinite scores are counted by the
kernels and raised as :class:`NonFiniteScoresError` (the counts are then incomplete).

The per-pixel loops index their arrays with unsigned integers (``np.uint64``): numba adds a
negative-index fix-up (a compare and a select) to every access through a signed index, and in
these loops that was a fifth of the work. Measured on a captured buffer of 5.5 M float32 words
against K = 1.4 M values (``scripts/bench_eval.py --dtype float32``): the count after the
scatter 5.9 -> 4.5 ns per pixel, the word fill 3.3 -> 2.2; the scatter, unsigned and unrolled
by eight, 3.9 -> 2.5.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit

__all__ = ["order_keys", "order_keys32", "keys_to_values", "distinct_counts", "distinct_positions", "sort_runs",
           "fold_pairs", "count_outside", "ascending_indices", "flat_values", "PositiveIndex",
           "NegativeCounts", "NegativeCounter", "CounterBuffers", "NonFiniteScoresError"]

_SIGN = np.uint64(1 << 63)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_BLOCK = 4096
_PARTITION_MIN_K = 1 << 15     # from this many distinct positive values on, count partitioned
_PARTITION_BITS = 10           # 1,024 partitions
_FINE_PER_VALUE = 8            # fine buckets per distinct positive value (power of two above)
_FINE_MAX_BITS = 22
_LARGE_K = 1 << 22             # from this many distinct positive values on (native-size categories):
_LARGE_PARTITION_BITS = 13     # 8,192 partitions (64-bit keys; the float32 count keeps 1,024: 4-10 % faster
                               # at K = 5-10 M), so that one partition's slice of U stays small,
_LARGE_FINE_MAX_BITS = 24      # and finer buckets (measured 18 % faster at K = 20 M)
_BUFFER = 1 << 21              # normal pixels buffered per counter before a partitioned pass...
_BUFFER_PER_VALUE = 4          # ...or this many per distinct positive value (each pass walks U once)
_MAX_BUFFER = 1 << 23
_FILL_BLOCK = 2048             # keys computed (vectorised) before their partitions are histogrammed
_FIRST_BUFFER = 1 << 16        # the buffer starts this small and doubles up to _BUFFER
_PAIR_LIMIT = (1 << 31) - 1    # the int32 count pairs are folded before this many pixels reach them


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
    """Inverse of :func:`order_keys`: the float64 values of the keys (same shape)."""
    keys = np.asarray(keys, dtype=np.uint64)
    return _keys_to_values(np.ascontiguousarray(keys).reshape(-1)).reshape(keys.shape)


@njit(nogil=True, cache=True)
def _keys_to_values(keys):
    """:func:`keys_to_values` in one pass (numpy's takes four over temporaries)."""
    out = np.empty(keys.size, np.uint64)
    sign = np.uint64(1 << 63)
    for i in range(keys.size):
        k = keys[i]
        out[i] = k & ~sign if k & sign else ~k
    return out.view(np.float64)


@njit(nogil=True, cache=True)
def _count_kernel_linear(values, skip, use_skip, uvals, start, scale, nb, below, on):
    """Like :func:`_count_kernel`, with buckets linear in the value: ``(x - U[0]) * scale``;
    ``uvals`` is ``U`` followed by infinite sentinels (:func:`_first_not_below` stops there)."""
    n = values.size
    k_count = on.size
    u0 = uvals[0]
    u1 = uvals[k_count - 1]
    bad = 0
    for i in range(n):
        if use_skip and skip[i]:
            continue
        x = np.float64(values[i]) + 0.0
        if not (x - x == 0.0):  # NaN or infinite
            bad += 1
            continue
        if x < u0:
            below[0] += 1
            continue
        if x > u1:
            below[k_count] += 1
            continue
        b = int((x - u0) * scale)
        if b >= nb:
            b = nb - 1
        lo = _first_not_below(uvals, x, start[b], start[b + 1])
        if uvals[lo] == x:
            on[lo] += 1
        else:
            below[lo] += 1
    return bad


@njit(nogil=True, cache=True)
def _count_kernel(values, skip, use_skip, ukeys, start, kmin, kmax, shift, below, on):
    """Count ``values`` (minus ``skip``ped pixels) into ``below``/``on`` (in place); ``ukeys`` is
    U's keys followed by sentinels above every key (:func:`_first_not_below` stops there)."""
    n = values.size
    k_count = on.size
    buf = np.empty(_BLOCK, np.float64)
    kbuf = buf.view(np.uint64)
    sign = np.uint64(1 << 63)
    bad = 0
    for s in range(0, n, _BLOCK):
        m = min(_BLOCK, n - s)
        for j in range(m):
            buf[j] = np.float64(values[s + j]) + 0.0
        for j in range(m):
            if use_skip and skip[s + j]:
                continue
            if not (buf[j] - buf[j] == 0.0):  # NaN or infinite
                bad += 1
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
            lo = _first_not_below(ukeys, k, start[b], start[b + 1])
            if ukeys[lo] == k:
                on[lo] += 1
            else:
                below[lo] += 1
    return bad


_SIGN_N = np.uint64(1 << 63)
_NAN_KEY = np.uint64(0x000FFFFFFFFFFFFF)  # the key of -inf: where NaN scores are counted (then rejected)


@njit(inline="always")
def _linear_bucket(x, u0, scale, nb):
    """Fine bucket + 1 of score ``x`` for linear buckets: 0 below ``U[0]`` (and for NaN),
    ``nb + 1`` above the last bucket. Selects, no branch (and not numba's ``min``/``max``,
    which are much slower here): unpredictable branches cost more than the arithmetic."""
    t = (x - u0) * scale
    inside = t >= 0.0
    t = t if inside else 0.0
    t = t if t < nb else np.float64(nb)
    b = np.int64(np.int32(t)) + 1  # t is in [0, nb] and nb < 2**31
    return b if inside else np.int64(0)


@njit(inline="always")
def _fine_bucket(k, linear, u0, scale, kmin, shift, nb):
    """Fine bucket + 1 of order key ``k``: 0 below the first fine bucket, ``nb + 1`` above the
    last; monotone in the key (as the coarse buckets are), clamped, never out of range."""
    if linear:
        bits = k & ~_SIGN_N if k & _SIGN_N else ~k
        return _linear_bucket(np.uint64(bits).view(np.float64), u0, scale, nb)  # never NaN: NaN has -inf's key
    d = (k - kmin) >> shift
    b = np.int64(nb + 1) if d >= np.uint64(nb) else np.int64(d) + 1
    return b if k >= kmin else np.int64(0)


@njit(inline="always")
def _key64(x):
    """Order key of ``x`` (float64, ``+ 0.0`` applied), NaN at -inf's key; with selects."""
    bits = np.float64(x).view(np.uint64)
    k = ~bits if bits & _SIGN_N else bits | _SIGN_N
    return _NAN_KEY if x != x else k


@njit(nogil=True, cache=True)
def _partition_fill(values, skip, use_skip, first, kbuf, pos, hist, linear, u0, scale, kmin, shift, nb, pshift):
    """Append the order keys of ``values[first:]`` (not ``skip``ped) to ``kbuf[pos:]`` and
    histogram their partitions (NaN as -inf). Block by block: the keys and buckets first (no
    branch: vector instructions), then the partitions, dropping skipped pixels. Stops when the
    buffer is full; returns ``(next index, next pos, NaN or infinite values seen)``."""
    n = values.size
    cap = kbuf.size
    buckets = np.empty(_FILL_BLOCK, np.int64)
    finite = np.empty(_FILL_BLOCK, np.bool_)
    i = first
    bad = 0
    while i < n and pos < cap:
        e = min(n, i + _FILL_BLOCK, i + (cap - pos))
        ui = np.uint64(i)
        upos = np.uint64(pos)
        if linear:  # the bucket rule a constant in each loop, so that both vectorise
            for j in range(np.uint64(e - i)):
                x = np.float64(values[ui + j]) + 0.0
                finite[j] = x - x == 0.0
                kbuf[upos + j] = _key64(x)
                buckets[j] = _linear_bucket(x, u0, scale, nb)
        else:
            for j in range(np.uint64(e - i)):
                x = np.float64(values[ui + j]) + 0.0
                finite[j] = x - x == 0.0
                k = _key64(x)
                kbuf[upos + j] = k
                buckets[j] = _fine_bucket(k, False, u0, scale, kmin, shift, nb)
        if use_skip:  # drop the skipped pixels, moving the kept keys down in place
            at = pos
            for j in range(i, e):
                keep = not skip[j]
                kbuf[at] = kbuf[pos + j - i]
                hist[buckets[j - i] >> pshift] += keep
                bad += 0 if finite[j - i] else np.int64(keep)
                at += keep
            pos = at
        else:
            for j in range(e - i):
                hist[buckets[j] >> pshift] += 1
                bad += not finite[j]
            pos += e - i
        i = e
    return i, pos, bad


@njit(nogil=True, cache=True)
def _count_outside(values, inside, ukeys, start, linear, u0, scale, kmin, shift, nb, pairs):
    """Count every value of ``values`` but those at the flat indices ``inside`` (ascending,
    distinct) against ``U`` in ``pairs`` (int64, ``2 K + 2``: as :func:`fold_pairs` reads
    them), and return ``(highest value counted, NaN or infinite values counted)``.

    ``start`` is a fine table (:func:`_fine_starts`) of the bucket rule ``linear``/``u0``/
    ``scale``/``kmin``/``shift``/``nb``; ``ukeys`` U's keys with sentinels. Between two
    inside pixels the values go block by block: keys, buckets and the maximum first (no
    branch: vector instructions), then each is placed by :func:`_position` and counted
    without a branch, except the values below ``U[0]``: most of them when ``U`` holds only
    an image's highest anomalous scores, and in runs on a smooth map, so that the branch
    that counts them in a register is well predicted. No mask of the inside pixels is made.
    Measured on 60 native-size maps of scripts/bench_eval_full.py (60 % of the values below
    ``U[0]``): 3.6 ns per pixel; 5.4 placing every value without a branch; 4.7 for the mask,
    the maximum and :meth:`PositiveIndex.count` (branches for every range) before. The block
    loops with unsigned indices (see the module's docstring): 3.9 -> 3.1 ns per pixel on
    six upsampled 853x885 maps."""
    keys = np.empty(_FILL_BLOCK, np.uint64)
    buckets = np.empty(_FILL_BLOCK, np.int64)
    low = 0
    top = -np.inf
    bad = 0
    begin = 0
    for q in range(inside.size + 1):
        stop = inside[q] if q < inside.size else values.size
        for s in range(begin, stop, _FILL_BLOCK):
            e = min(stop, s + _FILL_BLOCK)
            us = np.uint64(s)
            if linear:  # the bucket rule a constant in each loop, so that both vectorise
                for j in range(np.uint64(e - s)):
                    x = np.float64(values[us + j]) + 0.0
                    top = x if x > top else top
                    bad += not (x - x == 0.0)
                    keys[j] = _key64(x)
                    buckets[j] = _linear_bucket(x, u0, scale, nb)
            else:
                for j in range(np.uint64(e - s)):
                    x = np.float64(values[us + j]) + 0.0
                    top = x if x > top else top
                    bad += not (x - x == 0.0)
                    k = _key64(x)
                    keys[j] = k
                    buckets[j] = _fine_bucket(k, False, u0, scale, kmin, shift, nb)
            for j in range(np.uint64(e - s)):
                b = np.uint64(buckets[j])
                if b == 0:
                    low += 1
                    continue
                k = keys[j]
                r = _position(ukeys, k, start[b], start[b + np.uint64(1)])
                pairs[np.uint64(2) * r + np.uint64(ukeys[r] == k)] += 1
        begin = stop + 1
    pairs[0] += low
    return top, bad


@njit(nogil=True, cache=True)
def _partition_count(kbuf, m, tmp, hist, ukeys, start, linear, u0, scale, kmin, shift, nb, pshift, below, on):
    """Scatter ``kbuf[:m]`` into partitions (``hist`` from :func:`_partition_fill`, reset here),
    then count each partition against its own slice of ``U`` (``ukeys`` padded with sentinels,
    ``start`` of the fine buckets + 1), which stays in cache: each partition's slices are first
    streamed in (:func:`_touch_partition`)."""
    offset = _partition_offsets(hist)
    ends = offset.view(np.uint64)  # unsigned offsets and indices (see the module's docstring)
    one = np.uint64(1)
    for i in range(m):
        k = kbuf[i]
        p = np.uint64(_fine_bucket(k, linear, u0, scale, kmin, shift, nb) >> pshift)
        o = ends[p]
        tmp[o] = k
        ends[p] = o + one
    touched = np.int64(0)
    for p in range(offset.size):
        first = offset[p - 1] if p else 0
        if first == offset[p]:
            continue
        touched += _touch_partition(p, pshift, nb, start, ukeys, below, on)
        for i in range(np.uint64(first), np.uint64(offset[p])):
            k = tmp[i]
            b = np.uint64(_fine_bucket(k, linear, u0, scale, kmin, shift, nb))
            lo = np.uint64(start[b])
            hi = np.uint64(start[b + one])
            if lo == hi:  # no positive value in this bucket
                below[lo] += 1
                continue
            r = _first_not_below(ukeys, k, lo, hi)
            if ukeys[r] == k:
                on[r] += 1
            else:
                below[r] += 1
    return touched


@njit(inline="always")
def _touch_partition(p, pshift, nb, start, ukeys, below, on):
    """Read partition ``p``'s slices of ``start``, ``U`` and the counts in order, one load per
    cache line, before its pixels are counted: streamed in order, they arrive at the memory's
    bandwidth instead of one miss at a time. Measured for the 64-bit kernel with K = 0.5, 1, 2,
    4 and 20 M distinct values: 3-15 % faster (the float32 count: :func:`_touch_partition32`).
    Returns a sum of what it read, so that the loads are kept."""
    b0 = p << pshift
    b1 = min((p + 1) << pshift, nb + 2)
    lo = start[b0]
    hi = start[b1]
    total = np.int64(0)
    for j in range(b0, b1 + 1, 16):
        total += start[j]
    for j in range(lo, hi, 8):
        total += below[j] + on[j]
    for j in range(lo, hi, 64 // ukeys.itemsize):
        total += np.int64(ukeys[j] & np.uint64(1))
    return total


_S32 = np.uint32(0x80000000)
_EXP32 = np.uint32(0x7F800000)
_MANT32 = np.uint32(0x007FFFFF)
_FLAG = np.uint64(1 << 63)
_LOW32 = np.uint64(0xFFFFFFFF)
_B31 = np.uint64(0x7FFFFFFF)


@njit(inline="always")
def _word32(x, bits, linear, u0, scale, kmin, shift, nb):
    """The packed word ``(fine bucket + 1) << 32 | key`` of a float32 score ``x`` (``bits`` its
    bit pattern). Bucket 0 holds everything below ``U[0]``, bucket ``nb + 1`` everything
    above the last fine bucket; the buckets are monotone in the score, clamped, never out of
    range (NaN lands in bucket 0 with key 0 and is reported by the caller). Written with
    selects only, so that a loop of it compiles to vector instructions."""
    bits = np.uint32(0) if bits == _S32 else bits  # -0.0 is 0.0
    k = ~bits if bits & _S32 else bits | _S32
    nan = ((bits & _EXP32) == _EXP32) & ((bits & _MANT32) != 0)
    k = np.uint32(0) if nan else k  # below everything, never scanned past U
    if linear:
        b = _linear_bucket(np.float64(x), u0, scale, nb)  # NaN: bucket 0
    else:
        d = (np.int64(k) - np.int64(kmin)) >> shift
        b = d + 1
        b = b if d < nb else np.int64(nb + 1)
        b = b if d >= 0 else np.int64(0)
    return (np.uint64(b) << np.uint64(32)) | np.uint64(k)


@njit(inline="always")
def _first_not_below(ukeys, k, lo, hi):
    """The first index ``r >= lo`` with ``ukeys[r] >= k``, known to be at most ``hi`` (the
    start of the next bucket; ``ukeys`` ends with a sentinel above every key), as uint64. A
    bucket of more than 8 values is halved first, so no input makes the search long."""
    lo = np.uint64(lo)
    hi = np.uint64(hi)
    while hi - lo > np.uint64(8):
        mid = (lo + hi) >> np.uint64(1)
        if ukeys[mid] < k:
            lo = mid + np.uint64(1)
        else:
            hi = mid
    while ukeys[lo] < k:
        lo += np.uint64(1)
    return lo


_WINDOW = 4  # sentinels pad U's keys this far (comparisons past a bucket's start never leave the array)


@njit(inline="always")
def _position(ukeys, k, lo, hi):
    """The first index ``r >= lo`` with ``ukeys[r] >= k``, for a key ``k`` of the bucket that
    holds ``ukeys[lo:hi]``. With at most two values in the bucket (empty buckets included, the
    common case with fine buckets) it is found by two comparisons and no branch: the values
    of later buckets and the sentinels are above every key of this one. A larger bucket is
    searched (:func:`_first_not_below`). Measured on 8 M uniform pixels (count after the
    scatter): at K = 1.3, 5 and 10.5 M, 6.1, 7.9 and 10.3 ns per pixel with a branch for an
    empty bucket and four comparisons otherwise; 6.0, 7.4 and 8.4 with two comparisons for
    both; 6.8, 8.1 and 9.2 with three (one: as two, but more buckets searched when crowded).
    Returns a uint64 (index with it: no negative-index fix-up)."""
    lo = np.uint64(lo)
    hi = np.uint64(hi)
    if hi - lo > np.uint64(2):
        return _first_not_below(ukeys, k, lo, hi)
    return lo + np.uint64(ukeys[lo] < k) + np.uint64(ukeys[lo + np.uint64(1)] < k)


@njit(inline="always")
def _partition_offsets(hist):
    """Where each partition starts in the scattered buffer (``hist`` is reset for the next fill)."""
    offset = np.empty(hist.size, np.int64)
    total = 0
    for p in range(hist.size):
        offset[p] = total
        total += hist[p]
        hist[p] = 0
    return offset


@njit(nogil=True, cache=True)
def _fill32(values, bits, take, use_take, subtract, first, buf, pos, hist, linear, u0, scale, kmin, shift, nb,
            pshift):
    """Append the packed words (:func:`_word32`) of ``values[first:]`` (or of ``values[take[first:]]``)
    to ``buf[pos:]``, flagged to be subtracted when ``subtract``, and histogram their partitions.
    Block by block: the words first (no branch: vector instructions), then their partitions.
    Returns ``(next first, next pos, non-finite values seen)``."""
    n = take.size if use_take else values.size
    m = min(n - first, buf.size - pos)
    flag = _FLAG if subtract else np.uint64(0)
    top = _B31 >> np.uint64(pshift)
    sh = np.uint64(32) + np.uint64(pshift)
    bad = 0
    src = np.uint64(first)
    dst = np.uint64(pos)
    for s in range(0, m, _FILL_BLOCK):
        lo = np.uint64(s)
        hi = np.uint64(min(m, s + _FILL_BLOCK))
        if use_take:
            for i in range(lo, hi):
                j = np.uint64(take[src + i])
                bb = bits[j]
                bad += (bb & _EXP32) == _EXP32
                buf[dst + i] = _word32(values[j], bb, linear, u0, scale, kmin, shift, nb) | flag
        elif linear:  # the bucket rule a constant in each loop, so that both vectorise
            for i in range(lo, hi):
                bb = bits[src + i]
                bad += (bb & _EXP32) == _EXP32
                buf[dst + i] = _word32(values[src + i], bb, True, u0, scale, kmin, shift, nb)
        else:
            for i in range(lo, hi):
                bb = bits[src + i]
                bad += (bb & _EXP32) == _EXP32
                buf[dst + i] = _word32(values[src + i], bb, False, u0, scale, kmin, shift, nb)
        for i in range(lo, hi):
            hist[(buf[dst + i] >> sh) & top] += 1
    return first + m, pos + m, bad


@njit(inline="always")
def _scatter_words(buf, m, tmp, offset, sh, top):
    """Move ``buf[:m]`` to ``tmp`` in order of partition (``(word >> sh) & top``), each to
    ``offset[partition]``, which moves on (uint64 offsets). Eight words per step: the stores
    of one word's offset no longer wait on the previous word's (3.9 -> 2.5 ns per word)."""
    m8 = np.uint64(m - m % 8)
    for i0 in range(np.uint64(0), m8, np.uint64(8)):
        for u in range(np.uint64(0), np.uint64(8)):
            _move_word(buf, i0 + u, tmp, offset, sh, top)
    for i in range(m8, np.uint64(m)):
        _move_word(buf, i, tmp, offset, sh, top)


@njit(inline="always")
def _move_word(buf, i, tmp, offset, sh, top):
    """Word ``i`` of :func:`_scatter_words` moved to its partition's next place."""
    w = buf[i]
    p = (w >> sh) & top
    o = offset[p]
    tmp[o] = w
    offset[p] = o + np.uint64(1)


@njit(nogil=True, cache=True)
def _count32(buf, m, tmp, hist, pshift, ukeys, local, base, counts):
    """Scatter the packed words ``buf[:m]`` into partitions (``hist`` from :func:`_fill32`, reset
    here), then count each partition against its own slice of ``U`` (``ukeys``: 32-bit keys
    padded with sentinels above every key), which stays in cache. Flagged words are subtracted.

    Partition ``p`` holds the fine buckets ``p << pshift`` to ``((p + 1) << pshift) - 1``; its
    values of ``U`` start at ``base[p]``, and ``local[p * (2**pshift + 1) + j]`` is how many of
    them lie in its buckets below its ``j``-th (:meth:`_Fine32.build`; uint16 when every
    partition holds fewer than 65,536 values, else int32). Each pixel is placed by
    :func:`_position` (no branch unless its bucket holds more than two positive values) and
    counted, without a branch, in ``counts[2 r + e]``, where ``e`` is 1 when it equals ``U[r]``
    (``on[r]``), else 0 (``below[r]``): int32 pairs, so that one cache line holds both counts
    of 8 values (:class:`NegativeCounter` folds them into the int64 counts before they could
    overflow). Each partition's slices are streamed in first (:func:`_touch_partition32`).

    Measured on 8 M pixels against K = 10.5 M float32 values (8,193 partitions): the count
    after the scatter took 13.5 ns per pixel with separate int64 ``below``/``on``, 11.5 with
    the int32 pairs, 8.5 with the pairs and the touch; at K = 1.3 M (1,025 partitions) 5.6,
    5.2 and 5.7. Bucket starts local to the partition in uint16
    instead of the global int32 table (half the bytes per partition, so that its slices stay
    in the L1 cache): 6.9 -> 4.6 ns per pixel at K = 0.7 M.

    The count of one key is written out here and in :func:`_partition_count` on purpose: an
    inline helper that updates the counts measured 2.7x slower.

    With unsigned indices (see the module's docstring) the touch pays at every ``K``: whole
    count of 8 M uniform float32 pixels at K = 0.05, 0.2, 0.7, 1.4 and 3 M, 8.5, 9.2, 10.0,
    11.1 and 12.1 ns per pixel without it, 8.4, 8.7, 8.6, 9.8 and 11.2 with it."""
    offset = _partition_offsets(hist)
    _scatter_words(buf, m, tmp, offset.view(np.uint64), np.uint64(32) + np.uint64(pshift), _B31 >> np.uint64(pshift))
    touched = np.int64(0)
    width = (1 << pshift) + 1
    low = np.uint64((1 << pshift) - 1)
    two = np.uint64(2)
    first = 0
    for p in range(offset.size):
        end = offset[p]
        if end == first:
            continue
        b0 = base[p]
        uk = ukeys[b0:]
        pairs = counts[2 * b0:]
        starts = local[p * width:(p + 1) * width]
        touched += _touch_partition32(starts, uk, pairs, base[p + 1] - b0)
        for i in range(np.uint64(first), np.uint64(end)):
            w = tmp[i]
            k = np.uint32(w & _LOW32)
            j = (w >> np.uint64(32)) & low
            d = np.int32(1 - 2 * np.int32(w >> np.uint64(63)))
            r = _position(uk, k, starts[j], starts[j + np.uint64(1)])
            pairs[two * r + np.uint64(uk[r] == k)] += d
        first = end
    return touched


@njit(inline="always")
def _touch_partition32(starts, ukeys, pairs, n):
    """:func:`_touch_partition` for the float32 count: a partition's local bucket starts, its
    ``n`` values' 32-bit keys and int32 count pairs, one load per cache line."""
    total = np.int64(0)
    for j in range(0, starts.size, 64 // starts.itemsize):
        total += starts[j]
    for j in range(0, 2 * n, 16):
        total += pairs[j]
    for j in range(0, n, 16):
        total += np.int64(ukeys[j] & np.uint32(1))
    return total


@njit(nogil=True, cache=True)
def _local_starts(buckets, pshift, partitions, local):
    """Fill ``local`` (partitions * (2**pshift + 1)) with each partition's bucket starts minus
    its first, from the fine bucket of each value of ``U`` (ascending, ``0..nb - 1``), in one
    walk: entry ``s`` of the table counts the values in buckets below ``s - 1`` (entry 0 is
    the bucket below ``U[0]``; entries past the last bucket are ``K``). Returns ``base``
    (partitions + 1): where each partition's values start in ``U``, then ``K``."""
    width = 1 << pshift
    k = buckets.size
    base = np.empty(partitions + 1, np.int64)
    r = 0
    for p in range(partitions):
        at = p * (width + 1)
        for j in range(width + 1):
            s = p * width + j
            while r < k and buckets[r] < s - 1:
                r += 1
            if j == 0:
                base[p] = r
            local[at + j] = r - base[p]
    base[partitions] = k
    return base


@njit(nogil=True, cache=True)
def fold_pairs(pairs, below, on):
    """Add the int32 count pairs of the float32 count (``pairs[2 r]`` below ``U[r]``,
    ``pairs[2 r + 1]`` on it, ``pairs[2 K]`` above ``U[K - 1]``; :class:`NegativeCounter`) to
    ``below`` (K + 1,) and ``on`` (K,), and zero them."""
    k = on.size
    for r in range(k):
        below[r] += pairs[2 * r]
        on[r] += pairs[2 * r + 1]
        pairs[2 * r] = 0
        pairs[2 * r + 1] = 0
    below[k] += pairs[2 * k]
    pairs[2 * k] = 0


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


_RADIX_BITS = 11


_MSD_MIN = 1 << 16  # from this many keys on, one most-significant-digit pass first
_PARALLEL_SORT_MIN = 1 << 20  # from this many keys on, the parts are sorted by two threads


@njit(inline="always")
def _scatter_digit(src_k, src_o, identity, dst_k, dst_o, lo, hi, sh, digit_mask, count):
    """One radix pass: ``src_k[lo:hi]`` (and ``src_o`` alongside, or with ``identity`` each
    key's own index) moved to ``dst_k``/``dst_o`` at ``count[digit]`` (uint64, moves on), the
    digit ``(key >> sh) & digit_mask``. Unsigned offsets and eight keys per step, as
    :func:`_scatter_words` (the first pass of 14 M keys: 0.25 -> 0.17 s)."""
    stop = lo + (hi - lo) // 8 * 8
    for i0 in range(lo, stop, 8):
        for u in range(8):
            _move_key(src_k, src_o, identity, dst_k, dst_o, i0 + u, sh, digit_mask, count)
    for i in range(stop, hi):
        _move_key(src_k, src_o, identity, dst_k, dst_o, i, sh, digit_mask, count)


@njit(inline="always")
def _move_key(src_k, src_o, identity, dst_k, dst_o, i, sh, digit_mask, count):
    """Key ``i`` of :func:`_scatter_digit` moved to its digit's next place."""
    key = src_k[i]
    d = (key >> sh) & digit_mask
    c = count[d]
    dst_k[c] = key
    dst_o[c] = i if identity else src_o[i]
    count[d] = c + np.uint64(1)


@njit(nogil=True, cache=True)
def _lsd_passes(ordered, order, ordered2, order2, lo, hi, varying, below, count):
    """Sort ``ordered[lo:hi]`` (and ``order`` alongside) by the bits under ``below`` with
    least-significant-digit passes of 11-bit digits, skipping digits equal in every key
    (``varying``); ``ordered2``/``order2`` are scratch of the same size. The result is in
    ``ordered``/``order`` (copied back after an odd number of passes)."""
    radix = 1 << _RADIX_BITS
    mask = np.uint64(radix - 1)
    swapped = False
    src_k, src_o, dst_k, dst_o = ordered, order, ordered2, order2
    for shift in range(0, below, _RADIX_BITS):
        sh = np.uint64(shift)
        digit_mask = mask if shift + _RADIX_BITS <= below else np.uint64((1 << (below - shift)) - 1)
        if (varying >> sh) & digit_mask == 0:
            continue
        count[:] = 0
        for i in range(lo, hi):
            count[((src_k[i] >> sh) & digit_mask) + 1] += 1
        count[0] = lo
        for d in range(radix):
            count[d + 1] += count[d]
        _scatter_digit(src_k, src_o, False, dst_k, dst_o, lo, hi, sh, digit_mask, count.view(np.uint64))
        src_k, src_o, dst_k, dst_o = dst_k, dst_o, src_k, src_o
        swapped = not swapped
    if swapped:
        for i in range(lo, hi):
            ordered[i] = src_k[i]
            order[i] = src_o[i]


@njit(nogil=True, cache=True)
def _msd_pass(keys):
    """The first step of :func:`_radix_sort`: ``(ordered, order, scratch keys, scratch order,
    bounds, varying, below)``. With many keys they are split by their 11 highest varying bits
    into ``bounds`` (one pass) and the parts are left to sort on the ``below`` lower bits
    (:func:`_lsd_parts`); with few (``bounds`` empty) they are sorted already."""
    n = keys.size
    radix = 1 << _RADIX_BITS
    bounds = np.zeros(0, np.int64)
    if n < 2:
        return keys.copy(), np.arange(n), np.empty(n, np.uint64), np.empty(n, np.int64), bounds, np.uint64(0), 0
    all_or = np.uint64(0)
    all_and = ~np.uint64(0)
    for i in range(n):
        all_or |= keys[i]
        all_and &= keys[i]
    varying = all_or ^ all_and
    count = np.empty(radix + 1, np.int64)
    top = 0  # one above the highest varying bit
    while top < 64 and (varying >> np.uint64(top)) != 0:
        top += 1
    # the scratch arrays are left untouched (np.empty): their pages are first written by the parts' sort
    ordered = np.empty(n, np.uint64)
    order = np.empty(n, np.int64)
    ordered2 = np.empty(n, np.uint64)
    order2 = np.empty(n, np.int64)
    if n < _MSD_MIN or top <= _RADIX_BITS:
        ordered[:] = keys
        for i in range(n):
            order[i] = i
        _lsd_passes(ordered, order, ordered2, order2, 0, n, varying, 64, count)
        return ordered, order, ordered2, order2, bounds, varying, 0
    msd = np.uint64(top - _RADIX_BITS)
    mask = np.uint64(radix - 1)
    count[:] = 0
    for i in range(n):
        count[((keys[i] >> msd) & mask) + np.uint64(1)] += 1
    for d in range(radix):
        count[d + 1] += count[d]
    bounds = count.copy()
    _scatter_digit(keys, order, True, ordered2, order2, 0, n, msd, mask, count.view(np.uint64))
    # sorted parts end in ordered2/order2 (ordered/order are their scratch)
    return ordered2, order2, ordered, order, bounds, varying, top - _RADIX_BITS


@njit(nogil=True, cache=True)
def _lsd_parts(ordered, order, scratch, scratch_order, bounds, first, last, varying, below):
    """Sort the parts ``first:last`` of :func:`_msd_pass` on their ``below`` lower bits, in place."""
    count = np.empty((1 << _RADIX_BITS) + 1, np.int64)
    for d in range(first, last):
        if bounds[d + 1] - bounds[d] > 1:
            _lsd_passes(ordered, order, scratch, scratch_order, bounds[d], bounds[d + 1], varying, below, count)


def _radix_sort(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``keys`` (uint64, contiguous) sorted, and the stable order that sorts them, by radix sort
    with 11-bit digits (keys travel with their indices); digits that are equal in every key
    (e.g. the low mantissa bits of float32 scores as 64-bit keys) cost nothing.

    Many keys are first split by their 11 highest varying bits (one pass), then each part is
    sorted on the lower bits while it stays in cache: 30 M random float64 keys measured
    about 3x faster than least-significant-digit passes over the whole array. From
    :data:`_PARALLEL_SORT_MIN` keys on the parts are shared by two threads (disjoint ranges of
    the same arrays; the kernels release the GIL)."""
    ordered, order, scratch, scratch_order, bounds, varying, below = _msd_pass(keys)
    varying = np.uint64(varying)  # numba hands a uint64 back as a Python int
    if bounds.size == 0:
        return ordered, order
    parts = bounds.size - 1
    if keys.size < _PARALLEL_SORT_MIN:
        _lsd_parts(ordered, order, scratch, scratch_order, bounds, 0, parts, varying, below)
        return ordered, order
    middle = int(np.searchsorted(bounds, keys.size // 2))  # about half the keys on each side
    middle = min(max(middle, 1), parts)
    other = threading.Thread(target=_lsd_parts, args=(ordered, order, scratch, scratch_order, bounds, middle, parts,
                                                      varying, below))
    other.start()
    try:
        _lsd_parts(ordered, order, scratch, scratch_order, bounds, 0, middle, varying, below)
    finally:
        other.join()
    return ordered, order


@njit(nogil=True, cache=True)
def _distinct_of_sorted(ordered, order):
    """Sorted distinct keys and each key's position among them, from :func:`_radix_sort`."""
    n = ordered.size
    positions = np.empty(n, np.int64)
    distinct = np.empty(n, np.uint64)
    k = -1
    for i in range(n):
        key = ordered[i]
        if k < 0 or key != distinct[k]:
            k += 1
            distinct[k] = key
        positions[np.uint64(order[i])] = k
    return distinct[:k + 1].copy(), positions


def distinct_counts(keys: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``keys`` and how many times each occurs (or the sum of its ``counts``).

    By one sort (``np.unique`` hashes uint64 keys in numpy 2.4, many times slower).

    Parameters
    ----------
    keys : ndarray of shape (n,), integer (e.g. order keys, or indices into ``U``)
    counts : ndarray of shape (n,), int64, optional
        Multiplicity of each key (default: 1 each).

    Returns
    -------
    distinct : ndarray of shape (m,), the dtype of ``keys``
    totals : ndarray of shape (m,), int64
    """
    if counts is None:
        ordered = np.sort(keys)
    else:
        order = np.argsort(keys, kind="stable")
        ordered, counts = keys[order], counts[order]
    if ordered.size == 0:
        return ordered, np.zeros(0, np.int64)
    first = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    if counts is None:
        totals = np.diff(np.append(first, ordered.size)).astype(np.int64)
    else:
        totals = np.add.reduceat(counts.astype(np.int64), first)
    return ordered[first], totals


def distinct_positions(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct keys and the position of each key among them (one radix sort).

    Parameters
    ----------
    keys : ndarray of shape (n,), uint64

    Returns
    -------
    distinct : ndarray of shape (K,), uint64
    positions : ndarray of shape (n,), int64
        ``distinct[positions] == keys``.
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint64).reshape(-1)
    return _distinct_of_sorted(*_radix_sort(keys))


def sort_runs(keys: np.ndarray, ends: np.ndarray, weights: np.ndarray,
              classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct keys, and each run of the input by key, from one radix sort and one walk.

    ``keys`` is the concatenation of runs (e.g. the anomalous pixels of several groups) that
    end at ``ends``; each key carries a weight and a class. Walking the sorted keys once
    gives the distinct keys and, for each run, its entries by key (ties in input order) as
    their position among the distinct keys, their weight and their class: what a stable sort
    of each run alone followed by gathers gives, without the second sort, the scattered
    positions or the gathers' temporaries.

    Parameters
    ----------
    keys : ndarray of shape (n,), uint64
    ends : ndarray of shape (g,), int64
        Where each run ends (ascending; the last is ``n``).
    weights : ndarray of shape (n,), float64
    classes : ndarray of shape (n,), int8

    Returns
    -------
    distinct : ndarray of shape (K,), uint64
    positions : ndarray of shape (n,), int32 (int64 from 2**31 keys on)
        Run ``r``'s entries by key at ``[ends[r - 1], ends[r])``, as positions in ``distinct``.
    weights, classes : ndarray of shape (n,)
        Their weights and classes, in the same order.
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint64).reshape(-1)
    ordered, order = _radix_sort(keys)
    n = keys.size
    positions = np.empty(n, np.int32 if n < 2**31 - 1 else np.int64)
    by_weight = np.empty(n, np.float64)
    by_class = np.empty(n, np.int8)
    k = _walk_runs(ordered, order, np.asarray(ends, np.int64), np.asarray(weights, np.float64),
                   np.asarray(classes, np.int8), positions, by_weight, by_class)
    return ordered[:k].copy(), positions, by_weight, by_class


@njit(nogil=True, cache=True)
def _walk_runs(ordered, order, ends, weights, classes, positions, by_weight, by_class):
    """The walk of :func:`sort_runs`: the distinct keys compacted into ``ordered[:K]`` (returns
    ``K``), each entry's position written to the next place of its run, then the weights and
    classes gathered in output order. The walk first notes each entry's source index where
    its weight goes (``by_weight`` as int64): gathering in the walk itself, two scattered
    reads beside the runs' writes, measured 2.3x slower on 30 M keys."""
    runs = ends.size
    fill = np.empty(runs, np.uint64)  # unsigned offsets (see the module's docstring): 0.29 -> 0.24 s on 14 M keys
    for r in range(runs):
        fill[r] = ends[r - 1] if r else 0
    source = by_weight.view(np.int64)
    k = -1
    last = np.uint64(0)
    one = np.uint64(1)
    for i in range(ordered.size):
        key = ordered[i]
        if k < 0 or key != last:
            k += 1
            last = key
            ordered[k] = key  # k <= i: compacting in place overwrites only keys already read
        j = order[i]
        r = np.uint64(0)
        for q in range(runs):  # no branch: consecutive keys come from unpredictable runs
            r += np.uint64(j >= ends[q])
        at = fill[r]
        fill[r] = at + one
        positions[at] = k
        source[at] = j
    for a in range(source.size):
        by_class[a] = classes[np.uint64(source[a])]
    for a in range(source.size):
        by_weight[a] = weights[np.uint64(source[a])]  # reads its source index before writing over it
    return k + 1


def _linear_buckets(uvals: np.ndarray, scale: float, nb: int) -> np.ndarray:
    """Bucket of each value of ``U`` (ascending float64) for buckets linear in the value: the
    table side of :func:`_linear_bucket` (the same arithmetic, so a score equal to ``U[i]``
    lands in ``U[i]``'s bucket)."""
    return np.minimum(((uvals - uvals[0]) * scale).astype(np.int64), nb - 1)


def _key_buckets(ukeys: np.ndarray, kmin, shift) -> np.ndarray:
    """Bucket of each order key (uint64 or uint32, ascending) for buckets on the key:
    ``(key - kmin) >> shift``."""
    return ((ukeys - ukeys.dtype.type(kmin)) >> ukeys.dtype.type(shift)).astype(np.int64)


@njit(nogil=True, cache=True)
def _run_costs(ukeys, uvals, scale, nb, kmin, shift):
    """Sum of squared bucket sizes (the expected search length) of ``U`` under the linear
    buckets (as :func:`_linear_buckets`) and under the key buckets (as :func:`_key_buckets`),
    in one pass without the bucket arrays."""
    u0 = uvals[0]
    linear = 0.0
    keyed = 0.0
    run_l = 0
    run_k = 0
    prev_l = np.int64(-1)
    prev_k = np.uint64(0)
    for i in range(ukeys.size):
        bl = np.int64((uvals[i] - u0) * scale)
        bl = bl if bl < nb - 1 else np.int64(nb - 1)
        bk = (ukeys[i] - kmin) >> shift
        if i and bl != prev_l:
            linear += run_l * run_l
            run_l = 0
        if i and bk != prev_k:
            keyed += run_k * run_k
            run_k = 0
        run_l += 1
        run_k += 1
        prev_l = bl
        prev_k = bk
    return linear + run_l * run_l, keyed + run_k * run_k


def _bucket_starts(buckets: np.ndarray, nb: int) -> np.ndarray:
    """``start[b]``: how many of the (sorted) ``buckets`` are below ``b``; shape (nb + 1,), int32."""
    start = np.zeros(nb + 1, np.int32)
    np.cumsum(np.bincount(buckets, minlength=nb), out=start[1:])
    return start


def _fine_starts(buckets: np.ndarray, nb: int) -> np.ndarray:
    """The fine table of :class:`_FineTable` from the (sorted) fine ``buckets`` of ``U``: shape
    (nb + 3,), int32; ``start[b + 1]`` values lie in fine buckets below ``b``, with an empty
    bucket at each end (everything below ``U[0]``; everything past the last bucket)."""
    start = np.full(nb + 3, buckets.size, np.int32)
    start[0] = 0
    start[1:nb + 2] = _bucket_starts(buckets, nb)
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
        # the tables built on first use are built once, by the first thread that needs them
        # (counting threads start together; racing builds took 2x the wall time of one)
        self._build_lock = threading.RLock()
        ukeys = np.asarray(keys, dtype=np.uint64)
        if not distinct:
            ukeys = distinct_positions(ukeys)[0]
        # U's keys followed by sentinels above every key (the partitioned count compares up to
        # _WINDOW keys from a bucket's start); ``ukeys`` is a view of the first K, so the keys
        # are stored once
        self.sentinel_keys = np.full(ukeys.size + _WINDOW, np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64)
        self.sentinel_keys[:ukeys.size] = ukeys
        self.ukeys = self.sentinel_keys[:ukeys.size]
        ukeys = self.ukeys
        k = ukeys.size
        if k == 0:
            self.kmin = np.uint64(1)
            self.kmax = np.uint64(0)  # kmin > kmax: every value lands in below[0]
            self.shift = np.uint64(0)
            self._start = np.zeros(2, np.int32)
            self.linear = False
            self._fine = None
            self._fine32 = None
            self._direct = None
            self.nb = 1
            return
        bits = int(min(22, max(10, int(np.ceil(np.log2(k + 1))) + 1)))
        nb = 1 << bits
        kmin, kmax = int(ukeys[0]), int(ukeys[-1])
        shift = max(0, (kmax - kmin).bit_length() - bits)
        self.kmin, self.kmax, self.shift = np.uint64(kmin), np.uint64(kmax), np.uint64(shift)
        # Two bucket functions, both monotone in the score: on the order key (good for
        # scores spread over many orders of magnitude) and linear in the value (good for
        # scores in a bounded range, even across zero). Keep the one with the shorter
        # expected search (sum of squared bucket sizes).
        # U as float64, followed by infinite sentinels (the direct linear kernel's search)
        self._uvals_padded = np.full(k + _WINDOW, np.inf)
        self._uvals_padded[:k] = keys_to_values(ukeys)
        self.uvals = self._uvals_padded[:k]
        span = float(self.uvals[-1] - self.uvals[0])
        self.scale = (nb / span) * (1 - 1e-12) if span > 0 and np.isfinite(span) else 0.0
        linear_cost, key_cost = _run_costs(ukeys, self.uvals, self.scale, nb, self.kmin, self.shift)
        self.linear = self.scale > 0 and linear_cost < key_cost
        self.nb = nb
        self._fine: _FineTable | None = None
        self._fine32: _Fine32 | bool | None = None  # None: not built yet; False: U is not float32
        self._direct: _FineTable | None = None
        # the direct kernels' table (built on first use: a partitioned count uses the fine tables)
        self._start: np.ndarray | None = None

    @property
    def start(self) -> np.ndarray:
        """``start[b]``: how many values of ``U`` lie in buckets below ``b``; shape (nb + 1,), int32."""
        if self._start is None:
            with self._build_lock:
                if self._start is None:
                    if self.linear:
                        buckets = _linear_buckets(self.uvals, self.scale, self.nb)
                    else:
                        buckets = _key_buckets(self.ukeys, self.kmin, self.shift)
                    self._start = _bucket_starts(buckets, self.nb)
        return self._start

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
            with self._build_lock:
                if self._fine is None:
                    self._fine = _FineTable.build(self)
        return self._fine

    def direct_table(self) -> "_FineTable":
        """The buckets of :attr:`start` as a fine table (an empty bucket at each end; built on
        first use, not pickled), for :func:`count_outside`."""
        if self._direct is None:
            with self._build_lock:
                if self._direct is None and self.size == 0:  # one empty bucket: everything below U
                    self._direct = _FineTable(np.zeros(4, np.int32), self.sentinel_keys, 1, 0.0, np.uint64(0), 0)
                elif self._direct is None:
                    self._direct = _FineTable.build(self, bits=self.nb.bit_length() - 1)
        return self._direct

    def prepare_count_table(self) -> None:
        """Build the table a partitioned count will use: the float32 one when every value of
        ``U`` is a float32 (the maps are then float32 or narrower, as a rule), else the 64-bit
        one (either is otherwise built on first use)."""
        if self.fine32() is None:
            self.fine_table()

    def fine32(self) -> "_Fine32 | None":
        """The float32 fine table (built on first use), or None when ``U`` holds a value that is
        not a float32."""
        if self._fine32 is None:
            with self._build_lock:
                if self._fine32 is None:
                    self._fine32 = _Fine32.build(self) or False
        return self._fine32 or None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fine"] = state["_fine32"] = state["_direct"] = None  # rebuilt where they are used: cheaper than sending them
        del state["_build_lock"]
        del state["ukeys"]  # a view of sentinel_keys: sent once
        state.pop("uvals", None)  # a view of _uvals_padded
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build_lock = threading.RLock()
        self.ukeys = self.sentinel_keys[:self.sentinel_keys.size - _WINDOW]
        if "_uvals_padded" in state:
            self.uvals = self._uvals_padded[:self.ukeys.size]

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
            bad = _count_kernel_linear(flat, skip_flat, use_skip, self._uvals_padded, self.start, self.scale, self.nb,
                                       counts.below, counts.on)
        else:
            bad = _count_kernel(flat, skip_flat, use_skip, self.sentinel_keys, self.start, self.kmin, self.kmax,
                                self.shift, counts.below, counts.on)
        _raise_non_finite(bad)


def count_outside(index: PositiveIndex, values: np.ndarray,
                  inside: np.ndarray) -> tuple[NegativeCounts, float]:
    """The normal pixels of one image counted against ``index``, and their highest value.

    One pass over ``values`` that leaves out the flat indices ``inside`` (the anomalous
    pixels) without a mask, places each other value in ``U`` with no branch unless its
    bucket is crowded (:func:`_count_outside`), and keeps the maximum on the way. Meant for
    an image against its own anomalous values (e.g. its own AUPRO), where ``U`` is small
    enough for a direct table: the same counts as :meth:`PositiveIndex.count` with a mask.

    Parameters
    ----------
    index : PositiveIndex
    values : ndarray of any shape
        Scores (any real or integer dtype).
    inside : ndarray of shape (p,), int
        Flat indices into ``values`` to leave out (any order; repeats allowed).

    Returns
    -------
    counts : NegativeCounts
    highest : float
        The highest value counted; ``-inf`` when every value is inside.

    Raises
    ------
    NonFiniteScoresError
        When a counted value is NaN or infinite.
    """
    flat = flat_values(values)
    inside = ascending_indices(inside)
    if inside.size and not 0 <= int(inside[0]) <= int(inside[-1]) < flat.size:
        raise ValueError(f"flat indices out of {flat.size} values")
    k = index.size
    pairs = np.zeros(2 * k + 2, np.int64)
    table = index.direct_table()
    top, bad = _count_outside(flat, inside, index.sentinel_keys, table.start, index.linear,
                              float(index.uvals[0]) if k else 0.0, table.scale, index.kmin, table.shift, table.nb,
                              pairs)
    _raise_non_finite(bad)
    return NegativeCounts(pairs[0:2 * k + 1:2].copy(), pairs[1:2 * k:2].copy()), float(top)


def ascending_indices(flat_index: np.ndarray) -> np.ndarray:
    """Flat indices as int64, ascending and distinct (as ``np.flatnonzero`` gives them: then
    as they are, without a copy for int64; otherwise sorted, repeats dropped), for the
    kernels that walk around them."""
    inside = np.asarray(flat_index, np.int64).reshape(-1)
    if inside.size > 1 and not (inside[1:] > inside[:-1]).all():
        inside = np.unique(inside)
    return inside


def _mask_of(size: int, flat_index: np.ndarray) -> np.ndarray:
    """A flat boolean mask of ``size`` that is true at ``flat_index``."""
    mask = np.zeros(size, np.bool_)
    mask[flat_index] = True
    return mask


def flat_values(values: np.ndarray) -> np.ndarray:
    """The kernels' view of ``values``: flat, contiguous, in a dtype numba reads (float16 and
    bool widened to float32, exactly; other dtypes as they are, without a copy when already
    contiguous)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype == np.float16 or flat.dtype == np.bool_:
        flat = flat.astype(np.float32)
    return flat


def _flat_input(values: np.ndarray, skip: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The kernels' view of ``values`` (:func:`flat_values`) and of ``skip``."""
    flat = flat_values(values)
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

    start: np.ndarray   # (nb + 3,) int32: start[b + 1] = U values in fine buckets below b (K from nb on)
    ukeys: np.ndarray   # (K + _WINDOW,) uint64: U's keys and sentinels above every key (the index's own array)
    nb: int
    scale: float        # linear buckets
    shift: np.uint64    # key buckets
    pshift: int         # partition = (bucket + 1) >> pshift

    @property
    def partitions(self) -> int:
        """Number of partitions (the fine buckets, both end buckets included, ``>> pshift``)."""
        return ((self.nb + 1) >> self.pshift) + 1

    @staticmethod
    def layout(index: "PositiveIndex", bits: int | None = None) -> tuple[int, int, float]:
        """``(bits, partition bits, scale)`` of the fine buckets of ``index`` (``nb = 2**bits``,
        unless ``bits`` is given; ``scale`` of the linear buckets, 0 for key buckets)."""
        k = index.size
        large = k >= _LARGE_K
        pbits = _LARGE_PARTITION_BITS if large else _PARTITION_BITS
        fine_max = _LARGE_FINE_MAX_BITS if large else _FINE_MAX_BITS
        if bits is None:
            bits = int(min(fine_max, max(pbits, int(np.ceil(np.log2(k * _FINE_PER_VALUE))))))
        pbits = min(pbits, bits)
        scale = 0.0
        if index.linear:
            span = float(index.uvals[-1] - index.uvals[0])
            scale = ((1 << bits) / span) * (1 - 1e-12)
        return bits, pbits, scale

    @classmethod
    def build(cls, index: "PositiveIndex", bits: int | None = None) -> "_FineTable":
        bits, pbits, scale = cls.layout(index, bits)
        nb = 1 << bits
        shift = 0
        if index.linear:
            buckets = _linear_buckets(index.uvals, scale, nb)
        else:
            shift = max(0, (int(index.kmax) - int(index.kmin)).bit_length() - bits)
            buckets = _key_buckets(index.ukeys, index.kmin, shift)
        return cls(_fine_starts(buckets, nb), index.sentinel_keys, nb, scale, np.uint64(shift), bits - pbits)


@dataclass(frozen=True)
class _Fine32:
    """The fine buckets of :class:`_FineTable` for float32 scores: 32-bit keys of ``U`` (with a
    sentinel above every key) and each partition's bucket starts relative to its first value,
    with one extra bucket at each end of the table, so that the partitioned count of
    :func:`_fill32`/:func:`_count32` needs no range test per pixel."""

    ukeys: np.ndarray   # (K + _WINDOW,) uint32: U's keys and sentinels above every key
    local: np.ndarray   # (partitions * (2**pshift + 1),) uint16 (int32 when a partition holds 2**16 values or more)
    base: np.ndarray    # (partitions + 1,) int64: where each partition's values start in U, then K
    linear: bool
    u0: float
    scale: float        # linear buckets (as the 64-bit table)
    kmin: np.uint32     # key buckets: (key - kmin) >> shift
    shift: np.int64
    nb: int
    pshift: int

    @classmethod
    def build(cls, index: "PositiveIndex") -> "_Fine32 | None":
        """The table, or None when some value of ``U`` is not a float32 (then the 64-bit path counts)."""
        if index.size == 0:
            return None
        u32 = index.uvals.astype(np.float32)
        if not np.array_equal(u32.astype(np.float64), index.uvals):
            return None
        keys = order_keys32(u32)
        bits, pbits, scale = _FineTable.layout(index)
        nb = 1 << bits
        kmin, shift = np.uint32(keys[0]), 0
        if index.linear:  # the same buckets as the 64-bit table's
            buckets = _linear_buckets(index.uvals, scale, nb)
        else:  # buckets on the 32-bit keys
            shift = max(0, (int(keys[-1]) - int(kmin)).bit_length() - bits)
            buckets = _key_buckets(keys, kmin, shift)
        ukeys = np.append(keys, np.full(_WINDOW, 0xFFFFFFFF, np.uint32))
        pbits = min(pbits, _PARTITION_BITS)  # 1,024 partitions even for large K: its slices stay in L2
        pshift = bits - pbits
        partitions = ((nb + 1) >> pshift) + 1
        # the most values in one partition (its buckets: table entries p << pshift to (p + 1) << pshift)
        crowd = np.diff(np.searchsorted(buckets, (np.arange(partitions + 1) << pshift) - 1)).max()
        local = np.empty(partitions * ((1 << pshift) + 1), np.uint16 if crowd < 1 << 16 else np.int32)
        base = _local_starts(buckets, pshift, partitions, local)
        return cls(ukeys, local, base, bool(index.linear), float(index.uvals[0]), scale, kmin, np.int64(shift), nb,
                   pshift)

    @property
    def partitions(self) -> int:
        """Number of partitions (the fine buckets, both end buckets included, ``>> pshift``)."""
        return ((self.nb + 1) >> self.pshift) + 1


def order_keys32(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 ``values`` (``-0.0`` equals ``0.0``)."""
    bits = (np.asarray(values, dtype=np.float32).ravel() + np.float32(0.0)).view(np.uint32)
    return np.where(bits & _S32, ~bits, bits | _S32)


@dataclass
class CounterBuffers:
    """A counter's buffers, handed from one counter to the next (:meth:`NegativeCounter.take_buffers`)."""

    index: "PositiveIndex"
    keys: np.ndarray
    scratch: np.ndarray | None
    words32: bool
    pairs: np.ndarray | None = None  # the float32 count's int32 pairs (zero when handed over)


class NegativeCounter:
    """Normal pixels counted against a :class:`PositiveIndex`, image after image.

    With a small index each call counts at once. With a large one (``index.partitioned``)
    the pixels are buffered (2 M of them, or 4 per distinct positive value, up to 8 M; 8
    bytes each, plus as much scratch at a count) and counted partitioned when the buffer is
    full and at :meth:`flush`; read the counts through :meth:`result`, which flushes.

    Float32 scores (and narrower types, widened exactly) are buffered as packed words of a
    fine bucket and a 32-bit key (:func:`_fill32`, no branch per pixel; skipped pixels are
    appended again, flagged to be subtracted), when every value of ``U`` is a float32; other
    scores as 64-bit keys. Both give the same integer counts.

    Parameters
    ----------
    index : PositiveIndex
        The distinct positive values to count against.
    counts : NegativeCounts, optional
        Counts to add to (default: new zeros, made on first use).
    pair_sink : callable, optional
        Receives the float32 count's int32 pairs (``2 K + 2``, see :func:`fold_pairs`)
        instead of :attr:`counts`, whenever they are folded; it must add them where it keeps
        its counts and zero them (e.g. :meth:`eval.pixels.PixelStats.fold_pairs`: no ``K``-long
        int64 counts per counter then).
    """

    def __init__(self, index: "PositiveIndex", counts: NegativeCounts | None = None, *,
                 pair_sink: Callable[[np.ndarray], None] | None = None) -> None:
        self.index = index
        self._counts = counts
        self._pair_sink = pair_sink
        self._keys: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        self._hist: np.ndarray | None = None
        self._words32 = False  # what the buffer holds: packed float32 words, or 64-bit keys
        self._pending = 0
        self._pairs: np.ndarray | None = None  # int32 (below, on) pairs of the float32 count...
        self._unfolded = 0                     # ...and the pixels counted into them since the last fold
        self._cap = min(_MAX_BUFFER, max(_BUFFER, _BUFFER_PER_VALUE * index.size))

    @property
    def counts(self) -> NegativeCounts:
        """The counts added to (made on first use when none were given; without what went
        to the ``pair_sink``)."""
        if self._counts is None:
            self._counts = self.index.empty_counts()
        return self._counts

    @property
    def has_counts(self) -> bool:
        """Whether :attr:`counts` exist (given, or made by a count that did not go to the
        ``pair_sink``)."""
        return self._counts is not None

    def add(self, values: np.ndarray, *, skip: np.ndarray | None = None,
            skip_index: np.ndarray | None = None) -> None:
        """Count ``values`` except where ``skip`` is true (see :meth:`PositiveIndex.count`).

        Parameters
        ----------
        values : ndarray of any shape
            Scores (any real or integer dtype).
        skip : ndarray of bool, same shape as ``values``, optional
            Pixels to leave out (the positives of an image).
        skip_index : ndarray of shape (p,), int, optional
            The same as flat indices into ``values`` (instead of ``skip``).

        Raises
        ------
        NonFiniteScoresError
            When a value is NaN or infinite (the counts are then incomplete).
        """
        index = self.index
        if skip_index is not None and (not index.partitioned or np.asarray(values).dtype != np.float32):
            skip = _mask_of(np.asarray(values).size, skip_index).reshape(np.shape(values))
            skip_index = None
        if not index.partitioned:
            index.count(values, self.counts, skip=skip)
            return
        flat, skip_flat, use_skip = _flat_input(values, skip)
        fine32 = index.fine32() if flat.dtype == np.float32 else None
        if fine32 is not None:
            self._use_buffer(True, fine32.partitions)
            bad = self._append32(flat, fine32, None)
            take = np.flatnonzero(skip_flat) if use_skip else skip_index
            if take is not None and take.size:
                bad += self._append32(flat, fine32, np.asarray(take, np.int64))
        else:
            self._use_buffer(False, index.fine_table().partitions)
            bad = self._append64(flat, skip_flat, use_skip)
        _raise_non_finite(bad)

    def take_buffers(self) -> "CounterBuffers | None":
        """Count what is buffered and hand the buffers out (for :meth:`adopt_buffers` of the
        next counter against the same index, so that it need not grow its own from small)."""
        self.flush()
        spare = None if self._keys is None else CounterBuffers(self.index, self._keys, self._scratch, self._words32,
                                                               self._pairs)
        self._keys = self._scratch = self._hist = self._pairs = None
        return spare

    def adopt_buffers(self, spare: "CounterBuffers | None") -> None:
        """Use the buffers of :meth:`take_buffers` (when they were made for this index and
        this counter has none yet)."""
        if spare is not None and self._keys is None and spare.index is self.index:
            self._keys, self._scratch, self._words32 = spare.keys, spare.scratch, spare.words32
            self._pairs, self._unfolded = spare.pairs, 0
            self._hist = np.zeros(self.index.fine32().partitions if spare.words32 else
                                  self.index.fine_table().partitions, np.int64)

    def _use_buffer(self, words32: bool, partitions: int) -> None:
        """Make the buffer hold ``words32`` entries (what it held is counted first)."""
        if self._keys is not None and self._words32 != words32:
            self.flush(release=True)
        if self._keys is None:
            self._keys = np.empty(min(_FIRST_BUFFER, self._cap), np.uint64)
            self._hist = np.zeros(partitions, np.int64)
            self._words32 = words32

    def _room(self) -> None:
        """Grow the buffer when it is full and below its cap; count it when full at the cap."""
        if self._pending == self._keys.size:
            if self._keys.size < self._cap:
                grown = np.empty(min(2 * self._keys.size, self._cap), np.uint64)
                grown[:self._pending] = self._keys[:self._pending]
                self._keys = grown
            else:
                self._count_buffer()

    def _append32(self, flat: np.ndarray, fine: _Fine32, take: np.ndarray | None) -> int:
        """Buffer ``flat`` (or ``flat[take]``, to be subtracted); returns the non-finite count."""
        bits = flat.view(np.uint32)
        use_take = take is not None
        take = take if use_take else np.zeros(1, np.int64)
        n = take.size if use_take else flat.size
        first = bad = 0
        while first < n:
            self._room()
            first, self._pending, b = _fill32(flat, bits, take, use_take, use_take, first, self._keys, self._pending,
                                              self._hist, fine.linear, fine.u0, fine.scale, fine.kmin, fine.shift,
                                              fine.nb, fine.pshift)
            bad += b
        return bad

    def _append64(self, flat: np.ndarray, skip_flat: np.ndarray, use_skip: bool) -> int:
        """Buffer the 64-bit keys of ``flat`` except ``skip``; returns the non-finite count."""
        index = self.index
        fine = index.fine_table()
        first = bad = 0
        while first < flat.size:
            self._room()
            first, self._pending, b = _partition_fill(
                flat, skip_flat, use_skip, first, self._keys, self._pending, self._hist, index.linear, index.uvals[0],
                fine.scale, index.kmin, fine.shift, fine.nb, fine.pshift)
            bad += b
        return bad

    def flush(self, *, release: bool = False) -> None:
        """Count the buffered pixels into :attr:`counts`; ``release`` frees the buffers too."""
        self._count_buffer()
        self._fold()
        if release:
            self._keys = self._scratch = self._hist = self._pairs = None

    def _count_buffer(self) -> None:
        """Count the buffered pixels (the float32 ones into the int32 pairs, folded first when
        they could overflow)."""
        if self._pending:
            index = self.index
            if self._scratch is None or self._scratch.size < self._pending:
                self._scratch = np.empty(self._keys.size, np.uint64)
            if self._words32:
                f = index.fine32()
                if self._pairs is None:
                    self._pairs = np.zeros(2 * index.size + 2, np.int32)
                if self._unfolded + self._pending > _PAIR_LIMIT:
                    self._fold()
                _count32(self._keys, self._pending, self._scratch, self._hist, f.pshift, f.ukeys, f.local, f.base,
                         self._pairs)
                self._unfolded += self._pending
            else:
                fine = index.fine_table()
                _partition_count(self._keys, self._pending, self._scratch, self._hist, fine.ukeys, fine.start,
                                 index.linear, index.uvals[0], fine.scale, index.kmin, fine.shift, fine.nb,
                                 fine.pshift, self.counts.below, self.counts.on)
            self._pending = 0

    def _fold(self) -> None:
        """Add the int32 count pairs into :attr:`counts`, or hand them to the ``pair_sink``
        (when anything was counted into them)."""
        if self._unfolded:
            if self._pair_sink is not None:
                self._pair_sink(self._pairs)  # adds them and zeroes them
            else:
                fold_pairs(self._pairs, self.counts.below, self.counts.on)
            self._unfolded = 0

    @property
    def buffer_bytes(self) -> int:
        """Memory held by the buffers."""
        return sum(b.nbytes for b in (self._keys, self._scratch, self._pairs) if b is not None)

    def result(self) -> NegativeCounts:
        """Every pixel added so far, counted (flushes, frees the buffers)."""
        self.flush(release=True)
        return self.counts


class NonFiniteScoresError(ValueError):
    """Scores handed to the engine include NaN or infinite values."""


def _raise_non_finite(bad: int) -> None:
    if bad:
        raise NonFiniteScoresError(f"{bad} score{'s are' if bad != 1 else ' is'} NaN or infinite")
