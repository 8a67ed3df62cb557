"""Two-pass exact pixel statistics over many images, with groups and region-size classes.

Pass 1 (:meth:`PixelStats.add_positives`) keeps, per anomalous pixel, its score key, its
PRO weight (``1 / area`` of its 8-connected region), the size class of that region and
the image's group. :meth:`PixelStats.finalize_positives` sorts them once into the index
``U``. Pass 2 (:meth:`PixelStats.add_negatives`) streams the normal pixels of every image
through the counting engine; it may run in several threads, each with its own
:class:`NegativeTally`, merged with :meth:`PixelStats.merge`.

The statistics themselves have one definition, :class:`PixelCounts` (positive counts and
PRO weights per distinct positive value and size class, region counts, normal-pixel
counts): it adds up (:meth:`PixelCounts.merge`) and computes every pixel metric
(:meth:`PixelCounts.compute`), for :class:`PixelStats`, :class:`eval.accumulator.PixelAccumulator`
and the bootstrap alike.

Groups let one pass serve breakdowns: e.g. group 0 = good images, group g = defective
images with type set g. A breakdown is a set of groups, declared before pass 2; it is
computed over its own distinct positive values (bit for bit what its images give when
scored alone). Memory is bounded by the anomalous pixels, not by ``K`` times the groups:
each group keeps only its own anomalous pixels, and a tally hands over the normal-pixel
counts of a group as soon as it moves on to the next one (pass 2 goes in order of group),
to be folded into the whole and, restricted to their values, into the breakdowns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from numba import njit

from threecad.regions import MEDIUM_MAX_AREA, SIZE_CLASSES, SMALL_MAX_AREA, region_labels

from .curves import ThresholdCounts, aupro_from, average_precision_from, roc_auc_from
from .engine import (CounterBuffers, NegativeCounter, NegativeCounts, PositiveIndex, ascending_indices, flat_values,
                     fold_pairs, order_keys, sort_runs)

__all__ = ["ImagePositives", "extract_positives", "max_outside", "PixelCounts", "PixelStats", "NegativeTally",
           "PixelResult"]


@dataclass(frozen=True)
class ImagePositives:
    """The anomalous pixels of one image: flat indices, keys, PRO weights, size classes."""

    flat_index: np.ndarray   # (p,) int64, into the raveled map
    keys: np.ndarray         # (p,) uint64 order keys of the scores
    weights: np.ndarray      # (p,) float64, 1 / region area
    size_class: np.ndarray   # (p,) int8, index into SIZE_CLASSES
    n_regions: int
    regions_per_class: tuple[int, int, int]


def _class_of_areas(areas: np.ndarray) -> np.ndarray:
    cls = np.full(areas.shape, 2, np.int8)
    cls[areas <= MEDIUM_MAX_AREA] = 1
    cls[areas < SMALL_MAX_AREA] = 0
    return cls


def extract_positives(amap: np.ndarray, mask: np.ndarray) -> ImagePositives:
    """Anomalous pixels of one image (``mask > 0``) with their region weights.

    Parameters
    ----------
    amap : ndarray of shape (H, W)
        Scores (any real or integer dtype, no NaN).
    mask : ndarray of shape (H, W)
        Ground truth; non-zero = anomalous. Regions are its 8-connected components.
    """
    if amap.shape != mask.shape:
        raise ValueError(f"map shape {amap.shape} differs from mask shape {mask.shape}")
    mask = np.asarray(mask)
    m = np.ascontiguousarray(mask if mask.dtype == np.bool_ else mask > 0)
    flat_index = np.flatnonzero(m)
    if flat_index.size == 0:
        empty = np.zeros(0)
        return ImagePositives(flat_index, empty.astype(np.uint64), empty, empty.astype(np.int8), 0, (0, 0, 0))
    n_regions, labels = region_labels(m)
    values = np.asarray(amap).reshape(-1)[flat_index].astype(np.float64)  # the few anomalous scores
    keys, weights, size_class, per_class = _positive_records(values, labels.reshape(-1), flat_index, n_regions,
                                                             SMALL_MAX_AREA, MEDIUM_MAX_AREA)
    return ImagePositives(
        flat_index=flat_index, keys=keys, weights=weights, size_class=size_class, n_regions=n_regions,
        regions_per_class=(int(per_class[0]), int(per_class[1]), int(per_class[2])))


@njit(nogil=True, cache=True)
def _positive_records(values, labels, flat_index, n_regions, small_max, medium_max):
    """Order key (of ``values``, the anomalous scores as float64), PRO weight (``1 / area``)
    and size class of each anomalous pixel, and the regions per size class (the classes as
    :func:`_class_of_areas`); ``labels`` (raveled) number the regions ``1..n_regions``."""
    areas = np.zeros(n_regions, np.int64)
    for j in flat_index:
        areas[labels[j] - 1] += 1
    region_cls = np.empty(n_regions, np.int8)
    per_class = np.zeros(3, np.int64)
    for r in range(n_regions):
        a = areas[r]
        c = 0 if a < small_max else (1 if a <= medium_max else 2)
        region_cls[r] = c
        per_class[c] += 1
    p = flat_index.size
    keys = np.empty(p, np.uint64)
    weights = np.empty(p, np.float64)
    size_class = np.empty(p, np.int8)
    sign = np.uint64(1 << 63)
    for i in range(p):
        j = flat_index[i]
        bits = np.float64(values[i] + 0.0).view(np.uint64)
        keys[i] = ~bits if bits & sign else bits | sign
        r = labels[j] - 1
        weights[i] = 1.0 / areas[r]
        size_class[i] = region_cls[r]
    return keys, weights, size_class, per_class


def max_outside(flat: np.ndarray, flat_index: np.ndarray) -> float:
    """The highest value of ``flat`` outside ``flat_index`` (e.g. an image's normal pixels),
    without a mask or a copy of ``flat``; ``-inf`` when every value is inside.

    Parameters
    ----------
    flat : ndarray of shape (n,), real
    flat_index : ndarray of shape (p,), int (ascending and distinct as ``np.flatnonzero`` gives
        them; otherwise they are sorted first)
    """
    return float(_max_outside(flat_values(flat), ascending_indices(flat_index)))


@njit(nogil=True, cache=True)
def _max_outside(flat, inside):  # pragma: no cover - compiled
    top = -np.inf
    start = 0
    for k in range(inside.size + 1):
        stop = inside[k] if k < inside.size else flat.size
        for i in range(start, stop):
            v = np.float64(flat[i])
            top = v if v > top else top
        start = stop + 1
    return top


_NO_FLAT = np.zeros(0, np.int64)

_TALLY_BUFFER_BYTES = 160 << 20
"""Buffers one tally may hold over all its groups before the idle groups are counted."""


class NegativeTally:
    """One thread's (or task's) normal-pixel counts, per group, against one positive index.

    Counting goes through :class:`eval.engine.NegativeCounter` (buffered when the index is
    large; when the buffers of all groups pass ``_TALLY_BUFFER_BYTES``, the groups other than
    the current one are counted and their buffers freed); :attr:`counts` flushes first, so
    it always holds every pixel added.

    With a ``sink``, a group's counts leave the tally as soon as another group's pixels
    arrive (``sink(group, counts)``, e.g. :meth:`PixelStats.fold`): a tally fed its images in
    order of group then holds the counts (``K + 1`` and ``K`` integers) of one group only.
    With a ``pair_sink`` too, the float32 count's int32 pairs go to
    ``pair_sink(group, pairs)`` (e.g. :meth:`PixelStats.fold_pairs`) whenever they are
    folded, and a group's int64 counts are made only for what is counted otherwise.

    Parameters
    ----------
    k : int
        Size of the index (``K``).
    counts : dict of int to NegativeCounts, optional
        Counts to start from (e.g. unpacked from the network).
    index : PositiveIndex, optional
        The index to count against (needed only by :meth:`add`).
    sink : callable, optional
        Receives ``(group, counts)`` of each group the tally moves away from.
    pair_sink : callable, optional
        Receives ``(group, pairs)``: int32 count pairs to add and zero (see
        :func:`eval.engine.fold_pairs`). Needs a ``sink`` (for the other counts).
    """

    def __init__(self, k: int, counts: dict[int, NegativeCounts] | None = None, *,
                 index: PositiveIndex | None = None,
                 sink: Callable[[int, NegativeCounts], None] | None = None,
                 pair_sink: Callable[[int, np.ndarray], None] | None = None) -> None:
        if pair_sink is not None and sink is None:
            raise ValueError("a tally with a pair_sink needs a sink too")
        self.k = k
        self.index = index
        self.sink = sink
        self.pair_sink = pair_sink
        self._counts: dict[int, NegativeCounts] = dict(counts or {})
        self._counters: dict[int, NegativeCounter] = {}

    def add(self, values: np.ndarray, *, skip: np.ndarray | None = None, skip_index: np.ndarray | None = None,
            group: int = 0) -> None:
        """Count ``values`` (except ``skip``, or the flat indices ``skip_index``) into ``group``
        (see :meth:`eval.engine.NegativeCounter.add`)."""
        counter = self._counters.get(group)
        if counter is None:
            if self.index is None:
                raise RuntimeError("this tally has no index to count against")
            spare = None
            if self.sink is not None:  # the other groups' counts go first (memory), their buffers stay
                for g in [g for g in {**self._counts, **self._counters} if g != group]:
                    spare = self.release(g, keep_buffers=True) or spare
            counter = self._counters[group] = self._new_counter(group)
            counter.adopt_buffers(spare)
        counter.add(values, skip=skip, skip_index=skip_index)
        if len(self._counters) > 1 and sum(c.buffer_bytes for c in self._counters.values()) > _TALLY_BUFFER_BYTES:
            for g in [g for g in self._counters if g != group]:  # bound the memory of many groups
                self._counters.pop(g).flush(release=True)

    def _new_counter(self, group: int) -> NegativeCounter:
        if self.pair_sink is None:
            return NegativeCounter(self.index, self.for_group(group))
        sink = self.pair_sink
        return NegativeCounter(self.index, self._counts.get(group), pair_sink=lambda pairs: sink(group, pairs))

    def release(self, group: int, *, keep_buffers: bool = False) -> CounterBuffers | None:
        """Hand ``group``'s counts (flushed) to the sink and forget them. Its buffers are freed,
        or returned with ``keep_buffers`` (for the next group's counter)."""
        counter = self._counters.pop(group, None)
        counts = self._counts.pop(group, None)
        spare = None
        if counter is not None:
            if keep_buffers:
                spare = counter.take_buffers()
            else:
                counter.flush(release=True)
            if counts is None and counter.has_counts:
                counts = counter.counts
        del counter
        if counts is not None and self.sink is not None:
            self.sink(group, counts)
        return spare

    def flush(self) -> None:
        """Count every buffered pixel (frees the buffers)."""
        for g, counter in self._counters.items():
            counter.flush(release=True)
            if counter.has_counts:
                self._counts.setdefault(g, counter.counts)
        self._counters.clear()

    @property
    def counts(self) -> dict[int, NegativeCounts]:
        """The counts per group (flushed; without those already handed to the sinks)."""
        self.flush()
        return self._counts

    def for_group(self, group: int) -> NegativeCounts:
        """The counts of ``group`` (created on first use; buffered pixels not included)."""
        c = self._counts.get(group)
        if c is None:
            c = self._counts[group] = NegativeCounts.zeros(self.k)
        return c


@dataclass(frozen=True)
class PixelResult:
    """Pixel metrics of one breakdown."""

    auroc: float
    ap: float
    aupro: float
    n_pixels: int
    n_anomalous: int
    n_regions: int
    aupro_by_size: dict[str, float]
    regions_by_size: dict[str, int]


@dataclass
class PixelCounts:
    """The sufficient statistics of the pixel metrics over one set of distinct positive values.

    Attributes
    ----------
    pos_count : ndarray of shape (K,), int64
        Anomalous pixels at each distinct positive value ``U[i]``.
    pos_weight : ndarray of shape (3, K), float64
        Their PRO weights (sum of ``1 / region area``) per region-size class.
    regions : ndarray of shape (3,), int64
        Regions per size class.
    neg : NegativeCounts
        Normal pixels counted against ``U``.
    """

    pos_count: np.ndarray
    pos_weight: np.ndarray
    regions: np.ndarray
    neg: NegativeCounts

    @classmethod
    def zeros(cls, k: int) -> "PixelCounts":
        """Empty statistics over ``k`` values."""
        return cls(np.zeros(k, np.int64), np.zeros((3, k)), np.zeros(3, np.int64), NegativeCounts.zeros(k))

    def merge(self, other: "PixelCounts") -> "PixelCounts":
        """Add ``other`` (same values) into this one; returns ``self``."""
        self.pos_count += other.pos_count
        self.pos_weight += other.pos_weight
        self.regions += other.regions
        self.neg += other.neg
        return self

    def threshold_counts(self, values: np.ndarray) -> ThresholdCounts:
        """The counts at every threshold (all size classes' PRO weights)."""
        return ThresholdCounts.build(values, self.pos_count, self.neg, pro_weight=self.pos_weight.sum(axis=0),
                                     n_regions=int(self.regions.sum()))

    def compute(self, values: np.ndarray, *, fpr_limit: float = 0.3, label: str = "") -> PixelResult:
        """P-AUROC, P-AP, AUPRO and AUPRO per region-size class.

        Parameters
        ----------
        values : ndarray of shape (K,)
            ``U``, ascending (only the order matters to the areas).
        fpr_limit : float
            AUPRO integration limit.
        label : str
            Named in the warnings of undefined metrics.
        """
        tag = f" ({label})" if label else ""
        tc = self.threshold_counts(values)
        by_size = {}
        for c, name in enumerate(SIZE_CLASSES):
            if self.regions[c] == 0:  # no region of this size: NaN, and no warning for an expected gap
                by_size[name] = float("nan")
                continue
            by_size[name] = aupro_from(tc.with_pro(self.pos_weight[c], int(self.regions[c])), fpr_limit=fpr_limit,
                                       name=f"AUPRO of {name} regions{tag}")
        return PixelResult(
            auroc=roc_auc_from(tc, name=f"P-AUROC{tag}"),
            ap=average_precision_from(tc, name=f"P-AP{tag}"),
            aupro=aupro_from(tc, fpr_limit=fpr_limit, name=f"AUPRO{tag}"),
            n_pixels=tc.n_pos + tc.n_neg,
            n_anomalous=tc.n_pos,
            n_regions=tc.n_regions,
            aupro_by_size=by_size,
            regions_by_size={name: int(self.regions[c]) for c, name in enumerate(SIZE_CLASSES)},
        )


def positive_counts(k: int, positions: np.ndarray, weights: np.ndarray,
                    classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive counts ``(K,)`` and PRO weights per size class ``(3, K)`` of anomalous pixels.

    Parameters
    ----------
    k : int
        ``K``, the number of distinct positive values.
    positions, weights, classes : ndarray of shape (p,)
        Index in ``U`` (:meth:`eval.engine.PositiveIndex.positions`), ``1 / region area`` and
        size class of each anomalous pixel.
    """
    counts = np.bincount(positions, minlength=k).astype(np.int64)
    # one pass over (class, value) bins; each bin sums its pixels in their order, as a
    # bincount per class would
    cell = classes.astype(np.int64) * k + positions
    return counts, np.bincount(cell, weights=weights, minlength=3 * k).reshape(3, k)


@dataclass
class _GroupPositives:
    """The anomalous pixels of one group, by index in ``U`` (a value's pixels in the order they
    were added)."""

    positions: np.ndarray  # (p,) int32 or int64, index in U
    weights: np.ndarray    # (p,) float64, 1 / region area
    classes: np.ndarray    # (p,) int8, size class


@dataclass
class _SetCounts:
    """Normal-pixel counts of one declared set of groups, against the set's own values."""

    positions: np.ndarray  # (K_s,) sorted indices into U: the distinct values of the set's positives
    neg: NegativeCounts


@njit(nogil=True, cache=True)
def _add_group_positives(positions, classes, weights, lookup, use_lookup, pos_count,
                         pos_weight):  # pragma: no cover - compiled
    """Add one group's anomalous pixels (``positions`` in ``U``, ascending; mapped through
    ``lookup`` when ``use_lookup``) to ``pos_count`` (K,) and ``pos_weight`` (3, K), in place.

    The weights of each (class, value) are summed in the group's pixel order, then added to the
    total once, as ``pos_weight[c] += np.bincount(..., weights=...)`` per group would (the same
    floating-point sums, bit for bit): one pass in memory order, with no K-long temporaries."""
    n = positions.size
    i = 0
    while i < n:
        at = positions[i]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        first = i
        while i < n and positions[i] == at:
            c = classes[i]
            if c == 0:
                s0 += weights[i]
            elif c == 1:
                s1 += weights[i]
            else:
                s2 += weights[i]
            i += 1
        j = lookup[at] if use_lookup else at
        pos_count[j] += i - first
        pos_weight[0, j] += s0  # adding 0.0 to a class without pixels here changes nothing
        pos_weight[1, j] += s1
        pos_weight[2, j] += s2


@njit(nogil=True, cache=True)
def _add_restricted(below, on, index_map, sub_below, sub_on):  # pragma: no cover - compiled
    """Add ``NegativeCounts(below, on).restrict(index_map)`` into ``sub_below``/``sub_on``, in
    one sweep without temporaries (the same integers: tests/eval/test_pixels.py)."""
    k = on.size
    k_sub = index_map.size
    acc = 0    # values strictly below U[i] once below[i] is added
    prev = 0   # values up to and including the previous kept value
    j = 0
    for i in range(k):
        acc += below[i]
        if j < k_sub and index_map[j] == i:
            sub_below[j] += acc - prev
            sub_on[j] += on[i]
            prev = acc + on[i]
            j += 1
        acc += on[i]
    sub_below[k_sub] += acc + below[k] - prev


class PixelStats:
    """Exact pixel statistics of a set of images, built in two passes (see module doc).

    Memory after :meth:`finalize_positives` is bounded by the anomalous pixels, not by
    ``K`` times the number of groups: each group keeps its own anomalous pixels (index in
    ``U``, PRO weight, size class), and the normal pixels are folded, as soon as a tally
    hands them over (:meth:`fold`), into one set of counts against ``U`` (every group) and,
    for each set of groups declared in :meth:`finalize_positives` (a breakdown), one set
    of counts restricted to that set's own positive values. A breakdown's metrics are
    computed over its own distinct positive values: the thresholds scikit-learn would
    take on its pixels alone.
    """

    def __init__(self) -> None:
        self._pending: dict[int, list[ImagePositives]] = {}  # pass 1, per group, in order added
        self._regions: dict[int, np.ndarray] = {}
        self.index: PositiveIndex | None = None
        self.groups: set[int] = set()
        self._positives: dict[int, _GroupPositives] = {}
        self._neg: NegativeCounts | None = None
        self._sets: dict[frozenset[int], _SetCounts] = {}
        self._lock = threading.Lock()

    # pass 1 -----------------------------------------------------------------
    def add_positives(self, pos: ImagePositives, *, group: int = 0) -> None:
        """Record one image's anomalous pixels under ``group``."""
        if self.index is not None:
            raise RuntimeError("positives are final; add_positives after finalize_positives")
        self.groups.add(group)
        if pos.keys.size:
            self._pending.setdefault(group, []).append(
                ImagePositives(_NO_FLAT, pos.keys, pos.weights, pos.size_class, 0, (0, 0, 0)))
        acc = self._regions.setdefault(group, np.zeros(3, np.int64))
        acc += np.asarray(pos.regions_per_class, np.int64)

    def finalize_positives(self, sets: Iterable[Iterable[int]] = (), *, prepare: bool = False) -> PositiveIndex:
        """Sort the positives once into the index ``U``; keep each group's positives.

        Parameters
        ----------
        sets : iterable of iterables of int
            Sets of groups whose statistics :meth:`compute` will be asked for besides the
            whole (every group); their normal pixels are counted against their own values.
        prepare : bool
            Build the index's table for the partitioned count
            (:meth:`eval.engine.PositiveIndex.prepare_count_table`) in a second thread
            while the sets are made, instead of in the first counting thread while the
            others wait for it.
        """
        order = sorted(self._pending)
        sizes = [sum(p.keys.size for p in self._pending[g]) for g in order]
        images = [p for g in order for p in self._pending.pop(g)]
        keys = np.concatenate([p.keys for p in images]) if images else np.zeros(0, np.uint64)
        weights = np.concatenate([p.weights for p in images]) if images else np.zeros(0)
        classes = np.concatenate([p.size_class for p in images]) if images else np.zeros(0, np.int8)
        del images  # the images' own arrays: the concatenations replace them
        # each group by value, pixels of a value in the order they were added: the sums of
        # total() then walk memory in order, and add the same terms in the same order
        ends = np.cumsum(sizes, dtype=np.int64)
        distinct, positions, weights, classes = sort_runs(keys, ends, weights, classes)
        del keys
        self.index = index = PositiveIndex(distinct, distinct=True)
        ends = ends.tolist()
        for g, start, end in zip(order, [0, *ends[:-1]], ends):
            self._positives[g] = _GroupPositives(positions[start:end], weights[start:end], classes[start:end])
        del positions, weights, classes
        self._neg = NegativeCounts.zeros(index.size)
        builder = None
        if prepare and index.partitioned:
            builder = threading.Thread(target=index.prepare_count_table, name="count-table")
            builder.start()
        try:
            self._make_sets(sets)
        finally:
            if builder is not None:
                builder.join()
        return index

    def _make_sets(self, sets: Iterable[Iterable[int]]) -> None:
        """Each declared set's own values (sorted positions in ``U``) and zero counts."""
        for s in sets:
            key = frozenset(s)
            if key in self._sets or key >= self.groups:  # every group: that is the whole
                continue
            own = [self._positives[g].positions for g in sorted(key) if g in self._positives]
            # each group's positions are sorted: a stable sort merges the runs
            merged = np.sort(np.concatenate(own), kind="stable") if own else np.zeros(0, np.int32)
            at = merged[np.concatenate([[True], merged[1:] != merged[:-1]])] if merged.size else merged
            del merged
            self._sets[key] = _SetCounts(at, NegativeCounts.zeros(at.size))

    # pass 2 -----------------------------------------------------------------
    def new_tally(self) -> NegativeTally:
        """A fresh per-thread tally for :meth:`add_negatives`; it folds each group it is done
        with into these statistics (feed it its images in order of group)."""
        if self.index is None:
            raise RuntimeError("call finalize_positives before counting normal pixels")
        return NegativeTally(self.index.size, index=self.index, sink=self.fold, pair_sink=self.fold_pairs)

    def add_negatives(self, tally: NegativeTally, amap: np.ndarray, flat_positive: np.ndarray | None,
                      *, group: int = 0) -> None:
        """Count the normal pixels of one image (all pixels except ``flat_positive``)."""
        skip_index = flat_positive if flat_positive is not None and flat_positive.size else None
        tally.add(amap, skip_index=skip_index, group=group)

    def fold(self, group: int, counts: NegativeCounts) -> None:
        """Add the normal-pixel counts of ``group`` (against ``U``; thread-safe).

        They go into the whole and, restricted to its own values, into every declared set
        that holds ``group``; the counts are integers, so the order of folds does not matter.
        """
        if self.index is None or self._neg is None:
            raise RuntimeError("call finalize_positives before counting normal pixels")
        with self._lock:
            self._fold_sets(group, counts.below, counts.on)
            self._neg += counts

    def fold_pairs(self, group: int, pairs: np.ndarray) -> None:
        """:meth:`fold` for the int32 count pairs of the float32 count (``2 K + 2``, see
        :func:`eval.engine.fold_pairs`), straight from a tally's counter; zeroes them.
        Measured on the ANI category of ``scripts/bench_eval_full.py --native`` (K = 12 M):
        a fresh int64 pair of counts per group and thread cost 3 % of the CPU in page
        faults alone."""
        if self.index is None or self._neg is None:
            raise RuntimeError("call finalize_positives before counting normal pixels")
        k = self.index.size
        with self._lock:
            self._fold_sets(group, pairs[0::2], pairs[1:2 * k:2])
            fold_pairs(pairs, self._neg.below, self._neg.on)  # last: it zeroes the pairs

    def _fold_sets(self, group: int, below: np.ndarray, on: np.ndarray) -> None:
        """``group`` noted, and its normal-pixel counts ``below`` (K + 1) / ``on`` (K) added,
        restricted to each set's values, into every declared set that holds it (under the lock)."""
        self.groups.add(group)
        for s, c in self._sets.items():
            if group in s:
                _add_restricted(below, on, c.positions, c.neg.below, c.neg.on)

    def merge(self, tally: NegativeTally) -> None:
        """Fold a thread's tally (whatever it still holds) into the totals."""
        for g, c in tally.counts.items():
            self.fold(g, c)
        tally.counts.clear()

    # results -----------------------------------------------------------------
    @property
    def regions(self) -> dict[int, np.ndarray]:
        """Regions per size class ``(3,)`` of each group."""
        return dict(self._regions)

    def _set_of(self, groups: Iterable[int] | None) -> frozenset[int] | None:
        """None for the whole (every group), else a declared set."""
        if groups is None:
            return None
        key = frozenset(groups)
        if key >= self.groups:
            return None
        if key not in self._sets:
            raise ValueError(f"the statistics of groups {sorted(key)} were not kept: declare them in "
                             "finalize_positives")
        return key

    def values(self, groups: Iterable[int] | None = None) -> np.ndarray:
        """The distinct positive values, ascending, of a set of groups (default: all)."""
        if self.index is None:
            raise RuntimeError("call finalize_positives first")
        key = self._set_of(groups)
        values = self.index.uvals if self.index.size else self.index.values
        return values if key is None else values[self._sets[key].positions]

    def total(self, groups: Iterable[int] | None = None) -> PixelCounts:
        """The statistics of a set of groups (default: all), over its :meth:`values`.

        Per-value PRO weights are summed group by group in increasing group id, each group's
        pixels in the order they were added (the same sums whatever the set's values).
        """
        if self.index is None or self._neg is None:
            raise RuntimeError("call finalize_positives first")
        key = self._set_of(groups)
        members = sorted(self.groups if key is None else key)
        at = None if key is None else self._sets[key].positions
        k = self.index.size if at is None else at.size
        out = PixelCounts(np.zeros(k, np.int64), np.zeros((3, k)), np.zeros(3, np.int64),
                          self._neg if key is None else self._sets[key].neg)  # shared: do not add to it
        # U index -> index among the set's values (a gather, not a search); the identity for the whole
        lookup = np.zeros(self.index.size if at is not None else 0, np.int32 if k < 2**31 else np.int64)
        if at is not None:
            lookup[at] = np.arange(k, dtype=lookup.dtype)
        for g in members:
            if g in self._regions:
                out.regions += self._regions[g]
            pos = self._positives.get(g)
            if pos is not None:
                _add_group_positives(pos.positions, pos.classes, pos.weights, lookup, at is not None,
                                     out.pos_count, out.pos_weight)
        return out

    def compute(self, groups: Iterable[int] | None = None, *, fpr_limit: float = 0.3,
                label: str = "") -> PixelResult:
        """P-AUROC, P-AP, AUPRO (and AUPRO per region-size class) over ``groups``
        (default: all; otherwise a set declared in :meth:`finalize_positives`)."""
        counts = self.total(groups)
        return counts.compute(self.values(groups), fpr_limit=fpr_limit, label=label)

    def release(self, groups: Iterable[int] | None = None, *, whole: bool = False) -> None:
        """Free the counts of the declared set ``groups`` (default: of every declared set; and,
        with ``whole``, everything else but the regions): :meth:`compute` then works for the
        other sets and the whole only (or not at all)."""
        if groups is None:
            self._sets = {}
        else:
            self._sets.pop(frozenset(groups), None)
        if whole:
            self._positives, self._neg, self.index = {}, None, None
